// Command ceiling is the benchmark suite's upper bound: a WebSocket server on
// the gateway's library, github.com/coder/websocket, with nothing else: no
// routes, no registry, no integrations, no metrics, no per-message
// contexts. The suite reports every gateway figure as a ratio to this
// server's, measured in the same run.
//
// The library accepts the upgrade, reads messages and answers control
// frames; data frames are encoded by the server once and written by a
// writer goroutine per connection that drains every queued frame with one
// writev (or, with --batch=false, one write per frame). A broadcast encodes
// its frame once and queues the same bytes on every connection.
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

	"github.com/coder/websocket"
)

const (
	readLimit       = 1 << 20
	maxBodyBytes    = 1 << 20
	writeTimeout    = 10 * time.Second
	controlBufBytes = 256 // the library writes only control frames (at most 127 bytes) through its buffer
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
	ws                      *websocket.Conn
	raw                     net.Conn    // the TCP connection under ws
	wmu                     *sync.Mutex // held for every write to raw: ours, and the library's control frames
	queueMax                int

	mu     sync.Mutex // guards queue and closed
	queue  [][]byte
	closed bool

	wake chan struct{} // capacity 1: the writer has work
	done chan struct{} // closed when the reader ends
}

// hijackCapture keeps the raw connection when the library hijacks it, and
// gives the library a connection whose writes take wmu, so that its control
// frames never land inside a batch written by the connection's writer.
type hijackCapture struct {
	http.ResponseWriter
	wmu *sync.Mutex
	raw net.Conn
}

func (h *hijackCapture) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.raw = raw
	g := &guardedConn{Conn: raw, mu: h.wmu}
	return g, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(g, controlBufBytes)), nil
}

type guardedConn struct {
	net.Conn
	mu *sync.Mutex
}

func (g *guardedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.Conn.Write(p)
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	hc := &hijackCapture{ResponseWriter: w, wmu: new(sync.Mutex)}
	ws, err := websocket.Accept(hc, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept answered the request
	}
	ws.SetReadLimit(readLimit)
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	c := &conn{
		id:        strconv.FormatUint(s.nextID.Add(1), 36),
		userAgent: r.UserAgent(),
		sourceIP:  host,
		ws:        ws,
		raw:       hc.raw,
		wmu:       hc.wmu,
		queueMax:  s.queueMax,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
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
	for {
		typ, data, err := ws.Read(context.Background())
		if err != nil {
			break
		}
		s.handle(c, typ, data)
	}
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	<-writerDone
	_ = ws.CloseNow()
}

// handle answers one client message.
func (s *server) handle(c *conn, typ websocket.MessageType, data []byte) {
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

func messageType(p []byte) websocket.MessageType {
	if utf8.Valid(p) {
		return websocket.MessageText
	}
	return websocket.MessageBinary
}

// encodeFrame returns one unmasked, final server frame carrying p.
func encodeFrame(typ websocket.MessageType, p []byte) []byte {
	var h []byte
	first := 0x80 | byte(typ) // FIN, and the opcode: 1 text, 2 binary
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
// waiting is closed as too slow.
func (c *conn) send(frame []byte) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.queueMax {
		c.closed = true
		c.mu.Unlock()
		go func() { _ = c.ws.Close(websocket.StatusPolicyViolation, "Slow consumer") }()
		return false
	}
	c.queue = append(c.queue, frame)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// writeLoop writes queued frames until the reader ends or a write fails.
func (c *conn) writeLoop(batch bool) {
	var spare, scratch [][]byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			continue
		}
		pending := c.queue // the queue and spare swap arrays: no allocation in the steady state
		c.queue = spare[:0]
		c.mu.Unlock()
		var err error
		scratch, err = c.write(pending, scratch, batch)
		clear(pending) // drop the frames: broadcasts share them with every connection
		spare = pending
		if err != nil {
			_ = c.ws.CloseNow()
			return
		}
	}
}

// write writes frames to the raw connection: with one writev when batch,
// else one write each. scratch is reused across calls.
func (c *conn) write(frames, scratch [][]byte, batch bool) ([][]byte, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
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
		_ = c.ws.CloseNow()
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
