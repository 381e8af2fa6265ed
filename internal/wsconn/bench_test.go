package wsconn_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// counter signals every message it receives on got.
type counter struct{ got chan int }

func (c counter) OnMessage(m wsconn.Message)  { c.got <- len(m.Data) }
func (c counter) OnClose(ci wsconn.CloseInfo) {}

// BenchmarkRead measures the read path, of a watched socket and of TLS (a
// reader goroutine): one client sends batches of 16 masked frames of a
// size, the server gathers and delivers them. Large frames arrive over
// several reads.
func BenchmarkRead(b *testing.B) {
	for _, tls := range []bool{false, true} {
		for _, size := range []int{128, 16 << 10, 128 << 10} {
			b.Run(fmt.Sprintf("tls=%v/size=%d", tls, size), func(b *testing.B) { benchmarkRead(b, tls, size) })
		}
	}
}

func benchmarkRead(b *testing.B, tls bool, size int) {
	u := wsconn.NewUpgrader(wsconn.Options{PingInterval: -1})
	got := make(chan int, 64)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Accept(w, r, wsconn.AcceptOptions{})
		if err != nil {
			return
		}
		c.Start(counter{got})
	}))
	if tls {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	defer hs.Close()
	d := ws.Dialer{}
	if tls {
		d.TLSConfig = testTLS()
	}
	conn, _, _, err := d.Dial(b.Context(), "ws"+strings.TrimPrefix(hs.URL, "http"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	const batch = 16
	var wire bytes.Buffer
	for range batch {
		f, _ := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame(make([]byte, size))))
		wire.Write(f)
	}
	b.SetBytes(int64(batch * size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(wire.Bytes()); err != nil {
			b.Fatal(err)
		}
		for range batch {
			<-got
		}
	}
}
