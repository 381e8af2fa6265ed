package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// ConnectHelp is the help text of `switchboard connect`.
var ConnectHelp = &Help{
	Usage: []string{"switchboard connect [flags] URL"},
	Text: `Opens a WebSocket connection to URL (ws://, wss://, or host:port for ws://)
and relays it to the terminal: each line read from stdin is sent as a text
message (empty lines are skipped), each message received is printed on stdout
as "< message" (binary ones as "< [binary N bytes] " and the hex of the first
32 bytes), and, when stdout is not a terminal, each line sent is echoed as
"> line", so that a saved transcript shows both directions. Connection events
go to stderr. End of input (Ctrl-D) or Ctrl-C closes the connection with 1000.
The command succeeds when the server closes with 1000 or 1001 and fails with
any other close code. With --execute, it sends one message, prints the
messages arriving within --wait as they are, one per line, and closes.

A wss:// URL is verified against the system's roots, and the CA of --cacert
(the gateway's local CA is ~/.local/share/switchboard/ca.pem: see
'switchboard ca'); --insecure skips the verification, and says so on stderr.`,
	Examples: []string{
		`switchboard connect ws://127.0.0.1:3001`,
		`switchboard connect ws://127.0.0.1:3001/dev --execute '{"action":"sendMessage","data":"hi"}' --wait 1s`,
		`echo '{"action":"subscribe","topic":"news"}' | switchboard connect ws://127.0.0.1:3001`,
		`switchboard connect ws://127.0.0.1:3001 --header "Authorization: Bearer TOKEN" --subprotocol websocket --execute hello --wait 0s`,
		`switchboard connect wss://127.0.0.1:3001 --cacert ~/.local/share/switchboard/ca.pem --execute hello --wait 0s`,
		`switchboard connect wss://127.0.0.1:3001 --insecure --execute hello --wait 0s`,
	},
}

const (
	handshakeTimeout = 30 * time.Second
	writeTimeout     = 10 * time.Second
	hexPrefixBytes   = 32 // how much of a binary message is shown
	userAgent        = "switchboard-cli"
)

// Connect runs `switchboard connect`: args are the command's flags and URL.
// It returns when the connection is over: nil when stdin ends, ctx is
// cancelled (both close with 1000) or the server closes with 1000 or 1001;
// an error for a refused handshake ("handshake refused: 401 Unauthorized"),
// another close code, or a lost connection. Output goes to stdout and
// stderr, one whole line per write, from at most one goroutine at a time.
//
// Every goroutine it starts has ended when it returns. When the connection
// ends while a Read of stdin is pending, Connect unblocks it with
// SetReadDeadline when stdin supports it (restoring no deadline after), or
// else by closing stdin when it is an io.Closer other than an *os.File; a
// read of a plain *os.File that cannot be interrupted (a terminal) is left to
// end with the process.
func Connect(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	fs := NewFlagSet("connect")
	var headers, protocols listFlag
	fs.Var(&headers, "header", `HTTP header of the handshake, "Name: value" (repeatable)`)
	fs.Var(&protocols, "subprotocol", "WebSocket subprotocol to offer (repeatable, in order of preference)")
	execute := fs.String("execute", "", "send this message after connecting, print what arrives during --wait, then close")
	wait := fs.Duration("wait", 2*time.Second, "with --execute, how long to print arriving messages; 0 closes right after sending")
	noColor := fs.Bool("no-color", false, "never colour the output (also when NO_COLOR is set)")
	maxBytes := fs.Int64("max-message-bytes", 0, "largest message accepted from the server; a larger one ends the connection (0: unlimited)")
	insecure := fs.Bool("insecure", false, "do not verify the server's TLS certificate (wss://); a warning goes to stderr")
	caCert := fs.String("cacert", "", "PEM file of a CA to trust for wss://, besides the system's roots")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return parseError(err, fs, ConnectHelp, stdout)
	}
	if len(pos) != 1 {
		if a, ok := unknownFlag(pos); ok {
			return Usagef("flag provided but not defined: %s", a)
		}
		if len(pos) == 0 {
			return Usagef("want a URL (switchboard connect [flags] URL)")
		}
		return Usagef("want one URL, got %d arguments", len(pos))
	}
	executeSet := false
	fs.Visit(func(f *flag.Flag) { executeSet = executeSet || f.Name == "execute" })
	if *wait < 0 {
		return Usagef("--wait must not be negative")
	}
	opts, err := dialOptions(headers, protocols)
	if err != nil {
		return err
	}
	u := pos[0]
	if !strings.Contains(u, "://") {
		u = "ws://" + u
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tr.TLSClientConfig, err = tlsConfig(*caCert, *insecure); err != nil {
		return err
	}
	if *insecure {
		fmt.Fprintln(stderr, "Warning: --insecure: the server's TLS certificate is not verified")
	}
	defer tr.CloseIdleConnections() // a refused handshake may leave its connection idle
	opts.HTTPClient = &http.Client{Transport: tr}
	dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	conn, resp, err := websocket.Dial(dctx, u, opts)
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return fmt.Errorf("handshake refused: %w", handshakeError(resp))
		}
		return fmt.Errorf("%s: %w", u, err)
	}
	if *maxBytes > 0 {
		conn.SetReadLimit(*maxBytes)
	} else {
		conn.SetReadLimit(-1)
	}

	color := !*noColor && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
	con := &console{
		out:      stdout,
		err:      stderr,
		outColor: color && isTerminal(stdout),
		errColor: color && isTerminal(stderr),
		outTerm:  isTerminal(stdout),
		raw:      executeSet,
	}
	con.echo = !con.outTerm && !executeSet
	if p := conn.Subprotocol(); p != "" {
		con.event(green, "Connected (subprotocol: %s)", printable(p))
	} else {
		con.event(green, "Connected")
	}

	s := &session{conn: conn, con: con, maxBytes: *maxBytes, readErr: make(chan error, 1)}
	go func() { s.readErr <- s.readLoop() }()
	if executeSet {
		return s.execute(ctx, *execute, *wait)
	}
	return s.interactive(ctx, stdin)
}

