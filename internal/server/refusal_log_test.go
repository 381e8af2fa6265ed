package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/metrics"
)

// A flood of refused management requests logs at most one line per reason
// per second, and the next line counts the ones left out.
func TestRefusalLogIsRateLimited(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l := newRefusalLog(slog.New(slog.NewJSONHandler(&out, nil)))
	now := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return now }
	r := httptest.NewRequest("GET", "/@connections?access_token=secret-token", nil)
	errBad := errors.New("bad")

	for range 100 {
		l.refused(metrics.AuthBadSignature, r, errBad)
	}
	l.refused(metrics.AuthMissing, r, errBad) // another reason has its own budget
	now = now.Add(999 * time.Millisecond)
	l.refused(metrics.AuthBadSignature, r, errBad)
	now = now.Add(time.Millisecond)
	l.refused(metrics.AuthBadSignature, r, errBad)

	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, rec)
	}
	want := []struct {
		reason     string
		suppressed float64
	}{{"bad_signature", 0}, {"missing", 0}, {"bad_signature", 100}}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		got, _ := lines[i]["suppressed"].(float64) // absent when none were
		if _, present := lines[i]["suppressed"]; lines[i]["reason"] != w.reason || got != w.suppressed || present != (w.suppressed > 0) {
			t.Errorf("line %d: reason %v suppressed %v, want %s %v", i, lines[i]["reason"], lines[i]["suppressed"], w.reason, w.suppressed)
		}
	}
	if strings.Contains(out.String(), "secret-token") {
		t.Errorf("the log carries the query's token:\n%s", out.String())
	}
}
