package lambdahost

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The Lambda Runtime API, as served to one process.
const (
	apiPrefix = "/2018-06-01/runtime/"

	// maxPayload is the largest response or error body the Runtime API
	// accepts: 6 MiB and 100 bytes, as Lambda's.
	maxPayload = 6<<20 + 100

	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type" // header or trailer
	trailerErrorBody  = "Lambda-Runtime-Function-Error-Body" // trailer: base64 error JSON
)

var tooLarge = &FunctionError{
	Type:    "RequestEntityTooLarge",
	Message: "Exceeded maximum allowed payload size (" + strconv.Itoa(maxPayload) + " bytes).",
}

// apiServer serves the Runtime API to one process on its own listener. It
// is a small HTTP/1.1 server of its own rather than net/http's: a warm
// invocation is a GET /next answered and a POST answered, and net/http's
// per-request machinery (a goroutine that watches the connection while
// each handler runs, per-request contexts and deadlines) added goroutine
// handoffs and thread wake-ups to both: with an aws-lambda-go client, a
// quarter of the exchange's time. Requests are parsed by net/http's parser
// (http.ReadRequest), so that what a runtime may send (chunked bodies,
// trailers, Expect: 100-continue, pipelining) is read as net/http reads it.
// The connection is watched only while a GET /next waits for work.
//
// Each connection is served by one goroutine, which reads a request,
// answers it and reads the next. Routes:
//
//	GET  /2018-06-01/runtime/invocation/next           long poll for the next event
//	POST /2018-06-01/runtime/invocation/{id}/response  the function's result
//	POST /2018-06-01/runtime/invocation/{id}/error     the function's failure
//	POST /2018-06-01/runtime/init/error                a failure before the first event
type apiServer struct {
	p  *process
	ln net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open, each served by a goroutine counted in wg
	closed bool                  // close has begun: no new connection is served
	wg     sync.WaitGroup        // connection goroutines
}

const (
	// maxHeaderBytes bounds a request's line and headers, as net/http's
	// default (1 MiB) does, with room for the reader's look-ahead.
	maxHeaderBytes = 1<<20 + 4096

	// maxDiscard is how much of a request body left unread is read and
	// dropped to keep the connection; with more left, it is closed.
	maxDiscard = 256 << 10

	// lingerTime is how long a connection closed with a request body
	// still arriving goes on reading it, so that the process reads the
	// answer before the reset that closing with unread data sends.
	lingerTime = 500 * time.Millisecond
)

// serve accepts connections until close. The caller counts it in p.f.wg.
func (s *apiServer) serve() {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.p.f.log.Debug("runtime API accept failed", "function", s.p.f.opts.Name, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// close stops accepting and waits for the connections to end, which they
// do once the process has exited and they have read what it sent; after
// grace, the rest are closed. The process has been reaped.
func (s *apiServer) close(grace time.Duration) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	_ = s.ln.Close()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	// A child of the process holds its end open.
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	<-done
}

// apiConn is one connection to the Runtime API.
type apiConn struct {
	p  *process
	c  net.Conn
	lr io.LimitedReader // c, bounded while a request's header is read
	br *bufio.Reader    // reads lr

	// Of the request being answered:
	expect    bool // it asked for 100 Continue before sending its body
	continued bool // 100 Continue was sent
	closing   bool // the connection closes after the response

	head []byte // the response's status line and header, reused
}

func (s *apiServer) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	ac := &apiConn{p: s.p, c: c, lr: io.LimitedReader{R: c}}
	ac.br = bufio.NewReader(&ac.lr)
	for {
		ac.lr.N = maxHeaderBytes
		req, err := http.ReadRequest(ac.br)
		if err != nil {
			ac.refuse(err)
			return
		}
		ac.lr.N = math.MaxInt64
		ac.expect = req.ProtoAtLeast(1, 1) && strings.EqualFold(req.Header.Get("Expect"), "100-continue")
		ac.continued = false
		ac.closing = req.Close
		ac.route(req)
		if !ac.finish(req) {
			return
		}
	}
}

// refuse answers a request that could not be read, unless the connection
// just ended.
func (ac *apiConn) refuse(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		return
	}
	ac.closing = true
	if ac.lr.N <= 0 {
		ac.replyError(http.StatusRequestHeaderFieldsTooLarge, "RequestHeaderFieldsTooLarge", "request header too large")
		return
	}
	ac.replyError(http.StatusBadRequest, "InvalidRequest", "malformed request: "+err.Error())
}

// finish reads what is left of req's body, so that the connection can
// take the next request, and reports whether it can.
func (ac *apiConn) finish(req *http.Request) bool {
	if ac.expect && !ac.continued {
		return false // the client waits to send a body no one read
	}
	n, err := io.CopyN(io.Discard, req.Body, maxDiscard+1)
	if err == io.EOF && n <= maxDiscard {
		return !ac.closing
	}
	// More left, or a body that cannot be read: the connection closes,
	// after reading a while, so that the response is not lost to the
	// reset that closing a socket with unread data sends.
	if tc, ok := ac.c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = ac.c.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, ac.c)
	return false
}

