package examples_test

import (
	"context"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var listeningRE = regexp.MustCompile(`listening on (ws://\S+)`)

// examples/go-library: a gateway embedded in a Go program, as its README
// shows, down to the drain on SIGTERM.
func TestGoLibraryExample(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(buildCommand(t, "./go-library"), "-listen", "127.0.0.1:0")
	out := startCommand(t, cmd)
	testutil.Eventually(t, 30*time.Second, func() bool { return listeningRE.MatchString(out.String()) }, "the program listens: %q", out)
	url := listeningRE.FindStringSubmatch(out.String())[1]

	if got := testutil.DialStatus(t, url, nil); got != http.StatusUnauthorized {
		t.Errorf("no name: handshake status %d, want 401", got)
	}
	ada, bob := testutil.Dial(t, url+"?name=Ada", nil), testutil.Dial(t, url+"?name=Bob", nil)
	for name, c := range map[string]*websocket.Conn{"Ada": ada, "Bob": bob} {
		if got := testutil.ReadTextAfter(t, c, `{"action":"join","room":"lobby"}`); got != "joined lobby" {
			t.Errorf("%s's join answered %q, want joined lobby", name, got)
		}
	}
	testutil.Write(t, ada, `{"action":"say","room":"lobby","text":"hi"}`)
	for name, c := range map[string]*websocket.Conn{"Ada": ada, "Bob": bob} {
		if got := testutil.ReadText(t, c); got != "Ada: hi" {
			t.Errorf("%s got %q, want \"Ada: hi\"", name, got)
		}
	}
	testutil.Write(t, bob, `{"action":"sendMessage","data":"hello"}`)
	for name, c := range map[string]*websocket.Conn{"Ada": ada, "Bob": bob} {
		if got := testutil.ReadText(t, c); got != "hello" {
			t.Errorf("%s got %q, want hello (broadcast)", name, got)
		}
	}
	if got := testutil.ReadTextAfter(t, ada, "hello"); !strings.Contains(got, `"message": "unknown action; try join, say or sendMessage"`) {
		t.Errorf("$default answered %q", got)
	}
	if got := testutil.ReadTextAfter(t, ada, `{"action":"join"}`); !strings.Contains(got, `expected {\"room\": \"...\", ...}`) {
		t.Errorf("join without a room answered %q", got)
	}
	if err := bob.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "Bob left (1000)\n") }, "Bob's $disconnect: %q", out)

	closed := make(chan websocket.StatusCode, 1)
	go func() { // a client reads all the time
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, err := ada.Read(ctx)
		closed <- websocket.CloseStatus(err)
	}()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := <-closed; code != websocket.StatusGoingAway {
		t.Errorf("on SIGTERM Ada was closed with %d, want 1001", code)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "Ada left (1001)\nstopped\n") }, "the drain: %q", out)
	testutil.DocContains(t, "go-library/README.md", "`Ada left (1000)`", "`Ada left (1001)`", "then `stopped`",
		"`joined lobby`", "`Ada: hi`", "unknown action; try join, say or sendMessage", "fails with 401")
}

// Two programs of examples/go-library on one NATS server reach each
// other's clients: a room's members on both hear what is said on either.
func TestGoLibraryExampleCluster(t *testing.T) {
	t.Parallel()
	nats := testutil.StartNATS(t).URL
	urls := map[string]string{}
	for _, node := range []string{"a", "b"} {
		out := startCommand(t, exec.Command(buildCommand(t, "./go-library"), "-listen", "127.0.0.1:0", "-cluster", nats, "-node", node))
		testutil.Eventually(t, 30*time.Second, func() bool { return listeningRE.MatchString(out.String()) }, "node %s listens: %q", node, out)
		urls[node] = listeningRE.FindStringSubmatch(out.String())[1]
	}
	ada, bob := testutil.Dial(t, urls["a"]+"?name=Ada", nil), testutil.Dial(t, urls["b"]+"?name=Bob", nil)
	for name, c := range map[string]*websocket.Conn{"Ada": ada, "Bob": bob} {
		if got := testutil.ReadTextAfter(t, c, `{"action":"join","room":"lobby"}`); got != "joined lobby" {
			t.Fatalf("%s's join answered %q, want joined lobby", name, got)
		}
	}
	testutil.Write(t, bob, `{"action":"say","room":"lobby","text":"hi from b"}`)
	for name, c := range map[string]*websocket.Conn{"Ada": ada, "Bob": bob} {
		if got := testutil.ReadText(t, c); got != "Bob: hi from b" {
			t.Errorf("%s got %q, want \"Bob: hi from b\"", name, got)
		}
	}
	testutil.DocContains(t, "go-library/README.md", "`-cluster nats://127.0.0.1:4222 -node a`")
}
