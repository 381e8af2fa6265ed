package lambdahost_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The tests here play the runtime themselves, over HTTP: the hosted process
// only announces its Runtime API address and sleeps.

// newShellHost hosts a process that prints its AWS_LAMBDA_RUNTIME_API and
// waits; the test is its runtime.
func newShellHost(t *testing.T) *host {
	t.Helper()
	return newHost(t, lambdahost.Options{
		Name:     "shell",
		Command:  []string{"sh", "-c", `echo "api=$AWS_LAMBDA_RUNTIME_API"; exec sleep 60`},
		MaxProcs: 1,
		Timeout:  20 * time.Second,
		// The process never asks for work: the tests play its runtime, so
		// the start-up limit must outlast them.
		InitTimeout: time.Minute,
	})
}

var announceRE = regexp.MustCompile(`\[shell\] api=(127\.0\.0\.1:\d+)\n`)

// runtimeAPI waits for the shell process to announce its Runtime API and
// returns the API's base URL.
func (h *host) runtimeAPI(t *testing.T) string {
	t.Helper()
	var m []string
	testutil.Eventually(t, 10*time.Second, func() bool {
		m = announceRE.FindStringSubmatch(h.out.String())
		return m != nil
	}, "the process announces its Runtime API; output:\n%s", h.out)
	return "http://" + m[1] + "/2018-06-01/runtime"
}

// shellRuntime starts one invocation of event on a new shell host, so that
// its process starts, and returns the Runtime API's base URL and the
// invocation's outcome.
func shellRuntime(t *testing.T, event string) (string, <-chan result) {
	t.Helper()
	h := newShellHost(t)
	res := h.invokeAsync(t, event)
	return h.runtimeAPI(t), res
}

type result struct {
	out string
	err error
}

func (h *host) invokeAsync(t *testing.T, event string) <-chan result {
	res := make(chan result, 1)
	go func() {
		out, err := h.invoke(t, event)
		res <- result{out, err}
	}()
	return res
}

func wait(t *testing.T, res <-chan result) result {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the invocation did not return")
		return result{}
	}
}

