package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/coder/websocket"
)

// The exit statuses of the switchboard command. Each help text ends with
// their list (ExitStatusText) and README.md's command-line section has it.
const (
	ExitOK      = 0 // success, and --help
	ExitFailure = 1 // any other failure
	ExitUsage   = 2 // a command line that does not parse, as Go's flag package
	ExitNetwork = 3 // no connection: refused, unreachable, a name that does not resolve, TLS
	ExitHTTP4xx = 4 // the gateway answered 4xx
	ExitHTTP5xx = 5 // the gateway answered 5xx
	ExitClosed  = 6 // the WebSocket was closed with a code other than 1000 or 1001
)

// ExitStatuses lists the exit statuses with their meaning, in order.
var ExitStatuses = []struct {
	Code    int
	Meaning string
}{
	{ExitOK, "success (also for --help)"},
	{ExitFailure, "any other failure"},
	{ExitUsage, "usage error: an unknown flag or command, a missing or extra argument, a bad flag value"},
	{ExitNetwork, "network error: connection refused or lost before an answer, a name that does not resolve, a TLS failure"},
	{ExitHTTP4xx, "the gateway answered 4xx (a refused handshake, 410 GoneException, 403 ForbiddenException...)"},
	{ExitHTTP5xx, "the gateway answered 5xx"},
	{ExitClosed, "the WebSocket connection was closed with a code other than 1000 or 1001 (1006 when lost)"},
}

// ExitStatusText is the footer of every help text.
func ExitStatusText() string {
	var b strings.Builder
	b.WriteString("Exit status:\n")
	for _, s := range ExitStatuses {
		fmt.Fprintf(&b, "  %d  %s\n", s.Code, s.Meaning)
	}
	return b.String()
}

// UsageError is a command line that does not parse: exit status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with the formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// HTTPError is an HTTP answer other than 2xx from the gateway: a refused
// management call or WebSocket handshake.
type HTTPError struct {
	Status  int
	Type    string // x-amzn-ErrorType, without the ":namespace" AWS may append
	Message string
}

func (e *HTTPError) Error() string {
	s := strconv.Itoa(e.Status) + " "
	if e.Type != "" {
		s += e.Type
	} else {
		s += http.StatusText(e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// CloseError is a WebSocket connection that ended with a close code other
// than 1000 or 1001 (1006 when it was lost without a close frame).
type CloseError struct {
	Code   int
	Reason string // the close frame's reason, or the code's name
}

func (e *CloseError) Error() string {
	return "server closed the connection: " + closeText(websocket.StatusCode(e.Code), e.Reason)
}

// ExitCode is the exit status for the error a command returned.
func ExitCode(err error) int {
	var ue *UsageError
	var he *HTTPError
	var ce *CloseError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &he):
		switch he.Status / 100 {
		case 4:
			return ExitHTTP4xx
		case 5:
			return ExitHTTP5xx
		}
		return ExitFailure
	case errors.As(err, &ce):
		return ExitClosed
	case isNetwork(err):
		return ExitNetwork
	}
	return ExitFailure
}

// isNetwork reports whether err is a failure to reach the peer.
func isNetwork(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var ue *url.Error
	return errors.As(err, &op) || errors.As(err, &dns) || errors.As(err, &cv) || errors.As(err, &ua) ||
		errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &rh) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		(errors.As(err, &ue) && ue.Timeout())
}

// Help is a command's help text: what `switchboard CMD --help` prints on
// stdout. Its examples work against `switchboard serve` run without
// configuration.
type Help struct {
	Usage    []string // synopses, without "Usage: "
	Text     string   // what the command does, in paragraphs
	Examples []string // command lines
}

// Write prints the help: usage, text, flags, examples and exit statuses.
func (h *Help) Write(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	if len(h.Usage) == 1 {
		fmt.Fprintf(&b, "Usage: %s\n", h.Usage[0])
	} else {
		b.WriteString("Usage:\n")
		for _, u := range h.Usage {
			fmt.Fprintf(&b, "  %s\n", u)
		}
	}
	if h.Text != "" {
		b.WriteString("\n" + strings.TrimRight(h.Text, "\n") + "\n")
	}
	if fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			b.WriteString("\nFlags:\n")
			writeFlags(&b, fs)
		}
	}
	if len(h.Examples) > 0 {
		b.WriteString("\nExamples:\n")
		for _, e := range h.Examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	b.WriteString("\n" + ExitStatusText())
	_, _ = io.WriteString(w, b.String())
}

// writeFlags lists fs's flags as --name TYPE, then their usage and default.
func writeFlags(b *strings.Builder, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(b, "  %s%s", dash, f.Name)
		if typ != "" {
			fmt.Fprintf(b, " %s", typ)
		}
		fmt.Fprintf(b, "\n      %s", strings.ReplaceAll(usage, "\n", "\n      "))
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" && d != "[]" {
			fmt.Fprintf(b, " (default %s)", d)
		}
		b.WriteByte('\n')
	})
}

// NewFlagSet returns a flag set that prints nothing itself: ParseFlags and
// parseArgs report errors and print the help.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// ParseFlags parses args with fs (made by NewFlagSet) as flag.Parse does:
// -h or --help prints h on stdout and returns flag.ErrHelp; a bad flag
// returns a *UsageError.
func ParseFlags(fs *flag.FlagSet, args []string, h *Help, stdout io.Writer) error {
	return parseError(fs.Parse(args), fs, h, stdout)
}

func parseError(err error, fs *flag.FlagSet, h *Help, stdout io.Writer) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		h.Write(stdout, fs)
		return flag.ErrHelp
	}
	return &UsageError{Err: err}
}

// WantsHelp reports whether args ask for help (-h, --help) before any "--".
func WantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--help", "-help":
			return true
		}
	}
	return false
}
