// Package testutil holds helpers shared by tests: polling for a condition,
// dialing a WebSocket, and reading with a deadline.
package testutil

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// Eventually polls cond every 10ms until it is true, failing the test after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after "+timeout.String()+": "+format, args...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Dial opens a WebSocket client connection and closes it at the end of the test.
func Dial(t testing.TB, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// DialStatus dials expecting the handshake to fail and returns the HTTP status.
func DialStatus(t testing.TB, url string, opts *websocket.DialOptions) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err == nil {
		_ = c.CloseNow()
		t.Fatalf("dial %s: handshake succeeded, want it refused", url)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v, with no HTTP response", url, err)
	}
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	return resp.StatusCode
}

// Read reads one message within timeout.
func Read(t testing.TB, c *websocket.Conn, timeout time.Duration) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(data)
}

// ReadText reads one message within 5s and returns it as a string.
func ReadText(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	_, s := Read(t, c, 5*time.Second)
	return s
}

// Write sends one text message.
func Write(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

// CloseCode reads until the connection closes and returns the close status
// the server sent, or -1 when it dropped without a close frame.
func CloseCode(t testing.TB, c *websocket.Conn, timeout time.Duration) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		if ctx.Err() != nil {
			t.Fatalf("connection still open after %v", timeout)
		}
		return -1, err.Error()
	}
}

// Get performs a GET and returns the status and body.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// ReadTextAfter writes msg and returns the next message received.
func ReadTextAfter(t testing.TB, c *websocket.Conn, msg string) string {
	t.Helper()
	Write(t, c, msg)
	return ReadText(t, c)
}

// Buffer is a bytes.Buffer safe for concurrent writers, for capturing the
// output of servers and processes under test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// IdleWorkers lets a leak check pass while package workers' goroutines wait
// for their next task: they exit on their own once idle for a moment. A
// worker running a task that never ends is still reported, with the task on
// top of its stack.
var IdleWorkers = goleak.IgnoreTopFunction("github.com/switchboard-gateway/switchboard/internal/workers.work")

// DocContains fails the test for each of wants that the document at path
// lacks, so that a doc's names and figures are checked against the code
// that makes them.
func DocContains(t testing.TB, path string, wants ...string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range wants {
		if !strings.Contains(string(doc), want) {
			t.Errorf("%s lacks %q", filepath.Base(path), want)
		}
	}
}

// ClosedAddr returns a loopback host:port nothing listens on: a port the
// kernel picked, released at once.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
