// Command ceiling is the benchmark suite's upper bound: a WebSocket server on
// the gateway's library, github.com/gobwas/ws, with nothing else: no
// routes, no registry, no integrations, no metrics, no per-message
// contexts. The suite reports every gateway figure as a ratio to this
// server's, measured in the same run.
//
// The library accepts the upgrade and parses and checks frame headers. Each
// connection has two goroutines: a reader, blocked in reads, that gathers
// messages and answers control frames, and a writer, the only one to write
// to the socket, that drains every queued frame, data or control, with one
// writev (or, with --batch=false, one write per frame). Frames are encoded
// once: a broadcast queues the same bytes on every connection.
//
// It serves the server side of every `switchboard bench` workload, so the
// same command lines run against both:
//
//	a text or binary message         answered back (echo)
//	{"action":"sendMessage","data":D} or {"action":"publish",...,"data":D}
//	                                 D (a string's text, else its JSON) to every connection
//	"broadcast:PAYLOAD"              PAYLOAD to every connection
//	{"action":"subscribe",...}, {"action":"unsubscribe",...}
//	                                 nothing: topics are ignored, publishes broadcast
//	POST /broadcast, POST /@broadcast, POST /@topics/{topic}
//	                                 the body to every connection; {"recipients":N}
//	POST /@connections/{id}          the body to one connection; 410 when unknown
//	POST /@connections               {"connectionIds":[...],"data":D}: D (a string's text, else its JSON)
//	                                 to each; {"delivered":N,"gone":[...]}
//	GET /@connections                {"items":[{"connectionId","identity":{"sourceIp","userAgent"}}]}, one page
//	GET /debug/vars                  expvar, with "goroutines"
//	/debug/pprof/                    net/http/pprof; GET /debug/pprof/heap?gc=1 forces a GC
//
// A prefix before "/@" (a stage, "/dev/@connections") is ignored.
//
//	go run ./bench/ceiling --listen 127.0.0.1:0
//
// prints "ceiling listening on ws://ADDR" and serves until SIGINT or SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

const (
	readLimit    = 1 << 20
	maxBodyBytes = 1 << 20
	writeTimeout = 10 * time.Second
	readBufBytes = 512 // held for the connection's life; larger payloads bypass it
)

func init() {
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
		}
		os.Exit(2)
	}
}

// run is main without the process: it serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	batch := fs.Bool("batch", true, "write all of a connection's queued frames with one writev; false: one write per frame")
	queue := fs.Int("queue", 1<<16, "frames one connection may have waiting; more closes it (1008)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	s := newServer(*batch, *queue)
	hs := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "ceiling listening on ws://%s\n", ln.Addr())
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	_ = hs.Close() // the listener and plain HTTP connections
	s.closeAll()   // hijacked ones: http.Server does not track them
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// server holds the open connections.
type server struct {
	batch    bool
	queueMax int
	nextID   atomic.Uint64

	mu    sync.RWMutex
	conns map[string]*conn

	handlers sync.WaitGroup // one per open connection
}

func newServer(batch bool, queueMax int) *server {
	return &server{batch: batch, queueMax: queueMax, conns: make(map[string]*conn)}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /debug/vars", expvar.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("POST /broadcast", s.postBroadcast)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/@"); i >= 0 {
			s.management(w, r, r.URL.Path[i+1:])
			return
		}
		s.serveWS(w, r)
	})
	return mux
}

