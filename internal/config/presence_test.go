package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

func TestPresenceAnnounce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		valid      bool
		announces  map[string]bool
	}{
		{"absent announces nothing", "", true, map[string]bool{"room.1": false}},
		{"patterns", `presence: {announce: ["room.*", lobby]}`, true,
			map[string]bool{"room.1": true, "room.1.2": true, "lobby": true, "room": false, "lobby.x": false}},
		{"bad pattern", `presence: {announce: ["room.["]}`, false, nil},
		{"empty pattern", `presence: {announce: [""]}`, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "switchboard.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
			if !tt.valid {
				if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "presence.announce") {
					t.Fatalf("Load = %v, want ErrInvalid naming presence.announce", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for topic, want := range tt.announces {
				if got := cfg.Presence.Announces(topic); got != want {
					t.Errorf("Announces(%q) = %v, want %v", topic, got, want)
				}
			}
		})
	}
}
