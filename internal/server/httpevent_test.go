package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

const httpHandlers = `
exports.echo = async (event) => {
  const q = event.queryStringParameters || {};
  if (q.fail) throw new Error('boom');
  if (event.isBase64Encoded && event.pathParameters && event.pathParameters.proxy) {
    return { statusCode: 200, body: event.body, isBase64Encoded: true, headers: { 'content-type': 'application/octet-stream' } };
  }
  return { statusCode: 201, headers: { 'x-h': 'v' }, multiValueHeaders: { 'x-m': ['1', '2'] }, cookies: ['c=1'], body: JSON.stringify(event) };
};
exports.simple = async (event) => ({ ok: true, routeKey: event.routeKey });
`

const httpProject = `
service: web
provider:
  name: aws
  runtime: nodejs20.x
  httpApi:
    cors: true
functions:
  echo:
    handler: handler.echo
    events:
      - http: GET users/{id}
      - http:
          path: files/{proxy+}
          method: any
          cors: true
      - httpApi: POST /orders
  simple:
    handler: handler.simple
    events:
      - httpApi: '*'
`

func startHTTPProject(t *testing.T) *servertest.Running {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"serverless.yml": httpProject, "handler.js": httpHandlers} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.LoadServerless(filepath.Join(dir, "serverless.yml"), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	return servertest.Start(t, cfg)
}