// call makes one Runtime API request and returns the status and body.
func call(t *testing.T, method, url, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestRuntimeAPINext(t *testing.T) {
	t.Parallel()
	event := `{"action":"sendMessage","data":"Hello World!"}`
	start := time.Now()
	api, res := shellRuntime(t, event)
	status, h, body := call(t, http.MethodGet, api+"/invocation/next", "", nil)
	if status != http.StatusOK || body != event {
		t.Fatalf("GET /next = %d %s, want 200 and the event", status, body)
	}
	id := h.Get("Lambda-Runtime-Aws-Request-Id")
	if !uuidRE.MatchString(id) {
		t.Errorf("Lambda-Runtime-Aws-Request-Id = %q, want a UUID", id)
	}
	ms, err := strconv.ParseInt(h.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
	if d := time.UnixMilli(ms); err != nil || d.Before(start) || d.After(start.Add(21*time.Second)) {
		t.Errorf("Lambda-Runtime-Deadline-Ms = %q, want epoch ms about 20s after %v", h.Get("Lambda-Runtime-Deadline-Ms"), start)
	}
	if got, want := h.Get("Lambda-Runtime-Invoked-Function-Arn"), "arn:aws:lambda:us-east-1:000000000000:function:shell"; got != want {
		t.Errorf("Lambda-Runtime-Invoked-Function-Arn = %q, want %q", got, want)
	}
	if got := h.Get("Lambda-Runtime-Trace-Id"); !strings.HasPrefix(got, "Root=1-") {
		t.Errorf("Lambda-Runtime-Trace-Id = %q, want Root=1-...", got)
	}

	status, _, body = call(t, http.MethodPost, api+"/invocation/"+id+"/response", `{"ok":true}`, nil)
	if status != http.StatusAccepted || body != `{"status":"OK"}` {
		t.Errorf("POST /response = %d %s, want 202 {\"status\":\"OK\"}", status, body)
	}
	if r := wait(t, res); r.err != nil || r.out != `{"ok":true}` {
		t.Errorf("InvokeRaw = %s, %v; want the posted response", r.out, r.err)
	}
	// Answered once; a second answer is refused.
	status, _, _ = call(t, http.MethodPost, api+"/invocation/"+id+"/response", `{}`, nil)
	if status != http.StatusBadRequest {
		t.Errorf("second POST /response = %d, want 400", status)
	}
}

func TestRuntimeAPIAnswers(t *testing.T) {
	t.Parallel()
	lambdaErr, _ := json.Marshal(messages.InvokeResponse_Error{Message: "it broke", Type: "customError"})
	tests := []struct {
		name       string
		route      string // appended to /invocation/{id}
		unknownID  bool   // use an id the host never issued
		body       string
		header     http.Header
		wantStatus int
		wantBody   string // exact, when set
		wantOut    string
		wantErr    *lambdahost.FunctionError // nil: no error, unless unanswered
		unanswered bool                      // the invocation stays open (and is closed with the host)
	}{
		{
			name: "response", route: "/response", body: `"hello"`,
			wantStatus: http.StatusAccepted, wantBody: `{"status":"OK"}`, wantOut: `"hello"`,
		},
		{
			name: "error", route: "/error", body: string(lambdaErr),
			wantStatus: http.StatusAccepted, wantBody: `{"status":"OK"}`,
			wantErr: &lambdahost.FunctionError{Type: "customError", Message: "it broke"},
		},
		{
			name: "error that is not JSON", route: "/error", body: "plain failure",
			header:     http.Header{"Lambda-Runtime-Function-Error-Type": {"Runtime.Weird"}},
			wantStatus: http.StatusAccepted,
			wantErr:    &lambdahost.FunctionError{Type: "Runtime.Weird", Message: "plain failure"},
		},
		{
			name: "oversize response", route: "/response", body: `"` + strings.Repeat("x", 6<<20+100) + `"`,
			wantStatus: http.StatusRequestEntityTooLarge,
			wantBody:   `{"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"}`,
			wantErr:    &lambdahost.FunctionError{Type: "RequestEntityTooLarge", Message: "Exceeded maximum allowed payload size (6291556 bytes)."},
		},
		{
			name: "unknown id response", route: "/response", unknownID: true, body: `{}`,
			wantStatus: http.StatusBadRequest, unanswered: true,
		},
		{
			name: "unknown id error", route: "/error", unknownID: true, body: string(lambdaErr),
			wantStatus: http.StatusBadRequest, unanswered: true,
		},
		{
			name: "unknown action", route: "/finish", body: `{}`,
			wantStatus: http.StatusNotFound, unanswered: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api, res := shellRuntime(t, `{}`)
			status, h, _ := call(t, http.MethodGet, api+"/invocation/next", "", nil)
			if status != http.StatusOK {
				t.Fatalf("GET /next = %d, want 200", status)
			}
			id := h.Get("Lambda-Runtime-Aws-Request-Id")
			if tt.unknownID {
				id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
			}
			status, rh, body := call(t, http.MethodPost, api+"/invocation/"+id+tt.route, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Errorf("POST %s = %d %s, want %d", tt.route, status, body, tt.wantStatus)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("POST %s body = %s, want %s", tt.route, body, tt.wantBody)
			}
			if ct := rh.Get("Content-Type"); ct != "application/json" {
				t.Errorf("POST %s Content-Type = %q, want application/json", tt.route, ct)
			}
			if status >= 400 {
				var e struct{ ErrorType, ErrorMessage string }
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.ErrorType == "" || e.ErrorMessage == "" {
					t.Errorf("POST %s error body = %s, want {\"errorType\",\"errorMessage\"}", tt.route, body)
				}
			}
			if tt.unanswered {
				select {
				case r := <-res:
					t.Errorf("InvokeRaw returned %s, %v after a refused answer; want it still waiting", r.out, r.err)
				case <-time.After(100 * time.Millisecond):
				}
				return
			}
			r := wait(t, res)
			var fe *lambdahost.FunctionError
			switch {
			case tt.wantErr == nil && (r.err != nil || r.out != tt.wantOut):
				t.Errorf("InvokeRaw = %s, %v; want %s", r.out, r.err, tt.wantOut)
			case tt.wantErr != nil && (!errors.As(r.err, &fe) || *fe != *tt.wantErr):
				t.Errorf("InvokeRaw: err = %v, want %v", r.err, tt.wantErr)
			}
		})
	}
}

func TestRuntimeAPIBadRequests(t *testing.T) {
	t.Parallel()
	api, _ := shellRuntime(t, `{}`)
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"next with POST", http.MethodPost, "/invocation/next", http.StatusMethodNotAllowed},
		{"response with GET", http.MethodGet, "/invocation/x/response", http.StatusMethodNotAllowed},
		{"unknown path", http.MethodGet, "/invocation", http.StatusNotFound},
		{"empty id", http.MethodPost, "/invocation//response", http.StatusNotFound},
		{"restore API", http.MethodGet, "/restore/next", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := call(t, tt.method, api+tt.path, "", nil)
			if status != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, status, body, tt.want)
			}
		})
	}
}

