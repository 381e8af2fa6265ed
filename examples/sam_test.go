package examples_test

import (
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
	stdout, stderr = &testutil.Buffer{}, &testutil.Buffer{}
	cmd := exec.Command(switchboardBinary(t), "serve")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "SWITCHBOARD_LISTEN=127.0.0.1:0", "SWITCHBOARD_DATA_DIR="+t.TempDir()), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("gateway stdout:\n%s\ngateway stderr:\n%s", stdout, stderr)
		}
	})
	// A cap for a loaded machine: the banner ends the wait.
	testutil.Eventually(t, 60*time.Second, func() bool { return bannerWSRE.MatchString(stdout.String()) },
		"banner printed; stdout %q stderr %q", stdout, stderr)
	return bannerWSRE.FindStringSubmatch(stdout.String())[1], stdout, stderr
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