// body returns req's body, first telling a client that waits for it
// (Expect: 100-continue) to send it.
func (ac *apiConn) body(req *http.Request) io.Reader {
	if ac.expect && !ac.continued {
		ac.continued = true
		_, _ = io.WriteString(ac.c, "HTTP/1.1 100 Continue\r\n\r\n")
	}
	return req.Body
}

// route serves one request.
func (ac *apiConn) route(req *http.Request) {
	path := req.URL.Path
	rest, ok := strings.CutPrefix(path, apiPrefix)
	if !ok {
		ac.replyError(http.StatusNotFound, "NotFound", "unknown path "+path)
		return
	}
	var route, id string
	switch {
	case rest == "invocation/next":
		route = "next"
	case rest == "init/error":
		route = "init/error"
	case strings.HasPrefix(rest, "invocation/"):
		id, route, _ = strings.Cut(strings.TrimPrefix(rest, "invocation/"), "/")
		if route != "response" && route != "error" || id == "" {
			ac.replyError(http.StatusNotFound, "NotFound", "unknown path "+path)
			return
		}
	default:
		ac.replyError(http.StatusNotFound, "NotFound", "unknown path "+path)
		return
	}
	want := http.MethodPost
	if route == "next" {
		want = http.MethodGet
	}
	if req.Method != want {
		ac.reply(http.StatusMethodNotAllowed, apiError("MethodNotAllowed", req.Method+" not allowed on "+path), "Allow", want)
		return
	}
	switch route {
	case "next":
		ac.serveNext()
	case "response", "error":
		ac.serveResult(req, id, route == "error")
	case "init/error":
		ac.serveInitError(req)
	}
}

// serveNext waits for an invocation and hands it to the process. A
// process that asked for work before there was any is frozen until there
// is, and thawed once its event is in its socket (unless the event is
// larger than frozenWriteMax), so that it wakes once, to read it. While it
// waits, the connection is watched: a runtime that hangs up leaves the
// next event to its next request.
func (ac *apiConn) serveNext() {
	p := ac.p
	p.markReady()
	frozen := false
	var hangup <-chan struct{}
	var unwatch func()
	defer func() {
		if frozen {
			p.thaw()
		}
		if unwatch != nil {
			unwatch()
		}
	}()
	for {
		var inv *invocation
		select {
		case inv = <-p.next:
		default:
			// Nothing to do: the process is frozen until there is, so that
			// work a handler left pending (timers, sockets) waits for the
			// next invocation, as on AWS.
			if !frozen {
				freezeProcess(p.cmd.Process)
				frozen = true
			}
			if hangup == nil {
				hangup, unwatch = ac.watch()
			}
			p.waiting.Add(1)
			select {
			case inv = <-p.next:
			case <-hangup:
				ac.closing = true
			case <-p.exited:
				frozen = false // reaped: its PID may belong to another process now
				ac.closing = true
			}
			p.waiting.Add(-1)
			if inv == nil {
				return
			}
		}
		if !inv.deliver() {
			continue // its caller gave up
		}
		if frozen && len(inv.event) > frozenWriteMax {
			p.thaw()
			frozen = false
		}
		p.mu.Lock()
		p.inflight[inv.id] = inv
		p.mu.Unlock()
		// If the process is gone, its invocation fails with ErrCrashed.
		ac.reply(http.StatusOK, inv.event,
			headerRequestID, inv.id,
			headerDeadline, strconv.FormatInt(inv.deadlineAt().UnixMilli(), 10),
			headerFunctionARN, p.f.arn,
			headerTraceID, inv.trace)
		return
	}
}

// frozenWriteMax is the largest event written to a frozen process before
// it is thawed. A frozen process reads nothing: a larger event could fill
// its socket's buffers (loopback TCP's receive buffer is 128 KiB by default)
// and block the write for good.
const frozenWriteMax = 32 << 10

// thaw resumes the process frozen by serveNext, unless it has been reaped.
func (p *process) thaw() {
	select {
	case <-p.exited:
	default:
		thawProcess(p.cmd.Process)
	}
}

// watch reads the connection in the background while the goroutine that
// serves it waits, as nothing else reads it then, and reports on hangup
// that the runtime closed it. unwatch stops the read and waits for it,
// before the connection is read again.
func (ac *apiConn) watch() (hangup <-chan struct{}, unwatch func()) {
	closed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := ac.br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			close(closed)
		}
	}()
	return closed, func() {
		_ = ac.c.SetReadDeadline(aLongTimeAgo)
		<-done
		_ = ac.c.SetReadDeadline(time.Time{})
	}
}

