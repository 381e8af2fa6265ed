//go:build unix

package heapfloor_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/heapfloor"
)

// Touch leaves its memory resident and free, and the allocations that
// follow are placed on it rather than on pages never touched: in a fresh
// process (this test binary run again), 32 MiB of small objects fault in
// few of the pages they fault in without it.
func TestTouch(t *testing.T) {
	if os.Getenv("HEAPFLOOR_TOUCH") != "" {
		return // the child, run by touchChild
	}
	without, with := touchChild(t, "0"), touchChild(t, "64")
	if with.freeAfterTouch < with.freeBefore+60*mib {
		t.Errorf("free resident heap %d MiB before Touch(64 MiB), %d after; want 60 MiB more at least", with.freeBefore/mib, with.freeAfterTouch/mib)
	}
	// The objects take 32 MiB of pages; with the race detector its
	// shadow memory faults on top, with or without Touch.
	pages := int64(32 * mib / os.Getpagesize())
	if saved := without.faults - with.faults; saved < pages*3/4 {
		t.Errorf("32 MiB of small objects: %d page faults after Touch(64 MiB), %d without; want %d fewer at least (three quarters of their pages)", with.faults, without.faults, pages*3/4)
	}
	t.Logf("32 MiB of small objects: %d page faults after Touch(64 MiB), %d without", with.faults, without.faults)
}

type touched struct{ freeBefore, freeAfterTouch, faults int64 }

// touchChild runs TestTouchChild in a fresh process, which touches size
// MiB and then allocates 32 MiB live, and returns what it measured.
func touchChild(t *testing.T, size string) touched {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTouchChild$", "-test.v")
	// Transparent huge pages off, as the runtime lets a process choose:
	// where the system gives them to every process, a fault would bring
	// in 2 MiB and the pages would not be counted.
	cmd.Env = append(os.Environ(), "HEAPFLOOR_TOUCH="+size, "GOGC=off", "GODEBUG="+strings.TrimPrefix(os.Getenv("GODEBUG")+",disablethp=1", ","))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var r touched
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "touched %d %d %d", &r.freeBefore, &r.freeAfterTouch, &r.faults); err == nil {
			return r
		}
	}
	t.Fatalf("child printed no figures:\n%s", out)
	return r
}

// TestTouchChild is TestTouch's child: it runs only in a process
// TestTouch started. The collector is off there (GOGC=off), so that no
// collection frees memory for the allocations to take.
func TestTouchChild(t *testing.T) {
	size, err := strconv.Atoi(os.Getenv("HEAPFLOOR_TOUCH"))
	if err != nil {
		t.Skip("run by TestTouch")
	}
	free := func() int64 { return int64(read("/memory/classes/heap/free:bytes")[0]) }
	before := free()
	heapfloor.Touch(int64(size) * mib)
	after := free()
	var u0, u1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u0)
	live := make([][]byte, 0, 8192) // 32 MiB
	for range cap(live) {
		b := make([]byte, 4096)
		b[0] = 1 // as a program uses what it allocates: fresh pages are not written until then
		live = append(live, b)
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &u1)
	runtime.KeepAlive(live)
	fmt.Printf("touched %d %d %d\n", before, after, u1.Minflt-u0.Minflt)
}
