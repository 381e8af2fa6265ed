package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
)

// TestDocsQueues: docs/events.md's queues configuration loads as written.
func TestDocsQueues(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		if y, _, _ := strings.Cut(part, "```"); strings.Contains(y, "\nqueues:") {
			block = y
		}
	}
	if block == "" {
		t.Fatal("docs/events.md has no ```yaml block with queues:")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(filepath.Join(dir, "push.js"), []byte("exports.handler = async () => null;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(block+"functions: {push: {runtime: nodejs20.x, handler: push.handler}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("docs/events.md's queues: %v", err)
	}
	if len(cfg.Queues) != 2 || cfg.Queues[0].DeadLetter == nil || len(cfg.Queues[0].Triggers) != 1 || cfg.Events.Rules[0].Targets[0].Queue != "orders" {
		t.Fatalf("docs/events.md's queues = %+v, want orders with its dead-letter queue, trigger and rule", cfg.Queues)
	}
	// The server builds them: their attributes are within SQS's limits.
	servertest.Start(t, cfg)
}
