// Package servertest runs a complete Switchboard server from a config on a
// random loopback port, for end-to-end tests, as httptest does for handlers.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server"
)

// Running is a started server.
type Running struct {
	*server.Server
	WS   string // ws://127.0.0.1:PORT
	HTTP string // http://127.0.0.1:PORT
	// Management is the management API's base URL: HTTP, or its own
	// listener's when the config has management.listen.
	Management string
}

// Start serves cfg until the end of the test; hosted functions' output goes
// to the test log.
func Start(t testing.TB, cfg *config.Config) *Running {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	out := &logWriter{t: t}
	srv, err := server.New(cfg, server.Options{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Addr:           hs.Listener.Addr().String(),
		FunctionOutput: out,
	})
	if err != nil {
		hs.Close()
		t.Fatalf("server.New: %v", err)
	}
	hs.Config.Handler = srv.Handler()
	srv.ConfigureHTTP(hs.Config)
	hs.Start()
	running := &Running{Server: srv, WS: "ws" + strings.TrimPrefix(hs.URL, "http"), HTTP: hs.URL, Management: hs.URL}
	var ms *httptest.Server
	if cfg.Management.Listen != "" {
		ms = httptest.NewUnstartedServer(srv.ManagementHandler())
		srv.ConfigureHTTP(ms.Config)
		ms.Start()
		running.Management = ms.URL
	}
	srv.SetReady(true)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Drain(ctx)
		hs.Close()
		if ms != nil {
			ms.Close()
		}
		_ = srv.Close()
		out.stop()
	})
	return running
}

// StartYAML loads yamlCfg (empty for zero-config) from a temporary file and
// starts the server; relative paths in it are taken from that directory, so
// tests give absolute ones.
func StartYAML(t testing.TB, yamlCfg string) *Running {
	t.Helper()
	path := ""
	if yamlCfg != "" {
		path = filepath.Join(t.TempDir(), "switchboard.yaml")
		if err := os.WriteFile(path, []byte(yamlCfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	return Start(t, cfg)
}

// logWriter sends output to the test log until the test's cleanup.
type logWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
