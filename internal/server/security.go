package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/auth/jwtauth"
	"github.com/switchboard-gateway/switchboard/internal/auth/lambdaauth"
	"github.com/switchboard-gateway/switchboard/internal/auth/sigv4"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration/invoke"
	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
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
		a, err := jwtauth.New(ctx, jwtauth.Options{
			TokenSources: ac.TokenSources, JWKSURL: ac.JWKSURL, PEMKeys: pems,
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

// protect wraps the management API and the dashboard with the configured
// credentials. The dashboard's live tail is an EventSource, which cannot set
// headers, so an access_token query parameter stands for a bearer token on
// /_/ paths only.
func (s *Server) protect(next http.Handler) (http.Handler, error) {
	m := s.cfg.Management
	if !m.Protected() {
		return next, nil
	}
	v, err := sigv4.New(sigv4.Options{Credentials: m.AccessKeys, BearerTokens: m.Tokens, Region: m.Region})
	if err != nil {
		return nil, fmt.Errorf("management credentials: %w", err)
	}
	guarded := v.Middleware(next, nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("access_token"); tok != "" && r.Header.Get("Authorization") == "" && strings.HasPrefix(r.URL.Path, "/_/") {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		guarded.ServeHTTP(w, r)
	}), nil
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

// ConfigureHTTP applies the handshake limits to an http.Server that serves
// this server's handlers.
func (s *Server) ConfigureHTTP(hs *http.Server) {
	l := s.cfg.Limits
	hs.ReadHeaderTimeout = time.Duration(l.HandshakeTimeout) // negative: net/http sets no timeout
	if l.HandshakeTimeout == 0 {
		hs.ReadHeaderTimeout = DefaultHandshakeTimeout
	}
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
