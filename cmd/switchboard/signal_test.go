package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// runMainEnv makes the test binary run switchboard's main instead of the
// tests, so that a test can start the gateway as a process of its own and
// send it signals.
const runMainEnv = "SWITCHBOARD_TEST_RUN_MAIN"

func init() {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// gatewayProcess is `switchboard serve` running as a child process.
type gatewayProcess struct {
	cmd    *exec.Cmd
	ws     string // ws://127.0.0.1:PORT
	http   string // http://127.0.0.1:PORT
	stdout *testutil.Buffer
	stderr *testutil.Buffer
	exited chan error // receives cmd.Wait's result
}

// startProcess runs `switchboard serve args...` as a child process until
// the end of the test (SIGKILL if it is still running then).
func startProcess(t *testing.T, args ...string) *gatewayProcess {
	t.Helper()
	return startProcessEnv(t, nil, args...)
}

// startProcessEnv is startProcess with env added to the child's environment.
func startProcessEnv(t *testing.T, env []string, args ...string) *gatewayProcess {
	t.Helper()
	p := launchProcess(t, env, args...)
	p.awaitBanner(t)
	return p
}

// launchProcess starts `switchboard serve args...` as startProcessEnv does
// but returns without waiting for its banner (see awaitBanner), so that
// gateways that wait for each other can start together.
func launchProcess(t *testing.T, env []string, args ...string) *gatewayProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &gatewayProcess{stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(exe, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = append(append(os.Environ(), runMainEnv+"=1"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", p.stderr)
		}
	})
	return p
}

// awaitBanner waits for the banner and reads the gateway's URLs from it.
func (p *gatewayProcess) awaitBanner(t *testing.T) {
	t.Helper()
	// A cap for a loaded machine, not a pace: the banner ends the wait.
	testutil.Eventually(t, 3*time.Minute, func() bool { return wsURLRE.MatchString(p.stdout.String()) },
		"banner printed; stdout %q stderr %q", p.stdout, p.stderr)
	p.ws = wsURLRE.FindStringSubmatch(p.stdout.String())[1]
	p.http = "http" + strings.TrimPrefix(p.ws, "ws")
}

func (p *gatewayProcess) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns the process's exit code once it has exited.
func (p *gatewayProcess) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatalf("the gateway did not exit; stderr:\n%s", p.stderr)
		return -1
	}
}

// connectionIDs lists the open connections through the management API.
func connectionIDs(t *testing.T, base string) []string {
	t.Helper()
	status, body := testutil.Get(t, base+"/@connections")
	if status != http.StatusOK {
		t.Fatalf("GET /@connections = %d %s", status, body)
	}
	var page struct {
		Items []struct {
			ConnectionID string `json:"connectionId"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("GET /@connections: %v in %q", err, body)
	}
	var ids []string
	for _, it := range page.Items {
		ids = append(ids, it.ConnectionID)
	}
	return ids
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// SIGHUP reloads the configuration file: a client connected before keeps
// its connection and its ID and reaches the new routes; a configuration
// that does not load is logged and the running one stays; what needs a
// restart is logged and kept.
func TestSIGHUPReloadsTheConfiguration(t *testing.T) {
	t.Parallel()
	cfgPath := filepath.Join(t.TempDir(), "switchboard.yaml")
	writeFile(t, cfgPath, "routes:\n  $default: {integration: {type: mock, response: v1}}\n")
	p := startProcess(t, "--config", cfgPath, "--log-format", "json")

	c := testutil.Dial(t, p.ws, nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"ping"}`); got != "v1" {
		t.Fatalf("before SIGHUP: got %q, want v1", got)
	}
	ids := connectionIDs(t, p.http)
	if len(ids) != 1 {
		t.Fatalf("connections = %v, want one", ids)
	}

	writeFile(t, cfgPath, "stage: other\nroutes:\n  $default: {integration: {type: mock, response: v2}}\n  ping: {integration: {type: mock, response: pong}}\n")
	p.signal(t, syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, func() bool { return testutil.ReadTextAfter(t, c, `{"action":"ping"}`) == "pong" },
		"the route added to the file answers after SIGHUP; stderr:\n%s", p.stderr)
	if got := testutil.ReadTextAfter(t, c, `{"action":"other"}`); got != "v2" {
		t.Errorf("$default after SIGHUP: got %q, want v2", got)
	}
	if got := connectionIDs(t, p.http); len(got) != 1 || got[0] != ids[0] {
		t.Errorf("connections after SIGHUP = %v, want the same %v", got, ids)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(p.stderr.String(), `"setting":"stage"`) },
		"the stage changed in the file: a log line says it needs a restart; stderr:\n%s", p.stderr)

	writeFile(t, cfgPath, "routes:\n  $default: {integration: {type: nonsense}}\n")
	p.signal(t, syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(p.stderr.String(), "configuration not reloaded") },
		"an invalid configuration is logged; stderr:\n%s", p.stderr)
	if got := testutil.ReadTextAfter(t, c, `{"action":"ping"}`); got != "pong" {
		t.Errorf("after an invalid configuration: got %q, want pong from the one in force", got)
	}

	closed := make(chan websocket.StatusCode, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		closed <- websocket.CloseStatus(err)
	}()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if code := <-closed; code != websocket.StatusGoingAway {
		t.Errorf("close code on shutdown = %d, want 1001", code)
	}
}

// While the gateway drains, its listener still answers: /healthz and new
// upgrades get 503 and the management API keeps working, until the drain
// ends and the listener closes.
func TestDrainAnswers503UntilTheListenerCloses(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	disconnect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Write([]byte(`{"statusCode":200}`))
	}))
	defer disconnect.Close()
	var once bool
	releaseOnce := func() {
		if !once {
			once = true
			close(release)
		}
	}
	defer releaseOnce()

	cfgPath := filepath.Join(t.TempDir(), "switchboard.yaml")
	writeFile(t, cfgPath, "shutdownTimeout: 60s\nroutes:\n  $default: {integration: {type: echo}}\n  $disconnect: {integration: {type: http, url: \""+disconnect.URL+"\"}}\n")
	p := startProcess(t, "--config", cfgPath)
	c := testutil.Dial(t, p.ws, nil)
	go func() { // answers the close frame
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()

	p.signal(t, syscall.SIGTERM)
	select {
	case <-entered: // the drain waits for this $disconnect
	case <-time.After(30 * time.Second):
		t.Fatalf("$disconnect did not run after SIGTERM; stderr:\n%s", p.stderr)
	}
	if status, body := testutil.Get(t, p.http+"/healthz"); status != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz while draining = %d %q, want 503", status, body)
	}
	if status := testutil.DialStatus(t, p.ws, nil); status != http.StatusServiceUnavailable {
		t.Errorf("upgrade while draining = %d, want 503", status)
	}
	if status, body := testutil.Get(t, p.http+"/@connections"); status != http.StatusOK {
		t.Errorf("management API while draining = %d %q, want 200", status, body)
	}

	releaseOnce()
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code after the drain = %d, want 0", code)
	}
	if _, err := http.Get(p.http + "/healthz"); err == nil {
		t.Errorf("GET /healthz after exit succeeded, want the listener closed")
	}
}
