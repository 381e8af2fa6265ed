package examples_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// serveIn runs `switchboard serve` with no flags in dir, with env added,
// and returns its WebSocket URL and its output once the banner is printed.
func serveIn(t *testing.T, dir string, env ...string) (ws string, stdout, stderr *testutil.Buffer) {
	t.Helper()
	g := startIn(t, dir, nil, append([]string{"SWITCHBOARD_DATA_DIR=" + t.TempDir()}, env...)...)
	return g.ws, g.stdout, g.stderr
}

// gatewayProcess is `switchboard serve` run in a project's folder.
type gatewayProcess struct {
	ws, http       string // ws://127.0.0.1:PORT and http://127.0.0.1:PORT
	stdout, stderr *testutil.Buffer
	cmd            *exec.Cmd
	exited         chan struct{}
}

// startIn runs `switchboard serve args...` in dir, with env added (a data
// directory among them, for the local CA), until stop or the end of the
// test, and waits for its banner.
func startIn(t *testing.T, dir string, args []string, env ...string) *gatewayProcess {
	t.Helper()
	g := &gatewayProcess{stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(switchboardBinary(t), append([]string{"serve"}, args...)...)
	g.cmd.Dir = dir
	g.cmd.Env = append(append(os.Environ(), "SWITCHBOARD_LISTEN=127.0.0.1:0"), env...)
	g.cmd.Stdout, g.cmd.Stderr = g.stdout, g.stderr
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		_ = g.stop(os.Interrupt)
		if t.Failed() {
			t.Logf("gateway stdout:\n%s\ngateway stderr:\n%s", g.stdout, g.stderr)
		}
	})
	// A cap for a loaded machine: the banner ends the wait.
	testutil.Eventually(t, 60*time.Second, func() bool {
		select {
		case <-g.exited:
			t.Fatalf("switchboard exited before its banner; stderr:\n%s", g.stderr)
		default:
		}
		return bannerWSRE.MatchString(g.stdout.String())
	}, "banner printed; stdout %q stderr %q", g.stdout, g.stderr)
	g.ws = bannerWSRE.FindStringSubmatch(g.stdout.String())[1]
	g.http = "http" + strings.TrimPrefix(g.ws, "ws")
	return g
}

// stop sends sig and waits for the gateway to exit: it drains within its
// shutdown timeout (10s); past 15s it is killed, and stop says so.
// Stopping a stopped gateway does nothing.
func (g *gatewayProcess) stop(sig os.Signal) error {
	select {
	case <-g.exited:
		return nil
	default:
	}
	_ = g.cmd.Process.Signal(sig)
	select {
	case <-g.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
		return fmt.Errorf("the gateway did not stop within 15s of %v: killed", sig)
	}
}

// AWS's chat sample as a SAM template, found by `switchboard serve` run in
// its folder with no flags: the REQUEST authorizer guards $connect, and
// sendmessage pushes to every client through https://{domainName}/{stage}
// with the AWS SDK for JavaScript v3.
func TestSAMChatTemplate(t *testing.T) {
	t.Parallel()
	dir := npmProject(t, "sam-chat")
	conns := t.TempDir()
	ws, stdout, _ := serveIn(t, dir, "SWITCHBOARD_PARAMETER_OVERRIDES=ConnectionsDir="+conns)

	banner := stdout.String()
	for _, want := range []string{
		"config: template.yaml (SAM template)",
		"(also " + ws + "/production)", // the Stage's StageName
		"$connect authorizer: ConnectAuthorizer (lambda)",
		"sendmessage      -> lambda SendMessageFunction",
		"Warning: property Policies is not applied locally: SendMessageFunction",
		"Warning: resources with no local effect: Deployment (AWS::ApiGatewayV2::Deployment)",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	if got := testutil.DialStatus(t, ws, nil); got != http.StatusUnauthorized {
		t.Errorf("no token: handshake status %d, want 401", got)
	}
	if got := testutil.DialStatus(t, ws+"?token=wrong", nil); got != http.StatusForbidden {
		t.Errorf("a wrong token: handshake status %d, want 403", got)
	}
	connected := func() int {
		entries, _ := os.ReadDir(conns)
		return len(entries)
	}
	if n := connected(); n != 0 {
		t.Fatalf("refused clients reached $connect: %d connections stored", n)
	}
	a := testutil.Dial(t, ws+"?token=let-me-in", nil)
	b := testutil.Dial(t, ws+"/production?token=let-me-in", nil)
	c := testutil.Dial(t, ws+"?token=let-me-in", nil)
	if n := connected(); n != 3 {
		t.Fatalf("%d connections stored by $connect, want 3", n)
	}

	// Each function's first message waits for its cold start (a Node
	// process loading the AWS SDK), seconds on a loaded machine.
	const coldStart = time.Minute
	testutil.Write(t, a, `{"action":"sendmessage","data":"hello from SAM"}`)
	for name, cl := range map[string]*websocket.Conn{"a": a, "b": b, "c": c} {
		if _, got := testutil.Read(t, cl, coldStart); got != "hello from SAM" {
			t.Errorf("client %s got %q, want the message pushed over https", name, got)
		}
	}

	// $default is a callback-style handler that returns {} and pushes a hint.
	testutil.Write(t, b, `{"action":"chat"}`)
	if _, got := testutil.Read(t, b, coldStart); !strings.HasPrefix(got, "Use the sendmessage route") {
		t.Errorf("$default pushed %q", got)
	}

	_ = c.CloseNow()
	testutil.Eventually(t, 10*time.Second, func() bool { return connected() == 2 }, "$disconnect forgot the closed connection")
}