// conn is one client connection.
type conn struct {
	id, userAgent, sourceIP string
	raw                     net.Conn // written only by the connection's writer
	queueMax                int

	mu     sync.Mutex // guards queue and closed
	queue  [][]byte
	closed bool // nothing more is queued: the writer writes what is, then closes raw

	wake chan struct{} // capacity 1: the writer has work
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		// Refused over HTTP, keeping the connection: the upgrader hijacks it
		// even to refuse.
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "WebSocket upgrade required", http.StatusUpgradeRequired)
		return
	}
	raw, rw, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
	if err != nil {
		if raw != nil {
			_ = raw.Close() // hijacked: the upgrader wrote the refusal
		}
		return
	}
	// The client's first frames may already sit in net/http's buffer: they
	// are read first, then the socket, through a small buffer of our own;
	// net/http's 4 KiB buffers are dropped.
	var src io.Reader = raw
	if n := rw.Reader.Buffered(); n > 0 {
		early := make([]byte, n)
		_, _ = io.ReadFull(rw.Reader, early) // buffered: cannot fail
		src = io.MultiReader(bytes.NewReader(early), raw)
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c := &conn{
		id:        strconv.FormatUint(s.nextID.Add(1), 36),
		userAgent: r.UserAgent(),
		sourceIP:  host,
		raw:       raw,
		queueMax:  s.queueMax,
		wake:      make(chan struct{}, 1),
	}
	s.handlers.Add(1)
	defer s.handlers.Done()
	s.mu.Lock()
	s.conns[c.id] = c
	s.mu.Unlock()

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(s.batch)
	}()
	s.readLoop(c, bufio.NewReaderSize(src, readBufBytes))
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
	c.end(nil, false) // a no-op when the reader queued a close frame
	<-writerDone      // it closed raw
}

// readLoop reads the client's frames until the connection ends: it answers
// control frames, gathers fragmented messages and hands each message to
// handle. A broken rule queues a close frame; the writer sends it and closes
// the socket.
func (s *server) readLoop(c *conn, r *bufio.Reader) {
	var (
		hb         [ws.MaxHeaderSize]byte
		typ        ws.OpCode // of the message being read
		fragments  []byte    // its payload so far, when fragmented
		fragmented bool
	)
	for {
		h, err := ws.ReadHeaderBuffer(r, hb[:])
		if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
			c.fail(ws.StatusProtocolError, err.Error())
			return
		}
		if err != nil {
			return // the client went away or the socket was closed
		}
		state := ws.StateServerSide
		if fragmented {
			state |= ws.StateFragmented
		}
		if err := ws.CheckHeader(h, state); err != nil {
			c.fail(ws.StatusProtocolError, err.Error())
			return
		}
		if !h.OpCode.IsControl() && int64(len(fragments))+h.Length > readLimit {
			// Refused on the header: nothing of the payload is read or held.
			c.fail(ws.StatusMessageTooBig, fmt.Sprintf("read limited at %d bytes", readLimit))
			return
		}
		p := make([]byte, h.Length) // at most readLimit, checked above or by CheckHeader
		if _, err := io.ReadFull(r, p); err != nil {
			return
		}
		ws.Cipher(p, h.Mask, 0)

		switch h.OpCode {
		case ws.OpPing:
			c.send(encodeFrame(ws.OpPong, p)) // through the writer: frames never interleave
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			c.peerClosed(p)
			return
		case ws.OpText, ws.OpBinary:
			typ = h.OpCode
		}
		if !h.Fin {
			fragments = append(fragments, p...)
			fragmented = true
			continue
		}
		if fragmented {
			p = append(fragments, p...)
			fragments, fragmented = nil, false
		}
		if typ == ws.OpText && !utf8.Valid(p) {
			c.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in a text message")
			return
		}
		s.handle(c, typ, p)
	}
}

// peerClosed answers the client's close frame with the same status and
// reason, after the frames already queued. A malformed one is answered with
// 1002, or 1007 for a reason that is not UTF-8.
func (c *conn) peerClosed(p []byte) {
	if len(p) == 1 {
		c.fail(ws.StatusProtocolError, "close frame payload of 1 byte")
		return
	}
	if len(p) >= 2 {
		err := ws.CheckCloseFrameData(ws.ParseCloseFrameDataUnsafe(p))
		if errors.Is(err, ws.ErrProtocolInvalidUTF8) {
			c.fail(ws.StatusInvalidFramePayloadData, err.Error())
			return
		}
		if err != nil {
			c.fail(ws.StatusProtocolError, err.Error())
			return
		}
	}
	c.end(encodeFrame(ws.OpClose, p), false)
}

