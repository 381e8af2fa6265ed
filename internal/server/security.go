package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/auth/jwtauth"
	"github.com/switchboard-gateway/switchboard/internal/auth/lambdaauth"
	"github.com/switchboard-gateway/switchboard/internal/auth/sigv4"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration/invoke"
	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/sqs"
)

// ErrExposed is returned by CheckExposure for an unprotected management API
// on a non-loopback address.
var ErrExposed = errors.New("server: the management API would be reachable from the network without credentials")

// authorizer builds the $connect authorizer, if the config names one.
func (b *builder) authorizer(ctx context.Context) (gateway.Authorizer, error) {
	name := b.cfg.Routes["$connect"].Authorizer
	if name == "" {
		return nil, nil
	}
	ac := b.cfg.Authorizers[name]
	switch ac.Type {
	case "jwt":
		pems := append([]string(nil), ac.PEMKeys...)
		for _, f := range ac.PEMFiles {
			if !filepath.IsAbs(f) {
				f = filepath.Join(b.cfg.Dir, f)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("authorizer %q: %w", name, err)
			}
			pems = append(pems, string(data))
		}
		var jwks []byte
		if f := ac.JWKSFile; f != "" {
			if !filepath.IsAbs(f) {
				f = filepath.Join(b.cfg.Dir, f)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("authorizer %q: %w", name, err)
			}
			if len(data) == 0 {
				return nil, fmt.Errorf("authorizer %q: jwksFile %s is empty", name, f)
			}
			jwks = data
		}
		a, err := jwtauth.New(ctx, jwtauth.Options{
			TokenSources: ac.TokenSources, JWKSURL: ac.JWKSURL, JWKS: jwks, PEMKeys: pems,
			Issuer: ac.Issuer, Audience: ac.Audience, TokenUse: ac.TokenUse,
			Leeway: time.Duration(ac.Leeway), PrincipalClaim: ac.PrincipalClaim,
		})
		if err != nil {
			return nil, fmt.Errorf("authorizer %q: %w", name, err)
		}
		b.closers = append(b.closers, closerFunc(func() error { a.Close(); return nil }))
		return a, nil
	case "lambda":
		invoke, err := b.rawInvoker(ac)
		if err != nil {
			return nil, fmt.Errorf("authorizer %q: %w", name, err)
		}
		a, err := lambdaauth.New(lambdaauth.Options{
			Invoke: invoke, IdentitySources: ac.IdentitySources, TTL: time.Duration(ac.TTL),
		})
		if err != nil {
			return nil, fmt.Errorf("authorizer %q: %w", name, err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("authorizer %q: unknown type %q", name, ac.Type)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// rawInvoker runs a Lambda authorizer: a hosted function, a function behind
// the Lambda Invoke API, or a URL that receives the event by POST and answers
// with the authorizer's result.
func (b *builder) rawInvoker(ac config.Authorizer) (func(context.Context, []byte) ([]byte, error), error) {
	if ic := ac.Invoke; ic != nil {
		in, err := invoke.New(context.Background(), invoke.Options{
			Endpoint: ic.Endpoint, Function: ic.Function, Qualifier: ic.Qualifier, Region: ic.Region,
		})
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, in)
		return func(ctx context.Context, event []byte) ([]byte, error) {
			out, err := in.InvokeRaw(ctx, event)
			var fe *invoke.FunctionError
			if errors.As(err, &fe) {
				return json.Marshal(map[string]string{"errorMessage": fe.Message, "errorType": fe.Type})
			}
			return out, err
		}, nil
	}
	if ac.Function != "" {
		f, err := b.function(ac.Function)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, event []byte) ([]byte, error) {
			out, err := f.InvokeRaw(ctx, event)
			var fe *lambdahost.FunctionError
			if errors.As(err, &fe) {
				// The function threw: hand its error payload to the authorizer,
				// which reads "Unauthorized" as 401 and anything else as 500.
				return json.Marshal(map[string]string{"errorMessage": fe.Message, "errorType": fe.Type})
			}
			return out, err
		}, nil
	}
	client := &http.Client{}
	return func(ctx context.Context, event []byte) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ac.URL, bytes.NewReader(event))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("authorizer %s: %w", ac.URL, err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(io.LimitReader(resp.Body, lambdaauth.MaxOutputBytes+1))
		if err != nil {
			return nil, fmt.Errorf("authorizer %s: %w", ac.URL, err)
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("authorizer %s: %s", ac.URL, resp.Status)
		}
		return out, nil
	}, nil
}

// Errors a management request is refused with when no credentials are
// configured; the answer is 403 ForbiddenException, as for a bad signature.
var (
	// ErrCrossOrigin: the request came from a browser page of another
	// origin (an Origin other than the gateway's own, or Sec-Fetch-Site:
	// cross-site), which could otherwise drive the API through the
	// user's browser.
	ErrCrossOrigin = errors.New("server: management request from a page of another origin")
	// ErrHostNotAllowed: the Host header is a name other than localhost or
	// one of management.allowedHosts (an IP address is fine), as a page
	// whose name its owner rebound to the gateway's address sends.
	ErrHostNotAllowed = errors.New("server: management request for a host that is not allowed")
)

// guard is the front door of the management API, the dashboard, /metrics
// and /debug/pprof. With credentials configured it verifies them (SigV4 or
// a bearer token); without, it refuses what a browser page of another site
// can send: a request from another origin, or for a host name that is not
// loopback or allowed (DNS rebinding). Same-machine tools (curl, the AWS
// SDKs, the CLI), which send no Origin, and the dashboard, which the
// gateway serves from its own origin, pass.
//
// It also bounds the time a request's body may take to arrive, from when
// the headers were read: a caller cannot hold a connection open by sending
// a body slowly. Every refusal is counted by reason in the metrics and
// logged, at most once a second per reason.
type guard struct {
	next        http.Handler
	verifier    *sigv4.Verifier // nil: no credentials are configured
	lambda      *sigv4.Verifier // the same credentials, for the Lambda Invoke API (service lambda)
	events      *sigv4.Verifier // the same credentials, for PutEvents (service events)
	sqs         *sigv4.Verifier // the same credentials, for the SQS API (service sqs)
	hosts       map[string]bool // management.allowedHosts, lower-case
	bodyTimeout time.Duration   // zero or less: none
	metrics     *metrics.Metrics
	log         *refusalLog
	// login signs browsers in to the dashboard when credentials are
	// configured (nil otherwise); creds are those it checks, so that a
	// Reload that keeps them keeps its sessions.
	login *dashboard.Login
	creds config.Management
}

// lambdaAPIPrefix starts the paths of the Lambda Invoke API.
const lambdaAPIPrefix = "/2015-03-31/"

// protect wraps the management API and the dashboard in their guard. The
// dashboard's live tail is an EventSource, which cannot set headers, so an
// access_token query parameter stands for a bearer token on /_/ paths only.
func (s *Server) protect(next http.Handler, m *metrics.Metrics) (*guard, error) {
	mc := s.cfg.Management
	g := &guard{
		next:        next,
		hosts:       make(map[string]bool, len(mc.AllowedHosts)),
		bodyTimeout: HandshakeTimeout(s.cfg.Limits),
		metrics:     m,
		log:         newRefusalLog(s.log),
	}
	for _, h := range mc.AllowedHosts {
		g.hosts[normalHost(h)] = true
	}
	if mc.Protected() {
		v, err := sigv4.New(sigv4.Options{Credentials: mc.AccessKeys, BearerTokens: mc.Tokens, Region: mc.Region})
		if err != nil {
			return nil, fmt.Errorf("management credentials: %w", err)
		}
		g.verifier = v
		if g.lambda, err = sigv4.New(sigv4.Options{Credentials: mc.AccessKeys, BearerTokens: mc.Tokens, Region: mc.Region, Service: "lambda"}); err != nil {
			return nil, fmt.Errorf("management credentials: %w", err)
		}
		if g.events, err = sigv4.New(sigv4.Options{Credentials: mc.AccessKeys, BearerTokens: mc.Tokens, Region: mc.Region, Service: "events"}); err != nil {
			return nil, fmt.Errorf("management credentials: %w", err)
		}
		if g.sqs, err = sigv4.New(sigv4.Options{Credentials: mc.AccessKeys, BearerTokens: mc.Tokens, Region: mc.Region, Service: "sqs"}); err != nil {
			return nil, fmt.Errorf("management credentials: %w", err)
		}
		g.creds = config.Management{AccessKeys: mc.AccessKeys, Tokens: mc.Tokens}
		if prev := s.guarded.Load(); prev != nil && prev.guard.login != nil && reflect.DeepEqual(prev.guard.creds, g.creds) {
			g.login = prev.guard.login // the same credentials: the sessions stay
		} else {
			g.login = dashboard.NewLogin(dashboard.LoginOptions{
				Check: checkCredentials(mc),
				SameOrigin: func(r *http.Request) bool {
					return len(r.Header["Origin"]) == 1 && sameOrigin(r.Header.Get("Origin"), r)
				},
				Tokens:     len(mc.Tokens) > 0,
				AccessKeys: len(mc.AccessKeys) > 0,
				Refused:    g.loginRefused,
			})
		}
	}
	return g, nil
}

// checkCredentials returns the dashboard sign-in's check against the
// management credentials: every configured token or key is compared, in
// constant time, whatever matched; hashing first makes the comparisons
// independent of the lengths.
func checkCredentials(mc config.Management) func(dashboard.Credentials) bool {
	type key struct{ id, secret [sha256.Size]byte }
	tokens := make([][sha256.Size]byte, 0, len(mc.Tokens))
	for _, t := range mc.Tokens {
		tokens = append(tokens, sha256.Sum256([]byte(t)))
	}
	keys := make([]key, 0, len(mc.AccessKeys))
	for id, secret := range mc.AccessKeys {
		keys = append(keys, key{sha256.Sum256([]byte(id)), sha256.Sum256([]byte(secret))})
	}
	return func(c dashboard.Credentials) bool {
		ok := 0
		if c.Token != "" {
			h := sha256.Sum256([]byte(c.Token))
			for _, t := range tokens {
				ok |= subtle.ConstantTimeCompare(h[:], t[:])
			}
		}
		if c.AccessKeyID != "" && c.SecretAccessKey != "" {
			id, secret := sha256.Sum256([]byte(c.AccessKeyID)), sha256.Sum256([]byte(c.SecretAccessKey))
			for _, k := range keys {
				ok |= subtle.ConstantTimeCompare(id[:], k.id[:]) & subtle.ConstantTimeCompare(secret[:], k.secret[:])
			}
		}
		return ok == 1
	}
}

// loginRefused counts and logs a refusal of the dashboard's sign-in.
func (g *guard) loginRefused(r *http.Request, reason dashboard.Refusal) {
	var (
		label metrics.AuthRefusal
		err   error
	)
	switch reason {
	case dashboard.RefusedCredentials:
		label, err = metrics.AuthLoginFailed, errors.New("dashboard sign-in: credentials not accepted")
	case dashboard.RefusedRate:
		label, err = metrics.AuthLoginRate, errors.New("dashboard sign-in: too many attempts from this address")
	default:
		label, err = metrics.AuthCrossOrigin, fmt.Errorf("%w: Origin %q, Host %q", ErrCrossOrigin, r.Header.Get("Origin"), r.Host)
	}
	g.metrics.AuthRefused(label)
	g.log.refused(label, r, err)
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.serve(w, r, g.next) }

// serve lets r through to next, or refuses it.
func (g *guard) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if g.bodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
		// Only a request with a body gets a read deadline: a long-lived
		// response without one (the tail) must not see its connection's
		// background read time out.
		// The controller is made where it is used, on the stack: one
		// allocation per request less.
		if http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.bodyTimeout)) == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, w: w}
		}
	}
	if g.verifier == nil {
		if err := g.sameSite(r); err != nil {
			reason := metrics.AuthCrossOrigin
			if errors.Is(err, ErrHostNotAllowed) {
				reason = metrics.AuthHost
			}
			g.refuse(w, r, reason, err)
			return
		}
		next.ServeHTTP(w, r)
		return
	}
	if g.login != nil && (r.URL.Path == "/_" || strings.HasPrefix(r.URL.Path, "/_/")) && g.login.Serve(w, r, next) {
		return // the sign-in, its page, or a request of a signed-in dashboard
	}
	if strings.HasPrefix(r.URL.Path, "/_/") && r.Header.Get("Authorization") == "" {
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	v := g.verifier
	if strings.HasPrefix(r.URL.Path, lambdaAPIPrefix) {
		v = g.lambda // the Lambda SDKs sign for the service "lambda"
	} else if awsJSONTarget(r) && strings.HasPrefix(r.Header.Get("X-Amz-Target"), eventbridge.TargetPrefix) {
		v = g.events // the EventBridge SDKs sign for the service "events"
	} else if awsJSONTarget(r) && strings.HasPrefix(r.Header.Get("X-Amz-Target"), sqs.TargetPrefix) {
		v = g.sqs // the SQS SDKs sign for the service "sqs"
	}
	if err := v.Verify(r); err != nil {
		g.refuse(w, r, refusalReason(err), err)
		return
	}
	next.ServeHTTP(w, r)
}

