package httpint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/httpint"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newRequest returns a MESSAGE invocation with body.
func newRequest(body string) *integration.Request {
	return &integration.Request{
		RouteKey:  "sendmessage",
		EventType: apigw.EventMessage,
		RequestID: "R1knPH17NjMFftw=",
		MessageID: "R1knPc2ntjMCFIA=",
		Time:      time.Date(2024, time.January, 20, 11, 55, 0, 453e6, time.UTC),
		Body:      []byte(body),
		Conn: &integration.Conn{
			ID:          "R1kmxc2VNjMCFIA=",
			ConnectedAt: time.Date(2024, time.January, 20, 11, 54, 57, 419e6, time.UTC),
			SourceIP:    "203.0.113.7",
			UserAgent:   "test-client",
			Stage:       "prod",
			DomainName:  "ws.example.com",
			APIID:       "abcdef123",
		},
	}
}

// newIntegration returns an integration for opts whose idle connections are
// released when the test ends.
func newIntegration(t testing.TB, opts httpint.Options) *httpint.Integration {
	t.Helper()
	in, err := httpint.New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    httpint.Options
		wantErr bool
	}{
		{"http", httpint.Options{URL: "http://127.0.0.1:8080/events"}, false},
		{"https with query", httpint.Options{URL: "https://backend.example.com/ws?stage=prod"}, false},
		{"timeout", httpint.Options{URL: "http://backend", Timeout: time.Second}, false},
		{"empty", httpint.Options{}, true},
		{"no scheme", httpint.Options{URL: "backend.example.com/events"}, true},
		{"host and port without scheme", httpint.Options{URL: "localhost:8080"}, true},
		{"ftp", httpint.Options{URL: "ftp://backend.example.com/"}, true},
		{"websocket", httpint.Options{URL: "ws://backend.example.com/"}, true},
		{"no host", httpint.Options{URL: "http:///events"}, true},
		{"unparsable", httpint.Options{URL: "http://[::1"}, true},
		{"negative timeout", httpint.Options{URL: "http://backend", Timeout: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, err := httpint.New(tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%+v) error = %v, want error %v", tt.opts, err, tt.wantErr)
			}
			if err == nil {
				in.Close()
			}
		})
	}
}

