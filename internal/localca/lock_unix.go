//go:build unix

package localca

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes an exclusive lock on dir's lock file, so that gateways
// starting together create one CA, not a key of one and a certificate of
// another. The returned function releases it.
func lock(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("localca: lock %s: %w", f.Name(), err)
	}
	return func() { _ = f.Close() }, nil // closing the file releases the lock
}
