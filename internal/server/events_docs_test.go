package server_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
)

// TestDocsEvents: docs/events.md's configurations load and its patterns
// compile, and every test it and SECURITY.md's Consumers section cite as
// proof exists.
func TestDocsEvents(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, block, ok := strings.Cut(doc, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || !strings.Contains(block, "events:") {
		t.Fatal("docs/events.md has no ```yaml block with events:")
	}
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(block+"functions: {audit: {runtime: nodejs20.x, handler: audit.handler}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("docs/events.md's YAML: %v", err)
	}
	if len(cfg.Events.Rules) != 1 || len(cfg.Events.Rules[0].Targets) != 2 {
		t.Fatalf("docs/events.md's rules = %+v, want one rule with two targets", cfg.Events.Rules)
	}
	for _, row := range regexp.MustCompile("(?m)^\\| `(\\{.*?\\})`").FindAllStringSubmatch(doc, -1) {
		p := row[1]
		if !strings.HasPrefix(p, `{"`) || strings.Contains(p, `": v`) || strings.Contains(p, "p1") {
			continue // a sketch, not a pattern
		}
		if strings.HasPrefix(p, `{"prefix"`) || strings.HasPrefix(p, `{"suffix"`) || strings.HasPrefix(p, `{"equals`) ||
			strings.HasPrefix(p, `{"wildcard"`) || strings.HasPrefix(p, `{"anything-but"`) || strings.HasPrefix(p, `{"numeric"`) || strings.HasPrefix(p, `{"exists"`) {
			p = `{"f": [` + p + `]}`
		}
		if _, err := eventbridge.ParsePattern([]byte(p)); err != nil {
			t.Errorf("docs/events.md's pattern %s: %v", row[1], err)
		}
	}
	// The consumers' example loads.
	_, block, ok = strings.Cut(doc, "## Consumers")
	_, block, _ = strings.Cut(block, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || !strings.Contains(block, "consumers:") {
		t.Fatal("docs/events.md's Consumers section has no ```yaml block with consumers:")
	}
	path = filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(path, func(string) string { return "" }, config.Overrides{}); err != nil {
		t.Fatalf("docs/events.md's consumers: %v", err)
	}
	if len(cfg.Consumers) != 2 || cfg.Consumers[0].NATS == nil || cfg.Consumers[1].Redis == nil {
		t.Fatalf("docs/events.md's consumers = %+v, want one on NATS and one on Redis", cfg.Consumers)
	}
	var tests strings.Builder
	for _, glob := range []string{"../*/*_test.go", "../*/*/*_test.go", "../../cmd/*/*_test.go", "../../examples/*_test.go"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			src, _ := os.ReadFile(f)
			tests.Write(src)
		}
	}
	sec, err := os.ReadFile("../../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, consumers, ok := strings.Cut(string(sec), "## Consumers")
	consumers, _, _ = strings.Cut(consumers, "\n## ")
	if !ok {
		t.Fatal("SECURITY.md has no Consumers section")
	}
	for _, d := range []struct{ name, text string }{{"docs/events.md", doc}, {"SECURITY.md's Consumers", consumers}} {
		for _, name := range regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z]+)`").FindAllStringSubmatch(d.text, -1) {
			if !strings.Contains(tests.String(), "func "+name[1]+"(") {
				t.Errorf("%s cites %s, which is no test", d.name, name[1])
			}
		}
	}
}
