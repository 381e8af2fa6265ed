// Command gen writes docs/config.md, the configuration reference, from the
// config package. Run it from the repository's root:
//
//	go run ./internal/config/gen
package main

import (
	"fmt"
	"os"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

func main() {
	if err := os.WriteFile("docs/config.md", []byte(config.ReferenceMarkdown()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
