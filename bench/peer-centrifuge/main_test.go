package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a server's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the server on a free loopback port until the test ends and
// returns its HTTP base URL.
func start(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1:0"}, &out, &out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	banner := regexp.MustCompile(`ws://(127\.0\.0\.1:[0-9]+)/connection/websocket`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := banner.FindStringSubmatch(out.String()); m != nil {
			return "http://" + m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("run ended before its banner: %v; output: %s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner in %q", out.String())
		}
	}
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPublishAPI(t *testing.T) {
	t.Parallel()
	base := start(t)
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"publishes", `{"channel":"c","data":"x"}`, http.StatusOK, "{}"},
		{"JSON object data", `{"channel":"c","data":{"a":1}}`, http.StatusOK, "{}"},
		{"no channel", `{"data":"x"}`, http.StatusBadRequest, "channel and data are required"},
		{"no data", `{"channel":"c"}`, http.StatusBadRequest, "channel and data are required"},
		{"not JSON", `channel=c`, http.StatusBadRequest, `"code":107`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(t, base+"/api/publish", tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("POST /api/publish %s = %d %q, want %d with %q", tt.body, status, body, tt.status, tt.want)
			}
		})
	}
	resp, err := http.Get(base + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"goroutines"`) {
		t.Errorf("GET /debug/vars = %.200q, want goroutines", b)
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--queue", "0"},
		{"--write-timeout", "-1s"},
		{"extra"},
		{"--listen", "256.0.0.1:0"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
