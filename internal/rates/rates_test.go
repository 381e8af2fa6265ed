package rates_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/rates"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counter is a source of totals the test advances by hand.
type counter struct{ t rates.Totals }

func (c *counter) read() rates.Totals { return c.t }

func TestRecord(t *testing.T) {
	t.Parallel()
	c := &counter{}
	r := rates.New(c.read, rates.Options{Size: 3})
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	r.Record(t0)
	if got := r.Samples(); len(got) != 0 {
		t.Fatalf("after the first reading: %d samples, want 0 (it is the baseline)", len(got))
	}
	c.t = rates.Totals{Connections: 2, In: 10, Out: 30, Errors: 1}
	r.Record(t0.Add(2 * time.Second))
	want := rates.Sample{Time: t0.Add(2 * time.Second), Connections: 2, In: 5, Out: 15, Errors: 0.5}
	if got := r.Samples(); len(got) != 1 || got[0] != want {
		t.Fatalf("Samples() = %+v, want [%+v]", got, want)
	}
	// A counter that went down (its source was replaced) is zero, not negative.
	c.t = rates.Totals{Connections: 1, In: 4, Out: 31, Errors: 1}
	r.Record(t0.Add(3 * time.Second))
	if got := r.Samples()[1]; got.In != 0 || got.Out != 1 || got.Connections != 1 {
		t.Errorf("after a reset: %+v, want in 0, out 1, connections 1", got)
	}
	// A clock that went back keeps no sample.
	r.Record(t0.Add(time.Second))
	if n := len(r.Samples()); n != 2 {
		t.Errorf("after a clock step back: %d samples, want 2", n)
	}
}

// The ring keeps Size samples, oldest first, however many were recorded.
func TestRingIsBounded(t *testing.T) {
	t.Parallel()
	c := &counter{}
	r := rates.New(c.read, rates.Options{Size: 4})
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i := range 11 {
		c.t.In = int64(i * i)
		r.Record(t0.Add(time.Duration(i) * time.Second))
	}
	got := r.Samples()
	if len(got) != 4 {
		t.Fatalf("%d samples, want 4", len(got))
	}
	for j, s := range got {
		i := 7 + j // the last four of the ten samples (1..10)
		if want := float64(i*i - (i-1)*(i-1)); s.In != want || !s.Time.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("sample %d = %+v, want in %v at +%ds", j, s, want, i)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	r := rates.New(func() rates.Totals { return rates.Totals{} }, rates.Options{})
	if r.Interval() != time.Second {
		t.Errorf("Interval() = %v, want 1s", r.Interval())
	}
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i := range 400 {
		r.Record(t0.Add(time.Duration(i) * time.Second))
	}
	if n := len(r.Samples()); n != 300 {
		t.Errorf("kept %d samples, want 300 (five minutes)", n)
	}
}

// Run samples until its context ends, and returns then.
func TestRun(t *testing.T) {
	t.Parallel()
	r := rates.New(func() rates.Totals { return rates.Totals{In: time.Now().UnixNano()} }, rates.Options{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return len(r.Samples()) >= 2 }, "Run recorded no samples")
	cancel()
	<-done
}
