package lambdahost

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// bootstrapJS is the Node.js runtime: it loads _HANDLER from
// LAMBDA_TASK_ROOT and serves invocations from the Runtime API.
//
//go:embed bootstrap.js
var bootstrapJS []byte

const bootstrapName = "bootstrap.js"

// tempPrefix starts the name of every temporary directory a host makes;
// the owner's PID and a dash follow, so that a later host can tell whether
// the owner still runs.
const tempPrefix = "switchboard-fn-"

// writeBootstrap writes the Node.js bootstrap to a new temporary directory
// in parent (os.TempDir() when empty), named after this process, and
// returns the directory.
func writeBootstrap(parent string) (string, error) {
	dir, err := os.MkdirTemp(parent, tempPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	files := map[string][]byte{
		bootstrapName: bootstrapJS,
		// Keeps the bootstrap CommonJS whatever a package.json above says.
		"package.json": []byte(`{"type": "commonjs"}` + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("bootstrap: %w", err)
		}
	}
	return dir, nil
}

// removeStale removes the temporary directories in parent (os.TempDir()
// when empty) left by hosts that died without Close (a gateway killed with
// SIGKILL): those whose owner PID no longer runs. It reports how many it
// removed and the first error met; a directory it cannot remove is left.
// A PID reused by another process keeps its directory until that one ends.
func removeStale(parent string) (int, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return 0, fmt.Errorf("stale temporary directories: %w", err)
	}
	var errs []error
	n := 0
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		digits, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(digits)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
