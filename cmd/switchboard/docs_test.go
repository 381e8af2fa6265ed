package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clusterpkg "github.com/switchboard-gateway/switchboard/internal/cluster"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// docCommand is one `switchboard serve` line of a ```sh block of a doc,
// with the environment variables set before it.
type docCommand struct {
	line string
	env  map[string]string
	args []string // after "switchboard serve"
}

// docServeCommands returns the serve commands of path's ```sh blocks.
func docServeCommands(t *testing.T, path string) []docCommand {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []docCommand
	inSh := false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "```"):
			inSh = !inSh && line == "```sh"
			continue
		case !inSh:
			continue
		}
		c := docCommand{line: line, env: map[string]string{}}
		f := strings.Fields(line)
		for len(f) > 0 && strings.HasPrefix(f[0], "SWITCHBOARD_") {
			k, v, _ := strings.Cut(f[0], "=")
			c.env[k] = v
			f = f[1:]
		}
		if len(f) < 2 || f[0] != "switchboard" || f[1] != "serve" {
			continue
		}
		c.args = f[2:]
		out = append(out, c)
	}
	return out
}

// Every `switchboard serve` command of docs/cluster.md parses with serve's
// own flags, and its flags and environment make a configuration that
// validates, on the engine the doc says.
func TestDocsCommandsParse(t *testing.T) {
	cmds := docServeCommands(t, "../../docs/cluster.md")
	engines := map[string]int{}
	for _, c := range cmds {
		// -h after the doc's flags: serve stops with flag.ErrHelp only when
		// every flag before it is one of its own, with a value.
		err := run(context.Background(), append(append([]string{"serve"}, c.args...), "-h"), env(c.env), &testutil.Buffer{}, &testutil.Buffer{})
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: serve's flags: %v", c.line, err)
			continue
		}
		fs := flag.NewFlagSet("doc", flag.ContinueOnError)
		var o config.Overrides
		fs.StringVar(&o.Listen, "listen", "", "")
		fs.StringVar(&o.Cluster, "cluster", "", "")
		fs.StringVar(&o.Node, "node", "", "")
		fs.StringVar(&o.ClusterListen, "cluster-listen", "", "")
		fs.StringVar(&o.ClusterPeers, "cluster-peers", "", "")
		if err := fs.Parse(c.args); err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		cfg, err := config.Load("", env(c.env), o)
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		engine, err := cfg.Cluster.Engine()
		if err != nil || cfg.Cluster.Node == "" {
			t.Errorf("%s: engine %q (%v), node %q: want a cluster node with a name", c.line, engine, err, cfg.Cluster.Node)
		}
		engines[engine]++
	}
	for _, e := range []string{config.EngineEmbedded, config.EngineNATS, config.EngineRedis} {
		if engines[e] != 3 {
			t.Errorf("docs/cluster.md runs %d nodes on %s, want 3", engines[e], e)
		}
	}
	// README.md's cluster commands are docs/cluster.md's, checked above.
	found := 0
	for _, r := range docServeCommands(t, "../../README.md") {
		if !strings.Contains(r.line, "--cluster") {
			continue
		}
		found++
		ok := false
		for _, c := range cmds {
			ok = ok || c.line == r.line
		}
		if !ok {
			t.Errorf("README.md's %q is not a command of docs/cluster.md", r.line)
		}
	}
	if found == 0 {
		t.Error("README.md shows no cluster command")
	}
}