// refuse counts, logs and answers a refused request: 408 when its body did
// not arrive in time, else 403 ForbiddenException. A refused request's
// connection is not kept alive when it has a body.
func (g *guard) refuse(w http.ResponseWriter, r *http.Request, reason metrics.AuthRefusal, err error) {
	g.metrics.AuthRefused(reason)
	g.log.refused(reason, r, err)
	if r.ContentLength != 0 {
		// Close rather than read the rest of a refused request's body, which
		// net/http would otherwise wait for before answering.
		w.Header().Set("Connection", "close")
	}
	if reason == metrics.AuthBodyTimeout {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestTimeout)
		_, _ = io.WriteString(w, `{"message":"Request Timeout"}`)
		return
	}
	sigv4.Deny(w, err)
}

// refusalReason maps a sigv4 error to its metric label.
func refusalReason(err error) metrics.AuthRefusal {
	switch {
	case errors.Is(err, sigv4.ErrBodyUnread) && errors.Is(err, os.ErrDeadlineExceeded):
		return metrics.AuthBodyTimeout
	case errors.Is(err, sigv4.ErrMissing):
		return metrics.AuthMissing
	case errors.Is(err, sigv4.ErrUnknownKey):
		return metrics.AuthUnknownKey
	case errors.Is(err, sigv4.ErrBadSignature):
		return metrics.AuthBadSignature
	case errors.Is(err, sigv4.ErrStale):
		return metrics.AuthStale
	case errors.Is(err, sigv4.ErrUnsignedPayload):
		return metrics.AuthUnsignedPayload
	case errors.Is(err, sigv4.ErrTooLarge):
		return metrics.AuthTooLarge
	}
	return metrics.AuthMalformed // ErrMalformed, and a body that failed to arrive
}

