// Package heapfloor keeps the garbage collector from running while the heap
// is small. With the default GOGC of 100 the runtime collects each time the
// heap doubles its live size. A gateway whose idle connections have no
// goroutine keeps little live memory (a few MiB with a thousand
// connections), so a burst of messages is collected every few MiB of
// allocation, and a fresh process, whose heap has not grown yet, pays for
// it most. A floor raises the collector's goal to at least its size while
// GOGC=100's own goal (twice the live heap, plus the stacks and globals) is
// less, and leaves GOGC at 100 above it: the memory it costs is bounded by
// the floor, and a gateway with more than half of it live is not changed.
//
// The floor is the process's, as the collector is: Set changes it for every
// user. After each collection the goal is set again from what it found
// (runtime/metrics: the live heap, and the stacks and globals it scanned).
//
// With the floor, a fresh process's first burst runs no collection, so
// each allocation lands on a page never touched before, and pays its page
// fault, where a process that has just served a burst reuses the pages
// it left. Touch makes the floor's pages resident at start.
package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// percent is GOGC's default, which the floor raises and gives back.
const percent = 100

// heapMinimum is the runtime's least goal at GOGC=100, which it scales
// with GOGC (4 MiB × GOGC/100): the GOGC the floor sets is capped where
// that minimum reaches the floor, or the goal would pass it.
const heapMinimum = 4 << 20

// tuner is the floor's state: one per process, as the collector is.
type tuner struct {
	mu      sync.Mutex
	floor   int64 // bytes; 0: off
	armed   bool  // a sentinel waits for the next collection
	percent int   // the GOGC in force as far as the tuner knows
	samples [4]metrics.Sample
}

var state = tuner{percent: percent}

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

// Percent returns the GOGC the floor set last: 100 while it is off or
// GOGC=100's own goal is above it.
func Percent() int {
	state.mu.Lock()
	defer state.mu.Unlock()
	return state.percent
}

// tuneLocked sets GOGC from the floor and the live heap, and arms the next
// tick while the floor is on.
func tuneLocked() {
	want := percent
	if state.floor > 0 {
		live, roots := measureLocked()
		want = Target(state.floor, live, roots)
	}
	if want != state.percent {
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

// Target is the GOGC that puts the collector's goal at floor, or 100 when
// that is higher. Since Go 1.18 the goal is live + (live + stacks +
// globals) × GOGC/100, roots being the stacks and globals the last
// collection scanned, and at least 4 MiB × GOGC/100 (heapMinimum).
func Target(floor, live, roots int64) int {
	limit := floor * 100 / heapMinimum // where the minimum is the floor
	p := limit
	if base := live + max(roots, 0); base > 0 {
		p = min((floor-live)*100/base, limit)
	}
	return int(max(p, percent))
}

// measureLocked returns the bytes the last collection found live (before
// the first one, the bytes in use) and the stacks and globals it scanned.
func measureLocked() (live, roots int64) {
	s := state.samples[:]
	s[0].Name = "/gc/heap/live:bytes"
	s[1].Name = "/gc/scan/stack:bytes"
	s[2].Name = "/gc/scan/globals:bytes"
	s[3].Name = "/memory/classes/heap/objects:bytes"
	metrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(s[i].Value.Uint64())
	}
	live = v(0)
	if live == 0 {
		live = v(3)
	}
	return live, v(1) + v(2)
}

// Touch makes size bytes of heap resident now, rather than a page at a
// time as the heap first grows: it allocates them, writes to each page,
// and collects them again. The runtime keeps the pages, free, and places
// the next allocations on them, so a fresh process's first burst of work
// does not pay a page fault for each page it allocates. The cost is the
// resident memory itself, from the start: a process whose heap would
// never have grown that far holds it anyway. Both last until a collection
// finds the heap in use small: the runtime's scavenger then gives the
// free pages back to the system, as it does those a burst left, and an
// idle process's periodic collection (every two minutes) is one.
func Touch(size int64) {
	if size <= 0 {
		return
	}
	page := os.Getpagesize()
	b := make([]byte, size)
	for i := 0; i < len(b); i += page {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	runtime.GC()
}
