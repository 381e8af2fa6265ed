package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testutil.IdleWorkers) }

// noEnv is a getenv with an empty environment.
func noEnv(string) string { return "" }

// env returns a getenv reading from kv.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// waitFor waits until buf contains want.
func waitFor(t *testing.T, name string, buf *testutil.Buffer, want string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(buf.String(), want) },
		"%s does not contain %q; it is:\n%s", name, want, buf)
}

// connectRun is a running Connect.
type connectRun struct {
	stdout, stderr *testutil.Buffer
	done           chan error
}

// startConnect runs Connect in a goroutine; the test must end it.
func startConnect(ctx context.Context, args []string, stdin io.Reader) *connectRun {
	r := &connectRun{stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}, done: make(chan error, 1)}
	go func() { r.done <- cli.Connect(ctx, args, noEnv, stdin, r.stdout, r.stderr) }()
	return r
}

// wait returns Connect's result, failing the test if it does not end in time.
func (r *connectRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Connect did not return; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		return nil
	}
}

// wsServer serves WebSocket connections with handle until the end of the
// test; handle's return closes the connection without a handshake.
func wsServer(t *testing.T, opts *websocket.AcceptOptions, handle func(ctx context.Context, c *websocket.Conn, r *http.Request)) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Added before the hijack: srv.Close waits for the request until
		// then, so this Add happens before the cleanup's Wait.
		wg.Add(1)
		defer wg.Done()
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		handle(r.Context(), c, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// peerID learns a gateway client's connection ID from the Forbidden frame
// the zero-config gateway answers to a message that matches no route. As a
// connection's messages are handled in order, everything it sent before is
// done when the frame arrives.
func peerID(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	var frame struct {
		Message      string `json:"message"`
		ConnectionID string `json:"connectionId"`
	}
	msg := testutil.ReadTextAfter(t, c, "whoami")
	if err := json.Unmarshal([]byte(msg), &frame); err != nil || frame.Message != "Forbidden" || frame.ConnectionID == "" {
		t.Fatalf("answer to an unrouted message = %q, want the Forbidden frame", msg)
	}
	return frame.ConnectionID
}

// connIDs lists the gateway's connections through the management API.
func connIDs(t *testing.T, httpBase string) []string {
	t.Helper()
	status, body := testutil.Get(t, httpBase+"/@connections?limit=1000")
	if status != http.StatusOK {
		t.Fatalf("GET /@connections: %d %s", status, body)
	}
	var page struct {
		Items []struct {
			ConnectionID string `json:"connectionId"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("GET /@connections: %v in %s", err, body)
	}
	var ids []string
	for _, it := range page.Items {
		ids = append(ids, it.ConnectionID)
	}
	return ids
}

// mgmt sends a management API request directly and returns the status.
func mgmt(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true // no idle connection outlives the test
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
