package lambdahost

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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

// ServeHTTP serves the Runtime API to p's process:
//
//	GET  /2018-06-01/runtime/invocation/next           long poll for the next event
//	POST /2018-06-01/runtime/invocation/{id}/response  the function's result
//	POST /2018-06-01/runtime/invocation/{id}/error     the function's failure
//	POST /2018-06-01/runtime/init/error                a failure before the first event
func (p *process) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, apiPrefix)
	if !ok {
		writeAPIError(w, http.StatusNotFound, "NotFound", "unknown path "+r.URL.Path)
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
			writeAPIError(w, http.StatusNotFound, "NotFound", "unknown path "+r.URL.Path)
			return
		}
	default:
		writeAPIError(w, http.StatusNotFound, "NotFound", "unknown path "+r.URL.Path)
		return
	}
	want := http.MethodPost
	if route == "next" {
		want = http.MethodGet
	}
	if r.Method != want {
		w.Header().Set("Allow", want)
		writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" not allowed on "+r.URL.Path)
		return
	}
	switch route {
	case "next":
		p.serveNext(w, r)
	case "response", "error":
		p.serveResult(w, r, id, route == "error")
	case "init/error":
		p.serveInitError(w, r)
	}
}

// serveNext waits for an invocation and hands it to the process. A
// process that asked for work before there was any is frozen until there
// is, and thawed once its event is in its socket (unless the event is
// larger than frozenWriteMax), so that it wakes once, to read it.
func (p *process) serveNext(w http.ResponseWriter, r *http.Request) {
	p.markReady()
	frozen := false
	defer func() {
		if frozen {
			p.thaw()
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
			select {
			case inv = <-p.next:
			case <-r.Context().Done():
				return
			case <-p.exited:
				frozen = false // reaped: its PID may belong to another process now
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
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set(headerRequestID, inv.id)
		h.Set(headerDeadline, strconv.FormatInt(inv.deadlineAt().UnixMilli(), 10))
		h.Set(headerFunctionARN, p.f.arn)
		h.Set(headerTraceID, inv.trace)
		h.Set("Content-Length", strconv.Itoa(len(inv.event)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.event) // if the process is gone, its invocation fails with ErrCrashed
		flush(w)
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

// serveResult completes invocation id with a response or an error body.
// The function is told its answer was taken before the invocation's caller
// is woken, so that its next request for work is on its way while the
// answer goes back.
func (p *process) serveResult(w http.ResponseWriter, r *http.Request, id string, isError bool) {
	p.mu.Lock()
	inv := p.inflight[id]
	p.mu.Unlock()
	if inv == nil {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequestID", "unknown invocation id "+strconv.Quote(id))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		answered := p.answer(inv, nil, tooLarge)
		writeAPIError(w, http.StatusRequestEntityTooLarge, tooLarge.Type, tooLarge.Message)
		if answered {
			flush(w)
			inv.settle()
		}
		return
	case err != nil:
		writeAPIError(w, http.StatusBadRequest, "InvalidRequest", "reading body: "+err.Error())
		return
	}
	var out []byte
	var ferr error
	switch {
	case isError:
		ferr = parseFunctionError(body, r.Header.Get(headerErrorType))
	case r.Trailer.Get(headerErrorType) != "":
		// A response that failed while being sent: the error is in the trailers.
		eb, _ := base64.StdEncoding.DecodeString(r.Trailer.Get(trailerErrorBody))
		ferr = parseFunctionError(eb, r.Trailer.Get(headerErrorType))
	default:
		out = body
	}
	if !p.answer(inv, out, ferr) {
		writeAPIError(w, http.StatusBadRequest, "InvalidRequestID", "invocation "+strconv.Quote(id)+" already answered")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
	flush(w)
	inv.settle()
}

// answer removes inv from the invocations in flight and records its
// answer, reporting false if another request answered it first. The
// caller settles inv once it has acknowledged the answer.
func (p *process) answer(inv *invocation, out []byte, err error) bool {
	p.mu.Lock()
	current := p.inflight[inv.id] == inv
	delete(p.inflight, inv.id)
	p.mu.Unlock()
	return current && inv.answer(out, err)
}

// serveInitError records the runtime's start-up failure; the process is
// then killed and never given work.
func (p *process) serveInitError(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		body = nil // report the failure all the same
	}
	fe := parseFunctionError(body, r.Header.Get(headerErrorType))
	p.mu.Lock()
	p.initErr = fmt.Errorf("%w: %w", ErrInit, fe)
	p.mu.Unlock()
	p.doomed.Store(true)
	p.f.log.Warn("function "+p.f.opts.Name+" failed to initialise; killing its process",
		"function", p.f.opts.Name, "process", p.id, "pid", p.pid(), "error_type", fe.Type, "error", fe.Message)
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "OK"})
	flush(w)
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

// writeAPIError writes the Runtime API's error shape.
func writeAPIError(w http.ResponseWriter, status int, errorType, message string) {
	writeJSON(w, status, map[string]string{"errorType": errorType, "errorMessage": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // maps of strings always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b))) // whole once flushed, even if the process is then killed
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// flush sends what w holds to the process now.
func flush(w http.ResponseWriter) {
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
}