// aLongTimeAgo is a deadline that has passed: it ends a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// serveResult completes invocation id with a response or an error body.
func (ac *apiConn) serveResult(req *http.Request, id string, isError bool) {
	p := ac.p
	p.mu.Lock()
	inv := p.inflight[id]
	p.mu.Unlock()
	if inv == nil {
		ac.replyError(http.StatusBadRequest, "InvalidRequestID", "unknown invocation id "+strconv.Quote(id))
		return
	}
	body, err := io.ReadAll(io.LimitReader(ac.body(req), maxPayload+1))
	switch {
	case err != nil:
		ac.closing = true
		ac.replyError(http.StatusBadRequest, "InvalidRequest", "reading body: "+err.Error())
		return
	case len(body) > maxPayload:
		p.complete(inv, nil, tooLarge)
		ac.closing = true
		ac.replyError(http.StatusRequestEntityTooLarge, tooLarge.Type, tooLarge.Message)
		return
	}
	var out []byte
	var ferr error
	switch {
	case isError:
		ferr = parseFunctionError(body, req.Header.Get(headerErrorType))
	case req.Trailer.Get(headerErrorType) != "":
		// A response that failed while being sent: the error is in the trailers.
		eb, _ := base64.StdEncoding.DecodeString(req.Trailer.Get(trailerErrorBody))
		ferr = parseFunctionError(eb, req.Trailer.Get(headerErrorType))
	default:
		out = body
	}
	if !p.complete(inv, out, ferr) {
		ac.replyError(http.StatusBadRequest, "InvalidRequestID", "invocation "+strconv.Quote(id)+" already answered")
		return
	}
	ac.reply(http.StatusAccepted, statusOK)
}

// complete removes inv from the invocations in flight and records its
// answer, reporting false if another request answered it first.
func (p *process) complete(inv *invocation, out []byte, err error) bool {
	p.mu.Lock()
	current := p.inflight[inv.id] == inv
	delete(p.inflight, inv.id)
	p.mu.Unlock()
	return current && inv.complete(out, err)
}

// serveInitError records the runtime's start-up failure; the process is
// then killed and never given work.
func (ac *apiConn) serveInitError(req *http.Request) {
	p := ac.p
	body, err := io.ReadAll(io.LimitReader(ac.body(req), maxPayload))
	if err != nil {
		body = nil // report the failure all the same
	}
	fe := parseFunctionError(body, req.Header.Get(headerErrorType))
	p.mu.Lock()
	p.initErr = fmt.Errorf("%w: %w", ErrInit, fe)
	p.mu.Unlock()
	p.doomed.Store(true)
	p.f.log.Warn("function "+p.f.opts.Name+" failed to initialise; killing its process",
		"function", p.f.opts.Name, "process", p.id, "pid", p.pid(), "error_type", fe.Type, "error", fe.Message)
	ac.closing = true
	ac.reply(http.StatusAccepted, statusOK)
	p.kill()
}

// parseFunctionError reads a Runtime API error body: {"errorMessage",
// "errorType", "stackTrace"}. A body that is not such JSON becomes the
// message, and typeHint (the error type header) the type.
func parseFunctionError(body []byte, typeHint string) *FunctionError {
	var e struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		const max = 1 << 10
		msg := string(body)
		if len(msg) > max {
			msg = msg[:max] + "..."
		}
		e.Message, e.Type = msg, ""
	}
	if e.Type == "" {
		e.Type = typeHint
	}
	if e.Type == "" {
		e.Type = "Unknown"
	}
	return &FunctionError{Type: e.Type, Message: e.Message}
}

// statusOK is the body of an accepted answer.
var statusOK = []byte(`{"status":"OK"}`)

// apiError is the Runtime API's error body.
func apiError(errorType, message string) []byte {
	b, _ := json.Marshal(map[string]string{"errorType": errorType, "errorMessage": message}) // maps of strings always marshal
	return b
}

// replyError answers with the Runtime API's error shape.
func (ac *apiConn) replyError(status int, errorType, message string) {
	ac.reply(status, apiError(errorType, message))
}

// reply writes a response with a JSON body in one write, header pairs
// (name, value...) added to Content-Type, Content-Length and Date. An
// error is not reported: the process is gone or going, and its
// invocation fails as such.
func (ac *apiConn) reply(status int, body []byte, header ...string) {
	b := ac.head[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: application/json\r\n"...)
	for i := 0; i+1 < len(header); i += 2 {
		b = append(b, header[i]...)
		b = append(b, ": "...)
		b = append(b, header[i+1]...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if ac.closing {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	ac.head = b
	if len(body) <= 4<<10 {
		_, _ = ac.c.Write(append(b, body...))
		return
	}
	bufs := net.Buffers{b, body}
	_, _ = bufs.WriteTo(ac.c)
}
