package jwtauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/auth"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The background refresh goroutine must be gone once every Authorizer is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Keys are generated once per test binary: RSA generation is slow under -race.
var (
	rsaKey   = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	rsaKey2  = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	ec256Key = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ec384Key = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	edKey    = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return must(k, err)
	})
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

const (
	issuer   = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TEST"
	clientID = "3n4b5urk1ft4fl3mg5e62d9ado"
)

// sign returns a compact JWT; kid "" leaves the header without one.
func sign(t *testing.T, m jwt.SigningMethod, k any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// claimsAt are valid Cognito-like ID token claims at time now.
func claimsAt(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":       "5f1e0a2c-user",
		"iss":       issuer,
		"aud":       clientID,
		"token_use": "id",
		"iat":       now.Add(-time.Minute).Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf encodes a public key as a JWK.
func jwkOf(kid string, pub crypto.PublicKey) map[string]any {
	j := map[string]any{"kid": kid, "use": "sig"}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		j["kty"], j["n"], j["e"] = "RSA", b64u(p.N.Bytes()), b64u(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		b, _ := p.Bytes()
		j["kty"], j["crv"], j["x"], j["y"] = "EC", p.Curve.Params().Name, b64u(b[1:1+size]), b64u(b[1+size:])
	case ed25519.PublicKey:
		j["kty"], j["crv"], j["x"] = "OKP", "Ed25519", b64u(p)
	default:
		panic(fmt.Sprintf("jwkOf(%T)", pub))
	}
	return j
}

// jwksServer serves a JWK Set that tests may change, counting requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu   sync.Mutex
	keys []map[string]any
	fail bool
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(fail bool, keys ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.keys = fail, keys
}

// standardJWKS publishes one key of each supported kind.
func standardJWKS(t *testing.T) *jwksServer {
	return newJWKSServer(t,
		jwkOf("rsa", &rsaKey().PublicKey),
		jwkOf("ec256", &ec256Key().PublicKey),
		jwkOf("ec384", &ec384Key().PublicKey),
		jwkOf("ed", edKey().Public()),
		map[string]any{"kty": "oct", "kid": "hmac", "k": b64u([]byte("secret"))}, // skipped
	)
}

func newAuthorizer(t *testing.T, opts Options) *Authorizer {
	t.Helper()
	a, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func connect(h http.Header, q url.Values) *auth.ConnectRequest {
	return &auth.ConnectRequest{ConnID: "AAAAAAAAAAAAAAA=", Header: h, Query: q, Time: time.Now()}
}

func bearerReq(tok string) *auth.ConnectRequest {
	return connect(http.Header{"Authorization": {"Bearer " + tok}}, nil)
}

func pemOf(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestAuthorizeAlgorithms(t *testing.T) {
	t.Parallel()
	srv := standardJWKS(t)
	a := newAuthorizer(t, Options{JWKSURL: srv.URL, Issuer: issuer, Audience: []string{clientID}})
	tests := []struct {
		name string
		m    jwt.SigningMethod
		key  any
		kid  string
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey(), "rsa"},
		{"RS384", jwt.SigningMethodRS384, rsaKey(), "rsa"},
		{"RS512", jwt.SigningMethodRS512, rsaKey(), "rsa"},
		{"ES256", jwt.SigningMethodES256, ec256Key(), "ec256"},
		{"ES384", jwt.SigningMethodES384, ec384Key(), "ec384"},
		{"EdDSA", jwt.SigningMethodEdDSA, edKey(), "ed"},
		{"no kid tries every fitting key", jwt.SigningMethodES256, ec256Key(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := sign(t, tt.m, tt.key, tt.kid, claimsAt(time.Now()))
			id, err := a.Authorize(context.Background(), bearerReq(tok))
			if err != nil {
				t.Fatalf("Authorize(%s token) = %v, want success", tt.name, err)
			}
			if id.Principal != "5f1e0a2c-user" || id.Context["principalId"] != "5f1e0a2c-user" {
				t.Errorf("Authorize(%s token): principal %q, principalId %v, want 5f1e0a2c-user", tt.name, id.Principal, id.Context["principalId"])
			}
		})
	}
}

func TestAuthorizePEMKeys(t *testing.T) {
	t.Parallel()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"}}, &rsaKey2().PublicKey, rsaKey2())
	if err != nil {
		t.Fatal(err)
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey)}))
	a := newAuthorizer(t, Options{
		PEMKeys:      []string{pemOf(t, edKey().Public())},
		PEMKeysByKID: map[string]string{"cert": cert, "pkcs1": pkcs1, "ec": pemOf(t, ec256Key().Public())},
	})
	now := time.Now()
	tests := []struct {
		name       string
		tok        string
		wantStatus int
	}{
		{"certificate by kid", sign(t, jwt.SigningMethodRS256, rsaKey2(), "cert", claimsAt(now)), 200},
		{"PKCS #1 by kid", sign(t, jwt.SigningMethodRS512, rsaKey(), "pkcs1", claimsAt(now)), 200},
		{"PKIX EC by kid", sign(t, jwt.SigningMethodES256, ec256Key(), "ec", claimsAt(now)), 200},
		{"unkeyed key serves a token without kid", sign(t, jwt.SigningMethodEdDSA, edKey(), "", claimsAt(now)), 200},
		{"unkeyed key serves an unknown kid", sign(t, jwt.SigningMethodEdDSA, edKey(), "other", claimsAt(now)), 200},
		{"kid names another key", sign(t, jwt.SigningMethodRS256, rsaKey(), "cert", claimsAt(now)), 401},
		{"no kid, no key of that kind", sign(t, jwt.SigningMethodES384, ec384Key(), "", claimsAt(now)), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Authorize(context.Background(), bearerReq(tt.tok))
			if got := auth.Status(err); got != tt.wantStatus {
				t.Errorf("Authorize: status %d (%v), want %d", got, err, tt.wantStatus)
			}
		})
	}
}

