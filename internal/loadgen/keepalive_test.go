package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// The keep-alive client reuses its connection, redials one the server
// closed, and reports refused requests as *statusError.
func TestKeepAliveClient(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer tok" || string(body) != "hello":
			http.Error(w, "bad request", http.StatusBadRequest)
		case r.URL.Path == "/stage/@connections/gone":
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"message":"Gone"}`))
		case r.URL.Path == "/stage/@connections/close":
			w.Header().Set("Connection", "close")
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	k, err := newKeepAlive(srv.URL+"/stage", "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	ctx := context.Background()
	for range 3 {
		if status, err := k.post(ctx, "/stage/@connections/a", []byte("hello")); status != 200 || err != nil {
			t.Fatalf("post = %d %v, want 200", status, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 requests, want 1 kept alive", n)
	}
	status, err := k.post(ctx, "/stage/@connections/gone", []byte("hello"))
	var se *statusError
	if status != http.StatusGone || !errors.As(err, &se) || se.Body != `{"message":"Gone"}` {
		t.Errorf("post to a gone connection = %d %v, want 410 with its body", status, err)
	}
	if status, err := k.post(ctx, "/stage/@connections/close", []byte("hello")); status != 200 || err != nil {
		t.Fatalf("post = %d %v, want 200", status, err)
	}
	if status, err := k.post(ctx, "/stage/@connections/a", []byte("hello")); status != 200 || err != nil {
		t.Fatalf("post after Connection: close = %d %v, want 200 on a new connection", status, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: one redial after Connection: close", n)
	}
}