// handle answers one client message.
func (s *server) handle(c *conn, typ ws.OpCode, data []byte) {
	if p, ok := bytes.CutPrefix(data, []byte("broadcast:")); ok {
		s.broadcast(p)
		return
	}
	switch action(data) {
	case "sendMessage", "publish":
		if p, ok := dataField(data); ok {
			s.broadcast(p)
			return
		}
	case "subscribe", "unsubscribe":
		return
	}
	c.send(encodeFrame(typ, data))
}

// action returns the value of "action" in a message that starts with
// {"action":"…", as the bench's messages do, or "".
func action(data []byte) string {
	rest, ok := bytes.CutPrefix(data, []byte(`{"action":"`))
	if !ok {
		return ""
	}
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// dataField returns the message's "data": a string's text, or another
// value's JSON, as the gateway's broadcast and publish deliver it.
func dataField(data []byte) ([]byte, bool) {
	var m struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(data, &m) != nil || len(m.Data) == 0 {
		return nil, false
	}
	if m.Data[0] == '"' {
		var s string
		if json.Unmarshal(m.Data, &s) != nil {
			return nil, false
		}
		return []byte(s), true
	}
	return m.Data, true
}

// broadcast encodes payload once and queues the frame on every connection.
func (s *server) broadcast(payload []byte) int {
	f := encodeFrame(messageType(payload), payload)
	n := 0
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.conns {
		if c.send(f) {
			n++
		}
	}
	return n
}

func messageType(p []byte) ws.OpCode {
	if utf8.Valid(p) {
		return ws.OpText
	}
	return ws.OpBinary
}

// encodeFrame returns one unmasked, final server frame carrying p. It is
// written by hand, not with ws.CompileFrame, to allocate once at the exact
// size: a broadcast frame is held by every connection's queue.
func encodeFrame(op ws.OpCode, p []byte) []byte {
	var h []byte
	first := 0x80 | byte(op) // FIN, and the opcode
	switch n := len(p); {
	case n < 126:
		h = []byte{first, byte(n)}
	case n <= 0xffff:
		h = binary.BigEndian.AppendUint16([]byte{first, 126}, uint16(n))
	default:
		h = binary.BigEndian.AppendUint64([]byte{first, 127}, uint64(n))
	}
	return append(append(make([]byte, 0, len(h)+len(p)), h...), p...)
}

// send queues a frame and never blocks; a connection with queueMax frames
// waiting is closed as too slow (1008).
func (c *conn) send(frame []byte) bool {
	c.mu.Lock()
	queued := false
	switch {
	case c.closed:
	case len(c.queue) >= c.queueMax:
		c.endLocked(closeFrame(ws.StatusPolicyViolation, "Slow consumer"), true)
	default:
		c.queue = append(c.queue, frame)
		queued = true
	}
	c.mu.Unlock()
	c.wakeWriter()
	return queued
}

// fail closes the connection for a broken rule: the close frame goes out
// at once, and the frames still queued are dropped.
func (c *conn) fail(code ws.StatusCode, reason string) {
	c.end(closeFrame(code, reason), true)
}

// end queues last (a close frame, or nil) as the connection's final frame
// and accepts no more; the writer writes what is queued, then closes the
// socket. drop discards the frames queued before last. A connection already
// ending is left as it is.
func (c *conn) end(last []byte, drop bool) {
	c.mu.Lock()
	c.endLocked(last, drop)
	c.mu.Unlock()
	c.wakeWriter()
}

func (c *conn) endLocked(last []byte, drop bool) {
	if c.closed {
		return
	}
	c.closed = true
	if drop {
		c.queue = nil
	}
	if last != nil {
		c.queue = append(c.queue, last)
	}
}

func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func closeFrame(code ws.StatusCode, reason string) []byte {
	return encodeFrame(ws.OpClose, ws.NewCloseFrameBody(code, reason))
}

// writeLoop is the only writer to the socket: it writes queued frames until
// the connection ends or a write fails, then closes the socket, which ends
// the reader too.
func (c *conn) writeLoop(batch bool) {
	defer c.raw.Close()
	var spare, scratch [][]byte
	for range c.wake {
		c.mu.Lock()
		pending, last := c.queue, c.closed
		c.queue = spare[:0] // the queue and spare swap arrays: no allocation in the steady state
		c.mu.Unlock()
		var err error
		if len(pending) > 0 {
			scratch, err = c.write(pending, scratch, batch)
		}
		clear(pending) // drop the frames: broadcasts share them with every connection
		spare = pending
		if err != nil {
			c.end(nil, true) // queue nothing more for a dead socket
			return
		}
		if last {
			return
		}
	}
}

// write writes frames to the socket: with one writev when batch, else one
// write each. scratch is reused across calls.
func (c *conn) write(frames, scratch [][]byte, batch bool) ([][]byte, error) {
	_ = c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
	if batch {
		scratch = append(scratch[:0], frames...)
		bufs := net.Buffers(scratch)
		_, err := bufs.WriteTo(c.raw)
		return scratch, err
	}
	for _, f := range frames {
		if _, err := c.raw.Write(f); err != nil {
			return scratch, err
		}
	}
	return scratch, nil
}

// closeAll closes every connection and waits for their handlers.
func (s *server) closeAll() {
	s.mu.RLock()
	for _, c := range s.conns {
		_ = c.raw.Close() // no close frame: the reader fails and the handler ends
	}
	s.mu.RUnlock()
	s.handlers.Wait()
}

func (s *server) postBroadcast(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"recipients": s.broadcast(body)})
}

