package lambdahost_test

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
)

// A Node.js handler whose file does not exist fails New, naming the files
// tried, rather than the first invocation.
func TestNewHandlerFileMissing(t *testing.T) {
	t.Parallel()
	tests := []struct{ handler, want string }{
		{"nosuchfile.handler", `tried nosuchfile.js, nosuchfile.mjs, nosuchfile.cjs, nosuchfile.ts, nosuchfile.mts, nosuchfile.cts in `},
		{"src/handler.hello", `tried src/handler.js, src/handler.mjs, src/handler.cjs, src/handler.ts, src/handler.mts, src/handler.cts in `},
	}
	for _, tt := range tests {
		_, err := lambdahost.New(lambdahost.Options{Name: "f", Runtime: "nodejs20.x", Handler: tt.handler, CodeDir: "testdata/nodefunc"})
		if !errors.Is(err, lambdahost.ErrHandlerNotFound) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(handler %s) = %v, want ErrHandlerNotFound naming %q", tt.handler, err, tt.want)
		}
	}
	// Each extension the bootstrap loads is found.
	for _, handler := range []string{"handler.echo", "esm.handler", "nested/dir.fn"} {
		f, err := lambdahost.New(lambdahost.Options{Name: "f", Runtime: "nodejs20.x", Handler: handler, CodeDir: "testdata/nodefunc", NodePath: "true"})
		if errors.Is(err, lambdahost.ErrHandlerNotFound) {
			t.Errorf("New(handler %s) = %v, want the file found", handler, err)
		}
		if err == nil {
			_ = f.Close()
		}
	}
}

func TestNewUnsupportedRuntime(t *testing.T) {
	t.Parallel()
	_, err := lambdahost.New(lambdahost.Options{Name: "f", Runtime: "python3.12", Handler: "app.handler"})
	if !errors.Is(err, lambdahost.ErrUnsupportedRuntime) || !strings.Contains(err.Error(), lambdahost.SupportedRuntimes) {
		t.Errorf("New(python3.12) = %v, want ErrUnsupportedRuntime naming %s", err, lambdahost.SupportedRuntimes)
	}
}

var readyPIDRE = regexp.MustCompile(`msg="function nodefunc ready".* pid=(\d+)`)

// Warm starts a process before any invocation; the first invocation then
// runs in it, with no cold start of its own.
func TestWarm(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.sleep", lambdahost.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Warm(ctx); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	m := readyPIDRE.FindStringSubmatch(h.log.String())
	if m == nil {
		t.Fatalf("no ready line with a pid after Warm; log:\n%s", h.log)
	}
	warm, _ := strconv.Atoi(m[1])
	if !alive(warm) {
		t.Fatalf("warm process %d does not run", warm)
	}
	if got := h.pid(t, `{"ms":1}`); got != warm {
		t.Errorf("first invocation ran in process %d, want the warm %d", got, warm)
	}
	if n := strings.Count(h.log.String(), "cold start"); n != 1 {
		t.Errorf("%d cold starts, want 1 (Warm's); log:\n%s", n, h.log)
	}
	if err := h.Warm(ctx); err != nil { // already warm: nothing to start
		t.Errorf("Warm again: %v", err)
	}
	if n := strings.Count(h.log.String(), "cold start"); n != 1 {
		t.Errorf("a second Warm started a process; log:\n%s", h.log)
	}
}

// Warm reports a function that cannot start.
func TestWarmInitError(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "broken.handler", lambdahost.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := h.Warm(ctx)
	var fe *lambdahost.FunctionError
	if !errors.Is(err, lambdahost.ErrInit) || !errors.As(err, &fe) || fe.Message != "broken at load" {
		t.Errorf("Warm = %v, want ErrInit with the module's error", err)
	}
}
