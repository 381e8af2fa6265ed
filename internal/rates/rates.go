// Package rates keeps a short, bounded history of the gateway's rates (open
// connections, and messages in, out and failed per second), sampled at a
// fixed interval from its running totals, for the dashboard's chart. The
// history is a ring: its memory is fixed when it is made.
package rates

import (
	"context"
	"sync"
	"time"
)

// Totals are the running totals a sample is taken from: the open
// connections now, and counters that only grow.
type Totals struct {
	Connections int
	In          int64 // messages received
	Out         int64 // messages sent
	Errors      int64 // failed route invocations and unmatched messages
}

// Sample is the state over one interval: the connections open at its end
// and the mean rate of each counter over it, per second.
type Sample struct {
	Time        time.Time `json:"t"`
	Connections int       `json:"connections"`
	In          float64   `json:"in"`
	Out         float64   `json:"out"`
	Errors      float64   `json:"errors"`
}

// Options configures a Ring. The zero value keeps five minutes of
// one-second samples.
type Options struct {
	// Interval is the time between samples. Zero or less means 1s.
	Interval time.Duration
	// Size is how many samples are kept, the oldest going first. Zero or
	// less means 300.
	Size int
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Size <= 0 {
		o.Size = 300
	}
	return o
}

// Ring holds the last Options.Size samples. Safe for concurrent use.
type Ring struct {
	opts Options
	read func() Totals

	mu     sync.Mutex
	ring   []Sample
	next   int // where the next sample goes
	full   bool
	last   Totals    // the totals of the previous Record
	lastAt time.Time // zero before the first Record
}

// New returns a ring that samples read; read must be safe to call from
// another goroutine.
func New(read func() Totals, opts Options) *Ring {
	opts = opts.withDefaults()
	return &Ring{opts: opts, read: read, ring: make([]Sample, opts.Size)}
}

// Interval is the time between samples.
func (r *Ring) Interval() time.Duration { return r.opts.Interval }

// Run records a sample every Interval until ctx ends. The first call of
// read only sets the baseline: rates need two readings.
func (r *Ring) Run(ctx context.Context) {
	r.Record(time.Now())
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.Record(now)
		}
	}
}

// Record reads the totals at now and, from the second call on, keeps the
// sample of the time since the previous call. A counter that went down
// (its source was replaced) counts as zero for that interval.
func (r *Ring) Record(now time.Time) {
	t := r.read()
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, prevAt := r.last, r.lastAt
	r.last, r.lastAt = t, now
	if prevAt.IsZero() {
		return
	}
	secs := now.Sub(prevAt).Seconds()
	if secs <= 0 {
		return // a clock that went back: no rate to compute
	}
	per := func(cur, old int64) float64 { return float64(max(0, cur-old)) / secs }
	r.ring[r.next] = Sample{
		Time: now, Connections: t.Connections,
		In: per(t.In, prev.In), Out: per(t.Out, prev.Out), Errors: per(t.Errors, prev.Errors),
	}
	r.next = (r.next + 1) % len(r.ring)
	r.full = r.full || r.next == 0
}

// Samples returns the kept samples, oldest first.
func (r *Ring) Samples() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]Sample(nil), r.ring[:r.next]...)
	}
	return append(append([]Sample(nil), r.ring[r.next:]...), r.ring[:r.next]...)
}
