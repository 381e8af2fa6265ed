package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Attacks on the management API and the dashboard over HTTP: what a browser
// page of another site can make the user's browser send to a gateway
// without management credentials, and callers that hold a connection by
// sending a body slowly.

// mgmtRequest sends one management request and returns its status. A
// streaming answer (the tail) is not read past its headers.
func mgmtRequest(t *testing.T, method, url, host string, header http.Header, body string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %q): %v", method, url, host, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestHostileCrossSiteManagement(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "", nil)
	base, own := e.srv.HTTP, e.addr
	_, port, _ := net.SplitHostPort(own)
	const gone = "/@connections/AAAAAAAAAAAAAAA=" // passes the guard, then 410: nothing is delivered
	tests := []struct {
		name, method, path, host string
		header                   http.Header
		body                     string
		want                     int
	}{
		// What a page of another site can send with no preflight.
		{"simple POST from another site", "POST", "/@broadcast", "",
			http.Header{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}, "Sec-Fetch-Site": {"cross-site"}}, "pwned", 403},
		{"simple POST, Origin only", "POST", "/dev/@broadcast", "", http.Header{"Origin": {"https://evil.example"}}, "pwned", 403},
		{"POST from a page on another local port", "POST", "/@topics/news", "", http.Header{"Origin": {"http://127.0.0.1:1"}}, "pwned", 403},
		{"POST from a sandboxed frame", "POST", "/@broadcast", "", http.Header{"Origin": {"null"}}, "pwned", 403},
		{"two Origin headers", "POST", "/@broadcast", "", http.Header{"Origin": {"http://" + own, "https://evil.example"}}, "pwned", 403},
		{"cross-site GET without Origin", "GET", "/@connections", "", http.Header{"Sec-Fetch-Site": {"cross-site"}}, "", 403},
		{"DELETE from another site", "DELETE", gone, "", http.Header{"Origin": {"https://evil.example"}}, "", 403},
		{"the dashboard's broadcast from another site", "POST", "/_/api/broadcast", "",
			http.Header{"Origin": {"https://evil.example"}, "Content-Type": {"text/plain"}}, "pwned", 403},
		{"the dashboard's listing from another site", "GET", "/_/api/connections", "", http.Header{"Sec-Fetch-Site": {"cross-site"}}, "", 403},
		// DNS rebinding: the page's own name now resolves to loopback.
		{"rebound host lists connections", "GET", "/@connections", "rebind.evil.example:" + port, nil, "", 403},
		{"rebound host, no port", "GET", "/dev/@connections", "rebind.evil.example", nil, "", 403},
		{"rebound host reads the live tail", "GET", "/_/api/tail", "rebind.evil.example:" + port, nil, "", 403},
		{"rebound host loads the dashboard", "GET", "/_/", "rebind.evil.example:" + port, nil, "", 403},
		{"rebound host reads the metrics", "GET", "/metrics", "rebind.evil.example:" + port, nil, "", 403},
		{"rebound host, same-origin headers", "POST", "/@broadcast", "rebind.evil.example:" + port,
			http.Header{"Origin": {"http://rebind.evil.example:" + port}, "Sec-Fetch-Site": {"same-origin"}}, "pwned", 403},
		{"a subdomain of localhost", "GET", "/@connections", "evil.localhost:" + port, nil, "", 403},

		// What keeps working: tools on the machine, and the dashboard's own page.
		{"curl lists connections", "GET", "/@connections", "", nil, "", 200},
		{"curl posts", "POST", gone, "", nil, "x", 410},
		{"curl deletes", "DELETE", gone, "", nil, "", 410},
		{"localhost", "GET", "/dev/@connections", "localhost:" + port, nil, "", 200},
		{"localhost with a trailing dot, any case", "GET", "/@connections", "LocalHost.:" + port, nil, "", 200},
		{"ipv6 loopback Host", "GET", "/@connections", "[::1]:" + port, nil, "", 200},
		{"the dashboard's own POST", "POST", gone, "", http.Header{"Origin": {"http://" + own}, "Sec-Fetch-Site": {"same-origin"}}, "x", 410},
		{"the dashboard's own DELETE on localhost", "DELETE", gone, "localhost:" + port,
			http.Header{"Origin": {"http://localhost:" + port}, "Sec-Fetch-Site": {"same-origin"}}, "", 410},
		{"the dashboard's own GET", "GET", "/_/api/stats", "", http.Header{"Sec-Fetch-Site": {"same-origin"}}, "", 200},
		{"the dashboard's own listing", "GET", "/_/api/connections", "", http.Header{"Sec-Fetch-Site": {"same-origin"}}, "", 200},
		{"the dashboard's own send", "POST", "/_/api/connections/AAAAAAAAAAAAAAA=", "",
			http.Header{"Origin": {"http://" + own}, "Sec-Fetch-Site": {"same-origin"}}, "x", 410},
		{"the dashboard's live tail", "GET", "/_/api/tail", "", http.Header{"Sec-Fetch-Site": {"same-origin"}}, "", 200},
		{"the dashboard typed in the address bar", "GET", "/_/", "", http.Header{"Sec-Fetch-Site": {"none"}}, "", 200},
		{"a link from a page on another local port", "GET", "/_/", "", http.Header{"Sec-Fetch-Site": {"same-site"}}, "", 200},
		{"metrics scraped", "GET", "/metrics", "", nil, "", 200},
	}
	refused := map[string]float64{}
	for _, tt := range tests {
		if got := mgmtRequest(t, tt.method, base+tt.path, tt.host, tt.header, tt.body); got != tt.want {
			t.Errorf("%s: %s %s = %d, want %d", tt.name, tt.method, tt.path, got, tt.want)
		}
		if tt.want == 403 {
			if strings.HasPrefix(tt.host, "rebind.") || strings.Contains(tt.host, ".localhost") {
				refused["host"]++
			} else {
				refused["cross_origin"]++
			}
		}
	}
	// No refused broadcast reached the bystander: its next message is its echo.
	e.assertUnharmed(t)
	m := scrape(t, base)
	for reason, want := range refused {
		if got := value(m, "switchboard_management_auth_failures_total", "reason", reason); got != want {
			t.Errorf("switchboard_management_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}

	// management.allowedHosts names the gateway's own host names.
	named := startHostile(t, "management: {allowedHosts: [Gateway.Test]}\n", nil)
	_, port, _ = net.SplitHostPort(named.addr)
	for _, tt := range []struct {
		name, host, origin string
		want               int
	}{
		{"allowed host", "gateway.test:" + port, "", 200},
		{"allowed host, its own page", "gateway.test:" + port, "http://gateway.test:" + port, 410},
		{"allowed host, another site's page", "gateway.test:" + port, "https://evil.example", 403},
		{"other host", "other.test:" + port, "", 403},
	} {
		h := http.Header{}
		method, path, body := "GET", "/@connections", ""
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
			method, path, body = "POST", gone, "x"
		}
		if got := mgmtRequest(t, method, named.srv.HTTP+path, tt.host, h, body); got != tt.want {
			t.Errorf("allowedHosts, %s: %d, want %d", tt.name, got, tt.want)
		}
	}
	named.assertUnharmed(t)
}

// rawMgmt writes a management request's head (and no body) on a TCP
// connection of its own, and returns the connection and a channel that
// yields the response, or the error that ended the connection instead
// (after a minute without an answer, a timeout).
func rawMgmt(t *testing.T, addr, head string) (net.Conn, <-chan any) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute)) // a failure, not a hang
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	done := make(chan any, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			done <- err
			return
		}
		resp.Body.Close()
		done <- resp
	}()
	return conn, done
}