func TestRuntimeAPIInitError(t *testing.T) {
	t.Parallel()
	api, res := shellRuntime(t, `{}`)
	body, _ := json.Marshal(messages.InvokeResponse_Error{Message: "cannot read config", Type: "Runtime.ConfigError"})
	status, _, reply := call(t, http.MethodPost, api+"/init/error", string(body), nil)
	if status != http.StatusAccepted || reply != `{"status":"OK"}` {
		t.Errorf("POST /init/error = %d %s, want 202 {\"status\":\"OK\"}", status, reply)
	}
	r := wait(t, res)
	var fe *lambdahost.FunctionError
	if !errors.Is(r.err, lambdahost.ErrInit) || !errors.As(r.err, &fe) || fe.Type != "Runtime.ConfigError" || fe.Message != "cannot read config" {
		t.Errorf("InvokeRaw: err = %v, want ErrInit with the Runtime.ConfigError", r.err)
	}
}

func TestProcessExitsBeforeAskingForWork(t *testing.T) {
	t.Parallel()
	h := newHost(t, lambdahost.Options{Name: "quitter", Command: []string{"sh", "-c", "echo giving up; exit 2"}})
	_, err := h.invoke(t, `{}`)
	if !errors.Is(err, lambdahost.ErrInit) || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("InvokeRaw: err = %v, want ErrInit with exit status 2", err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(h.out.String(), "[quitter] giving up\n") },
		"the output is kept; output:\n%s", h.out)
}

func TestProcessNeverAsksForWork(t *testing.T) {
	t.Parallel()
	h := newHost(t, lambdahost.Options{Name: "sleeper", Command: []string{"sleep", "60"}, MaxProcs: 1, Timeout: time.Second})
	// The caller gives up first; the process may yet start.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := h.InvokeRaw(ctx, []byte(`{}`)); !errors.Is(err, lambdahost.ErrTimeout) {
		t.Errorf("InvokeRaw(300ms): err = %v, want ErrTimeout", err)
	}
	// The next invocation waits for the same process, until its start-up
	// limit (Timeout) kills it.
	if _, err := h.invoke(t, `{}`); !errors.Is(err, lambdahost.ErrInit) {
		t.Errorf("InvokeRaw: err = %v, want ErrInit", err)
	}
	if log := h.log.String(); !strings.Contains(log, "did not start in time") || strings.Count(log, "cold start") != 1 {
		t.Errorf("want one cold start, then the stuck start killed; log:\n%s", log)
	}
}

func TestOutputLines(t *testing.T) {
	t.Parallel()
	// A partial last line, an empty line, and output from a process that exits.
	h := newHost(t, lambdahost.Options{Name: "lines", Command: []string{"sh", "-c", `printf 'one\n\ntwo\nthree'; exit 1`}})
	_, _ = h.invoke(t, `{}`)
	want := "[lines] one\n[lines] \n[lines] two\n[lines] three\n"
	testutil.Eventually(t, 5*time.Second, func() bool { return h.out.String() == want },
		"output = %q, want %q", h.out, want)
}

func TestRuntimeAPIWithdrawnInvocation(t *testing.T) {
	t.Parallel()
	h := newShellHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := h.InvokeRaw(ctx, []byte(`"first"`))
		first <- err
	}()
	api := h.runtimeAPI(t)
	cancel() // before the process asked for work
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled InvokeRaw: err = %v, want context.Canceled", err)
	}
	res := h.invokeAsync(t, `"second"`)
	status, hdr, body := call(t, http.MethodGet, api+"/invocation/next", "", nil)
	if status != http.StatusOK || body != `"second"` {
		t.Fatalf("GET /next = %d %s, want 200 \"second\" (the withdrawn event is never delivered)", status, body)
	}
	id := hdr.Get("Lambda-Runtime-Aws-Request-Id")
	if status, _, _ := call(t, http.MethodPost, api+"/invocation/"+id+"/response", `"done"`, nil); status != http.StatusAccepted {
		t.Errorf("POST /response = %d, want 202", status)
	}
	if r := wait(t, res); r.err != nil || r.out != `"done"` {
		t.Errorf("InvokeRaw = %s, %v; want \"done\"", r.out, r.err)
	}
}

// rawConn is one connection to a Runtime API, written to as a runtime's own
// HTTP client would.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialAPI(t *testing.T, api string) *rawConn {
	t.Helper()
	u, err := url.Parse(api)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// response reads one response and its body.