func do(t *testing.T, method, url string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
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
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestHTTPEventsRESTPayload(t *testing.T) {
	t.Parallel()
	srv := startHTTPProject(t)
	resp, body := do(t, "GET", srv.HTTP+"/dev/users/42?a=1&a=2", nil, http.Header{"X-Multi": {"x", "y"}})
	if resp.StatusCode != 201 || resp.Header.Get("X-H") != "v" || !slices.Equal(resp.Header.Values("X-M"), []string{"1", "2"}) {
		t.Fatalf("GET /dev/users/42: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var ev struct {
		Resource, Path, HTTPMethod      string
		PathParameters                  map[string]string
		QueryStringParameters           map[string]string
		MultiValueQueryStringParameters map[string][]string
		MultiValueHeaders               map[string][]string
		Body                            *string
		IsBase64Encoded                 bool
		RequestContext                  struct {
			Stage, Path, ResourcePath, HTTPMethod, RequestID string
			Identity                                         struct{ SourceIP string }
		}
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("event %s: %v", body, err)
	}
	if ev.Resource != "/users/{id}" || ev.Path != "/users/42" || ev.HTTPMethod != "GET" || ev.PathParameters["id"] != "42" ||
		ev.QueryStringParameters["a"] != "2" || !slices.Equal(ev.MultiValueQueryStringParameters["a"], []string{"1", "2"}) ||
		!slices.Equal(ev.MultiValueHeaders["X-Multi"], []string{"x", "y"}) || ev.Body != nil || ev.IsBase64Encoded {
		t.Errorf("REST event: %s", body)
	}
	rc := ev.RequestContext
	if rc.Stage != "dev" || rc.Path != "/dev/users/42" || rc.ResourcePath != "/users/{id}" || rc.RequestID == "" || rc.Identity.SourceIP != "127.0.0.1" {
		t.Errorf("REST requestContext: %+v", rc)
	}

	// A greedy path, any method, a binary body both ways.
	bin := []byte{0xff, 0x00, 0xfe, 'x'}
	resp, body = do(t, "POST", srv.HTTP+"/dev/files/a/b/c", bin, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, bin) {
		t.Errorf("POST binary to /dev/files/a/b/c: %d %q, want the bytes back", resp.StatusCode, body)
	}
	// The path exists, not for this method: the HTTP API's catch-all
	// route, which shares the listener, takes it.
	resp, body = do(t, "PUT", srv.HTTP+"/dev/users/42", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"routeKey":"$default"`) {
		t.Errorf("PUT /dev/users/42: %d %s, want the catch-all route", resp.StatusCode, body)
	}
	// A function that throws.
	resp, body = do(t, "GET", srv.HTTP+"/dev/users/1?fail=1", nil, nil)
	if resp.StatusCode != 502 || string(body) != `{"message":"Internal server error"}` {
		t.Errorf("GET of a throwing function: %d %s, want 502 Internal server error", resp.StatusCode, body)
	}
	// CORS: the preflight, and the header on the answer.
	resp, _ = do(t, "OPTIONS", srv.HTTP+"/dev/files/x", nil, http.Header{"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"PUT"}})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "X-Api-Key") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, "GET", srv.HTTP+"/dev/files/x", nil, http.Header{"Origin": {"https://app.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET with an Origin: headers %v, want Access-Control-Allow-Origin *", resp.Header)
	}
	resp, _ = do(t, "GET", srv.HTTP+"/dev/users/1", nil, http.Header{"Origin": {"https://app.example"}})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a route without cors answered with %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestHTTPEventsHTTPAPIPayload(t *testing.T) {
	t.Parallel()
	srv := startHTTPProject(t)
	resp, body := do(t, "POST", srv.HTTP+"/orders?x=1&x=2", []byte("hi"), http.Header{"Cookie": {"a=1; b=2"}, "X-Multi": {"p", "q"}})
	if resp.StatusCode != 201 || !slices.Contains(resp.Header.Values("Set-Cookie"), "c=1") {
		t.Fatalf("POST /orders: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var ev struct {
		Version, RouteKey, RawPath, RawQueryString, Body string
		Cookies                                          []string
		Headers                                          map[string]string
		QueryStringParameters                            map[string]string
		IsBase64Encoded                                  bool
		RequestContext                                   struct {
			Stage, RouteKey string
			HTTP            struct{ Method, Path, SourceIP string }
		}
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("event %s: %v", body, err)
	}
	if ev.Version != "2.0" || ev.RouteKey != "POST /orders" || ev.RawPath != "/orders" || ev.RawQueryString != "x=1&x=2" || ev.Body != "hi" ||
		!slices.Equal(ev.Cookies, []string{"a=1", "b=2"}) || ev.Headers["x-multi"] != "p,q" || ev.QueryStringParameters["x"] != "1,2" || ev.IsBase64Encoded {
		t.Errorf("HTTP API event: %s", body)
	}
	if rc := ev.RequestContext; rc.Stage != "$default" || rc.RouteKey != "POST /orders" || rc.HTTP.Method != "POST" || rc.HTTP.Path != "/orders" || rc.HTTP.SourceIP != "127.0.0.1" {
		t.Errorf("HTTP API requestContext: %+v", rc)
	}
	// The catch-all route, and a return value that is not a proxy response.
	resp, body = do(t, "GET", srv.HTTP+"/any/where", nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(body) != `{"ok":true,"routeKey":"$default"}` {
		t.Errorf("GET /any/where: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// HTTP API CORS from provider.httpApi.cors.
	resp, _ = do(t, "OPTIONS", srv.HTTP+"/orders", nil, http.Header{"Origin": {"https://app.example"}, "Access-Control-Request-Method": {"POST"}})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("HTTP API preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// The gateway's own paths stay its own beside a catch-all HTTP route.
func TestHTTPEventsKeepTheGatewayPaths(t *testing.T) {
	t.Parallel()
	srv := startHTTPProject(t)
	for _, path := range []string{"/healthz", "/@connections", "/dev/@connections", "/_/", "/metrics"} {
		resp, body := do(t, "GET", srv.HTTP+path, nil, nil)
		if resp.StatusCode != 200 || strings.Contains(string(body), `"routeKey":"$default"`) {
			t.Errorf("GET %s: %d %.80s, want the gateway's own answer", path, resp.StatusCode, body)
		}
	}
	resp, _ := do(t, "POST", srv.HTTP+"/2015-03-31/functions/simple/invocations", []byte(`{}`), nil)
	if resp.StatusCode != 200 {
		t.Errorf("Invoke API beside a catch-all route: %d", resp.StatusCode)
	}
	for _, path := range []string{"", "/dev"} {
		c := testutil.Dial(t, srv.WS+path, nil)
		c.CloseNow()
	}
}
