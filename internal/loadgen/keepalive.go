package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// keepAlive sends requests one at a time over its own keep-alive HTTP/1.1
// connection, written straight to the socket. net/http's client runs two
// goroutines per connection and hands every request and response between
// them: on a machine the load generator shares with the server, that cost
// more CPU than the server spent answering, and capped what mgmt measured.
// A connection the server closes, or that fails, is redialled for the next
// request. Not safe for concurrent use: one per worker.
type keepAlive struct {
	scheme, host, token string
	tlsConfig           *tls.Config
	dialer              net.Dialer

	conn net.Conn
	br   *bufio.Reader
	req  []byte
	stop func() bool // ends the context's hold on conn
}

// newKeepAlive returns a client for the HTTP or HTTPS base URL.
func newKeepAlive(base, token string) (*keepAlive, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	k := &keepAlive{scheme: u.Scheme, host: u.Host, token: token}
	switch u.Scheme {
	case "http":
	case "https":
		k.tlsConfig = &tls.Config{ServerName: u.Hostname()}
	default:
		return nil, fmt.Errorf("keep-alive client: scheme %q: want http or https", u.Scheme)
	}
	return k, nil
}

// post sends body to path (with its query, already escaped) and returns the
// status; a status other than 2xx is a *statusError. A cancelled ctx closes
// the connection, which ends a request in flight.
func (k *keepAlive) post(ctx context.Context, path string, body []byte) (int, error) {
	if k.conn == nil {
		if err := k.dial(ctx); err != nil {
			return 0, err
		}
	}
	k.req = append(k.req[:0], "POST "...)
	k.req = append(k.req, path...)
	k.req = append(k.req, " HTTP/1.1\r\nHost: "...)
	k.req = append(k.req, k.host...)
	k.req = append(k.req, "\r\nUser-Agent: "+userAgentPrefix+"\r\nContent-Length: "...)
	k.req = strconv.AppendInt(k.req, int64(len(body)), 10)
	if k.token != "" {
		k.req = append(k.req, "\r\nAuthorization: Bearer "...)
		k.req = append(k.req, k.token...)
	}
	k.req = append(k.req, "\r\n\r\n"...)
	k.req = append(k.req, body...)
	if _, err := k.conn.Write(k.req); err != nil {
		k.close()
		return 0, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.close()
		return 0, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil || resp.Close {
		k.close()
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, &statusError{Status: resp.StatusCode, Body: string(b[:min(len(b), 512)])}
	}
	return resp.StatusCode, err
}

func (k *keepAlive) dial(ctx context.Context) error {
	conn, err := k.dialer.DialContext(ctx, "tcp", hostPort(k.host, k.scheme))
	if err != nil {
		return err
	}
	if k.tlsConfig != nil {
		tc := tls.Client(conn, k.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return err
		}
		conn = tc
	}
	k.conn, k.br = conn, bufio.NewReaderSize(conn, 4096)
	k.stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

// close drops the connection; the next request dials a new one.
func (k *keepAlive) close() {
	if k.conn != nil {
		k.stop()
		_ = k.conn.Close()
		k.conn, k.br = nil, nil
	}
}

// hostPort adds the scheme's default port to a URL's host when it has none.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(host, "443")
	}
	return net.JoinHostPort(host, "80")
}