func TestNewRedactsPassword(t *testing.T) {
	t.Parallel()
	_, err := httpint.New(httpint.Options{URL: "ftp://user:s3cret@backend/"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("New(ftp URL with password) error = %v, want an error without the password", err)
	}
}

// TestInvokeSendsEvent checks what the backend receives: a POST of exactly
// the proxy event, as JSON, with the configured headers.
func TestInvokeSendsEvent(t *testing.T) {
	t.Parallel()
	type received struct {
		method, contentType, auth, host string
		raw                             []byte
		event                           events.APIGatewayWebsocketProxyRequest
		decodeErr                       error
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := received{
			method:      r.Method,
			contentType: r.Header.Get("Content-Type"),
			auth:        r.Header.Get("Authorization"),
			host:        r.Host,
		}
		rec.raw, rec.decodeErr = io.ReadAll(r.Body)
		if rec.decodeErr == nil {
			rec.decodeErr = json.Unmarshal(rec.raw, &rec.event)
		}
		got <- rec
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"statusCode":200,"headers":{"X-Reply":"yes"},"body":"pong"}`)
	}))
	t.Cleanup(srv.Close)

	in := newIntegration(t, httpint.Options{
		URL:     srv.URL + "/events",
		Headers: map[string]string{"Authorization": "Bearer t0ken", "Host": "backend.internal"},
	})
	req := newRequest(`{"action":"sendmessage","data":"ping"}`)
	resp, err := in.Invoke(context.Background(), req)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	want := &integration.Response{StatusCode: 200, Headers: map[string]string{"X-Reply": "yes"}, Body: []byte("pong")}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("Invoke = %+v, want %+v", resp, want)
	}

	rec := <-got
	if rec.decodeErr != nil {
		t.Fatalf("backend could not decode the event: %v\n%s", rec.decodeErr, rec.raw)
	}
	if rec.method != http.MethodPost {
		t.Errorf("method = %s, want POST", rec.method)
	}
	if rec.contentType != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", rec.contentType)
	}
	if rec.auth != "Bearer t0ken" {
		t.Errorf("Authorization = %q, want the configured header", rec.auth)
	}
	if rec.host != "backend.internal" {
		t.Errorf("Host = %q, want the configured backend.internal", rec.host)
	}
	wantRaw, err := integration.MarshalEvent(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.raw, wantRaw) {
		t.Errorf("backend received\n%s\nwant MarshalEvent's\n%s", rec.raw, wantRaw)
	}
	ev := rec.event
	if ev.RequestContext.RouteKey != "sendmessage" || ev.RequestContext.EventType != "MESSAGE" ||
		ev.RequestContext.ConnectionID != "R1kmxc2VNjMCFIA=" || ev.RequestContext.MessageID != "R1knPc2ntjMCFIA=" ||
		ev.RequestContext.RequestTimeEpoch != 1705751700453 || ev.Body != `{"action":"sendmessage","data":"ping"}` {
		t.Errorf("backend decoded %+v, want the sendmessage event of R1kmxc2VNjMCFIA=", ev)
	}
}

// TestInvokeAnswers checks how the backend's answer becomes a Response or an error.
func TestInvokeAnswers(t *testing.T) {
	t.Parallel()
	atLimit := strings.Repeat("a", httpint.MaxResponseBytes)
	tests := []struct {
		name    string
		status  int
		body    string
		want    *integration.Response
		wantErr func(error) bool
	}{
		{
			name: "proxy response", status: 200,
			body: `{"statusCode":201,"headers":{"Sec-WebSocket-Protocol":"chat"},"body":"hi"}`,
			want: &integration.Response{StatusCode: 201, Headers: map[string]string{"Sec-WebSocket-Protocol": "chat"}, Body: []byte("hi")},
		},
		{
			name: "proxy response refusing a connect", status: 200,
			body: `{"statusCode":401}`,
			want: &integration.Response{StatusCode: 401},
		},
		{
			name: "empty 200", status: 200, body: "",
			want: &integration.Response{StatusCode: 200},
		},
		{
			name: "empty 204", status: 204, body: "",
			want: &integration.Response{StatusCode: 200},
		},
		{
			name: "non-JSON body", status: 200, body: "pong",
			want: &integration.Response{StatusCode: 200, Body: []byte("pong")},
		},
		{
			name: "JSON without statusCode", status: 202, body: `{"data":"x"}`,
			want: &integration.Response{StatusCode: 200, Body: []byte(`{"data":"x"}`)},
		},
		{
			name: "body at the size limit", status: 200, body: atLimit,
			want: &integration.Response{StatusCode: 200, Body: []byte(atLimit)},
		},
		{
			name: "body over the size limit", status: 200, body: atLimit + "a",
			wantErr: func(err error) bool { return errors.Is(err, httpint.ErrResponseTooLarge) },
		},
		{
			name: "malformed proxy response", status: 200, body: `{"statusCode":700}`,
			wantErr: func(err error) bool { return errors.Is(err, integration.ErrBadResponse) },
		},
		{
			name: "500", status: 500, body: "database down\n",
			wantErr: func(err error) bool {
				var se *httpint.StatusError
				return errors.As(err, &se) && se.StatusCode == 500 && se.Body == "database down"
			},
		},
		{
			name: "404 with a proxy body", status: 404, body: `{"statusCode":200}`,
			wantErr: func(err error) bool {
				var se *httpint.StatusError
				return errors.As(err, &se) && se.StatusCode == 404
			},
		},
		{
			name: "redirect is not followed", status: http.StatusTemporaryRedirect,
			wantErr: func(err error) bool {
				var se *httpint.StatusError
				return errors.As(err, &se) && se.StatusCode == http.StatusTemporaryRedirect
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.status/100 == 3 {
					w.Header().Set("Location", "/elsewhere") // must not be visited
					if r.URL.Path == "/elsewhere" {
						io.WriteString(w, "followed")
						return
					}
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			in := newIntegration(t, httpint.Options{URL: srv.URL})

			resp, err := in.Invoke(context.Background(), newRequest("hello"))
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("Invoke = %+v, %v; want a matching error", resp, err)
				}
				if !strings.Contains(err.Error(), srv.URL) {
					t.Errorf("Invoke error %q does not name the URL %s", err, srv.URL)
				}
				return
			}
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if !reflect.DeepEqual(resp, tt.want) {
				t.Errorf("Invoke = %d %v %.40q, want %d %v %.40q",
					resp.StatusCode, resp.Headers, resp.Body, tt.want.StatusCode, tt.want.Headers, tt.want.Body)
			}
		})
	}
}

// TestInvokeDeadline checks that a backend slower than the deadline, whether
// ctx's or Options.Timeout, makes Invoke fail with DeadlineExceeded.
func TestInvokeDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		timeout    time.Duration // Options.Timeout
		ctxTimeout time.Duration // the caller's deadline
		headFirst  bool          // the backend sends its headers and part of the body, then stalls
	}{
		{name: "ctx deadline", ctxTimeout: 50 * time.Millisecond},
		{name: "Options.Timeout", timeout: 50 * time.Millisecond},
		{name: "Options.Timeout shorter than ctx", timeout: 50 * time.Millisecond, ctxTimeout: time.Minute},
		{name: "deadline while reading the body", ctxTimeout: 50 * time.Millisecond, headFirst: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.headFirst {
					io.WriteString(w, `{"statusCode":200,"body":"`)
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done(): // the client gave up
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) }) // runs before srv.Close

			in := newIntegration(t, httpint.Options{URL: srv.URL, Timeout: tt.timeout})
			ctx := context.Background()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			resp, err := in.Invoke(ctx, newRequest("hello"))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Invoke = %+v, %v; want DeadlineExceeded", resp, err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Invoke returned after %v, want about 50ms", d)
			}
		})
	}
}