// sameSite refuses, for the credential-less API, what only a browser page
// of another site sends: a Host name that is not loopback or allowed, an
// Origin that is not the gateway's own, or Sec-Fetch-Site: cross-site.
// A request without those headers (curl, the SDKs, the CLI) passes.
func (g *guard) sameSite(r *http.Request) error {
	if !g.hostAllowed(r.Host) {
		return fmt.Errorf("%w: Host %q", ErrHostNotAllowed, r.Host)
	}
	// net/http stores header names in canonical form: looked up as such,
	// the names need no canonicalising per request.
	origins := r.Header["Origin"]
	if len(origins) > 1 || len(origins) == 1 && !sameOrigin(origins[0], r) {
		return fmt.Errorf("%w: Origin %q, Host %q", ErrCrossOrigin, strings.Join(origins, ", "), r.Host)
	}
	if sites := r.Header["Sec-Fetch-Site"]; len(sites) > 0 && strings.EqualFold(sites[0], "cross-site") {
		return fmt.Errorf("%w: Sec-Fetch-Site %s", ErrCrossOrigin, sites[0])
	}
	return nil
}

// hostAllowed accepts localhost, any IP address (a name can be made to
// resolve to loopback by its owner; an address cannot be renamed), the
// configured names, and no Host at all (HTTP/1.0 tools; browsers always
// send one).
func (g *guard) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	h, _ := splitHostPort(hostport, "")
	if h == "localhost" || g.hosts[h] {
		return true
	}
	_, err := netip.ParseAddr(h)
	return err == nil
}

