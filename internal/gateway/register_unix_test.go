//go:build unix

package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
)

// gatedRegistry is a directory whose Add waits for the test: it reports each
// Add on entered, then waits for release and answers with fail.
type gatedRegistry struct {
	registry.Directory
	entered chan struct{}
	release chan struct{}
	fail    error
}

func (r *gatedRegistry) Add(ctx context.Context, rec registry.Record) error {
	r.entered <- struct{}{}
	<-r.release
	if r.fail != nil {
		return r.fail
	}
	return r.Directory.Add(ctx, rec)
}

// arrived reports whether the peer has sent anything on nc yet, without
// waiting: a peek at the socket's receive queue.
func arrived(t *testing.T, nc net.Conn) bool {
	t.Helper()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if rerr != nil && !errors.Is(rerr, syscall.EAGAIN) {
		t.Fatalf("peek: %v", rerr)
	}
	return n > 0
}

// A connection is registered before its 101 is written: a client that has
// its 101 is already known to the management API, and a registry that
// fails answers 500, not a 101 followed by a close; the $connect that
// succeeded then gets its $disconnect.
func TestConnectionIsRegisteredBeforeThe101(t *testing.T) {
	t.Parallel()
	for _, fail := range []error{nil, errors.New("registry down")} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			t.Parallel()
			reg := &gatedRegistry{Directory: memreg.New(), entered: make(chan struct{}), release: make(chan struct{}), fail: fail}
			disconnects := make(chan int, 1)
			gw := gateway.New(gateway.NewHub(reg, "test", nil), gateway.Options{
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Routes: map[string]gateway.Route{
					"$default": {Integration: echo, RouteResponse: true},
					"$connect": {Integration: integration.Func(func(context.Context, *integration.Request) (*integration.Response, error) {
						return &integration.Response{StatusCode: http.StatusOK}, nil
					})},
					"$disconnect": {Integration: integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
						disconnects <- req.DisconnectStatusCode
						return &integration.Response{StatusCode: http.StatusOK}, nil
					})},
				},
			})
			hs := httptest.NewServer(gw)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = gw.Drain(ctx)
				hs.Close()
			})
			addr := strings.TrimPrefix(hs.URL, "http://")
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
			select {
			case <-reg.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the connection was never registered")
			}
			if arrived(t, nc) {
				t.Errorf("the client had an answer while its connection was not registered yet")
			}
			close(reg.release)
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			resp.Body.Close()
			want := http.StatusSwitchingProtocols
			if fail != nil {
				want = http.StatusInternalServerError
			}
			if resp.StatusCode != want {
				t.Errorf("handshake answered %s, want %d", resp.Status, want)
			}
			if fail == nil {
				return
			}
			select {
			case code := <-disconnects:
				if code != 1011 {
					t.Errorf("$disconnect after a failed registration reported %d, want 1011", code)
				}
			case <-time.After(10 * time.Second):
				t.Error("a $connect that succeeded got no $disconnect when its connection could not be registered")
			}
		})
	}
}
