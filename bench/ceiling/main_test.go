package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/loadgen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startCeiling runs the server until the end of the test and returns its WebSocket URL.
func startCeiling(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), pw, io.Discard) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("ceiling: %v (%v)", err, <-done)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ceiling: %v", err)
		}
	})
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "ceiling listening on ")
	if !ok {
		t.Fatalf("ceiling printed %q, want its address", line)
	}
	return u
}

// The loadgen's command lines run unchanged against the ceiling: every
// workload completes with the figures consistent.
func TestWorkloads(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"--batch=true", "--batch=false"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ws := startCeiling(t, mode)
			web := "http" + strings.TrimPrefix(ws, "ws")
			tests := []struct {
				name  string
				args  []string
				check map[string]float64 // result fields and their wanted values
			}{
				{"conns", []string{"conns", "--url", ws, "-n", "20", "--hold", "0s",
					"--metrics-url", web + "/debug/vars", "--gc-url", web + "/debug/pprof/heap?gc=1"},
					map[string]float64{"opened": 20, "failed": 0}},
				{"echo", []string{"echo", "--url", ws, "-c", "3", "-m", "20", "--route", `{"action":"echo","data":"%s"}`},
					map[string]float64{"received": 60, "unexpected": 0}},
				{"fanout broadcast", []string{"fanout", "--url", ws, "--subscribers", "5", "--messages", "10"},
					map[string]float64{"deliveries": 50, "lost": 0, "duplicated": 0}},
				{"fanout topic", []string{"fanout", "--url", ws + "/dev", "--subscribers", "5", "--messages", "10", "--topic", "t"},
					map[string]float64{"deliveries": 50, "lost": 0, "duplicated": 0}},
				{"fanout via mgmt", []string{"fanout", "--url", ws, "--subscribers", "5", "--messages", "10", "--via", "mgmt", "--topic", "t"},
					map[string]float64{"deliveries": 50, "lost": 0, "duplicated": 0}},
				{"mgmt", []string{"mgmt", "--mgmt-url", web + "/dev", "-c", "3", "-n", "90", "--connections", "2"},
					map[string]float64{"requests": 90, "ok": 90, "delivered": 90}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var stdout, stderr bytes.Buffer
					err := loadgen.Main(t.Context(), tt.args, nil, &stdout, &stderr)
					if err != nil {
						t.Fatalf("bench %q: %v\n%s%s", tt.args, err, stdout.String(), stderr.String())
					}
					var got map[string]any
					if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
						t.Fatalf("result %q: %v", stdout.String(), err)
					}
					if got["truncated"] != false || got["errors"] != 0.0 {
						t.Errorf("truncated=%v errors=%v, want a complete run: %s", got["truncated"], got["errors"], stdout.String())
					}
					for k, want := range tt.check {
						if got[k] != want {
							t.Errorf("%s = %v, want %v", k, got[k], want)
						}
					}
				})
			}
		})
	}
}

func TestEncodeFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int
		head []byte
	}{
		{"short", 5, []byte{0x81, 5}},
		{"125 bytes", 125, []byte{0x81, 125}},
		{"16-bit length", 126, []byte{0x81, 126, 0, 126}},
		{"64-bit length", 70000, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := bytes.Repeat([]byte("a"), tt.n)
			f := encodeFrame(messageType(p), p)
			if !bytes.HasPrefix(f, tt.head) || len(f) != len(tt.head)+tt.n || !bytes.HasSuffix(f, p) {
				t.Errorf("encodeFrame(%d bytes) starts % x, length %d; want % x and %d", tt.n, f[:min(len(f), 10)], len(f), tt.head, len(tt.head)+tt.n)
			}
		})
	}
}
