package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

// A serverless.yml has no setting for ordering: the environment and the
// flag give it, the flag winning, and a bad value is refused by name.
func TestOrderingOfAServerlessProject(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "handler.js"), []byte("exports.work = async () => ({})\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sls := filepath.Join(dir, "serverless.yml")
	project := "service: t\nprovider: {name: aws, runtime: nodejs20.x}\nfunctions:\n  f:\n    handler: handler.work\n    events:\n      - websocket: work\n"
	if err := os.WriteFile(sls, []byte(project), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "SWITCHBOARD_ORDERING" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name, env, flag, want, wantErr string
	}{
		{"absent", "", "", "", ""},
		{"environment", "concurrent", "", "concurrent", ""},
		{"flag wins", "concurrent", "ordered", "ordered", ""},
		{"bad value", "", "parallel", "", `ordering: expected one of ordered, concurrent, got "parallel"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.LoadProject(sls, env(tt.env), config.Overrides{Ordering: tt.flag})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadProject: err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadProject: %v", err)
			}
			if cfg.Ordering != tt.want {
				t.Errorf("ordering = %q, want %q", cfg.Ordering, tt.want)
			}
		})
	}
}
