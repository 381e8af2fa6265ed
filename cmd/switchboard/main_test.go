package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var wsURLRE = regexp.MustCompile(`WebSocket:\s+(wss?://\S+)`)

// serveForTest runs `switchboard serve` with args until the returned cancel.
func serveForTest(t *testing.T, args []string, environ map[string]string) (wsURL string, stdout *testutil.Buffer, cancel func() error) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	stdout, stderr := &testutil.Buffer{}, &testutil.Buffer{}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, append([]string{"serve"}, args...), env(environ), stdout, stderr) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return wsURLRE.MatchString(stdout.String()) },
		"banner printed; stdout %q stderr %q", stdout, stderr)
	var once sync.Once
	var err error
	cancel = func() error {
		once.Do(func() {
			stop()
			select {
			case err = <-errc:
			case <-time.After(15 * time.Second):
				t.Fatal("serve did not return after the signal")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = cancel() })
	return wsURLRE.FindStringSubmatch(stdout.String())[1], stdout, cancel
}

func TestServeZeroConfigAndGracefulDrain(t *testing.T) {
	wsURL, stdout, stop := serveForTest(t, []string{"--listen", "127.0.0.1:0"}, nil)
	for _, want := range []string{"Management API: http://127.0.0.1:", "/dev/@connections", "sendMessage", "-> broadcast", "subscribe", "publish", "no $default", "config: built-in defaults"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout)
		}
	}
	base := "http" + strings.TrimPrefix(wsURL, "ws")
	if status, _ := testutil.Get(t, base+"/healthz"); status != http.StatusOK {
		t.Fatalf("healthz = %d", status)
	}
	c := testutil.Dial(t, wsURL+"/dev", nil)
	testutil.Write(t, c, `{"action":"sendMessage","data":"Hello World!"}`)
	if got := testutil.ReadText(t, c); got != "Hello World!" {
		t.Fatalf("got %q", got)
	}
	closed := make(chan websocket.StatusCode, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		closed <- websocket.CloseStatus(err)
	}()
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v after SIGINT, want nil", err)
	}
	if code := <-closed; code != websocket.StatusGoingAway {
		t.Errorf("client close code on shutdown = %d, want 1001", code)
	}
}

func TestServeFlagsEnvAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := dir + "/sb.yaml"
	if err := os.WriteFile(cfg, []byte("stage: fromfile\nlisten: 127.0.0.1:1\nroutes:\n  $default: {integration: {type: echo}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The environment overrides the file; the flag overrides the environment.
	wsURL, stdout, _ := serveForTest(t, []string{"--config", cfg, "--stage", "fromflag"},
		map[string]string{"SWITCHBOARD_LISTEN": "127.0.0.1:0", "SWITCHBOARD_STAGE": "fromenv"})
	if !strings.Contains(stdout.String(), "/fromflag") || !strings.Contains(stdout.String(), "config: "+cfg) {
		t.Errorf("banner:\n%s\nwant stage fromflag and the config path", stdout)
	}
	c := testutil.Dial(t, wsURL+"/fromflag", nil)
	if got := testutil.ReadTextAfter(t, c, "echo me"); got != "echo me" {
		t.Errorf("echo route from the file: got %q", got)
	}
}

// TestServeCluster: --cluster embedded runs a node of its own NATS; the
// banner and /healthz say so.
func TestServeCluster(t *testing.T) {
	data := t.TempDir()
	wsURL, stdout, stop := serveForTest(t, []string{"--listen", "127.0.0.1:0", "--cluster", "embedded"},
		map[string]string{"SWITCHBOARD_NODE": "n1", "SWITCHBOARD_DATA_DIR": data})
	if want := "  Cluster:        embedded as node n1 (ttl 15s)\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("banner lacks %q:\n%s", want, stdout)
	}
	base := "http" + strings.TrimPrefix(wsURL, "ws")
	status, body := testutil.Get(t, base+"/healthz")
	if want := `"cluster":{"node":"n1","engine":"embedded","state":"ok","nodes":1}`; status != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("healthz = %d %s, want 200 with %s", status, body, want)
	}
	_, m := testutil.Get(t, base+"/metrics")
	for _, name := range []string{"switchboard_cluster_engine_up 1", "switchboard_cluster_nodes 1",
		"switchboard_cluster_lease_renewals_failed_total", "switchboard_cluster_missed_total"} {
		if !strings.Contains(m, name) {
			t.Errorf("metrics lack %q", name)
		}
	}
	// A named node keeps its JetStream store in the data directory.
	if _, err := os.Stat(filepath.Join(data, "nats", "n1")); err != nil {
		t.Errorf("store of node n1: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v, want nil", err)
	}
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", []string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		{"missing config", []string{"serve", "--config", "/nonexistent/sb.yaml"}, nil, "no such file"},
		{"bad stage", []string{"serve", "--stage", "a/b", "--listen", "127.0.0.1:0"}, nil, "stage"},
		{"bad log level", []string{"serve", "--log-level", "loud"}, nil, "log-level"},
		{"port in use", []string{"serve"}, map[string]string{"SWITCHBOARD_LISTEN": "256.0.0.1:1"}, "listen"},
		{"unknown cluster scheme", []string{"serve", "--listen", "127.0.0.1:0", "--cluster", "amqp://127.0.0.1:1"}, nil, `scheme "amqp" not supported`},
		{"redis cluster refused", []string{"serve", "--listen", "127.0.0.1:0", "--cluster", "redis://127.0.0.1:1,127.0.0.1:2"}, nil, "Redis Cluster"},
		{"sentinel from env refused", []string{"serve", "--listen", "127.0.0.1:0"},
			map[string]string{"SWITCHBOARD_CLUSTER": "redis+sentinel://127.0.0.1:1"}, "Sentinel is not supported"},
		{"peers without cluster", []string{"serve", "--listen", "127.0.0.1:0", "--cluster-peers", "127.0.0.1:1"}, nil, "need cluster.url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, env(tt.env), &testutil.Buffer{}, &testutil.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out testutil.Buffer
	if err := run(context.Background(), []string{"version"}, env(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "switchboard ") {
		t.Errorf("version output %q", out.String())
	}
}

func TestServeServerlessProject(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	files := map[string]string{
		"serverless.yml": "service: tiny\nprovider:\n  runtime: nodejs20.x\n  tracing: {lambda: true}\nfunctions:\n  echo:\n    handler: handler.echo\n    events:\n      - websocket:\n          route: $default\n          routeResponseSelectionExpression: $default\n",
		"handler.js":     "exports.echo = async (event) => ({ statusCode: 200, body: 'node says ' + event.body });\n",
	}
	for name, content := range files {
		if err := os.WriteFile(dir+"/"+name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wsURL, stdout, _ := serveForTest(t, []string{"--serverless", dir + "/serverless.yml", "--listen", "127.0.0.1:0"}, nil)
	for _, want := range []string{"$default", "-> lambda echo", "(two-way)", "Warning: provider.tracing is not supported"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout)
		}
	}
	c := testutil.Dial(t, wsURL, nil)
	if got := testutil.ReadTextAfter(t, c, "hi"); got != "node says hi" {
		t.Errorf("got %q", got)
	}
}

func TestServeRefusesAnExposedManagementAPI(t *testing.T) {
	err := run(context.Background(), []string{"serve", "--listen", "0.0.0.0:0"}, env(nil), &testutil.Buffer{}, &testutil.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "without credentials") {
		t.Fatalf("serve on 0.0.0.0 without credentials = %v, want a refusal", err)
	}
	// The loudly named flag overrides; credentials from the environment do too.
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--listen", "0.0.0.0:0", "--insecure-management"}, nil},
		{[]string{"--listen", "0.0.0.0:0"}, map[string]string{"SWITCHBOARD_MANAGEMENT_TOKEN": "s3cret"}},
	} {
		_, stdout, stop := serveForTest(t, tc.args, tc.env)
		if !strings.Contains(stdout.String(), "Management auth") {
			t.Errorf("banner lacks the management auth line:\n%s", stdout)
		}
		if err := stop(); err != nil {
			t.Errorf("serve %v: %v", tc.args, err)
		}
	}
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSignedCert(t)
	if err := os.WriteFile(dir+"/cert.pem", certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/key.pem", keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := dir + "/sb.yaml"
	if err := os.WriteFile(cfg, []byte("tls: {certFile: "+dir+"/cert.pem, keyFile: "+dir+"/key.pem}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wsURL, _, _ := serveForTest(t, []string{"--config", cfg, "--listen", "127.0.0.1:0"}, nil)
	if !strings.HasPrefix(wsURL, "wss://") {
		t.Fatalf("banner URL %q, want wss://", wsURL)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := testutil.Dial(t, wsURL, &websocket.DialOptions{HTTPClient: client})
	testutil.Write(t, c, `{"action":"sendMessage","data":"over TLS"}`)
	if got := testutil.ReadText(t, c); got != "over TLS" {
		t.Errorf("got %q", got)
	}
}

// selfSignedCert makes a certificate for 127.0.0.1, valid for an hour.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "switchboard test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

func TestLogsAreJSONOffATerminalAndPprofIsOptIn(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	stdout, stderr := &testutil.Buffer{}, &testutil.Buffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--pprof", "--log-level", "debug"}, env(nil), stdout, stderr)
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return wsURLRE.MatchString(stdout.String()) }, "banner printed")
	base := "http" + strings.TrimPrefix(wsURLRE.FindStringSubmatch(stdout.String())[1], "ws")
	if status, _ := testutil.Get(t, base+"/debug/pprof/"); status != http.StatusOK {
		t.Errorf("/debug/pprof/ with --pprof = %d, want 200", status)
	}
	c := testutil.Dial(t, strings.Replace(base, "http", "ws", 1), nil)
	testutil.Write(t, c, `{"action":"sendMessage","data":"x"}`)
	testutil.ReadText(t, c)
	_ = c.Close(websocket.StatusNormalClosure, "")
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	sawAccess, sawShutdown := false, false
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["msg"] == "access" && rec["routeKey"] == "sendMessage" {
			sawAccess = true
			if _, ok := rec["integrationLatency"].(float64); !ok {
				t.Errorf("access line %s: integrationLatency is not a number of milliseconds", line)
			}
			if _, ok := rec["error"]; ok {
				t.Errorf("access line %s has an error field, and no error", line)
			}
		}
		if strings.HasPrefix(rec["msg"].(string), "shutting down") {
			sawShutdown = true
			if rec["timeoutMs"] != float64(10000) || rec["timeout"] != nil {
				t.Errorf("shutdown line %s: want \"timeoutMs\":10000, the default shutdownTimeout in milliseconds", line)
			}
		}
		for k, v := range rec {
			if v == "" || v == nil {
				t.Errorf("log line %s has the empty field %q", line, k)
			}
		}
	}
	if !sawAccess || !sawShutdown {
		t.Errorf("no access log line for sendMessage, or no shutdown line, in:\n%s", stderr)
	}

	wsURL, _, _ := serveForTest(t, []string{"--listen", "127.0.0.1:0"}, nil)
	if status, _ := testutil.Get(t, "http"+strings.TrimPrefix(wsURL, "ws")+"/debug/pprof/"); status != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --pprof = %d, want 404", status)
	}
}

