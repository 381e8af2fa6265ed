package dashboard_test

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/dashboard"
)

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const (
	testOrigin = "http://gw.test"
	testToken  = "t0ken"
)

// loginFixture is a Login in front of a handler that records what reached it.
type loginFixture struct {
	login   *dashboard.Login
	clock   *clock
	mu      sync.Mutex
	reached []string // "METHOD path" of the requests that got through
	refused []dashboard.Refusal
}

func newLoginFixture(t *testing.T, opts dashboard.LoginOptions) *loginFixture {
	t.Helper()
	f := &loginFixture{clock: &clock{now: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}}
	opts.Check = func(c dashboard.Credentials) bool {
		return c.Token == testToken || c.AccessKeyID == "AKID" && c.SecretAccessKey == "secret"
	}
	opts.SameOrigin = func(r *http.Request) bool { return r.Header.Get("Origin") == testOrigin }
	opts.Tokens, opts.AccessKeys = true, true
	opts.Now = f.clock.Now
	opts.Refused = func(_ *http.Request, reason dashboard.Refusal) {
		f.mu.Lock()
		f.refused = append(f.refused, reason)
		f.mu.Unlock()
	}
	f.login = dashboard.NewLogin(opts)
	return f
}

// do runs one request through the login; a request it leaves alone gets
// 299 "left", as the caller's credential check would take it.
func (f *loginFixture) do(method, target string, form url.Values, header http.Header) *http.Response {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "http://gw.test"+target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reached = append(f.reached, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		_, _ = io.WriteString(w, "reached")
	})
	if !f.login.Serve(rec, req, next) {
		rec.WriteHeader(299)
		_, _ = io.WriteString(rec, "left")
	}
	return rec.Result()
}

// signIn signs in with form and returns the session cookie.
func (f *loginFixture) signIn(t *testing.T, form url.Values) *http.Cookie {
	t.Helper()
	resp := f.do("POST", "/_/login", form, http.Header{"Origin": {testOrigin}})
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "./" {
		t.Fatalf("POST /_/login: %d Location %q, want 303 ./; body %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == dashboard.SessionCookie {
			return c
		}
	}
	t.Fatalf("POST /_/login set no %s cookie: %v", dashboard.SessionCookie, resp.Header["Set-Cookie"])
	return nil
}

func withCookie(c *http.Cookie, h http.Header) http.Header {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Cookie", c.Name+"="+c.Value)
	return h
}

// A browser without a session gets the sign-in page, never JSON; API
// calls and requests that carry credentials are left to the guard.
func TestLoginPageWithoutSession(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{})
	tests := []struct {
		name, method, path string
		header             http.Header
		want               int // 299: left to the caller
	}{
		{"the dashboard", "GET", "/_/", nil, http.StatusUnauthorized},
		{"the chat page", "GET", "/_/chat", nil, http.StatusUnauthorized},
		{"the sign-in page itself", "GET", "/_/login", nil, http.StatusOK},
		{"an API call", "GET", "/_/api/stats", nil, 299},
		{"an API POST", "POST", "/_/api/broadcast", nil, 299},
		{"a bearer token", "GET", "/_/", http.Header{"Authorization": {"Bearer x"}}, 299},
		{"a token in the query", "GET", "/_/api/tail?access_token=x", nil, 299},
		{"a presigned URL", "GET", "/_/?X-Amz-Signature=00", nil, 299},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := f.do(tt.method, tt.path, nil, tt.header)
			body := readAll(t, resp)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
			if tt.want == 299 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q, want HTML", ct)
			}
			for _, want := range []string{`<form class="action" id="token-login" method="post" action="login"`, `name="accessKeyId"`, "12 hours"} {
				if !strings.Contains(body, want) {
					t.Errorf("the sign-in page lacks %q", want)
				}
			}
			if resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("headers %v: want no-store and the CSP", resp.Header)
			}
		})
	}
	// The page's stylesheet and the /_ redirect need no session.
	for _, p := range []string{"/_/style.css", "/_"} {
		if resp := f.do("GET", p, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a session: %d, want it passed on", p, resp.StatusCode)
		}
	}
}

