package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeapFloorResident: `serve` touches the heap floor's memory at start
// unless heapFloorResident is false, so an idle gateway that has served
// nothing holds most of the floor (32 MiB) in anonymous RSS more than one
// that leaves the pages untouched (docs/deploy.md, "Memory").
func TestHeapFloorResident(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	untouched := filepath.Join(dir, "untouched.yaml")
	if err := os.WriteFile(untouched, []byte("heapFloorResident: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rss := func(args ...string) int64 {
		env := []string{"SWITCHBOARD_DATA_DIR=" + t.TempDir(), "GOGC="} // GOGC set would turn the floor off
		p := startProcessEnv(t, env, args...)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			t.Skipf("no /proc status: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			var kb int64
			if _, err := fmt.Sscanf(line, "RssAnon: %d kB", &kb); err == nil {
				return kb << 10
			}
		}
		t.Fatalf("no RssAnon in\n%s", b)
		return 0
	}
	const mib = 1 << 20
	touched, left := rss(), rss("--config", untouched)
	if touched-left < 24*mib {
		t.Errorf("anonymous RSS of an idle gateway: %d MiB with the floor resident, %d MiB without; want 24 MiB more at least", touched/mib, left/mib)
	}
	t.Logf("anonymous RSS of an idle gateway: %d MiB with the floor resident, %d MiB without", touched/mib, left/mib)
}