func TestAuthorizeRejectsForgeries(t *testing.T) {
	t.Parallel()
	srv := standardJWKS(t)
	rsaPEM := pemOf(t, &rsaKey().PublicKey)
	// The PEM key makes the HS256 key-confusion forgery meaningful: its bytes
	// are exactly what a naive verifier would use as the HMAC secret.
	a := newAuthorizer(t, Options{JWKSURL: srv.URL, PEMKeysByKID: map[string]string{"pem": rsaPEM},
		Issuer: issuer, Audience: []string{clientID}, TokenUse: "id"})
	now := time.Now()
	good := claimsAt(now)
	valid := sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", good)
	parts := strings.Split(valid, ".")
	evil := b64u(must(json.Marshal(with(good, "sub", "admin"))))

	tests := []struct {
		name, tok, reason string
	}{
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa", good), "signing algorithm not allowed"},
		{"HS256 with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), "pem", good), "signing algorithm not allowed"},
		{"HS256 with the JWK as secret", sign(t, jwt.SigningMethodHS256, must(json.Marshal(jwkOf("rsa", &rsaKey().PublicKey))), "rsa", good), "signing algorithm not allowed"},
		{"PS256 not on the list", sign(t, jwt.SigningMethodPS256, rsaKey(), "rsa", good), "signing algorithm not allowed"},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, rsaKey2(), "rotated-away", good), "unknown signing key"},
		{"kid of another key type", sign(t, jwt.SigningMethodES256, ec256Key(), "rsa", good), "signing key does not match algorithm"},
		{"right kid, wrong key", sign(t, jwt.SigningMethodRS256, rsaKey2(), "rsa", good), "bad signature"},
		{"tampered payload", parts[0] + "." + evil + "." + parts[2], "bad signature"},
		{"expired", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "exp", now.Add(-2*time.Minute).Unix())), "expired"},
		{"not yet valid", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "nbf", now.Add(5*time.Minute).Unix())), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "iat", now.Add(5*time.Minute).Unix())), "issued in the future"},
		{"no exp", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "exp", nil)), "missing exp claim"},
		{"wrong aud", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "aud", "another-client")), "wrong audience"},
		{"no aud", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "aud", nil)), "wrong audience"},
		{"wrong iss", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "iss", "https://evil.example")), "wrong issuer"},
		{"no iss", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "iss", nil)), "wrong issuer"},
		{"token_use mismatch", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "token_use", "access")), "wrong token_use"},
		{"no sub", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "sub", nil)), "missing principal claim"},
		{"empty sub", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", with(good, "sub", "")), "missing principal claim"},
		{"not a JWT", "not-a-token", "malformed"},
		{"bad base64", "eyJ!.eyJ.sig", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := a.Authorize(context.Background(), bearerReq(tt.tok))
			var de *auth.DeniedError
			if !errors.As(err, &de) || de.Status != http.StatusUnauthorized {
				t.Fatalf("Authorize(%s) = %v, want a 401 DeniedError", tt.name, err)
			}
			if want := "invalid token: " + tt.reason; de.Reason != want {
				t.Errorf("Authorize(%s) reason %q, want %q", tt.name, de.Reason, want)
			}
			for _, p := range strings.Split(tt.tok, ".") {
				if len(p) > 4 && strings.Contains(err.Error(), p) {
					t.Errorf("Authorize(%s) error %q echoes part of the token", tt.name, err)
				}
			}
		})
	}
	t.Run("the untampered token passes", func(t *testing.T) {
		t.Parallel()
		if _, err := a.Authorize(context.Background(), bearerReq(valid)); err != nil {
			t.Errorf("Authorize(valid) = %v", err)
		}
	})
}