// sigv4Head is the head of a POST signed (or not) by akid, claiming a body
// of length bytes.
func sigv4Head(addr, akid string, at time.Time, signature string, length int, extra string) string {
	return fmt.Sprintf("POST /dev/@connections/AAAAAAAAAAAAAAA%%3D HTTP/1.1\r\nHost: %s\r\nX-Amz-Date: %s\r\n"+
		"Authorization: AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=%s\r\n"+
		"%sContent-Length: %d\r\n\r\n",
		addr, at.UTC().Format("20060102T150405Z"), akid, at.UTC().Format("20060102"), signature, extra, length)
}

// A request that its headers condemn is refused before its body is read:
// with no body sent at all, the answer comes. The body timeout is long here,
// so that it cannot be what answers.
func TestHostileManagementRefusedBeforeBody(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "management: {accessKeys: {AKIDGOOD: good-secret}}\nlimits: {handshakeTimeout: 5m}\n", nil)
	garbage := strings.Repeat("0", 64)
	claimed := "X-Amz-Content-Sha256: " + sha256hex(strings.Repeat("x", 1000)) + "\r\n"
	now := time.Now()
	tests := []struct{ name, head string }{
		{"unknown access key", sigv4Head(e.addr, "AKIDUNKNOWN", now, garbage, 1000, "")},
		{"stale date", sigv4Head(e.addr, "AKIDGOOD", now.Add(-time.Hour), garbage, 1000, "")},
		{"known key, garbage signature over a claimed body hash", sigv4Head(e.addr, "AKIDGOOD", now, garbage, 1000, claimed)},
		{"unsigned payload", sigv4Head(e.addr, "AKIDGOOD", now, garbage, 1000, "X-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n")},
		{"body over the limit", sigv4Head(e.addr, "AKIDGOOD", now, garbage, 2<<20, "")},
		{"wrong bearer token", "POST /@broadcast HTTP/1.1\r\nHost: " + e.addr + "\r\nAuthorization: Bearer guess\r\nContent-Length: 1000\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, done := rawMgmt(t, e.addr, tt.head)
			switch got := (<-done).(type) {
			case *http.Response:
				if got.StatusCode != http.StatusForbidden {
					t.Errorf("status %d, want 403", got.StatusCode)
				}
			case error:
				t.Errorf("no answer before the body: %v", got)
			}
		})
	}
	e.assertUnharmed(t)
}

