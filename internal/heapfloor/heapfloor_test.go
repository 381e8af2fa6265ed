package heapfloor_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/heapfloor"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The tests change the process's collector: none runs in parallel.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const mib = 1 << 20

func TestTarget(t *testing.T) {
	for _, c := range []struct {
		name               string
		floor, live, roots int64
		want               int
	}{
		{"little live: capped where the runtime's minimum is the floor", 16 * mib, 1 * mib, 0, 400},
		{"little live, a larger floor", 64 * mib, 4 * mib, 0, 1500},
		{"a quarter of the floor live", 16 * mib, 4 * mib, 0, 300},
		{"stacks and globals count towards the goal", 16 * mib, 4 * mib, 4 * mib, 150},
		{"half the floor live: GOGC's own goal", 16 * mib, 8 * mib, 0, 100},
		{"more than half: GOGC's own goal", 16 * mib, 12 * mib, 0, 100},
		{"roots push GOGC's own goal past the floor", 16 * mib, 4 * mib, 12 * mib, 100},
		{"nothing live yet", 16 * mib, 0, 0, 400},
		{"a floor below the runtime's own minimum", 4 * mib, 0, 0, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := heapfloor.Target(c.floor, c.live, c.roots); got != c.want {
				t.Errorf("Target(%d, %d, %d) = %d, want %d", c.floor, c.live, c.roots, got, c.want)
			}
		})
	}
}

// read returns runtime metrics by name, all of them uint64.
func read(names ...string) []uint64 {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	out := make([]uint64, len(s))
	for i := range s {
		out[i] = s[i].Value.Uint64()
	}
	return out
}

// gogc is the collector's GOGC as the runtime has it.
func gogc() int { return int(read("/gc/gogc:percent")[0]) }

func cycles() uint64 { return read("/gc/cycles/total:gc-cycles")[0] }

// state describes the collector, for a failure's message.
func state() string {
	v := read("/gc/gogc:percent", "/gc/heap/goal:bytes", "/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes")
	return fmt.Sprintf("GOGC %d (the floor's %d), goal %d, live %d, stacks %d, globals %d", v[0], heapfloor.Percent(), v[1], v[2], v[3], v[4])
}

var sink []byte

// garbage allocates n bytes in 4 KiB pieces that die at once, and returns
// the collections they caused.
func garbage(n int) uint64 {
	before := cycles()
	for range n / 4096 {
		sink = make([]byte, 4096)
	}
	sink = nil
	return cycles() - before
}

// A floor keeps a small heap from being collected every few MiB: the
// collector's goal is the floor, set again after each collection from what
// it found. Once more than half of it is live, GOGC is its own 100 again,
// and turning the floor off gives GOGC back.
func TestFloorFollowsTheLiveHeap(t *testing.T) {
	const floor = 256 * mib
	runtime.GC()
	without := garbage(64 * mib)

	heapfloor.Set(floor)
	defer heapfloor.Set(0)
	if p := heapfloor.Percent(); p <= 100 || gogc() != p {
		t.Fatalf("with a 256 MiB floor over a small heap: %s; want the floor's GOGC, above 100", state())
	}
	// After a collection, the goal is taken again and is the floor.
	before := cycles()
	runtime.GC()
	testutil.Eventually(t, 5*time.Second, func() bool {
		g := read("/gc/heap/goal:bytes")[0]
		return cycles() > before && g > floor*95/100 && g < floor*105/100 && gogc() == heapfloor.Percent()
	}, "after a collection, the collector's goal is not the floor")
	with := garbage(64 * mib)
	if without < 4 || with > 1 {
		t.Errorf("64 MiB of garbage: %d collections without the floor, %d with it; want at least 4 and at most 1", without, with)
	}

	live := make([][]byte, 0, 200) // 200 MiB live: more than half the floor
	for range 200 {
		live = append(live, make([]byte, mib))
	}
	runtime.GC()
	testutil.Eventually(t, 5*time.Second, func() bool { return heapfloor.Percent() == 100 && gogc() == 100 },
		"with more than half the floor live, GOGC is not its own 100")
	runtime.KeepAlive(live)
	live = nil
	// A tick still running from an earlier collection may arm the next
	// during this one, which then keeps its sentinel: collections go on
	// until one ticks with the heap that shrank, as they would in a
	// process that allocates.
	ok := false
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the tick runs after the collection, on the runtime's cleanup goroutine
		p := heapfloor.Percent()
		ok = p > 100 && gogc() == p
	}
	if !ok {
		t.Fatalf("once the live heap shrank, the floor is not raised again: %s", state())
	}

	heapfloor.Set(0)
	if p := heapfloor.Percent(); p != 100 || gogc() != 100 {
		t.Errorf("floor off: %s; want GOGC 100", state())
	}
	runtime.GC()
	if p := gogc(); p != 100 {
		t.Errorf("a collection after the floor was turned off set GOGC %d, want 100", p)
	}
}
