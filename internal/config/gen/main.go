// Command gen writes the configuration reference, docs/config.md, from the
// config package. From the repository's root:
//
//	go run ./internal/config/gen
//
// or go generate ./internal/config, which names the file from there.
package main

import (
	"fmt"
	"os"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

func main() {
	out := "docs/config.md"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	if err := os.WriteFile(out, []byte(config.ReferenceMarkdown()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
