package server_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// loadYAML reads a configuration from yamlCfg as `switchboard serve` would.
func loadYAML(t *testing.T, dir, yamlCfg string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(path, []byte(yamlCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	return cfg
}

// loadYAMLWithout loads yamlCfg with the file name present, as Load
// requires, then removes it: the server finds it gone.
func loadYAMLWithout(t *testing.T, dir, yamlCfg, name string) *config.Config {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadYAML(t, dir, yamlCfg)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func getWithToken(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Reload swaps routes and management credentials under an open connection,
// which keeps its ID; a configuration that cannot be built leaves the one in
// force running.
func TestReloadKeepsConnectionsAndSwapsRoutes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := servertest.Start(t, loadYAML(t, dir, `
routes:
  $default: {integration: {type: mock, response: v1}}
`))
	c := testutil.Dial(t, srv.WS, nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"ping"}`); got != "v1" {
		t.Fatalf("before reload: got %q, want v1", got)
	}
	id := onlyConnID(t, srv.HTTP)

	err := srv.Reload(loadYAML(t, dir, `
stage: other
management: {tokens: [a-token-0123456789]}
routes:
  $default: {integration: {type: mock, response: v2}}
  ping:     {integration: {type: mock, response: pong}}
`))
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := testutil.ReadTextAfter(t, c, `{"action":"ping"}`); got != "pong" {
		t.Errorf("after reload, the new route: got %q, want pong", got)
	}
	if got := testutil.ReadTextAfter(t, c, `{"action":"other"}`); got != "v2" {
		t.Errorf("after reload, $default: got %q, want v2", got)
	}
	if status, _ := testutil.Get(t, srv.HTTP+"/@connections/"+id); status != http.StatusForbidden {
		t.Errorf("management call without the token the new configuration requires = %d, want 403", status)
	}
	// The stage is kept: it changes only with a restart.
	if got := getWithToken(t, srv.HTTP+"/dev/@connections/"+id, "a-token-0123456789"); got != http.StatusOK {
		t.Errorf("GetConnection of the connection open before the reload, with the new token = %d, want 200", got)
	}

	err = srv.Reload(loadYAMLWithout(t, dir, `
authorizers:
  broken: {type: jwt, pemFiles: [does-not-exist.pem]}
routes:
  $connect: {authorizer: broken}
  $default: {integration: {type: mock, response: v3}}
`, "does-not-exist.pem"))
	if err == nil || !strings.Contains(err.Error(), "does-not-exist.pem") {
		t.Errorf("Reload(unreadable key file) = %v, want an error naming the file", err)
	}
	if got := testutil.ReadTextAfter(t, c, `{"action":"other"}`); got != "v2" {
		t.Errorf("after a failed reload: got %q, want v2 (the configuration in force)", got)
	}
}

// A hosted function whose settings did not change keeps its warm process
// across a reload; one whose settings changed is replaced, and its process
// stopped.
func TestReloadKeepsUnchangedFunctionsWarm(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	handler := "exports.pid = async () => ({ statusCode: 200, body: process.env.TAG + ' ' + process.pid });\n"
	if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte(handler), 0o600); err != nil {
		t.Fatal(err)
	}
	yamlWith := func(tag string) string {
		return `
functions:
  f: {runtime: nodejs20.x, handler: handler.pid, codeDir: ., maxProcesses: 1, environment: {TAG: ` + tag + `}}
routes:
  $default: {integration: {type: lambda, function: f}, routeResponse: true}
`
	}
	srv := servertest.Start(t, loadYAML(t, dir, yamlWith("a")))
	c := testutil.Dial(t, srv.WS, nil)
	pidOf := func(wantTag string) int {
		t.Helper()
		got := testutil.ReadTextAfter(t, c, "which")
		tag, pid, _ := strings.Cut(got, " ")
		n, err := strconv.Atoi(pid)
		if tag != wantTag || err != nil {
			t.Fatalf("function answered %q, want %q and a PID", got, wantTag)
		}
		return n
	}
	first := pidOf("a")

	if err := srv.Reload(loadYAML(t, dir, yamlWith("a"))); err != nil {
		t.Fatalf("Reload(same function): %v", err)
	}
	if got := pidOf("a"); got != first {
		t.Errorf("after a reload that left the function alone, it ran in process %d, want the warm %d", got, first)
	}

	// A reload that fails after taking the function over leaves it running.
	broken := yamlWith("a") + "  $connect: {authorizer: broken}\nauthorizers:\n  broken: {type: jwt, pemFiles: [missing.pem]}\n"
	if err := srv.Reload(loadYAMLWithout(t, dir, broken, "missing.pem")); err == nil {
		t.Fatalf("Reload(unreadable key file) succeeded, want an error")
	}
	if got := pidOf("a"); got != first {
		t.Errorf("after a failed reload, the function ran in process %d, want the warm %d", got, first)
	}

	if err := srv.Reload(loadYAML(t, dir, yamlWith("b"))); err != nil {
		t.Fatalf("Reload(changed function): %v", err)
	}
	if got := pidOf("b"); got == first {
		t.Errorf("after its environment changed, the function ran in the old process %d", first)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		proc, err := os.FindProcess(first)
		return err != nil || proc.Signal(syscall.Signal(0)) != nil
	}, "the replaced function's process %d stops", first)
}

// Reload applies origins and management limits to the next request, and the
// connection limits to connections opened afterwards: one open before keeps
// the limits it was accepted with.
func TestReloadAppliesLimitsAndOrigins(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := servertest.Start(t, loadYAML(t, dir, `
origins: [https://a.example]
limits: {maxMessageBytes: 1KiB, maxPostBytes: 16}
routes:
  $default: {integration: {type: echo}}
`))
	fromB := &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://b.example"}}}
	if got := testutil.DialStatus(t, srv.WS, fromB); got != http.StatusForbidden {
		t.Fatalf("dial from an origin not allowed = %d, want 403", got)
	}
	before := testutil.Dial(t, srv.WS, nil)
	id := onlyConnID(t, srv.HTTP)
	big := strings.Repeat("x", 32)
	if resp, _ := post(t, srv.HTTP+"/@connections/"+id, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST of 32 bytes over maxPostBytes 16 = %d, want 413", resp.StatusCode)
	}

	err := srv.Reload(loadYAML(t, dir, `
origins: [https://b.example]
limits: {maxMessageBytes: 64KiB, maxPostBytes: 1KiB}
routes:
  $default: {integration: {type: echo}}
`))
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}
	after := testutil.Dial(t, srv.WS, fromB)
	if resp, _ := post(t, srv.HTTP+"/@connections/"+id, big); resp.StatusCode != http.StatusOK {
		t.Errorf("POST of 32 bytes after maxPostBytes became 1KiB = %d, want 200", resp.StatusCode)
	}
	if got := testutil.ReadText(t, before); got != big {
		t.Errorf("the connection open before the reload received %q, want the posted data", got)
	}
	msg := strings.Repeat("y", 2048)
	if got := testutil.ReadTextAfter(t, after, msg); got != msg {
		t.Errorf("a 2 KiB message on a connection opened after the reload was echoed as %d bytes, want 2048", len(got))
	}
	testutil.Write(t, before, msg)
	if code, _ := testutil.CloseCode(t, before, 5*time.Second); code != websocket.StatusMessageTooBig {
		t.Errorf("a 2 KiB message on the connection opened before the reload (1 KiB limit): close %d, want 1009", code)
	}
}

// With warm: true, the functions of the first configuration and those a
// reload adds or changes have a process running before any message.
func TestReloadWarmsNewFunctions(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	handler := "require('fs').writeFileSync(process.env.TAG + '.pid', String(process.pid));\n" +
		"exports.pid = async () => ({ statusCode: 200, body: String(process.pid) });\n"
	if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte(handler), 0o600); err != nil {
		t.Fatal(err)
	}
	yamlWith := func(tag string) string {
		return `
warm: true
functions:
  f: {runtime: nodejs20.x, handler: handler.pid, codeDir: ., environment: {TAG: ` + tag + `}}
routes:
  $default: {integration: {type: lambda, function: f}, routeResponse: true}
`
	}
	started := func(tag string) int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, tag+".pid"))
		pid, _ := strconv.Atoi(string(b))
		if err != nil || pid == 0 {
			t.Fatalf("function with TAG %s: no process started (%v)", tag, err)
		}
		return pid
	}
	srv := servertest.Start(t, loadYAML(t, dir, yamlWith("a")))
	started("a")
	if err := srv.Reload(loadYAML(t, dir, yamlWith("b"))); err != nil {
		t.Fatalf("Reload(changed function): %v", err)
	}
	pid := started("b")
	c := testutil.Dial(t, srv.WS, nil)
	if got := testutil.ReadTextAfter(t, c, "which"); got != strconv.Itoa(pid) {
		t.Errorf("first message after the reload ran in process %s, want the warm %d", got, pid)
	}
}
