package eventbridge_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// flaky fails its first failures deliveries with err, then succeeds.
type flaky struct {
	mu       sync.Mutex
	failures int
	err      error
	calls    int
}

func (f *flaky) Deliver(context.Context, []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.failures {
		return f.err
	}
	return nil
}

func (f *flaky) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

func TestRouterRetries(t *testing.T) {
	t.Parallel()
	transient := errors.New("transient")
	permanent := fmt.Errorf("%w: no field", eventbridge.ErrPermanent)
	tests := []struct {
		name        string
		target      *flaky
		maxAttempts int
		calls       int
		delivered   float64
		failed      string // reason, or empty
	}{
		{"delivered at once", &flaky{}, 0, 1, 1, ""},
		{"retried until delivered", &flaky{failures: 2, err: transient}, 0, 3, 1, ""},
		{"given up after maxAttempts", &flaky{failures: 5, err: transient}, 3, 3, 0, "attempts"},
		{"a permanent failure is not retried", &flaky{failures: 5, err: permanent}, 0, 1, 0, "permanent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := eventbridge.ParsePattern([]byte(`{"source":["a"]}`))
			if err != nil {
				t.Fatal(err)
			}
			m := metrics.NewEvents(prometheus.NewRegistry())
			r := eventbridge.NewRouter(eventbridge.Options{
				Rules:     []eventbridge.Rule{{Name: "r", Pattern: p, Targets: []eventbridge.RuleTarget{{ID: "t", Kind: "test", Target: tt.target, MaxAttempts: tt.maxAttempts}}}},
				RetryBase: time.Millisecond, RetryCap: 4 * time.Millisecond, Metrics: m,
			})
			defer r.Close()
			if err := r.Route("default", []byte(`{"source":"b"}`)); err != nil {
				t.Fatal(err)
			}
			if err := r.Route("default", []byte(`{"source":"a"}`)); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 5*time.Second, func() bool {
				done := metrics.Sum(m.Delivered) + metrics.Sum(m.Failures)
				return done == 1
			}, "the delivery ends")
			if got := tt.target.count(); got != tt.calls {
				t.Errorf("calls = %d, want %d", got, tt.calls)
			}
			if got := metrics.Sum(m.Delivered); got != tt.delivered {
				t.Errorf("delivered = %v, want %v", got, tt.delivered)
			}
			if tt.failed != "" {
				if got := metrics.Sum(m.Failures, "r", "t", "test", tt.failed); got != 1 {
					t.Errorf("failures{reason=%s} = %v, want 1", tt.failed, got)
				}
			}
			if got := metrics.Sum(m.Retries); got != float64(tt.calls-1) {
				t.Errorf("retries = %v, want %d", got, tt.calls-1)
			}
		})
	}
}

func TestRouterThrottles(t *testing.T) {
	t.Parallel()
	p, _ := eventbridge.ParsePattern([]byte(`{"source":["a"]}`))
	block := make(chan struct{})
	r := eventbridge.NewRouter(eventbridge.Options{MaxPending: 1,
		Rules: []eventbridge.Rule{{Name: "r", Pattern: p, Targets: []eventbridge.RuleTarget{{ID: "t", Target: blocking(block)}}}}})
	defer r.Close()
	defer close(block)
	if err := r.Route("default", []byte(`{"source":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.Route("default", []byte(`{"source":"a"}`)); !errors.Is(err, eventbridge.ErrThrottled) {
		t.Errorf("second Route = %v, want ErrThrottled", err)
	}
}

type blocking chan struct{}

func (b blocking) Deliver(ctx context.Context, _ []byte) error {
	select {
	case <-b:
	case <-ctx.Done():
	}
	return nil
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	ev := []byte(`{"source":"s","detail":{"id":"42","n":7.0,"o":{"z":[1],"a":2}}}`)
	tests := []struct{ tmpl, want, err string }{
		{"$.detail.id", "42", ""},
		{"$.detail.o", `{"z":[1],"a":2}`, ""},
		{"$.detail.n", "7.0", ""},
		{"$", string(ev), ""},
		{"orders.${detail.id}.${source}", "orders.42.s", ""},
		{"n=${$.detail.n}", "n=7.0", ""},
		{"plain", "plain", ""},
		{"$.detail.missing", "", "no field detail.missing"},
		{"x.${detail.id.deeper}", "", "no field"},
	}
	for _, tt := range tests {
		tp, err := eventbridge.ParseTemplate(tt.tmpl)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", tt.tmpl, err)
		}
		got, err := tp.Render(ev)
		if got != tt.want || (err == nil) != (tt.err == "") {
			t.Errorf("Render(%q) = %q, %v; want %q, error %q", tt.tmpl, got, err, tt.want, tt.err)
		}
	}
	for _, bad := range []string{"a.${detail", "$.a..b", "${}"} {
		if _, err := eventbridge.ParseTemplate(bad); !errors.Is(err, eventbridge.ErrTemplate) {
			t.Errorf("ParseTemplate(%q) = %v, want ErrTemplate", bad, err)
		}
	}
}

// TestRouterCloseAbandonsRetries: Close does not wait for a retry; the
// event is counted as failed with reason stopped, as it is lost.
func TestRouterCloseAbandonsRetries(t *testing.T) {
	t.Parallel()
	p, _ := eventbridge.ParsePattern([]byte(`{"source":["a"]}`))
	m := metrics.NewEvents(prometheus.NewRegistry())
	r := eventbridge.NewRouter(eventbridge.Options{Metrics: m, RetryBase: time.Hour,
		Rules: []eventbridge.Rule{{Name: "r", Pattern: p, Targets: []eventbridge.RuleTarget{{ID: "t", Kind: "test", Target: &flaky{failures: 9, err: errors.New("down")}}}}}})
	if err := r.Route("default", []byte(`{"source":"a"}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return metrics.Sum(m.Retries) == 1 }, "a retry is waiting")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := metrics.Sum(m.Failures, "r", "t", "test", "stopped"); got != 1 {
		t.Errorf("failures{reason=stopped} = %v, want 1", got)
	}
}