func TestLogAttr(t *testing.T) {
	tests := []struct {
		name string
		in   slog.Attr
		want string // as the JSON handler writes it; "" for none
	}{
		{"duration in milliseconds", slog.Duration("timeout", 1500*time.Millisecond), `"timeoutMs":1500`},
		{"key already in milliseconds", slog.Duration("waitMs", 2*time.Second), `"waitMs":2000`},
		{"a latency keeps its name", slog.Duration("integrationLatency", 12*time.Millisecond), `"integrationLatency":12`},
		{"empty string left out", slog.String("error", ""), ""},
		{"nil error left out", slog.Any("err", nil), ""},
		{"zero stays when it is a value", slog.Int("status", 0), `"status":0`},
		{"string kept", slog.String("routeKey", "$default"), `"routeKey":"$default"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: logAttr})).LogAttrs(context.Background(), slog.LevelInfo, "m", tt.in)
			_, rest, _ := strings.Cut(strings.TrimSpace(buf.String()), `"msg":"m"`)
			got := strings.TrimSuffix(strings.TrimPrefix(rest, ","), "}")
			if got != tt.want {
				t.Errorf("%v logged as %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCLICommandsAgainstALiveServer(t *testing.T) {
	wsURL, _, _ := serveForTest(t, []string{"--listen", "127.0.0.1:0"}, nil)
	base := "http" + strings.TrimPrefix(wsURL, "ws")
	c := testutil.Dial(t, wsURL, nil)
	var id string
	testutil.Eventually(t, 5*time.Second, func() bool {
		var list testutil.Buffer
		if err := run(context.Background(), []string{"list", "--endpoint", base}, env(nil), &list, &testutil.Buffer{}); err != nil {
			t.Fatalf("switchboard list: %v", err)
		}
		id = regexp.MustCompile(`[A-Za-z0-9_-]{15}=`).FindString(list.String())
		return id != ""
	}, "switchboard list shows the connection")
	if err := run(context.Background(), []string{"post", id, "from the CLI", "--endpoint", base + "/dev"}, env(nil), &testutil.Buffer{}, &testutil.Buffer{}); err != nil {
		t.Fatalf("switchboard post: %v", err)
	}
	if got := testutil.ReadText(t, c); got != "from the CLI" {
		t.Errorf("client got %q", got)
	}
	var out testutil.Buffer
	if err := run(context.Background(), []string{"connect", wsURL, "--execute", `{"action":"sendMessage","data":"via connect"}`, "--wait", "1s"}, env(nil), &out, &testutil.Buffer{}); err != nil {
		t.Fatalf("switchboard connect: %v", err)
	}
	if !strings.Contains(out.String(), "via connect") {
		t.Errorf("connect --execute printed %q", out.String())
	}
	if got := testutil.ReadText(t, c); got != "via connect" {
		t.Errorf("the broadcast reached the other client as %q", got)
	}
}

// The banner README.md shows is the one `switchboard serve` prints with no
// configuration, but for the port and the local CA's path.
func TestREADMEBanner(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "prints the URLs and the route table:\n\n```\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no banner block after 'prints the URLs and the route table:'")
	}
	dataDir := t.TempDir()
	wsURL, stdout, _ := serveForTest(t, []string{"--listen", "127.0.0.1:0"}, map[string]string{"SWITCHBOARD_DATA_DIR": dataDir})
	got := strings.ReplaceAll(stdout.String(), strings.TrimPrefix(wsURL, "ws://"), "127.0.0.1:3001")
	got = strings.ReplaceAll(got, filepath.Join(dataDir, "ca.pem"), "~/.local/share/switchboard/ca.pem")
	if !strings.HasPrefix(got, block) {
		t.Errorf("README.md's banner:\n%s\nwhat serve prints:\n%s", block, got)
	}
}

// A gateway listening on every interface prints URLs a client can dial:
// loopback on the WebSocket line, the machine's addresses on the Network
// line; never 0.0.0.0 or [::].
func TestBannerOnEveryInterface(t *testing.T) {
	listens := []string{"0.0.0.0:0"}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		_ = ln.Close()
		listens = append(listens, "[::]:0")
	}
	for _, listen := range listens {
		t.Run(listen, func(t *testing.T) {
			wsURL, stdout, stop := serveForTest(t, []string{"--listen", listen, "--insecure-management"}, map[string]string{"SWITCHBOARD_DATA_DIR": t.TempDir()})
			banner := stdout.String()
			if regexp.MustCompile(`://(0\.0\.0\.0|\[::\]):`).MatchString(banner) {
				t.Errorf("banner shows the wildcard address:\n%s", banner)
			}
			wantHost := map[string]string{"0.0.0.0:0": "ws://127.0.0.1:", "[::]:0": "ws://[::1]:"}[listen]
			if !strings.HasPrefix(wsURL, wantHost) {
				t.Errorf("WebSocket URL %s, want %s...", wsURL, wantHost)
			}
			urls := []string{wsURL}
			if m := regexp.MustCompile(`(?m)^  Network:\s+(.*)$`).FindStringSubmatch(banner); m != nil {
				urls = append(urls, strings.Fields(m[1])...)
			}
			for _, u := range urls {
				c := testutil.Dial(t, u, nil)
				testutil.Write(t, c, `{"action":"sendMessage","data":"reached"}`)
				if got := testutil.ReadText(t, c); got != "reached" {
					t.Errorf("%s: got %q", u, got)
				}
				_ = c.Close(websocket.StatusNormalClosure, "")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
