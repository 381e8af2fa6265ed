package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/localca"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// trusting returns an HTTP client that trusts only the local CA in dir.
func trusting(t *testing.T, dir string) *http.Client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("ca.pem holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestServeWSAndWSSOnOnePort(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	wsURL, stdout, stop := serveForTest(t, []string{"--listen", "127.0.0.1:0"}, map[string]string{"SWITCHBOARD_DATA_DIR": data})
	addr := strings.TrimPrefix(wsURL, "ws://")
	if want := "wss://" + addr + "  https://" + addr; !strings.Contains(stdout.String(), want) {
		t.Errorf("banner lacks %q:\n%s", want, stdout)
	}
	if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v, %v; want mode 0700", fi, err)
	}
	client := trusting(t, data)
	for _, url := range []string{"ws://" + addr + "/dev", "wss://" + addr + "/dev", "ws://" + addr, "wss://" + addr} {
		c := testutil.Dial(t, url, &websocket.DialOptions{HTTPClient: client})
		msg := "over " + url
		testutil.Write(t, c, fmt.Sprintf(`{"action":"sendMessage","data":%q}`, msg))
		if got := testutil.ReadText(t, c); got != msg {
			t.Errorf("%s: got %q, want %q", url, got, msg)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	for _, url := range []string{"http://" + addr + "/healthz", "https://" + addr + "/healthz"} {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", url, resp.StatusCode)
		}
	}

	// switchboard ca names the file and prints the same certificate.
	var out testutil.Buffer
	if err := run(context.Background(), []string{"ca"}, env(map[string]string{"SWITCHBOARD_DATA_DIR": data}), &out, &testutil.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{filepath.Join(data, "ca.pem"), "NODE_EXTRA_CA_CERTS", "Firefox", "Chrome", "delete " + data} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("switchboard ca lacks %q:\n%s", want, out.String())
		}
	}
	var pemOut testutil.Buffer
	if err := run(context.Background(), []string{"ca", "--pem"}, env(map[string]string{"SWITCHBOARD_DATA_DIR": data}), &pemOut, &testutil.Buffer{}); err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(filepath.Join(data, "ca.pem"))
	if blk, _ := pem.Decode([]byte(pemOut.String())); blk == nil || pemOut.String() != string(file) {
		t.Errorf("switchboard ca --pem printed %q, want ca.pem's content", pemOut.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The next start keeps the same CA.
	_, _, stop = serveForTest(t, []string{"--listen", "127.0.0.1:0"}, map[string]string{"SWITCHBOARD_DATA_DIR": data})
	if again, _ := os.ReadFile(filepath.Join(data, "ca.pem")); string(again) != string(file) {
		t.Error("a restart replaced the local CA")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestCACommandWithoutCA(t *testing.T) {
	dir := t.TempDir()
	err := run(context.Background(), []string{"ca"}, env(map[string]string{"SWITCHBOARD_DATA_DIR": dir}), &testutil.Buffer{}, &testutil.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "switchboard serve' creates it") {
		t.Errorf("ca without a CA = %v, want a hint to run serve", err)
	}
	if err := run(context.Background(), []string{"ca", "extra"}, env(nil), &testutil.Buffer{}, &testutil.Buffer{}); err == nil {
		t.Error("ca with an extra argument succeeded")
	}
}

// With tls.disable, the port speaks plain HTTP only: a TLS handshake fails
// promptly instead of hanging, and plain clients still work.
func TestServeTLSDisabled(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sb.yaml")
	if err := os.WriteFile(cfg, []byte("tls: {disable: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	wsURL, stdout, _ := serveForTest(t, []string{"--config", cfg, "--listen", "127.0.0.1:0"}, map[string]string{"SWITCHBOARD_DATA_DIR": data})
	if strings.Contains(stdout.String(), "wss://") {
		t.Errorf("banner shows wss:// with tls.disable:\n%s", stdout)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("data directory with tls.disable: %v, want none created", err)
	}
	addr := strings.TrimPrefix(wsURL, "ws://")
	d := &net.Dialer{Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the handshake must fail whatever the certificate
	defer tc.Close()
	if err := tc.HandshakeContext(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("TLS to a plain-only port: %v (ctx %v), want a prompt handshake failure", err, ctx.Err())
	}
	c := testutil.Dial(t, wsURL, nil)
	testutil.Write(t, c, `{"action":"sendMessage","data":"plain"}`)
	if got := testutil.ReadText(t, c); got != "plain" {
		t.Errorf("got %q", got)
	}
}

// AWS's chat sample builds its callback URL from the event:
// "https://" + domainName + "/" + stage. Run unchanged in a hosted
// function, the AWS SDK for JavaScript reaches the gateway that way,
// trusting the local CA through the environment the gateway sets.
func TestHostedFunctionPostsToHTTPSCallback(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	modules := nodeModules(t)
	code := t.TempDir()
	if err := os.Symlink(modules, filepath.Join(code, "node_modules")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"handler.js": `const { ApiGatewayManagementApiClient, PostToConnectionCommand } = require("@aws-sdk/client-apigatewaymanagementapi");
exports.handler = async (event) => {
  const api = new ApiGatewayManagementApiClient({
    apiVersion: "2018-11-29",
    endpoint: "https://" + event.requestContext.domainName + "/" + event.requestContext.stage,
  });
  const { data } = JSON.parse(event.body);
  await api.send(new PostToConnectionCommand({ ConnectionId: event.requestContext.connectionId, Data: "via https: " + data }));
  return { statusCode: 200 };
};
`,
		"switchboard.yaml": fmt.Sprintf(`
functions:
  send: {runtime: nodejs20.x, handler: handler.handler, codeDir: %q}
routes:
  $default: {integration: {type: lambda, function: send}}
`, code),
	}
	if err := writeFiles(code, files); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	wsURL, _, _ := serveForTest(t, []string{"--config", filepath.Join(code, "switchboard.yaml"), "--listen", "127.0.0.1:0"},
		map[string]string{"SWITCHBOARD_DATA_DIR": data})
	c := testutil.Dial(t, wsURL+"/dev", nil)
	testutil.Write(t, c, `{"data":"hello"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("no callback arrived: %v", err)
	}
	if string(got) != "via https: hello" {
		t.Errorf("got %q, want the function's post over https", got)
	}
}

// nodeModules returns examples/chat-node's node_modules, installing them
// when missing.
func nodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "chat-node"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.NPMModules(t, dir, "@aws-sdk/client-apigatewaymanagementapi")
	return filepath.Join(dir, "node_modules")
}

func TestLeafHosts(t *testing.T) {
	t.Parallel()
	ca, err := localca.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := "localhost 127.0.0.1 ::1"
	for _, tc := range []struct {
		listen string
		want   string
	}{
		{"127.0.0.1", base},
		{"192.168.1.5", base + " 192.168.1.5"},
		{"10.1.2.3", base + " 10.1.2.3"},
		{"203.0.113.7", base}, // public: outside the CA's constraints
	} {
		got := strings.Join(leafHosts(ca, &net.TCPAddr{IP: net.ParseIP(tc.listen), Port: 3001}), " ")
		if got != tc.want {
			t.Errorf("leafHosts(%s) = %q, want %q", tc.listen, got, tc.want)
		}
	}
	// On every interface: each private interface address, and only those.
	all := leafHosts(ca, &net.TCPAddr{IP: net.IPv4zero, Port: 3001})
	if _, err := ca.Issue(all...); err != nil {
		t.Errorf("leafHosts(0.0.0.0) = %v: %v", all, err)
	}
	if strings.Join(all[:3], " ") != base {
		t.Errorf("leafHosts(0.0.0.0) = %v, want %s first", all, base)
	}
}
