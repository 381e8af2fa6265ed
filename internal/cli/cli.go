// Package cli implements Switchboard's client subcommands: `connect`, an
// interactive WebSocket client for trying a gateway by hand, and the
// management commands (`post`, `get`, `delete`, `publish`, `broadcast`,
// `list`), which call the @connections management API over HTTP, with a
// bearer token or SigV4-signed like the AWS SDKs. It owns their flags,
// their output and the HTTP and WebSocket clients they use; it reads no
// environment variable except through the getenv it is given.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// parseArgs parses fs's flags wherever they appear among args, so that
// "connect URL --header X" works as well as "connect --header X URL", and
// returns the positional arguments. An argument starting with "-" that names
// no flag is positional: connection IDs may start with "-"
// ("-XLminO4N9cG6LM="), and so may data ("-1"). "--" ends the flags; a lone
// "-" (stdin) is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			return append(pos, args[1:]...), nil
		}
		f, ok := lookupFlag(fs, a)
		if !ok {
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		n := 1 // the flag, and its value when it is the next argument
		if f != nil && !strings.Contains(a, "=") && !isBoolFlag(f) {
			n = min(2, len(args))
		}
		if err := fs.Parse(args[:n]); err != nil {
			return nil, err
		}
		args = args[n:]
	}
	return pos, nil
}

// lookupFlag reports whether a is a flag of fs ("-name", "--name",
// "--name=value") or a request for help (f is then nil).
func lookupFlag(fs *flag.FlagSet, a string) (f *flag.Flag, ok bool) {
	if len(a) < 2 || a[0] != '-' {
		return nil, false
	}
	name := strings.TrimPrefix(a[1:], "-")
	name, _, _ = strings.Cut(name, "=")
	if f := fs.Lookup(name); f != nil {
		return f, true
	}
	return nil, name == "h" || name == "help"
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// unknownFlag returns the first positional argument that looks like a flag,
// to explain a wrong argument count.
func unknownFlag(pos []string) (string, bool) {
	for _, a := range pos {
		if len(a) > 1 && a[0] == '-' {
			return a, true
		}
	}
	return "", false
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ", ") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printable replaces control characters other than newline and tab with
// escapes such as \x1b, so that text from a peer cannot drive the terminal.
func printable(s string) string {
	clean := utf8.ValidString(s)
	for _, r := range s {
		if isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && isControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f)
}

// plural returns "1 connection" or "n connections".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