// A body sent a byte at a time is cut off after limits.handshakeTimeout,
// with or without credentials configured, instead of holding its
// connection for as long as the sender likes.
func TestHostileSlowManagementBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		head       func(addr string) string
		want       int // the answer, when the connection is not reset first
	}{
		{"known key, garbage signature", "management: {accessKeys: {AKIDGOOD: good-secret}}\n",
			func(addr string) string {
				return sigv4Head(addr, "AKIDGOOD", time.Now(), strings.Repeat("0", 64), 1000, "")
			}, http.StatusRequestTimeout},
		{"bearer token", "management: {tokens: [the-token]}\n",
			func(addr string) string {
				return "POST /@broadcast HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer the-token\r\nContent-Length: 1000\r\n\r\n"
			}, http.StatusBadRequest},
		{"no credentials", "",
			func(addr string) string {
				return "POST /@broadcast HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 1000\r\n\r\n"
			}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := startHostile(t, tt.yaml+"limits: {handshakeTimeout: 1s}\n", nil)
			conn, done := rawMgmt(t, e.addr, tt.head(e.addr))
			// One byte every 100 ms: the 1000 bytes would take 100 s. The
			// exchange must end long before: when it ends, the rest of the
			// body has not been sent.
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			giveUp := time.After(30 * time.Second)
			for sent := 0; ; {
				select {
				case got := <-done:
					if resp, ok := got.(*http.Response); ok && resp.StatusCode != tt.want {
						t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
					}
					if sent >= 1000 {
						t.Errorf("the whole body was read")
					}
					e.assertUnharmed(t)
					return
				case <-tick.C:
					if _, err := conn.Write([]byte("x")); err == nil {
						sent++
					}
				case <-giveUp:
					t.Fatalf("after 30 s and %d bytes the slow body still holds its connection", sent)
				}
			}
		})
	}
}

// scrapeWith fetches /metrics with a bearer token.
func scrapeWith(t *testing.T, base, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// Refused management requests are counted by reason.
func TestManagementAuthFailuresCounted(t *testing.T) {
	t.Parallel()
	e := startHostile(t, "management: {accessKeys: {AKIDGOOD: good-secret}, tokens: [the-token]}\n", nil)
	base := e.srv.HTTP
	get := func(header http.Header) int { return mgmtRequest(t, "GET", base+"/@connections", "", header, "") }
	for range 3 {
		get(nil)
	}
	get(http.Header{"Authorization": {"Bearer guess"}})
	get(http.Header{"Authorization": {"AWS4-HMAC-SHA256 garbage"}})
	head := func(akid string, at time.Time, extra string) {
		_, done := rawMgmt(t, e.addr, sigv4Head(e.addr, akid, at, strings.Repeat("0", 64), 1, extra))
		if resp, ok := (<-done).(*http.Response); !ok || resp.StatusCode != http.StatusForbidden {
			t.Errorf("forged SigV4 request answered %v, want 403", resp)
		}
	}
	head("AKIDOTHER", time.Now(), "")
	head("AKIDGOOD", time.Now().Add(-time.Hour), "")
	head("AKIDGOOD", time.Now(), "X-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n")
	head("AKIDGOOD", time.Now(), "X-Amz-Content-Sha256: "+sha256hex("x")+"\r\n")

	m := scrapeWith(t, base, "the-token")
	for reason, want := range map[string]float64{
		"missing": 3, "unknown_key": 2, "malformed": 1, "stale": 1, "unsigned_payload": 1, "bad_signature": 1, "cross_origin": 0,
	} {
		if got := value(m, "switchboard_management_auth_failures_total", "reason", reason); got != want {
			t.Errorf("switchboard_management_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	e.assertUnharmed(t)
}