func TestAuthorizeLeeway(t *testing.T) {
	t.Parallel()
	srv := standardJWKS(t)
	now := time.Now()
	tests := []struct {
		name   string
		leeway time.Duration
		exp    time.Duration // relative to now
		nbf    time.Duration
		want   int
	}{
		{"default leeway covers 30s past exp", 0, -30 * time.Second, 0, 200},
		{"default leeway ends at 60s", 0, -90 * time.Second, 0, 401},
		{"default leeway covers nbf 30s ahead", 0, time.Hour, 30 * time.Second, 200},
		{"negative leeway means none", -1, -30 * time.Second, 0, 401},
		{"custom leeway", 5 * time.Minute, -4 * time.Minute, 0, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAuthorizer(t, Options{JWKSURL: srv.URL, Leeway: tt.leeway})
			c := with(claimsAt(now), "exp", now.Add(tt.exp).Unix(), "iat", now.Add(-2*time.Hour).Unix())
			if tt.nbf != 0 {
				c["nbf"] = now.Add(tt.nbf).Unix()
			}
			_, err := a.Authorize(context.Background(), bearerReq(sign(t, jwt.SigningMethodES256, ec256Key(), "ec256", c)))
			if got := auth.Status(err); got != tt.want {
				t.Errorf("Authorize: status %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}

func TestAuthorizeCognitoTokens(t *testing.T) {
	t.Parallel()
	srv := standardJWKS(t)
	now := time.Now()
	idToken := sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", jwt.MapClaims{
		"sub": "aaaa-bbbb", "aud": clientID, "iss": issuer, "token_use": "id",
		"email": "ana@example.com", "email_verified": true, "cognito:username": "ana",
		"cognito:groups": []string{"admin", "users"}, "auth_time": now.Unix(),
		"address": map[string]any{"formatted": "1 Main St"}, "nickname": nil,
		"event_id": "e-1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	accessToken := sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", jwt.MapClaims{
		"sub": "aaaa-bbbb", "client_id": clientID, "iss": issuer, "token_use": "access",
		"scope": "aws.cognito.signin.user.admin", "username": "ana",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	tests := []struct {
		name, tokenUse, tok string
		principalClaim      string
		want                map[string]any // a subset of Identity.Context
		wantPrincipal       string
	}{
		{"id token", "id", idToken, "", map[string]any{
			"principalId": "aaaa-bbbb", "email": "ana@example.com", "email_verified": true,
			"cognito:groups": `["admin","users"]`, "address": `{"formatted":"1 Main St"}`,
			"auth_time": json.Number(fmt.Sprint(now.Unix())), "aud": clientID,
		}, "aaaa-bbbb"},
		{"access token matched by client_id", "access", accessToken, "", map[string]any{
			"principalId": "aaaa-bbbb", "client_id": clientID, "scope": "aws.cognito.signin.user.admin",
		}, "aaaa-bbbb"},
		{"principal from another claim", "access", accessToken, "username", map[string]any{
			"principalId": "ana", "sub": "aaaa-bbbb",
		}, "ana"},
		{"any token_use when unset", "", accessToken, "", map[string]any{"principalId": "aaaa-bbbb"}, "aaaa-bbbb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAuthorizer(t, Options{JWKSURL: srv.URL, Issuer: issuer, Audience: []string{"other", clientID},
				TokenUse: tt.tokenUse, PrincipalClaim: tt.principalClaim})
			id, err := a.Authorize(context.Background(), bearerReq(tt.tok))
			if err != nil {
				t.Fatalf("Authorize = %v", err)
			}
			if id.Principal != tt.wantPrincipal {
				t.Errorf("Principal = %q, want %q", id.Principal, tt.wantPrincipal)
			}
			for k, v := range tt.want {
				if id.Context[k] != v {
					t.Errorf("Context[%q] = %#v, want %#v", k, id.Context[k], v)
				}
			}
			if _, ok := id.Context["nickname"]; ok {
				t.Errorf("Context has the null claim nickname: %#v", id.Context)
			}
			for k, v := range id.Context {
				switch v.(type) {
				case string, bool, json.Number:
				default:
					t.Errorf("Context[%q] is a %T, want string, bool or json.Number", k, v)
				}
			}
		})
	}
	t.Run("access token refused as id token", func(t *testing.T) {
		t.Parallel()
		a := newAuthorizer(t, Options{JWKSURL: srv.URL, Audience: []string{clientID}, TokenUse: "id"})
		_, err := a.Authorize(context.Background(), bearerReq(accessToken))
		var de *auth.DeniedError
		if !errors.As(err, &de) || de.Reason != "invalid token: wrong token_use" {
			t.Errorf("Authorize(access token) = %v, want wrong token_use", err)
		}
	})
}

func TestAuthorizeTokenSources(t *testing.T) {
	t.Parallel()
	srv := standardJWKS(t)
	good := sign(t, jwt.SigningMethodES384, ec384Key(), "ec384", claimsAt(time.Now()))
	bad := sign(t, jwt.SigningMethodES384, ec384Key(), "ec384", with(claimsAt(time.Now()), "exp", int64(1)))
	tests := []struct {
		name        string
		sources     []string
		header      http.Header
		query       url.Values
		wantStatus  int
		wantSubprot string
	}{
		{"default: bearer header", nil, http.Header{"Authorization": {"Bearer " + good}}, nil, 200, ""},
		{"default: scheme in any case", nil, http.Header{"Authorization": {"bEaReR   " + good}}, nil, 200, ""},
		{"default: header without scheme", nil, http.Header{"Authorization": {good}}, nil, 200, ""},
		{"default: query token", nil, nil, url.Values{"token": {good}}, 200, ""},
		{"default: header wins over query", nil, http.Header{"Authorization": {"Bearer " + bad}}, url.Values{"token": {good}}, 401, ""},
		{"default: no token", nil, http.Header{"Authorization": {"Bearer "}}, url.Values{"other": {good}}, 401, ""},
		{"default: subprotocol not a source", nil, http.Header{"Sec-Websocket-Protocol": {"bearer, " + good}}, nil, 401, ""},
		{"custom header", []string{"header:X-Auth"}, http.Header{"X-Auth": {good}}, nil, 200, ""},
		{"custom query", []string{"query:access_token"}, nil, url.Values{"access_token": {good}}, 200, ""},
		{"subprotocol marker", []string{"subprotocol"}, http.Header{"Sec-Websocket-Protocol": {"bearer, " + good}}, nil, 200, "bearer"},
		{"subprotocol marker any case", []string{"subprotocol"}, http.Header{"Sec-Websocket-Protocol": {"Bearer," + good}}, nil, 200, "Bearer"},
		{"subprotocol with an app protocol", []string{"subprotocol"}, http.Header{"Sec-Websocket-Protocol": {"graphql-ws, bearer, " + good}}, nil, 200, "graphql-ws"},
		{"subprotocol over several lines", []string{"subprotocol"}, http.Header{"Sec-Websocket-Protocol": {"bearer", good, "chat.v2"}}, nil, 200, "chat.v2"},
		{"subprotocol token alone is echoed", []string{"subprotocol"}, http.Header{"Sec-Websocket-Protocol": {good}}, nil, 200, good},
		{"subprotocol token without marker", []string{"subprotocol"}, http.Header{"Sec-Websocket-Protocol": {"chat.v1.example, " + good}}, nil, 200, "chat.v1.example"},
		{"subprotocol without a token", []string{"subprotocol"}, http.Header{"Sec-Websocket-Protocol": {"chat.v1.example, bearer"}}, nil, 401, ""},
		{"subprotocol after an empty header", []string{"header:Authorization", "subprotocol"}, http.Header{"Sec-Websocket-Protocol": {"bearer, " + good}}, nil, 200, "bearer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newAuthorizer(t, Options{JWKSURL: srv.URL, TokenSources: tt.sources})
			id, err := a.Authorize(context.Background(), connect(tt.header, tt.query))
			if got := auth.Status(err); got != tt.wantStatus {
				t.Fatalf("Authorize: status %d (%v), want %d", got, err, tt.wantStatus)
			}
			if err == nil && id.Subprotocol != tt.wantSubprot {
				t.Errorf("Subprotocol = %q, want %q", id.Subprotocol, tt.wantSubprot)
			}
		})
	}
}

// fakeClock is a settable clock shared by an Authorizer and its test.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestJWKSRefetch(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwkOf("k1", &rsaKey().PublicKey))
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	a := newAuthorizer(t, Options{JWKSURL: srv.URL, RefreshInterval: -1, now: clock.now})
	authorize := func(kid string, key any, m jwt.SigningMethod) error {
		_, err := a.Authorize(context.Background(), bearerReq(sign(t, m, key, kid, claimsAt(clock.now()))))
		return err
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("after New: %d JWKS fetches, want 1", got)
	}
	if err := authorize("k1", rsaKey(), jwt.SigningMethodRS256); err != nil {
		t.Fatalf("Authorize(k1) = %v", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("after a known kid: %d JWKS fetches, want 1 (cached)", got)
	}

	// The provider rotates to k2 right after New: within the rate-limit
	// window the new kid is refused without a fetch.
	srv.set(false, jwkOf("k1", &rsaKey().PublicKey), jwkOf("k2", ec256Key().Public()))
	if err := authorize("k2", ec256Key(), jwt.SigningMethodES256); auth.Status(err) != 401 {
		t.Fatalf("Authorize(k2) inside the window = %v, want 401", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("unknown kid inside the window: %d JWKS fetches, want 1", got)
	}

	// Past the window the unknown kid triggers one refetch, which finds it.
	clock.advance(11 * time.Second)
	if err := authorize("k2", ec256Key(), jwt.SigningMethodES256); err != nil {
		t.Fatalf("Authorize(k2) after the window = %v, want success after a refetch", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("after the refetch: %d JWKS fetches, want 2", got)
	}

	// A burst of invented kids, all at once, costs at most one fetch.
	clock.advance(11 * time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		tok := sign(t, jwt.SigningMethodRS256, rsaKey(), fmt.Sprintf("invented-%d", i), claimsAt(clock.now()))
		wg.Go(func() { _, errs[i] = a.Authorize(context.Background(), bearerReq(tok)) })
	}
	wg.Wait()
	for i, err := range errs {
		var de *auth.DeniedError
		if !errors.As(err, &de) || de.Status != 401 || de.Reason != "invalid token: unknown signing key" {
			t.Errorf("burst token %d: %v, want 401 unknown signing key", i, err)
		}
	}
	if got := srv.hits.Load(); got != 3 {
		t.Errorf("after a burst of 50 unknown kids: %d JWKS fetches, want 3 (one more)", got)
	}
}

func TestJWKSUnavailable(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwkOf("k1", edKey().Public()))
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	a := newAuthorizer(t, Options{JWKSURL: srv.URL, RefreshInterval: -1, now: clock.now})
	srv.set(true)
	clock.advance(time.Minute)

	tests := []struct {
		name       string
		kid        string
		wantStatus int
	}{
		{"known kid still verifies from the cache", "k1", 200},
		{"unknown kid while the provider is down", "k2", 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Authorize(context.Background(), bearerReq(sign(t, jwt.SigningMethodEdDSA, edKey(), tt.kid, claimsAt(clock.now()))))
			if got := auth.Status(err); got != tt.wantStatus {
				t.Errorf("Authorize: status %d (%v), want %d", got, err, tt.wantStatus)
			}
			if tt.wantStatus == 500 && !errors.Is(err, ErrKeysUnavailable) {
				t.Errorf("Authorize: %v, want ErrKeysUnavailable", err)
			}
		})
	}
}

func TestJWKSBackgroundRefresh(t *testing.T) {
	t.Parallel()
	srv := newJWKSServer(t, jwkOf("k1", edKey().Public()))
	a := newAuthorizer(t, Options{JWKSURL: srv.URL, RefreshInterval: 5 * time.Millisecond})
	testutil.Eventually(t, 5*time.Second, func() bool { return srv.hits.Load() >= 3 }, "background refreshes: %d fetches", srv.hits.Load())

	// A key removed by the provider stops verifying once refreshed.
	srv.set(false, jwkOf("k2", ec256Key().Public()))
	at := srv.hits.Load()
	testutil.Eventually(t, 5*time.Second, func() bool { return srv.hits.Load() >= at+2 }, "refresh after the change")
	_, err := a.Authorize(context.Background(), bearerReq(sign(t, jwt.SigningMethodEdDSA, edKey(), "k1", claimsAt(time.Now()))))
	if auth.Status(err) != 401 {
		t.Errorf("Authorize(removed key) = %v, want 401", err)
	}
	a.Close()
	a.Close() // idempotent
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(down.Close)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }))
	t.Cleanup(notJSON.Close)
	small := must(rsa.GenerateKey(rand.Reader, 1024))
	priv := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}))
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no keys", Options{}, "no verification keys"},
		{"bad token source", Options{PEMKeys: []string{pemOf(t, edKey().Public())}, TokenSources: []string{"cookie:x"}}, "token source"},
		{"header without name", Options{PEMKeys: []string{pemOf(t, edKey().Public())}, TokenSources: []string{"header:"}}, "token source"},
		{"not PEM", Options{PEMKeys: []string{"hello"}}, "no PEM block"},
		{"private key", Options{PEMKeys: []string{priv}}, "RSA PRIVATE KEY"},
		{"short RSA key", Options{PEMKeys: []string{pemOf(t, &small.PublicKey)}}, "1024 bits"},
		{"empty kid", Options{PEMKeysByKID: map[string]string{"": pemOf(t, edKey().Public())}}, "empty kid"},
		{"JWKS document not JSON", Options{JWKS: []byte("<html>")}, "JWKS: decode JWKS"},
		{"JWKS document without usable keys", Options{JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}, "no usable signing key"},
		{"JWKS 404", Options{JWKSURL: down.URL}, "status 404"},
		{"JWKS not JSON", Options{JWKSURL: notJSON.URL}, "decode JWKS"},
		{"JWKS unreachable", Options{JWKSURL: "http://127.0.0.1:1/jwks.json"}, "fetch JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := New(context.Background(), tt.opts)
			if err == nil {
				a.Close()
				t.Fatalf("New(%s) succeeded, want an error containing %q", tt.name, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

// A JWK Set given as a document verifies by kid and alg, as one fetched
// from a URL does, and nothing is fetched.
func TestAuthorizeJWKSDocument(t *testing.T) {
	t.Parallel()
	doc := must(json.Marshal(map[string]any{"keys": []any{
		jwkOf("ec", &ec256Key().PublicKey),
		jwkOf("rsa", &rsaKey().PublicKey),
	}}))
	a := newAuthorizer(t, Options{JWKS: doc, Issuer: issuer, Audience: []string{clientID}})
	now := time.Now()
	tests := []struct {
		name, tok, reason string // reason "" means accepted
	}{
		{"ES256 by kid", sign(t, jwt.SigningMethodES256, ec256Key(), "ec", claimsAt(now)), ""},
		{"RS256 by kid", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa", claimsAt(now)), ""},
		{"no kid", sign(t, jwt.SigningMethodES256, ec256Key(), "", claimsAt(now)), ""},
		{"unknown kid", sign(t, jwt.SigningMethodRS256, rsaKey2(), "other", claimsAt(now)), "invalid token: unknown signing key"},
		{"right kid, wrong key", sign(t, jwt.SigningMethodRS256, rsaKey2(), "rsa", claimsAt(now)), "invalid token: bad signature"},
		{"expired", sign(t, jwt.SigningMethodES256, ec256Key(), "ec", with(claimsAt(now), "exp", now.Add(-2*time.Minute).Unix())), "invalid token: expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := a.Authorize(context.Background(), bearerReq(tt.tok))
			if tt.reason == "" {
				if err != nil || id.Principal != "5f1e0a2c-user" {
					t.Errorf("Authorize(%s) = %+v, %v; want the token's sub", tt.name, id, err)
				}
				return
			}
			var de *auth.DeniedError
			if !errors.As(err, &de) || de.Status != http.StatusUnauthorized || de.Reason != tt.reason {
				t.Errorf("Authorize(%s) = %v, want 401 %q", tt.name, err, tt.reason)
			}
		})
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	t.Parallel()
	small := must(rsa.GenerateKey(rand.Reader, 1024))
	p521 := must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader))
	enc := jwkOf("enc", &rsaKey().PublicKey)
	enc["use"] = "enc"
	hs := jwkOf("hs-alg", &rsaKey().PublicKey)
	hs["alg"] = "HS256"
	offCurve := jwkOf("off", &ec256Key().PublicKey)
	offCurve["y"] = offCurve["x"]
	shortX := jwkOf("short", edKey().Public())
	shortX["x"] = b64u([]byte("short"))
	doc := must(json.Marshal(map[string]any{"keys": []any{
		jwkOf("good", &rsaKey().PublicKey), enc, hs, offCurve, shortX,
		jwkOf("small", &small.PublicKey), jwkOf("p521", &p521.PublicKey),
		map[string]any{"kty": "RSA", "kid": "no-n"}, "not an object",
	}}))
	ks, err := parseJWKS(doc)
	if err != nil {
		t.Fatalf("parseJWKS = %v", err)
	}
	if len(ks) != 1 || ks[0].kid != "good" {
		kids := make([]string, len(ks))
		for i, k := range ks {
			kids[i] = k.kid
		}
		t.Errorf("parseJWKS kept %q, want only \"good\"", kids)
	}
}

func TestExtractToken(t *testing.T) {
	t.Parallel()
	const jwtShaped = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	all := must(parseSources([]string{"header:Authorization", "query:token", "subprotocol"}))
	tests := []struct {
		name          string
		header        http.Header
		query         url.Values
		token, accept string
	}{
		{"nothing", nil, nil, "", ""},
		{"bearer only", http.Header{"Authorization": {"Bearer"}}, nil, "Bearer", ""},
		{"bearer and spaces", http.Header{"Authorization": {"  Bearer   abc  "}}, nil, "abc", ""},
		{"other scheme kept", http.Header{"Authorization": {"Basic abc"}}, nil, "Basic abc", ""},
		{"query trimmed", nil, url.Values{"token": {" abc "}}, "abc", ""},
		{"marker last has no token", http.Header{"Sec-Websocket-Protocol": {"x, bearer"}}, nil, "", ""},
		{"marker then anything", http.Header{"Sec-Websocket-Protocol": {"bearer, opaque-token"}}, nil, "opaque-token", "bearer"},
		{"dotted names are not tokens", http.Header{"Sec-Websocket-Protocol": {"a.b.c, v1.chat"}}, nil, "", ""},
		{"JWT shape alone", http.Header{"Sec-Websocket-Protocol": {jwtShaped}}, nil, jwtShaped, jwtShaped},
		{"empty entries skipped", http.Header{"Sec-Websocket-Protocol": {" , ," + jwtShaped + ",, chat"}}, nil, jwtShaped, "chat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, accept := extractToken(all, tt.header, tt.query)
			if tok != tt.token || accept != tt.accept {
				t.Errorf("extractToken = %q, %q; want %q, %q", tok, accept, tt.token, tt.accept)
			}
		})
	}
}

func FuzzTokenExtraction(f *testing.F) {
	f.Add("Bearer abc", "token=abc", "bearer, eyJ.a.b")
	f.Add("bearer", "token=%zz", "eyJhbGciOiJub25lIn0.e30.")
	f.Add("", "", ",,bearer,,")
	f.Add("BEARER \t x", "token=1&token=2", "chat, Bearer")
	all := must(parseSources([]string{"header:Authorization", "query:token", "subprotocol"}))
	onlyProto := must(parseSources([]string{"subprotocol"}))
	f.Fuzz(func(t *testing.T, authz, rawQuery, protocols string) {
		q, _ := url.ParseQuery(rawQuery)
		h := http.Header{"Authorization": {authz}, "Sec-Websocket-Protocol": strings.Split(protocols, "\n")}
		extractToken(all, h, q)
		tok, accept := extractToken(onlyProto, h, q)
		if (tok == "") != (accept == "") {
			t.Fatalf("extractToken(%q) = %q, %q: token and subprotocol must come together", protocols, tok, accept)
		}
		if tok == "" {
			return
		}
		offered := offeredProtocols(h)
		found := false
		for _, p := range offered {
			if p == accept {
				found = true
			}
			if strings.Contains(p, ",") {
				t.Fatalf("offered entry %q contains a comma", p)
			}
		}
		if !found {
			t.Fatalf("extractToken(%q) accepts %q, which the client did not offer (%q)", protocols, accept, offered)
		}
	})
}
