package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/server"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// inlineFunc is an integration.Func that declares whether it may run inline.
type inlineFunc struct {
	integration.Func
	inline bool
}

func (f inlineFunc) Inline() bool { return f.inline }

// Routes given in code (Options.Handlers) join the configured ones in the
// route table: both answer, the banner names the Go ones, and the
// gateway runs one inline only when it declares so.
func TestHandlersBesideConfiguredRoutes(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Routes: map[string]config.Route{"echo": {Integration: config.Integration{Type: "echo"}}}}
	if err := cfg.Complete(); err != nil {
		t.Fatal(err)
	}
	hello := integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
		return &integration.Response{Body: []byte("hello " + req.Conn.ID + " on " + req.RouteKey)}, nil
	})
	quick := inlineFunc{Func: hello, inline: true}
	srv, err := server.New(cfg, server.Options{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handlers: map[string]integration.Integration{"hello": hello, "$default": quick},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		_ = srv.Drain(context.Background())
		hs.Close()
		_ = srv.Close()
	})
	c := testutil.Dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"echo"}`); got != `{"action":"echo"}` {
		t.Errorf("echo route answered %q", got)
	}
	got := testutil.ReadTextAfter(t, c, `{"action":"hello"}`)
	if !strings.HasPrefix(got, "hello ") || !strings.HasSuffix(got, " on hello") {
		t.Errorf("Go route answered %q, want hello <id> on hello", got)
	}
	if got := testutil.ReadTextAfter(t, c, `plain`); !strings.HasSuffix(got, " on $default") {
		t.Errorf("Go $default answered %q", got)
	}
	routes := srv.Gateway().OptionsForTest().Routes
	if routes["hello"].Inline || !routes["$default"].Inline {
		t.Errorf("Inline: hello %v, $default %v; want false, true (as each declares)", routes["hello"].Inline, routes["$default"].Inline)
	}
	banner := srv.Banner("127.0.0.1:1", "127.0.0.1:1", false)
	for _, want := range []string{"    hello            -> go  (two-way)\n", "    $default         -> go  (two-way)\n", "    echo             -> echo  (two-way)\n"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, "no $default") {
		t.Errorf("banner says there is no $default, but a Go handler serves it:\n%s", banner)
	}
}

func TestHandlersRefused(t *testing.T) {
	t.Parallel()
	h := integration.Func(func(context.Context, *integration.Request) (*integration.Response, error) { return nil, nil })
	tests := []struct {
		name, key, want string
	}{
		{"configured too", "echo", `route "echo": given both in the configuration and in code`},
		{"reserved prefix", "$other", `route "$other": custom route keys must not start with $`},
		{"empty key", "", `route "": a route has an empty key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := &config.Config{Routes: map[string]config.Route{"echo": {Integration: config.Integration{Type: "echo"}}}}
			if err := cfg.Complete(); err != nil {
				t.Fatal(err)
			}
			srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Handlers: map[string]integration.Integration{tt.key: h}})
			if err == nil {
				_ = srv.Close()
				t.Fatalf("New with a Go route %q: no error", tt.key)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New with a Go route %q: %v, want %q", tt.key, err, tt.want)
			}
		})
	}
}
