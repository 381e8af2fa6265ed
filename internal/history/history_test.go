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

func TestGapAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		after uint64
		first *history.Entry
		last  uint64
		want  history.Gap
	}{
		{"first follows the position", 5, &history.Entry{Offset: 7, Prev: 5}, 9, ""},
		{"first follows an older one", 5, &history.Entry{Offset: 7, Prev: 6}, 9, history.GapTrimmed},
		{"first of the topic from zero", 0, &history.Entry{Offset: 7}, 9, ""},
		{"size trimmed from zero", 0, &history.Entry{Offset: 51, Prev: 50}, 150, history.GapTrimmed},
		{"first knew no previous one", 5, &history.Entry{Offset: 7}, 9, history.GapTrimmed},
		{"nothing kept, nothing since", 9, nil, 9, ""},
		{"nothing kept, published since", 5, nil, 9, history.GapTrimmed},
		{"everything expired, from zero", 0, nil, 9, history.GapTrimmed},
		{"nothing ever published", 0, nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := history.GapAfter(tt.after, tt.first, tt.last); got != tt.want {
				t.Errorf("GapAfter(%d, %v, %d) = %q, want %q", tt.after, tt.first, tt.last, got, tt.want)
			}
		})
	}
}