func TestInvokeCanceled(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("backend called with a canceled context")
	}))
	t.Cleanup(srv.Close)
	in := newIntegration(t, httpint.Options{URL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := in.Invoke(ctx, newRequest("hello")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Invoke(canceled ctx) error = %v, want context.Canceled", err)
	}
}

func TestInvokeBackendDown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens on url any more

	in := newIntegration(t, httpint.Options{URL: url + "/events"})
	resp, err := in.Invoke(context.Background(), newRequest("hello"))
	if err == nil {
		t.Fatalf("Invoke(backend down) = %+v, want an error", resp)
	}
	var se *httpint.StatusError
	if errors.As(err, &se) {
		t.Errorf("Invoke(backend down) error = %v, want a transport error, not a status", err)
	}
	if !strings.Contains(err.Error(), url+"/events") {
		t.Errorf("Invoke error %q does not name the URL", err)
	}
}

// countingTransport counts the requests it forwards.
type countingTransport struct {
	n atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestInvokeUsesClient(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	transport := &countingTransport{}
	in := newIntegration(t, httpint.Options{URL: srv.URL, Client: &http.Client{Transport: transport}})
	for range 3 {
		if _, err := in.Invoke(context.Background(), newRequest("hello")); err != nil {
			t.Fatalf("Invoke: %v", err)
		}
	}
	if got := transport.n.Load(); got != 3 {
		t.Errorf("Options.Client carried %d requests, want 3", got)
	}
}

// TestInvokeReusesConnections checks that the client New makes keeps its
// connection to the backend between invocations.
func TestInvokeReusesConnections(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"statusCode":200}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	in := newIntegration(t, httpint.Options{URL: srv.URL})
	for range 5 {
		if _, err := in.Invoke(context.Background(), newRequest("hello")); err != nil {
			t.Fatalf("Invoke: %v", err)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("5 sequential invocations opened %d connections, want 1", got)
	}
}

func BenchmarkInvoke(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"statusCode":200,"body":"pong"}`)
	}))
	b.Cleanup(srv.Close)
	in := newIntegration(b, httpint.Options{URL: srv.URL})
	req := newRequest(`{"action":"sendmessage","data":"ping"}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.Invoke(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
