package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// runProcess runs `switchboard args...` as a child process (the test
// binary running main) and returns its exit code, stdout and stderr.
func runProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return 0, stdout.String(), stderr.String()
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigValidateExitCodes runs `switchboard config validate` as a
// process: 0 and "ok" for a good file, 1 and one line per problem for a
// bad one, 2 for a command used wrongly.
func TestConfigValidateExitCodes(t *testing.T) {
	t.Parallel()
	good := writeConfig(t, "stage: prod\nlimits: {maxMessageBytes: 64KiB}\n")
	bad := writeConfig(t, "stage: prod\nlimits:\n  maxMessageBytes: big\n  idleTimout: 5m\n")
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrLine []string
	}{
		{"good file", []string{"config", "validate", good}, 0, good + ": ok\n", nil},
		{"bad file", []string{"config", "validate", bad}, 1, "", []string{
			bad + `:3: limits.maxMessageBytes: expected a size such as 131072, 128KiB or unlimited, got "big"`,
			bad + ":4: limits.idleTimout: unknown key; did you mean idleTimeout?",
		}},
		{"missing file", []string{"config", "validate", filepath.Join(t.TempDir(), "absent.yaml")}, 1, "", nil},
		{"no file given", []string{"config", "validate"}, 2, "", []string{"switchboard: config validate: want one FILE"}},
		{"misspelt config command", []string{"config", "valdate", good}, 2, "", nil},
		{"defaults validate", []string{"config", "validate", writeConfig(t, config.DefaultsYAML())}, 0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runProcess(t, tt.args...)
			if code != tt.code {
				t.Errorf("%v: exit code %d, want %d; stderr %q", tt.args, code, tt.code, stderr)
			}
			if tt.stdout != "" && stdout != tt.stdout {
				t.Errorf("%v: stdout %q, want %q", tt.args, stdout, tt.stdout)
			}
			if tt.stderrLine != nil && stderr != strings.Join(tt.stderrLine, "\n")+"\n" {
				t.Errorf("%v: stderr\n%s\nwant\n%s", tt.args, stderr, strings.Join(tt.stderrLine, "\n"))
			}
		})
	}
}

// TestConfigDefaultsPrintsTheReference: `switchboard config defaults`
// prints the commented defaults, which validate.
func TestConfigDefaultsPrintsTheReference(t *testing.T) {
	var out, errOut testutil.Buffer
	if err := run(context.Background(), []string{"config", "defaults"}, env(nil), &out, &errOut); err != nil {
		t.Fatalf("config defaults: %v", err)
	}
	if out.String() != config.DefaultsYAML() {
		t.Errorf("config defaults printed %q, want config.DefaultsYAML()", out.String())
	}
	if _, err := config.Load(writeConfig(t, out.String()), env(nil), config.Overrides{}); err != nil {
		t.Errorf("the defaults do not load: %v", err)
	}
}

// TestUnknownCommandSuggests: a misspelt command is named with the nearest one.
func TestUnknownCommandSuggests(t *testing.T) {
	for args, want := range map[string]string{
		"serv":            `unknown command "serv"; did you mean serve?`,
		"conect":          `unknown command "conect"; did you mean connect?`,
		"config defualts": `config: unknown command "defualts"; did you mean defaults?`,
		"zzz":             `unknown command "zzz" (run 'switchboard --help' for the commands)`,
	} {
		err := run(context.Background(), strings.Fields(args), env(nil), &testutil.Buffer{}, &testutil.Buffer{})
		if err == nil || err.Error() != want {
			t.Errorf("run(%q) = %v, want %q", args, err, want)
		}
		if code := cli.ExitCode(err); code != cli.ExitUsage {
			t.Errorf("run(%q): exit code %d, want %d", args, code, cli.ExitUsage)
		}
	}
}

