package server_test

import (
	"bufio"
	"context"
	"encoding/json"
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

// known holds the connections openReader returned, per server; benchmarks
// of this file run one at a time.
var known = map[*servertest.Running]map[string]bool{}

// BenchmarkPostToConnection posts to one open connection over keep-alive
// connections written to directly, as the mgmt workload does: "guarded" is
// the server's own handler (the management guard, then the API), "bare" the
// same API on a ServeMux of its own with no guard, the baseline of the same
// run. Their ratio is what the guard costs per request.
func BenchmarkPostToConnection(b *testing.B) {
	r := servertest.StartYAML(b, "limits: {sendQueueMessages: 100000, messageRate: unlimited}\n")
	id := openReader(b, r, 1)
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

// BenchmarkPushes makes 100 pushes per operation to 100 open connections:
// "single" as 100 PostToConnection requests, "batch" as one POST
// /@connections listing the 100, in the same run. Each runs on one
// keep-alive connection written to directly.
func BenchmarkPushes(b *testing.B) {
	const n = 100
	r := servertest.StartYAML(b, "limits: {sendQueueMessages: 100000, messageRate: unlimited}\n")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = openReader(b, r, i+1)
	}
	addr := strings.TrimPrefix(r.HTTP, "http://")
	var single [][]byte
	for _, id := range ids {
		single = append(single, []byte(fmt.Sprintf("POST /@connections/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello", id, addr)))
	}
	body, _ := json.Marshal(map[string]any{"connectionIds": ids, "data": "hello"})
	batch := [][]byte{[]byte(fmt.Sprintf("POST /@connections HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body))}
	for _, c := range []struct {
		name string
		reqs [][]byte
	}{{"single", single}, {"batch", batch}} {
		b.Run(c.name, func(b *testing.B) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			br := bufio.NewReader(nc)
			b.ReportAllocs()
			report := testutil.ReportCPU(b)
			start := time.Now()
			for b.Loop() {
				for _, req := range c.reqs {
					if _, err := nc.Write(req); err != nil {
						b.Fatal(err)
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Fatal(err)
					}
					out, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || len(c.reqs) == 1 && !strings.Contains(string(out), `"delivered":100`) {
						b.Fatalf("POST = %d %s", resp.StatusCode, out)
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "deliveries/s")
			report()
		})
	}
}

// openReader opens a WebSocket connection that reads and discards what it
// is sent until the benchmark ends, and returns its ID.
func openReader(b *testing.B, r *servertest.Running, count int) string {
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
	// The new connection is the one of the listing no earlier call returned.
	var id string
	testutil.Eventually(b, 10*time.Second, func() bool {
		infos, _, err := r.Gateway().Hub().List(context.Background(), "", 1000)
		if err != nil || len(infos) != count {
			return false
		}
		for _, info := range infos {
			if !known[r][info.ConnID] {
				id = info.ConnID
			}
		}
		return id != ""
	}, "connection %d listed", count)
	if known[r] == nil {
		known[r] = map[string]bool{}
	}
	known[r][id] = true
	return id
}
