package lambdahost

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

// bootstrapJS is the Node.js runtime: it loads _HANDLER from
// LAMBDA_TASK_ROOT and serves invocations from the Runtime API.
//
//go:embed bootstrap.js
var bootstrapJS []byte

const bootstrapName = "bootstrap.js"

// writeBootstrap writes the Node.js bootstrap to a new temporary directory
// and returns the directory.
func writeBootstrap() (string, error) {
	dir, err := os.MkdirTemp("", "switchboard-lambdahost-")
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
