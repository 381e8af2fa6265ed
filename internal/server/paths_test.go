package server_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server"
)

// TestRelativeCommandInRelativeCodeDir loads the README's layout through a
// relative config path: the command is found once relative to codeDir, not
// under the config's directory twice.
func TestRelativeCommandInRelativeCodeDir(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "relative", "switchboard.yaml") // relative to the package directory
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("server.New with %s: %v", path, err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
