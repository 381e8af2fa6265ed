// Package heapfloor keeps the garbage collector from running while the heap
// is small. With the default GOGC of 100 the runtime collects each time the
// heap doubles its live size. A gateway whose idle connections have no
// goroutine keeps little live memory (a few MiB with a thousand
// connections), so a burst of messages is collected every few MiB of
// allocation, and a fresh process, whose heap has not grown yet, pays for
// it most. A floor raises the collector's goal to at least its size while
// twice the live heap is less, and leaves GOGC at 100 above it: the memory
// it costs is bounded by the floor, and a large gateway is not changed.
//
// The floor is the process's, as the collector is: Set changes it for every
// user. After each collection the goal is taken again from the heap that
// survived it (runtime/metrics "/gc/heap/live:bytes").
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// percent is GOGC's default, which the floor raises and gives back.
const percent = 100

// maxPercent bounds the GOGC the floor sets, for a heap with almost nothing
// live.
const maxPercent = 100_000

// tuner is the floor's state: one per process, as the collector is.
type tuner struct {
	mu      sync.Mutex
	floor   int64 // bytes; 0: off
	armed   bool  // a sentinel waits for the next collection
	percent int   // the GOGC last set; 0: none set
	sample  [1]metrics.Sample
}

var state tuner

// sentinel is an object left for the collector, whose cleanup runs after
// the collection that finds it: the tuner's tick. Not tiny (it holds a
// pointer), so that it is never batched with other objects.
type sentinel struct {
	_ *byte
	_ [16]byte
}

// Set makes floor (bytes) the least heap the collector lets grow before it
// runs; 0 turns the floor off and gives GOGC back its default, 100. An
// operator who set GOGC or wants its own value does not call it (the
// configuration decides: see internal/config). Safe for concurrent use.
func Set(floor int64) {
	state.mu.Lock()
	defer state.mu.Unlock()
	state.floor = max(floor, 0)
	tuneLocked()
}

// Percent returns the GOGC the floor set last: 100 while it is off or the
// live heap is above half of it.
func Percent() int {
	state.mu.Lock()
	defer state.mu.Unlock()
	return state.percentOrDefault()
}

// tuneLocked sets GOGC from the floor and the live heap, and arms the next
// tick while the floor is on.
func tuneLocked() {
	want := percent
	if state.floor > 0 {
		want = Target(state.floor, liveLocked())
	}
	if want != state.percentOrDefault() {
		debug.SetGCPercent(want)
		state.percent = want
	}
	if state.floor > 0 && !state.armed {
		state.armed = true
		runtime.AddCleanup(new(sentinel), func(struct{}) { tick() }, struct{}{})
	}
}

// tick runs after each collection while the floor is on.
func tick() {
	state.mu.Lock()
	defer state.mu.Unlock()
	state.armed = false
	tuneLocked()
}

// Target is the GOGC that puts the collector's goal at floor for a heap
// with live bytes live, or 100 when that is higher: the goal is live × (1 +
// GOGC/100).
func Target(floor, live int64) int {
	if live <= 0 {
		return maxPercent
	}
	p := floor*100/live - 100
	switch {
	case p <= percent:
		return percent
	case p >= maxPercent:
		return maxPercent
	}
	return int(p)
}

// liveLocked returns the bytes the last collection found live; before the
// first one, the bytes in use.
func liveLocked() int64 {
	s := &state.sample[0]
	s.Name = "/gc/heap/live:bytes"
	metrics.Read(state.sample[:])
	if s.Value.Kind() == metrics.KindUint64 && s.Value.Uint64() > 0 {
		return int64(s.Value.Uint64())
	}
	s.Name = "/memory/classes/heap/objects:bytes"
	metrics.Read(state.sample[:])
	if s.Value.Kind() == metrics.KindUint64 {
		return int64(s.Value.Uint64())
	}
	return 0
}

// percentOrDefault is the GOGC in force as far as the tuner knows.
func (t *tuner) percentOrDefault() int {
	if t.percent == 0 {
		return percent
	}
	return t.percent
}
