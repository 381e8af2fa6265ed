package tlsmux

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// BenchmarkAccept accepts connections whose client sends its first bytes
// at once, as an HTTP client does, and reads them whole: "plain" from the inner
// listener itself, the baseline of the same run; "mux" through a Listener.
// Their ratio is what telling TLS from plain costs per connection.
func BenchmarkAccept(b *testing.B) {
	for _, name := range []string{"plain", "mux"} {
		b.Run(name, func(b *testing.B) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var ln net.Listener = inner
			if name == "mux" {
				ln = New(inner, &tls.Config{}, Options{})
			}
			defer ln.Close()
			addr := ln.Addr().String()
			req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			// At most 64 connections in flight: the dialer waits for the
			// server to close one before it dials past that.
			slots := make(chan struct{}, 64)
			dialed := make(chan error, 1)
			go func() {
				for i := 0; i < b.N; i++ {
					slots <- struct{}{}
					c, err := net.Dial("tcp", addr)
					if err != nil {
						dialed <- err
						return
					}
					if _, err := c.Write(req); err != nil {
						dialed <- err
						return
					}
					go func() { // the server closes first; then this side
						_, _ = io.Copy(io.Discard, c)
						_ = c.Close()
					}()
				}
				dialed <- nil
			}()
			b.ReportAllocs()
			report := testutil.ReportCPU(b)
			buf := make([]byte, 512)
			for i := 0; i < b.N; i++ {
				c, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf[:len(req)]); err != nil { // the request, as a server reads it
					b.Fatal(err)
				}
				_ = c.Close()
				<-slots
			}
			if err := <-dialed; err != nil {
				b.Fatal(err)
			}
			report()
		})
	}
}
