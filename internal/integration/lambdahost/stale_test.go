package lambdahost

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// removeStale removes the directories of hosts that no longer run and
// nothing else.
func TestRemoveStale(t *testing.T) {
	t.Parallel()
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Skipf("no true(1) to get the PID of an exited process: %v", err)
	}
	deadPID := exited.ProcessState.Pid()
	parent := t.TempDir()
	dirs := map[string]bool{ // name -> removed
		tempPrefix + strconv.Itoa(deadPID) + "-123":      true,
		tempPrefix + strconv.Itoa(os.Getpid()) + "-123":  false, // this process
		tempPrefix + strconv.Itoa(os.Getppid()) + "-123": false, // alive
		tempPrefix + "notapid-123":                       false,
		tempPrefix + strconv.Itoa(deadPID):               false, // not this package's shape
		"other-" + strconv.Itoa(deadPID) + "-123":        false,
	}
	for name := range dirs {
		if err := os.Mkdir(filepath.Join(parent, name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(parent, tempPrefix+strconv.Itoa(deadPID)+"-123", bootstrapName), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := removeStale(parent)
	if err != nil || n != 1 {
		t.Errorf("removeStale = %d, %v; want 1, nil", n, err)
	}
	for name, removed := range dirs {
		_, err := os.Stat(filepath.Join(parent, name))
		if gone := os.IsNotExist(err); gone != removed {
			t.Errorf("%s: removed = %v, want %v", name, gone, removed)
		}
	}
}