// The cluster settings of docs/cluster.md: its YAML loads and validates, the
// flags' environment variables are serve's, and the defaults are the
// cluster's.
func TestDocsClusterSettings(t *testing.T) {
	b, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, block, ok := strings.Cut(doc, "```yaml\ncluster:\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("docs/cluster.md has no ```yaml block starting with cluster:")
	}
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte("cluster:\n"+block), 0o600); err != nil {
		t.Fatal(err)
	}
	// The files the block names must exist, beside the config.
	for _, m := range regexp.MustCompile(`(?:caFile|certFile|keyFile|credsFile): *([^\s,}]+)`).FindAllStringSubmatch(block, -1) {
		if err := os.WriteFile(filepath.Join(filepath.Dir(path), m[1]), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(path, env(nil), config.Overrides{})
	if err != nil {
		t.Fatalf("the doc's cluster settings: %v", err)
	}
	if cfg.Cluster.URL != "tls://nats.internal:4222" || cfg.Cluster.User == "" || cfg.Cluster.TLS.CAFile == "" ||
		time.Duration(cfg.Cluster.TTL) != clusterpkg.DefaultTTL || time.Duration(cfg.Cluster.Grace) != clusterpkg.DefaultGrace ||
		time.Duration(cfg.Cluster.CallTimeout) != clusterpkg.DefaultCallTimeout {
		t.Errorf("the doc's cluster settings load as %+v", cfg.Cluster)
	}

	var usage testutil.Buffer
	_ = run(context.Background(), []string{"serve", "-h"}, env(nil), &usage, &testutil.Buffer{})
	row := regexp.MustCompile("(?m)^\\| `(--[a-z-]+)` \\| `(SWITCHBOARD_[A-Z_]+)` \\| `(cluster\\.[a-zA-Z.]+)` \\|")
	rows := row.FindAllStringSubmatch(doc, -1)
	if len(rows) != 4 {
		t.Errorf("docs/cluster.md's settings table has %d flag rows, want 4", len(rows))
	}
	for _, r := range rows {
		flagName, envName := strings.TrimPrefix(r[1], "--"), r[2]
		re := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(flagName) + ` string\n\s+.*\(env ` + envName + `[;)]`)
		if !re.MatchString(usage.String()) {
			t.Errorf("serve -h does not show --%s with env %s:\n%s", flagName, envName, usage.String())
		}
	}
	for key, d := range map[string]time.Duration{"ttl": clusterpkg.DefaultTTL, "grace": clusterpkg.DefaultGrace, "callTimeout": clusterpkg.DefaultCallTimeout} {
		if want := fmt.Sprintf("| | | `cluster.%s` | %s |", key, d); !strings.Contains(doc, want) {
			t.Errorf("docs/cluster.md lacks %q", want)
		}
	}
	// The configuration reference states the cluster's own defaults.
	for _, k := range config.Reference() {
		if d, ok := map[string]time.Duration{"cluster.ttl": clusterpkg.DefaultTTL, "cluster.grace": clusterpkg.DefaultGrace,
			"cluster.callTimeout": clusterpkg.DefaultCallTimeout}[k.Path]; ok && k.Default != d.String() {
			t.Errorf("config.Reference(): %s defaults to %s, the cluster's default is %s", k.Path, k.Default, d)
		}
	}
	if clusterpkg.DefaultHealthInterval != time.Second {
		t.Errorf("DefaultHealthInterval = %v; docs/cluster.md says every second", clusterpkg.DefaultHealthInterval)
	}
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// The three embedded-NATS commands of docs/cluster.md, run together on free
// ports, make one cluster: a broadcast sent through the third node reaches
// a client of the first, and the named nodes keep their store where the
// doc says.
func TestDocsEmbeddedClusterRuns(t *testing.T) {
	var cmds []docCommand
	for _, c := range docServeCommands(t, "../../docs/cluster.md") {
		if strings.Contains(c.line, "--cluster embedded") {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) != 3 {
		t.Fatalf("docs/cluster.md has %d embedded commands, want 3", len(cmds))
	}
	// The doc's ports, each replaced by a free one; the listeners' by 0.
	ports := map[string]string{}
	for _, c := range cmds {
		for _, p := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(c.line, -1) {
			if _, ok := ports[p[1]]; !ok {
				ports[p[1]] = freePort(t)
			}
		}
	}
	dataDir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	outs := make([]*testutil.Buffer, len(cmds))
	errs := make([]error, len(cmds))
	for i, c := range cmds {
		args := make([]string, len(c.args))
		for j, a := range c.args {
			if j > 0 && c.args[j-1] == "--listen" {
				a = "127.0.0.1:0"
			}
			args[j] = regexp.MustCompile(`127\.0\.0\.1:(\d+)`).ReplaceAllStringFunc(a, func(s string) string {
				return "127.0.0.1:" + ports[strings.TrimPrefix(s, "127.0.0.1:")]
			})
		}
		e := map[string]string{"SWITCHBOARD_DATA_DIR": dataDir}
		for k, v := range c.env {
			e[k] = v
		}
		outs[i] = &testutil.Buffer{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = run(ctx, append([]string{"serve"}, args...), env(e), outs[i], &testutil.Buffer{})
		}()
	}
	t.Cleanup(func() {
		stop()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("node %d: serve returned %v", i+1, err)
			}
		}
	})
	urls := make([]string, len(cmds))
	testutil.Eventually(t, 60*time.Second, func() bool {
		for i, o := range outs {
			if m := wsURLRE.FindStringSubmatch(o.String()); m != nil {
				urls[i] = m[1]
			}
		}
		return urls[0] != "" && urls[1] != "" && urls[2] != ""
	}, "the three nodes serve")
	c := testutil.Dial(t, urls[0], nil)
	web := "http" + strings.TrimPrefix(urls[2], "ws")
	testutil.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Post(web+"/@broadcast", "text/plain", strings.NewReader("through gw3"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "POST /@broadcast through the third node")
	if got := testutil.ReadText(t, c); got != "through gw3" {
		t.Errorf("the client of the first node got %q, want the broadcast sent through the third", got)
	}
	for _, node := range []string{"gw1", "gw2", "gw3"} {
		if fi, err := os.Stat(filepath.Join(dataDir, "nats", node)); err != nil || !fi.IsDir() {
			t.Errorf("no JetStream store of %s in the data directory: %v", node, err)
		}
	}
}

// The sizing figures of docs/cluster.md are rows of bench/RESULTS.md, as
// bench/run.sh wrote them.
func TestDocsSizingFromResults(t *testing.T) {
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	results, err := os.ReadFile("../../bench/RESULTS.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sizing, ok := strings.Cut(string(doc), "\n## Sizing\n")
	if !ok {
		t.Fatal("docs/cluster.md has no Sizing section")
	}
	rows := 0
	for line := range strings.Lines(sizing) {
		line = strings.TrimRight(line, "\n")
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		rows++
		if !strings.Contains(string(results), "\n"+line+"\n") {
			t.Errorf("docs/cluster.md's row %q is not in bench/RESULTS.md", line)
		}
	}
	if rows < 8 {
		t.Errorf("docs/cluster.md's Sizing has %d figure rows, want the two tables of bench/RESULTS.md", rows)
	}
	for _, figure := range []string{"1.10×", "0.76×", "2.70×", "61.1 (57.8–61.6)", "22.7 (20.3–23.9)"} {
		if !strings.Contains(sizing, figure) {
			t.Errorf("docs/cluster.md's Sizing lacks the figure %s its text speaks of", figure)
		}
	}
}
