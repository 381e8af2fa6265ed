package lambdahost

import (
	"bytes"
	"strings"
	"testing"
)

func TestLineWriter(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxLine)
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"one line", []string{"hello\n"}, "[f] hello\n"},
		{"line split across writes", []string{"hel", "lo\nwor", "ld\n"}, "[f] hello\n[f] world\n"},
		{"empty lines", []string{"\n\n"}, "[f] \n[f] \n"},
		{"partial last line is flushed", []string{"a\nb"}, "[f] a\n[f] b\n"},
		{"nothing", nil, ""},
		{"overlong line is cut", []string{long + "yz\n"}, "[f] " + long + "\n[f] yz\n"},
		{"overlong line across writes", []string{"ab", long}, "[f] ab" + long[2:] + "\n[f] xx\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			lw := &lineWriter{w: &out, prefix: "[f] "}
			for _, w := range tt.writes {
				if n, err := lw.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			lw.flush()
			if got := out.String(); got != tt.want {
				t.Errorf("output = %.200q (%d bytes), want %.200q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
		})
	}
}