// sameOrigin reports whether origin (scheme://host[:port]) names the host
// and port the request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return false // "null" (sandboxed frames, file: pages) included
	}
	oh, op := splitHostPort(u.Host, defaultPort(u.Scheme))
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	rh, rp := splitHostPort(r.Host, defaultPort(scheme))
	return oh == rh && op == rp
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// splitHostPort splits a Host header or URL host into a normalised host
// name (lower case, no brackets, no trailing dot) and port (def when none).
func splitHostPort(hostport, def string) (host, port string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), def
	}
	return normalHost(host), port
}

func normalHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// deadlineBody lifts the connection's read deadline once the body has been
// read to its end, so that the rest of the exchange is not cut short.
type deadlineBody struct {
	io.ReadCloser
	w    http.ResponseWriter
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = http.NewResponseController(b.w).SetReadDeadline(time.Time{}) // supported: it was set
	}
	return n, err
}

// refusalLog logs refused management requests, at most one line per reason
// per interval; the next line tells how many were left out meanwhile. A
// caller that floods the API with bad requests cannot flood the log.
type refusalLog struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	last       map[metrics.AuthRefusal]time.Time
	suppressed map[metrics.AuthRefusal]int
}

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{log: log, every: time.Second, now: time.Now,
		last: map[metrics.AuthRefusal]time.Time{}, suppressed: map[metrics.AuthRefusal]int{}}
}

