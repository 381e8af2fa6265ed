package httpevent_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/httpevent"
)

// fn answers with what it is given to return, and records the event.
type fn struct {
	out    string
	err    error
	events chan []byte
}

func (f *fn) InvokeRaw(_ context.Context, event []byte) ([]byte, error) {
	if f.events != nil {
		f.events <- event
	}
	return []byte(f.out), f.err
}

func route(method, path string, version int, name string) httpevent.Route {
	return httpevent.Route{Method: method, Path: path, Version: version, Name: name,
		Function: &fn{out: `{"statusCode":200,"body":"` + name + `"}`}}
}

func TestMatchPrecedence(t *testing.T) {
	t.Parallel()
	rt, err := httpevent.New(httpevent.Options{Routes: []httpevent.Route{
		route("GET", "/users/{id}", 1, "param"),
		route("GET", "/users/me", 1, "literal"),
		route("ANY", "/users/{proxy+}", 1, "greedy"),
		route("ANY", "/items/{id}", 1, "any"),
		route("DELETE", "/items/{id}", 1, "delete"),
		route("GET", "/", 1, "root"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"literal beats parameter", "GET", "/users/me", 200, "literal"},
		{"parameter", "GET", "/users/7", 200, "param"},
		{"greedy for several segments", "GET", "/users/7/posts", 200, "greedy"},
		{"greedy for another method", "POST", "/users/7", 200, "greedy"},
		{"a method beats ANY", "DELETE", "/items/3", 200, "delete"},
		{"ANY", "PATCH", "/items/3", 200, "any"},
		{"root", "GET", "/", 200, "root"},
		{"the path exists, not the method", "POST", "/", 403, `{"message":"Missing Authentication Token"}`},
		{"no such path", "GET", "/nope", 404, "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			if w.Code != tt.status || w.Body.String() != tt.body {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, w.Code, w.Body, tt.status, tt.body)
			}
		})
	}
}

func TestNewRejectsBadRoutes(t *testing.T) {
	t.Parallel()
	for _, r := range []httpevent.Route{
		route("GET", "/a/{proxy+}/b", 1, "x"),
		route("GET", "/a/{b", 1, "x"),
		route("GET", "/a", 3, "x"),
		{Method: "GET", Path: "/a", Version: 1},
	} {
		if _, err := httpevent.New(httpevent.Options{Routes: []httpevent.Route{r}}); !errors.Is(err, httpevent.ErrBadRoute) {
			t.Errorf("New(%s %s v%d) err = %v, want ErrBadRoute", r.Method, r.Path, r.Version, err)
		}
	}
	if _, err := httpevent.New(httpevent.Options{Routes: []httpevent.Route{route("GET", "/a", 1, "x"), route("get", "a", 1, "y")}}); !errors.Is(err, httpevent.ErrBadRoute) {
		t.Errorf("a route declared twice: err = %v", err)
	}
}

func TestResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, out string
		version   int
		status    int
		body      string
	}{
		{"v2 simple object", `{"a":1}`, 2, 200, `{"a":1}`},
		{"v2 string", `"hello"`, 2, 200, `"hello"`},
		{"v2 proxy response", `{"statusCode":418,"body":"teapot"}`, 2, 418, "teapot"},
		{"v1 not an object", `"hello"`, 1, 502, `{"message":"Internal server error"}`},
		{"v1 bad status", `{"statusCode":1000}`, 1, 502, `{"message":"Internal server error"}`},
		{"v2 bad base64", `{"statusCode":200,"body":"%%","isBase64Encoded":true}`, 2, 500, `{"message":"Internal Server Error"}`},
		{"v1 base64", `{"statusCode":200,"body":"aGk=","isBase64Encoded":true}`, 1, 200, "hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt, err := httpevent.New(httpevent.Options{Routes: []httpevent.Route{{Method: "GET", Path: "/x", Version: tt.version, Function: &fn{out: tt.out}}}})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
			if w.Code != tt.status || w.Body.String() != tt.body {
				t.Errorf("answer %s = %d %q, want %d %q", tt.out, w.Code, w.Body, tt.status, tt.body)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	rt, err := httpevent.New(httpevent.Options{MaxBodyBytes: 4, Routes: []httpevent.Route{route("POST", "/x", 2, "x")}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	rt.ServeHTTP(w, httptest.NewRequest("POST", "/x", strings.NewReader("12345")))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("5 bytes over a 4-byte limit: %d", w.Code)
	}
}

func TestStageMount(t *testing.T) {
	t.Parallel()
	f := &fn{out: `{"statusCode":200}`, events: make(chan []byte, 1)}
	rt, err := httpevent.New(httpevent.Options{Routes: []httpevent.Route{{Method: "GET", Path: "/a/{id}", Version: 1, Stage: "prod", Function: f}}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/prod/a/1": 200, "/a/1": 404} {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != want {
			t.Errorf("GET %s = %d, want %d", path, w.Code, want)
		}
	}
	var ev struct {
		Path           string
		RequestContext struct{ Stage, Path string }
	}
	if err := json.Unmarshal(<-f.events, &ev); err != nil || ev.Path != "/a/1" || ev.RequestContext.Stage != "prod" || ev.RequestContext.Path != "/prod/a/1" {
		t.Errorf("event %+v (%v)", ev, err)
	}
}