// tlsConfig is the client's TLS configuration for --cacert and --insecure:
// nil, the defaults, without either.
func tlsConfig(caFile string, insecure bool) (*tls.Config, error) {
	if caFile == "" && !insecure {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} // #nosec G402 -- asked for by --insecure, and said so on stderr
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, Usagef("--cacert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, Usagef("--cacert %s: no PEM certificate in the file", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// handshakeError reads a refused handshake's answer: its status, and the
// x-amzn-ErrorType and message of an AWS-style body, when it has them.
func handshakeError(resp *http.Response) *HTTPError {
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096)) // what there is: the status is the story
	}
	return newAPIError(resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body)
}

// dialOptions turns the --header and --subprotocol flags into DialOptions.
func dialOptions(headers, protocols []string) (*websocket.DialOptions, error) {
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}, Subprotocols: protocols}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, Usagef("--header %q: want \"Name: value\"", h)
		}
		if strings.EqualFold(name, "Host") {
			opts.Host = value // net/http ignores a Host entry in the header map
			continue
		}
		opts.HTTPHeader.Add(name, value)
	}
	if opts.HTTPHeader.Get("User-Agent") == "" {
		opts.HTTPHeader.Set("User-Agent", userAgent) // shows as identity.userAgent in the gateway
	}
	return opts, nil
}

// session is one open connection. The reader goroutine owns reads and
// reports how they ended on readErr; the calling goroutine owns writes and
// the close.
type session struct {
	conn     *websocket.Conn
	con      *console
	maxBytes int64      // --max-message-bytes
	readErr  chan error // the read loop's end, sent once
}

// readLoop prints every message until the connection ends. Its context is
// never cancelled: in coder/websocket a cancelled Read drops the connection,
// and closes must go through the close handshake instead.
func (s *session) readLoop() error {
	for {
		typ, data, err := s.conn.Read(context.Background())
		if err != nil {
			return err
		}
		s.con.received(typ, data)
	}
}

// interactive sends the lines of stdin until it ends, ctx is cancelled or
// the server closes.
func (s *session) interactive(ctx context.Context, stdin io.Reader) error {
	lines := make(chan string)
	inErr := make(chan error, 1) // stdin's end, sent after its last line was taken
	stop := make(chan struct{})
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		inErr <- readLines(stdin, lines, stop)
	}()
	defer func() {
		close(stop)
		if unblockRead(stdin) {
			<-inDone
			if d, ok := stdin.(interface{ SetReadDeadline(time.Time) error }); ok {
				_ = d.SetReadDeadline(time.Time{})
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return s.close()
		case err := <-s.readErr:
			return s.ended(err)
		case line := <-lines:
			if over, err := s.send(line); over {
				return err
			}
		case err := <-inErr:
			cerr := s.close()
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			return cerr
		}
	}
}

// execute sends msg and prints what arrives for wait.
func (s *session) execute(ctx context.Context, msg string, wait time.Duration) error {
	if over, err := s.send(msg); over {
		return err
	}
	if wait == 0 {
		return s.close()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case err := <-s.readErr:
		return s.ended(err)
	}
	return s.close()
}

// send writes one text message, echoing it first so that a transcript shows
// it before any answer. When the write fails the connection is over: send
// reports it with over, and err is then the command's result.
func (s *session) send(msg string) (over bool, err error) {
	s.con.sent(msg)
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	werr := s.conn.Write(ctx, websocket.MessageText, []byte(msg))
	if werr == nil {
		return false, nil
	}
	_ = s.conn.CloseNow() // ends the read loop, if the failure did not
	rerr := <-s.readErr
	if websocket.CloseStatus(rerr) != -1 { // the server closed first: that is the story
		return true, s.ended(rerr)
	}
	return true, fmt.Errorf("send: %w", werr)
}