// A session cookie: random 256 bits, HttpOnly, SameSite=Strict, Path=/_/,
// Max-Age of the TTL, Secure over TLS.
func TestLoginCookieAttributes(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{})
	for _, secure := range []bool{false, true} {
		req := httptest.NewRequest("POST", "http://gw.test/_/login", strings.NewReader("token="+testToken))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", testOrigin)
		if secure {
			req.TLS = &tls.ConnectionState{}
		}
		rec := httptest.NewRecorder()
		if !f.login.Serve(rec, req, http.NotFoundHandler()) {
			t.Fatal("POST /_/login was left to the caller")
		}
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("Set-Cookie: %v, want one cookie", rec.Header()["Set-Cookie"])
		}
		c := cookies[0]
		raw, err := base64.RawURLEncoding.DecodeString(c.Value)
		if err != nil || len(raw) != 32 {
			t.Errorf("session ID %q: %d bytes (%v), want 32", c.Value, len(raw), err)
		}
		if c.Name != dashboard.SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/_/" ||
			c.MaxAge != int(dashboard.DefaultSessionTTL/time.Second) || c.Secure != secure {
			t.Errorf("TLS %v: cookie %s, want HttpOnly, SameSite=Strict, Path=/_/, Max-Age=43200, Secure=%v", secure, rec.Header().Get("Set-Cookie"), secure)
		}
	}
	a, b := f.signIn(t, url.Values{"token": {testToken}}), f.signIn(t, url.Values{"token": {testToken}})
	if a.Value == b.Value {
		t.Errorf("two sign-ins got the same session ID %q", a.Value)
	}
}

