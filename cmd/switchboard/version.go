package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// printVersion prints the version and, from the build information, the
// VCS revision, its time and whether the tree had changes, and the Go
// version. A binary built outside a VCS checkout prints no revision.
func printVersion(w io.Writer) {
	fmt.Fprintln(w, "switchboard", versionString())
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for _, f := range []struct{ label, key string }{
		{"revision", "vcs.revision"},
		{"time", "vcs.time"},
		{"modified", "vcs.modified"},
	} {
		if v := settings[f.key]; v != "" {
			fmt.Fprintf(w, "  %-9s %s\n", f.label+":", v)
		}
	}
	fmt.Fprintf(w, "  %-9s %s\n", "go:", bi.GoVersion)
}