// close runs the close handshake with 1000 and waits for the read loop.
func (s *session) close() error {
	err := s.conn.Close(websocket.StatusNormalClosure, "")
	rerr := <-s.readErr
	if errors.Is(err, net.ErrClosed) { // the server closed first
		return s.ended(rerr)
	}
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	s.con.event(yellow, "Disconnected (%s)", closeText(websocket.StatusNormalClosure, ""))
	return nil
}

// ended reports how the server ended the connection, given the read loop's
// error: nil for a close with 1000 or 1001.
func (s *session) ended(err error) error {
	var ce websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig): // the library closed with 1009
		s.con.event(red, "Disconnected (%s)", closeText(websocket.StatusMessageTooBig, ""))
		return fmt.Errorf("a message exceeded --max-message-bytes %d; closed with 1009: %w", s.maxBytes,
			&CloseError{Code: int(websocket.StatusMessageTooBig), Reason: closeNames[websocket.StatusMessageTooBig]})
	case !errors.As(err, &ce):
		return fmt.Errorf("connection lost: %v: %w", err, &CloseError{Code: 1006, Reason: closeNames[1006]})
	}
	text := closeText(ce.Code, ce.Reason)
	switch ce.Code {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		s.con.event(yellow, "Disconnected (%s)", text)
		return nil
	}
	s.con.event(red, "Disconnected (%s)", text)
	return &CloseError{Code: int(ce.Code), Reason: ce.Reason}
}

// closeText is "code 1001: Going away": the reason when there is one, else
// the code's name.
func closeText(code websocket.StatusCode, reason string) string {
	if reason == "" {
		reason = closeNames[code]
	}
	if reason == "" {
		return fmt.Sprintf("code %d", int(code))
	}
	return fmt.Sprintf("code %d: %s", int(code), printable(reason))
}

var closeNames = map[websocket.StatusCode]string{
	1000: "Normal closure",
	1001: "Going away",
	1002: "Protocol error",
	1003: "Unsupported data",
	1005: "No status code",
	1006: "Abnormal closure",
	1007: "Invalid payload data",
	1008: "Policy violation",
	1009: "Message too big",
	1010: "Mandatory extension",
	1011: "Internal error",
	1012: "Service restart",
	1013: "Try again later",
	1014: "Bad gateway",
	1015: "TLS handshake failure",
}

// readLines sends each non-empty line of r, without its line ending, until
// r ends (nil at EOF) or stop is closed.
func readLines(r io.Reader, lines chan<- string, stop <-chan struct{}) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			select {
			case lines <- line:
			case <-stop:
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			select {
			case <-stop: // the read was interrupted on purpose
				return nil
			default:
				return err
			}
		}
	}
}

// unblockRead makes a Read pending on r return, when r allows it, and
// reports whether it did, so that the reading goroutine can be waited for.
func unblockRead(r io.Reader) bool {
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		if d.SetReadDeadline(time.Now()) == nil {
			return true
		}
	}
	if _, ok := r.(*os.File); ok {
		return false // a terminal or pipe without deadlines: not ours to close
	}
	if c, ok := r.(io.Closer); ok {
		_ = c.Close()
		return true
	}
	return false
}

// ANSI colours.
const (
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	reset  = "\x1b[0m"
)

// console writes the session's output. Its methods are safe for concurrent
// use: each line is written whole, under one lock shared by stdout and
// stderr, so lines never interleave.
type console struct {
	mu                 sync.Mutex
	out, err           io.Writer
	outColor, errColor bool
	outTerm            bool // stdout is a terminal: escape control characters
	echo               bool // echo sent lines as "> line"
	raw                bool // --execute: print received messages without a marker
}

func (c *console) received(typ websocket.MessageType, data []byte) {
	var body string
	if typ == websocket.MessageBinary {
		body = fmt.Sprintf("[binary %d bytes] %s", len(data), hex.EncodeToString(data[:min(len(data), hexPrefixBytes)]))
		if len(data) > hexPrefixBytes {
			body += "..."
		}
	} else {
		body = string(data)
		if c.outTerm {
			body = printable(body)
		}
	}
	var line string
	switch {
	case c.raw:
		line = body + "\n"
	case c.outColor:
		line = cyan + "<" + reset + " " + body + "\n"
	default:
		line = "< " + body + "\n"
	}
	c.write(c.out, line)
}

func (c *console) sent(msg string) {
	if c.echo {
		c.write(c.out, "> "+msg+"\n")
	}
}

// event writes a connection event on stderr.
func (c *console) event(color, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if c.errColor {
		line = color + line + reset
	}
	c.write(c.err, line+"\n")
}

func (c *console) write(w io.Writer, s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = io.WriteString(w, s) // nowhere to report a failed write to the terminal
}