func (c *rawConn) response(t *testing.T) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a response body: %v", err)
	}
	return resp, string(b)
}

// One connection carries a runtime's requests one after the other; a
// client that waits for 100 Continue before sending its body gets it; an
// answer in chunks with the error in its trailers, as aws-lambda-go sends
// a response that failed while being written, is the function's error.
func TestRuntimeAPIOneConnection(t *testing.T) {
	t.Parallel()
	h := newShellHost(t)
	first := h.invokeAsync(t, `"first"`)
	c := dialAPI(t, h.runtimeAPI(t))
	next := func() string {
		t.Helper()
		c.send(t, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
		resp, _ := c.response(t)
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if resp.StatusCode != http.StatusOK || id == "" {
			t.Fatalf("GET /next = %d, request id %q", resp.StatusCode, id)
		}
		return id
	}

	id := next()
	body := `{"answer":1}`
	c.send(t, fmt.Sprintf("POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: api\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", id, len(body)))
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("after Expect: 100-continue, read %q, %v; want the 100 Continue", line, err)
	}
	if blank, _ := c.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after 100 Continue, read %q, want its blank line", blank)
	}
	c.send(t, body)
	if resp, got := c.response(t); resp.StatusCode != http.StatusAccepted || got != `{"status":"OK"}` {
		t.Errorf("POST /response = %d %s, want 202", resp.StatusCode, got)
	}
	if r := wait(t, first); r.err != nil || r.out != body {
		t.Errorf("first InvokeRaw = %s, %v; want %s", r.out, r.err, body)
	}

	second := h.invokeAsync(t, `"second"`)
	id = next()
	errBody := base64.StdEncoding.EncodeToString([]byte(`{"errorMessage":"stream broke","errorType":"StreamError"}`))
	c.send(t, "POST /2018-06-01/runtime/invocation/"+id+"/response HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n"+
		"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"+
		"3\r\npar\r\n0\r\nLambda-Runtime-Function-Error-Type: StreamError\r\nLambda-Runtime-Function-Error-Body: "+errBody+"\r\n\r\n")
	if resp, got := c.response(t); resp.StatusCode != http.StatusAccepted {
		t.Errorf("chunked POST /response = %d %s, want 202", resp.StatusCode, got)
	}
	var fe *lambdahost.FunctionError
	if r := wait(t, second); !errors.As(r.err, &fe) || fe.Type != "StreamError" || fe.Message != "stream broke" {
		t.Errorf("second InvokeRaw: err = %v, want the StreamError of the trailers", r.err)
	}

	// Connection: close is honoured.
	c.send(t, "GET /2018-06-01/runtime/restore/next HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
	if resp, _ := c.response(t); resp.StatusCode != http.StatusNotFound || !resp.Close {
		t.Errorf("request with Connection: close = %d, close %v; want 404 and the connection closed", resp.StatusCode, resp.Close)
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close, read: %v, want EOF", err)
	}
}

// A runtime that hangs up while it waits for work does not get the next
// event: the next request for work does.
func TestRuntimeAPIHangupWhileWaiting(t *testing.T) {
	t.Parallel()
	h := newShellHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	warm := make(chan error, 1)
	go func() { warm <- h.Warm(ctx) }() // starts the process without an event
	api := h.runtimeAPI(t)
	c := dialAPI(t, api)
	c.send(t, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
	if err := <-warm; err != nil {
		t.Fatalf("Warm: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return h.WaitingForWorkForTest() == 1 }, "the request for work waits")
	_ = c.Close()
	testutil.Eventually(t, 10*time.Second, func() bool { return h.WaitingForWorkForTest() == 0 }, "the hangup ends the wait")

	res := h.invokeAsync(t, `"after the hangup"`)
	status, hdr, body := call(t, http.MethodGet, api+"/invocation/next", "", nil)
	if status != http.StatusOK || body != `"after the hangup"` {
		t.Fatalf("GET /next after a hangup = %d %s, want the event", status, body)
	}
	id := hdr.Get("Lambda-Runtime-Aws-Request-Id")
	if status, _, _ := call(t, http.MethodPost, api+"/invocation/"+id+"/response", `"done"`, nil); status != http.StatusAccepted {
		t.Errorf("POST /response = %d, want 202", status)
	}
	if r := wait(t, res); r.err != nil || r.out != `"done"` {
		t.Errorf("InvokeRaw = %s, %v; want \"done\"", r.out, r.err)
	}
}
