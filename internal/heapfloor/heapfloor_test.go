package heapfloor_test

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/heapfloor"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The tests change the process's collector: none runs in parallel.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTarget(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name        string
		floor, live int64
		want        int
	}{
		{"little live: the goal is the floor", 16 * mib, 1 * mib, 1500},
		{"a quarter of the floor live", 16 * mib, 4 * mib, 300},
		{"half the floor live: GOGC's own goal", 16 * mib, 8 * mib, 100},
		{"more than half: GOGC's own goal", 16 * mib, 12 * mib, 100},
		{"nothing live yet: bounded", 16 * mib, 0, 100_000},
		{"almost nothing live: bounded", 16 * mib, 10, 100_000},
	} {
		if got := heapfloor.Target(c.floor, c.live); got != c.want {
			t.Errorf("%s: Target(%d, %d) = %d, want %d", c.name, c.floor, c.live, got, c.want)
		}
	}
}

// gogc returns the collector's GOGC as the runtime has it.
func gogc() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// cycles returns the collections so far.
func cycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
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

// A floor keeps a small heap from being collected every few MiB, follows
// the live heap after each collection, and gives GOGC back when it is
// turned off.
func TestFloorFollowsTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	runtime.GC()
	without := garbage(64 * mib)

	heapfloor.Set(256 * mib)
	defer heapfloor.Set(0)
	if p := heapfloor.Percent(); p <= 100 || gogc() != p {
		t.Fatalf("with a 256 MiB floor over a small heap: Percent() = %d, GOGC %d; want the same, above 100", p, gogc())
	}
	runtime.GC()
	testutil.Eventually(t, 5*time.Second, func() bool { return heapfloor.Percent() > 100 }, "the floor is not taken again after a collection")
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
	runtime.GC()
	testutil.Eventually(t, 5*time.Second, func() bool { p := heapfloor.Percent(); return p > 100 && gogc() == p },
		"the floor is not raised again once the live heap shrank")

	heapfloor.Set(0)
	if p := heapfloor.Percent(); p != 100 || gogc() != 100 {
		t.Errorf("floor off: Percent() = %d, GOGC %d; want 100 and 100", p, gogc())
	}
	runtime.GC()
	if p := gogc(); p != 100 {
		t.Errorf("a collection after the floor was turned off set GOGC %d, want 100", p)
	}
}
