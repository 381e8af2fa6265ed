package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/mgmtapi"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// BenchmarkPostToConnection posts to one open connection over keep-alive
// connections written to directly, as the mgmt workload does: "guarded" is
// the server's own handler (the management guard, then the API), "bare" the
// same API on a ServeMux of its own with no guard, the baseline of the same
// run. Their ratio is what the guard costs per request.
func BenchmarkPostToConnection(b *testing.B) {
	r := servertest.StartYAML(b, "limits: {sendQueueMessages: 100000, messageRate: unlimited}\n")
	id := openReader(b, r)
	bare := http.NewServeMux()
	mgmtapi.New(r.Gateway().Hub(), mgmtapi.Options{}).Register(bare)
	bs := httptest.NewUnstartedServer(bare)
	r.ConfigureHTTP(bs.Config)
	bs.Start()
	b.Cleanup(bs.Close)
	for _, c := range []struct{ name, base string }{{"bare", bs.URL}, {"guarded", r.HTTP}} {
		b.Run(c.name, func(b *testing.B) {
			addr := strings.TrimPrefix(c.base, "http://")
			req := []byte(fmt.Sprintf("POST /@connections/%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench\r\nContent-Length: 5\r\n\r\nhello", id, addr))
			b.ReportAllocs()
			defer testutil.ReportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer nc.Close()
				br := bufio.NewReader(nc)
				for pb.Next() {
					if _, err := nc.Write(req); err != nil {
						b.Error(err)
						return
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("POST = %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}

// openReader opens a WebSocket connection that reads and discards what it
// is sent until the benchmark ends, and returns its ID.
func openReader(b *testing.B, r *servertest.Running) string {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ws, _, err := websocket.Dial(ctx, r.WS, nil)
	if err != nil {
		b.Fatal(err)
	}
	ws.SetReadLimit(-1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		ws.CloseNow()
	})
	var id string
	testutil.Eventually(b, 10*time.Second, func() bool {
		infos, _, err := r.Gateway().Hub().List(context.Background(), "", 1)
		if err == nil && len(infos) == 1 {
			id = infos[0].ConnID
		}
		return id != ""
	}, "the connection listed")
	return id
}