// A session opens the dashboard and its API until it expires; then the
// sign-in page shows again and the session is gone.
func TestLoginSessionExpires(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{SessionTTL: time.Hour})
	c := f.signIn(t, url.Values{"accessKeyId": {"AKID"}, "secretAccessKey": {"secret"}})
	if c.MaxAge != 3600 {
		t.Errorf("Max-Age %d, want 3600", c.MaxAge)
	}
	for _, p := range []string{"/_/", "/_/api/connections"} {
		if resp := f.do("GET", p, nil, withCookie(c, nil)); resp.StatusCode != http.StatusOK || readAll(t, resp) != "reached" {
			t.Errorf("GET %s with the session: %d, want it passed on", p, resp.StatusCode)
		}
	}
	resp := f.do("GET", "/_/api/session", nil, withCookie(c, nil))
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"expiresAt":"2026-12-05T11:00:00Z"`) {
		t.Errorf("GET /_/api/session: %d %s, want the expiry", resp.StatusCode, body)
	}

	f.clock.advance(time.Hour - time.Second)
	if resp := f.do("GET", "/_/", nil, withCookie(c, nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("a second before expiry: %d, want the dashboard", resp.StatusCode)
	}
	f.clock.advance(time.Second)
	if resp := f.do("GET", "/_/", nil, withCookie(c, nil)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("at expiry: %d, want the sign-in page (401)", resp.StatusCode)
	}
	if resp := f.do("GET", "/_/api/connections", nil, withCookie(c, nil)); resp.StatusCode != 299 {
		t.Errorf("an API call at expiry: %d, want it left to the credential check", resp.StatusCode)
	}
	if n := f.login.Sessions(); n != 0 {
		t.Errorf("%d sessions held after expiry, want 0", n)
	}
}

// Sign-out ends the session on the server, not only in the browser.
func TestLogout(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{})
	c := f.signIn(t, url.Values{"token": {testToken}})
	if resp := f.do("GET", "/_/logout", nil, withCookie(c, nil)); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /_/logout: %d, want 405", resp.StatusCode)
	}
	if resp := f.do("POST", "/_/logout", nil, withCookie(c, nil)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /_/logout without Origin: %d, want 403", resp.StatusCode)
	}
	resp := f.do("POST", "/_/logout", nil, withCookie(c, http.Header{"Origin": {testOrigin}}))
	readAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "login" {
		t.Errorf("POST /_/logout: %d Location %q, want 303 login", resp.StatusCode, resp.Header.Get("Location"))
	}
	cleared := resp.Cookies()
	if len(cleared) != 1 || cleared[0].Name != dashboard.SessionCookie || cleared[0].MaxAge >= 0 || cleared[0].Value != "" {
		t.Errorf("Set-Cookie on sign-out: %v, want the cookie cleared", resp.Header["Set-Cookie"])
	}
	// The browser could keep the old cookie: the server no longer takes it.
	if resp := f.do("GET", "/_/", nil, withCookie(c, nil)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /_/ with the signed-out session: %d, want 401", resp.StatusCode)
	}
	if n := f.login.Sessions(); n != 0 {
		t.Errorf("%d sessions held after sign-out, want 0", n)
	}
}

// Wrong credentials show an error on the page; so does an empty form.
func TestLoginWrongCredentials(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{})
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"wrong token", url.Values{"token": {"nope"}}, http.StatusUnauthorized, "That token is not accepted by this gateway."},
		{"wrong secret", url.Values{"accessKeyId": {"AKID"}, "secretAccessKey": {"nope"}}, http.StatusUnauthorized, "That access key ID and secret are not accepted"},
		{"empty form", url.Values{"token": {""}}, http.StatusBadRequest, "Enter a token, or an access key ID and its secret."},
	}
	for _, tt := range tests {
		resp := f.do("POST", "/_/login", tt.form, http.Header{"Origin": {testOrigin}})
		body := readAll(t, resp)
		if resp.StatusCode != tt.status || !strings.Contains(body, `id="login-error"`) || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d, want %d and the page with %q", tt.name, resp.StatusCode, tt.status, tt.want)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("%s: a cookie was set: %v", tt.name, resp.Header["Set-Cookie"])
		}
	}
	if f.login.Sessions() != 0 {
		t.Errorf("sessions were made by refused sign-ins")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.refused) != 2 || f.refused[0] != dashboard.RefusedCredentials {
		t.Errorf("refusals reported: %v, want two %s", f.refused, dashboard.RefusedCredentials)
	}
}

// Sign-in attempts are limited per address: 10 a minute by default.
func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{})
	attempt := func(addr, token string) *http.Response {
		req := httptest.NewRequest("POST", "http://gw.test/_/login", strings.NewReader("token="+token))
		req.RemoteAddr = addr
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", testOrigin)
		rec := httptest.NewRecorder()
		f.login.Serve(rec, req, http.NotFoundHandler())
		return rec.Result()
	}
	for i := range 10 {
		if resp := attempt(fmt.Sprintf("192.0.2.1:%d", 40000+i), "wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	// The right token too is refused past the limit, from any port of the address.
	resp := attempt("192.0.2.1:50000", testToken)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "Too many sign-in attempts") {
		t.Errorf("11th attempt: %d Retry-After %q, want 429 and the page saying why", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if len(resp.Cookies()) != 0 {
		t.Errorf("a limited attempt got a cookie")
	}
	if resp := attempt("192.0.2.2:1", testToken); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another address: %d, want 303", resp.StatusCode)
	}
	f.clock.advance(6 * time.Second) // one attempt back every 6s
	if resp := attempt("192.0.2.1:50001", testToken); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after 6s: %d, want 303", resp.StatusCode)
	}
	if resp := attempt("192.0.2.1:50002", testToken); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right after: %d, want 429", resp.StatusCode)
	}
}

// Every POST that a session authorises, sign-in and sign-out included,
// must come from the gateway's own origin.
func TestLoginOriginCheck(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{})
	for _, origin := range []string{"", "http://evil.test", "null"} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		resp := f.do("POST", "/_/login", url.Values{"token": {testToken}}, h)
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 || !strings.Contains(body, "not sent from this gateway") {
			t.Errorf("sign-in with Origin %q: %d, want 403 and no cookie", origin, resp.StatusCode)
		}
	}
	c := f.signIn(t, url.Values{"token": {testToken}})
	resp := f.do("POST", "/_/api/broadcast", url.Values{"x": {"y"}}, withCookie(c, http.Header{"Origin": {"http://gw.test:8080"}}))
	if body := readAll(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Forbidden") {
		t.Errorf("a session's POST from another origin: %d %s, want 403", resp.StatusCode, body)
	}
	if resp := f.do("POST", "/_/api/broadcast", url.Values{"x": {"y"}}, withCookie(c, http.Header{"Origin": {testOrigin}})); resp.StatusCode != http.StatusOK {
		t.Errorf("a session's POST from its own origin: %d, want it passed on", resp.StatusCode)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reached) != 1 || f.reached[0] != "POST /_/api/broadcast" {
		t.Errorf("requests passed on: %v, want only the same-origin POST", f.reached)
	}
}

// The sessions held are bounded: past MaxSessions the one closest to its
// expiry ends.
func TestLoginSessionsBounded(t *testing.T) {
	t.Parallel()
	f := newLoginFixture(t, dashboard.LoginOptions{MaxSessions: 3, Attempts: 100})
	var cookies []*http.Cookie
	for range 5 {
		cookies = append(cookies, f.signIn(t, url.Values{"token": {testToken}}))
		f.clock.advance(time.Second)
	}
	if n := f.login.Sessions(); n != 3 {
		t.Errorf("%d sessions held, want 3", n)
	}
	for i, c := range cookies {
		want := http.StatusOK
		if i < 2 {
			want = http.StatusUnauthorized
		}
		if resp := f.do("GET", "/_/", nil, withCookie(c, nil)); resp.StatusCode != want {
			t.Errorf("session %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
}

// The zero LoginOptions sign nobody in and let no POST through.
func TestLoginZeroOptions(t *testing.T) {
	t.Parallel()
	l := dashboard.NewLogin(dashboard.LoginOptions{})
	for _, origin := range []string{"", testOrigin} {
		req := httptest.NewRequest("POST", "http://gw.test/_/login", strings.NewReader("token=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		l.Serve(rec, req, http.NotFoundHandler())
		if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
			t.Errorf("sign-in (Origin %q) with zero options: %d, want 403 and no cookie", origin, rec.Code)
		}
	}
	if l.Sessions() != 0 {
		t.Errorf("a session was made")
	}
}