// TestVersionFromBuildInfo clones this checkout's HEAD, builds the command
// there with VCS stamping, and checks `switchboard version` against git: the
// revision is HEAD, the tree is not modified, and the time is the commit's.
func TestVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := exec.CommandContext(ctx, gitBin, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "src")
	if out, err := exec.CommandContext(ctx, gitBin, "clone", "-q", "--no-hardlinks", strings.TrimSpace(string(root)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	gitOut := func(args ...string) string {
		cmd := exec.CommandContext(ctx, gitBin, args...)
		cmd.Dir = clone
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	head := gitOut("rev-parse", "HEAD")
	commitTime, err := time.Parse(time.RFC3339, gitOut("show", "-s", "--format=%cI", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	build := exec.CommandContext(ctx, goBin, "build", "-buildvcs=true", "-o", bin, "./cmd/switchboard")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		t.Fatalf("switchboard version: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if !strings.HasPrefix(lines[0], "switchboard v") {
		t.Errorf("first line %q, want switchboard and the module version", lines[0])
	}
	fields := map[string]string{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
		fields[k] = strings.TrimSpace(v)
	}
	if fields["revision"] != head {
		t.Errorf("revision %q, want the clone's HEAD %q; output:\n%s", fields["revision"], head, out)
	}
	if got, err := time.Parse(time.RFC3339, fields["time"]); err != nil || !got.Equal(commitTime) {
		t.Errorf("time %q (%v), want the commit's %v", fields["time"], err, commitTime)
	}
	if fields["modified"] != "false" {
		t.Errorf("modified %q, want false for a clean clone", fields["modified"])
	}
	if !strings.HasPrefix(fields["go"], "go1.") {
		t.Errorf("go %q, want the Go version", fields["go"])
	}
}

// TestServeTLSFilesRelativeToTheConfig serves TLS with a config whose
// certificate paths are relative to its own folder, from a working
// directory where they do not exist.
func TestServeTLSFilesRelativeToTheConfig(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"certs/cert.pem": certPEM, "certs/key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "sb.yaml")
	if err := os.WriteFile(cfg, []byte("tls: {certFile: certs/cert.pem, keyFile: certs/key.pem}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("certs/cert.pem"); err == nil {
		t.Fatal("certs/cert.pem exists in the working directory: the test would prove nothing")
	}
	wsURL, _, _ := serveForTest(t, []string{"--config", cfg, "--listen", "127.0.0.1:0"}, nil)
	if !strings.HasPrefix(wsURL, "wss://") {
		t.Fatalf("banner URL %q, want wss://", wsURL)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := testutil.Dial(t, wsURL, &websocket.DialOptions{HTTPClient: client})
	testutil.Write(t, c, `{"action":"sendMessage","data":"relative"}`)
	if got := testutil.ReadText(t, c); got != "relative" {
		t.Errorf("got %q", got)
	}

	// A missing file stops serve before the banner, naming the key and line.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("stage: dev\ntls: {certFile: certs/nope.pem, keyFile: certs/key.pem}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout testutil.Buffer
	err := run(context.Background(), []string{"serve", "--config", bad, "--listen", "127.0.0.1:0"}, env(nil), &stdout, &testutil.Buffer{})
	want := "serve: " + bad + ":2: tls.certFile: no such file: " + filepath.Join(dir, "certs", "nope.pem")
	if err == nil || err.Error() != want {
		t.Errorf("serve with a missing certificate = %v, want %q", err, want)
	}
	if stdout.String() != "" {
		t.Errorf("serve printed %q before failing, want no banner", stdout.String())
	}
}

// TestReadmeInstall: the README's install section names this module's
// command and the Go version go.mod requires, and links the license and
// the configuration reference, which exist.
func TestReadmeInstall(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var module, goVersion string
	for line := range strings.Lines(string(mod)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			module = f[1]
		} else if len(f) == 2 && f[0] == "go" {
			goVersion = f[1]
		}
	}
	for _, want := range []string{
		"go install " + module + "/cmd/switchboard@latest",
		"go build ./cmd/switchboard",
		"go install ./cmd/switchboard",
		"Go " + goVersion + " or later",
		"[LICENSE](LICENSE)",
		"[CHANGELOG.md](CHANGELOG.md)",
		"[docs/config.md](docs/config.md)",
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q", want)
		}
	}
	for _, f := range []string{"../../LICENSE", "../../CHANGELOG.md", "../../docs/config.md"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}