// management serves the @connections subset the bench workloads use; path
// starts after the stage, with "@".
func (s *server) management(w http.ResponseWriter, r *http.Request, path string) {
	switch {
	case r.Method == http.MethodPost && (path == "@broadcast" || strings.HasPrefix(path, "@topics/")):
		s.postBroadcast(w, r)
	case r.Method == http.MethodGet && path == "@connections":
		s.list(w)
	case r.Method == http.MethodPost && path == "@connections":
		s.postMany(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "@connections/"):
		id := strings.TrimPrefix(path, "@connections/")
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		s.mu.RLock()
		c, ok := s.conns[id]
		s.mu.RUnlock()
		if !ok || !c.send(encodeFrame(messageType(body), body)) {
			writeJSON(w, http.StatusGone, struct{}{})
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.NotFound(w, r)
	}
}

// postMany sends one message to each listed connection, its frame encoded
// once.
func (s *server) postMany(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ConnectionIDs []string        `json:"connectionIds"`
		Data          json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4*maxBodyBytes)).Decode(&req); err != nil || len(req.Data) == 0 {
		http.Error(w, "want {\"connectionIds\":[...],\"data\":...}", http.StatusBadRequest)
		return
	}
	data := []byte(req.Data)
	var text string
	if json.Unmarshal(req.Data, &text) == nil {
		data = []byte(text)
	}
	frame := encodeFrame(messageType(data), data)
	gone := []string{}
	delivered := 0
	s.mu.RLock()
	for _, id := range req.ConnectionIDs {
		if c, ok := s.conns[id]; ok && c.send(frame) {
			delivered++
		} else {
			gone = append(gone, id)
		}
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"delivered": delivered, "gone": gone})
}

func (s *server) list(w http.ResponseWriter) {
	type identity struct {
		SourceIP  string `json:"sourceIp"`
		UserAgent string `json:"userAgent"`
	}
	type item struct {
		ConnectionID string   `json:"connectionId"`
		Identity     identity `json:"identity"`
	}
	s.mu.RLock()
	items := make([]item, 0, len(s.conns))
	for _, c := range s.conns {
		items = append(items, item{c.id, identity{c.sourceIP, c.userAgent}})
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
