package history_test

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/history"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, topic string
		want                 bool
	}{
		{"exact", "news", "news", true},
		{"exact differs", "news", "newsy", false},
		{"star matches one segment", "chat.*", "chat.room1", true},
		{"star does not span segments", "chat.*", "chat.a.b", false},
		{"star needs a segment", "chat.*", "chat", false},
		{"star needs a non-empty segment", "chat.*", "chat.", false},
		{"tail matches one", "orders.>", "orders.eu", true},
		{"tail matches several", "orders.>", "orders.eu.created", true},
		{"tail needs one", "orders.>", "orders", false},
		{"prefix only", "chat", "chat.room1", false},
		{"star in the middle", "a.*.c", "a.b.c", true},
		{"empty topic", "chat.*", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := history.Match(tt.pattern, tt.topic); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
			}
		})
	}
}

func TestValidPattern(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "a..b", "a.>.b", ".a"} {
		if history.ValidPattern(p) == nil {
			t.Errorf("ValidPattern(%q) = nil, want an error", p)
		}
	}
	for _, p := range []string{"a", "a.*", "a.>", "*", ">"} {
		if err := history.ValidPattern(p); err != nil {
			t.Errorf("ValidPattern(%q) = %v, want nil", p, err)
		}
	}
	if (history.Rule{Topics: "a", Size: -1}).Validate() == nil {
		t.Error("Validate(size -1) = nil, want an error")
	}
}