func (l *refusalLog) refused(reason metrics.AuthRefusal, r *http.Request, err error) {
	l.mu.Lock()
	now := l.now()
	if last, ok := l.last[reason]; ok && now.Sub(last) < l.every {
		l.suppressed[reason]++
		l.mu.Unlock()
		return
	}
	n := l.suppressed[reason]
	l.last[reason], l.suppressed[reason] = now, 0
	l.mu.Unlock()
	// The query is left out: it may carry a dashboard token.
	args := []any{"reason", string(reason), "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "err", err}
	if n > 0 { // zero means none: no field
		args = append(args, "suppressed", n)
	}
	l.log.Warn("management request refused", args...)
}

// CheckExposure refuses an unprotected management API on an address other
// than loopback, unless the config allows it explicitly.
func (s *Server) CheckExposure(addr string) error {
	if s.cfg.Management.Protected() || s.cfg.Management.AllowUnauthenticated {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w on %s: set management.accessKeys or management.tokens (or SWITCHBOARD_MANAGEMENT_KEYS / SWITCHBOARD_MANAGEMENT_TOKEN), serve it on a loopback management.listen, or pass --insecure-management", ErrExposed, addr)
}

// Handshake limits of the HTTP listener, unless configured.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHeaderBytes   = 16 << 10
)

// noHeaderCap is maxHeaderBytes: unlimited. net/http reads a non-positive
// MaxHeaderBytes as its own default (1 MB), so "no cap" is a cap no header
// reaches.
const noHeaderCap = 1 << 30

// HandshakeTimeout is limits.handshakeTimeout in force: the bound on an
// upgrade request's headers, a management request's body and a
// connection's first byte. Negative: none.
func HandshakeTimeout(l config.Limits) time.Duration {
	return cmp.Or(time.Duration(l.HandshakeTimeout), DefaultHandshakeTimeout)
}

// ConfigureHTTP applies the handshake limits to an http.Server that serves
// this server's handlers.
func (s *Server) ConfigureHTTP(hs *http.Server) {
	l := s.cfg.Limits
	hs.ReadHeaderTimeout = HandshakeTimeout(l) // negative: net/http sets no timeout
	switch {
	case l.MaxHeaderBytes == 0:
		hs.MaxHeaderBytes = DefaultMaxHeaderBytes
	case l.MaxHeaderBytes < 0:
		hs.MaxHeaderBytes = noHeaderCap
	default:
		hs.MaxHeaderBytes = int(min(l.MaxHeaderBytes, noHeaderCap))
	}
	hs.IdleTimeout = 2 * time.Minute // idle keep-alive management clients
}
