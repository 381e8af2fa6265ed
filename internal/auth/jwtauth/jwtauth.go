// Package jwtauth is a $connect authorizer that verifies JSON Web Tokens
// itself, without calling a function: a Cognito user pool, or any OpenID
// Connect provider that publishes a JWK Set, signs the token and the gateway
// checks it. It owns token extraction (header, query string or WebSocket
// subprotocol), the verification keys (a JWKS URL fetched and cached, or PEM
// keys), and the claim checks; the accepted claims become the connection's
// requestContext.authorizer.
package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-gateway/switchboard/internal/auth"
)

// ErrKeysUnavailable is wrapped by Authorize's error when a token's key could
// only come from the JWKS URL and fetching it failed. The gateway answers it
// with 500, as API Gateway answers a broken authorizer: the client is not at
// fault, and a 401 would tell a legitimate client its token is bad.
var ErrKeysUnavailable = errors.New("jwtauth: signing keys unavailable")

// Options configures an Authorizer. The zero value needs only a key source
// (JWKSURL, JWKS, PEMKeys or PEMKeysByKID); every other field has a default.
type Options struct {
	// TokenSources lists where the token is looked for, in order. The first
	// source that yields a non-empty value is the only one used. Entries:
	//
	//   - "header:NAME": the header's first value, with an optional "Bearer "
	//     scheme (any case) stripped, e.g. "header:Authorization".
	//   - "query:NAME": the query parameter, e.g. "query:token".
	//   - "subprotocol": the Sec-WebSocket-Protocol offer, for browsers, which
	//     cannot set headers. The client offers either the marker and the
	//     token, new WebSocket(url, ["bearer", jwt]), or the token alone,
	//     new WebSocket(url, [jwt]), next to any protocols of its own. The
	//     token is the entry after the first "bearer" entry (any case), else
	//     the first entry shaped like a JWT (three dot-separated parts, the
	//     first starting with "eyJ"). Identity.Subprotocol, which the gateway
	//     must accept for the browser to proceed, is the first offered entry
	//     that is neither the token nor the marker (the application's own
	//     protocol), else the marker; when the token was offered alone it is
	//     the token itself, echoed to the client that sent it, since a
	//     browser fails a handshake that accepts none of its offers. Prefer
	//     the marker form, which keeps the token out of the response.
	//
	// Empty means ["header:Authorization", "query:token"].
	TokenSources []string

	// JWKSURL is the identity provider's JWK Set, e.g. Cognito's
	// https://cognito-idp.{region}.amazonaws.com/{userPoolId}/.well-known/jwks.json.
	// New fetches it and fails if it cannot: a wrong URL is found at start,
	// not at the first connection. A token whose kid is unknown makes the
	// authorizer fetch it again (key rotation), at most once per
	// MinRefetchInterval; in between, such tokens are refused with 401.
	//
	// The cache is written here rather than taken from a JWKS library so that
	// those rules hold exactly: a failed fetch is told apart from an unknown
	// kid (500 versus 401), the fetch is bounded by FetchTimeout and shared by
	// concurrent handshakes, and no further dependency is needed.
	JWKSURL string
	// HTTPClient fetches JWKSURL. Nil means http.DefaultClient; FetchTimeout
	// applies either way.
	HTTPClient *http.Client
	// FetchTimeout bounds one JWKS fetch; a handshake with a new kid may wait
	// this long. Zero means 5s.
	FetchTimeout time.Duration
	// RefreshInterval is how often the JWKS is fetched in the background, so
	// that removed keys stop verifying. Zero means 1h; negative disables.
	RefreshInterval time.Duration
	// MinRefetchInterval is the least time between two fetches triggered by
	// unknown kids. Zero means 10s.
	MinRefetchInterval time.Duration

	// PEMKeys are verification keys in PEM: "PUBLIC KEY" (PKIX), "RSA PUBLIC
	// KEY" (PKCS #1) or "CERTIFICATE" blocks, several per string allowed.
	// They have no kid and are tried for any token whose kid matches no
	// other key.
	PEMKeys []string
	// PEMKeysByKID are PEM verification keys used for tokens carrying that
	// kid (and for tokens without a kid).
	PEMKeysByKID map[string]string
	// JWKS is a JWK Set document (a jwks.json file's content) whose keys
	// verify tokens as the JWKSURL's would, with their kid and alg, but are
	// fixed: never fetched nor refreshed. Unusable keys are skipped as for
	// JWKSURL; a set with no usable key is an error.
	JWKS []byte

	// Issuer, when set, must equal the iss claim, e.g.
	// https://cognito-idp.{region}.amazonaws.com/{userPoolId}.
	Issuer string
	// Audience, when set, must contain one of the aud claim's values or the
	// client_id claim (Cognito access tokens carry client_id and no aud).
	// Leaving Issuer and Audience empty accepts any token the keys verify.
	Audience []string
	// TokenUse, when set ("id" or "access" for Cognito), must equal the
	// token_use claim.
	TokenUse string
	// Leeway is the clock skew tolerated when checking exp, nbf and iat.
	// Zero means 60s: enough for ordinary drift between the identity
	// provider's clock and the gateway's, small against token lifetimes of
	// minutes to hours. Negative means none.
	Leeway time.Duration
	// PrincipalClaim names the claim that becomes Identity.Principal and
	// principalId; it must be a non-empty string or a number. Zero means
	// "sub".
	PrincipalClaim string

	now func() time.Time // the clock; tests replace it
}

func (o Options) withDefaults() Options {
	if len(o.TokenSources) == 0 {
		o.TokenSources = []string{"header:Authorization", "query:token"}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.FetchTimeout == 0 {
		o.FetchTimeout = 5 * time.Second
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = time.Hour
	}
	if o.MinRefetchInterval == 0 {
		o.MinRefetchInterval = 10 * time.Second
	}
	if o.Leeway == 0 {
		o.Leeway = 60 * time.Second
	}
	if o.PrincipalClaim == "" {
		o.PrincipalClaim = "sub"
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// Authorizer verifies the JWT of a $connect handshake. It is safe for
// concurrent use. Close stops its background JWKS refresh.
//
// The token must be signed with RS256, RS384, RS512, ES256, ES384 or EdDSA
// by one of the configured keys and carry exp. On success, Identity.Context
// holds every claim: strings, bools and numbers (as json.Number) as they
// are, objects and arrays as their JSON text (so "cognito:groups" becomes
// `["admin"]`), null claims left out; plus "principalId". Refusals are
// *auth.DeniedError 401: reason "Unauthorized" when there is no token, else
// "invalid token: " and the class of failure (malformed, signing algorithm
// not allowed, unknown signing key, signing key does not match algorithm,
// bad signature, expired, not valid yet, issued in the future, missing exp
// claim, invalid claims, wrong issuer, wrong audience, wrong token_use,
// missing principal claim); the token itself never appears in an error.
// A key that can only come from the JWKS URL while fetching it fails is an
// error wrapping ErrKeysUnavailable (500).
type Authorizer struct {
	opts    Options
	sources []source
	parser  *jwt.Parser
	static  keySet
	remote  *remoteKeys // nil without JWKSURL

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ auth.Authorizer = (*Authorizer)(nil)

// New returns an Authorizer. With a JWKSURL it fetches the key set once,
// with ctx, and starts the background refresh; call Close to stop it.
func New(ctx context.Context, opts Options) (*Authorizer, error) {
	opts = opts.withDefaults()
	sources, err := parseSources(opts.TokenSources)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{opts: opts, sources: sources}
	for i, p := range opts.PEMKeys {
		ks, err := parsePEM(p, "")
		if err != nil {
			return nil, fmt.Errorf("jwtauth: PEMKeys[%d]: %w", i, err)
		}
		a.static = append(a.static, ks...)
	}
	for _, kid := range sortedKeys(opts.PEMKeysByKID) {
		if kid == "" {
			return nil, errors.New("jwtauth: PEMKeysByKID: empty kid")
		}
		ks, err := parsePEM(opts.PEMKeysByKID[kid], kid)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: PEMKeysByKID[%q]: %w", kid, err)
		}
		a.static = append(a.static, ks...)
	}
	if len(opts.JWKS) > 0 {
		ks, err := parseJWKS(opts.JWKS)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: JWKS: %w", err)
		}
		if len(ks) == 0 {
			return nil, errors.New("jwtauth: JWKS: no usable signing key (RS256/384/512, ES256/384 or EdDSA)")
		}
		a.static = append(a.static, ks...)
	}
	if opts.JWKSURL == "" && len(a.static) == 0 {
		return nil, errors.New("jwtauth: no verification keys: set JWKSURL, JWKS, PEMKeys or PEMKeysByKID")
	}

	leeway := max(opts.Leeway, 0)
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(allowedAlgs),
		jwt.WithJSONNumber(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return a.opts.now() }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	a.parser = jwt.NewParser(popts...)

	if opts.JWKSURL != "" {
		a.remote = &remoteKeys{
			url:        opts.JWKSURL,
			client:     opts.HTTPClient,
			timeout:    opts.FetchTimeout,
			minRefetch: opts.MinRefetchInterval,
			now:        opts.now,
			sem:        make(chan struct{}, 1),
		}
		if err := a.remote.lock(ctx); err != nil {
			return nil, err
		}
		err := a.remote.fetch(ctx)
		a.remote.unlock()
		if err != nil {
			return nil, fmt.Errorf("jwtauth: %w", err)
		}
		if opts.RefreshInterval > 0 {
			var rctx context.Context
			rctx, a.cancel = context.WithCancel(context.Background())
			a.wg.Go(func() { a.remote.refreshLoop(rctx, opts.RefreshInterval) })
		}
	}
	return a, nil
}

// Close stops the background JWKS refresh and waits for it. Authorize keeps
// working with the keys it has. Close is idempotent.
func (a *Authorizer) Close() {
	a.closeOnce.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
	})
}

// Authorize implements auth.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, req *auth.ConnectRequest) (*auth.Identity, error) {
	raw, subprotocol := extractToken(a.sources, req.Header, req.Query)
	if raw == "" {
		return nil, auth.Unauthorized("Unauthorized")
	}
	var fetchErr error
	claims := jwt.MapClaims{}
	tok, err := a.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		keys, err := a.keys(ctx, t)
		fetchErr = err
		return keys, err
	})
	if err != nil {
		if fetchErr != nil && !errors.Is(fetchErr, errNoKey) && !errors.Is(fetchErr, errKeyMismatch) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, fetchErr)
		}
		return nil, invalid(classify(tok, err))
	}
	if reason := a.checkClaims(claims); reason != "" {
		return nil, invalid(reason)
	}
	principal, ok := claimString(claims[a.opts.PrincipalClaim])
	if !ok {
		return nil, invalid("missing principal claim")
	}
	c := flatten(claims)
	c["principalId"] = principal
	return &auth.Identity{Principal: principal, Context: c, Subprotocol: subprotocol}, nil
}

var (
	errNoKey       = errors.New("unknown signing key")
	errKeyMismatch = errors.New("signing key does not match algorithm")
)

// keys returns the keys that may verify t, refetching the JWKS when t's kid
// is unknown.
func (a *Authorizer) keys(ctx context.Context, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	alg := t.Method.Alg()
	ks := a.static
	if a.remote != nil {
		ks = append(slices.Clip(ks), a.remote.current()...)
	}
	keys, known := ks.find(kid, alg)
	if kid != "" && !known && a.remote != nil {
		remote, err := a.remote.refetch(ctx, kid)
		ks = append(slices.Clip(a.static), remote...)
		keys, known = ks.find(kid, alg)
		if len(keys) == 0 && err != nil {
			return nil, err
		}
	}
	switch {
	case len(keys) > 0:
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
		for i, k := range keys {
			set.Keys[i] = k
		}
		return set, nil
	case known:
		return nil, errKeyMismatch
	}
	return nil, errNoKey
}

// checkClaims applies the checks the parser does not: issuer, audience and
// token_use.
func (a *Authorizer) checkClaims(claims jwt.MapClaims) string {
	if a.opts.Issuer != "" {
		if iss, _ := claims["iss"].(string); iss != a.opts.Issuer {
			return "wrong issuer"
		}
	}
	if len(a.opts.Audience) > 0 {
		aud, err := claims.GetAudience()
		if err != nil {
			return "wrong audience"
		}
		clientID, _ := claims["client_id"].(string)
		if !slices.ContainsFunc(aud, a.audienceOK) && !(clientID != "" && a.audienceOK(clientID)) {
			return "wrong audience"
		}
	}
	if a.opts.TokenUse != "" {
		if use, _ := claims["token_use"].(string); use != a.opts.TokenUse {
			return "wrong token_use"
		}
	}
	return ""
}

func (a *Authorizer) audienceOK(v string) bool { return slices.Contains(a.opts.Audience, v) }

func invalid(reason string) error { return auth.Unauthorized("invalid token: " + reason) }

// classify names the class of a parse failure for the client; jwt's own
// messages are not used because some quote parts of the token.
func classify(tok *jwt.Token, err error) string {
	if errors.Is(err, jwt.ErrTokenMalformed) || tok == nil {
		return "malformed"
	}
	if alg, _ := tok.Header["alg"].(string); !algAllowed(alg) {
		return "signing algorithm not allowed"
	}
	switch {
	case errors.Is(err, errNoKey):
		return errNoKey.Error()
	case errors.Is(err, errKeyMismatch):
		return errKeyMismatch.Error()
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing exp claim"
	}
	return "invalid claims"
}

// claimString gives a principal claim's value as a string.
func claimString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case json.Number:
		return v.String(), true
	}
	return "", false
}

// flatten turns claims into an authorizer context: API Gateway allows only
// strings, numbers and booleans there, so objects and arrays become their
// JSON text and nulls are dropped.
func flatten(claims jwt.MapClaims) map[string]any {
	c := make(map[string]any, len(claims)+1)
	for k, v := range claims {
		switch v := v.(type) {
		case nil:
		case string, bool, json.Number:
			c[k] = v
		default:
			b, err := json.Marshal(v)
			if err != nil {
				continue // cannot happen for decoded JSON
			}
			c[k] = string(b)
		}
	}
	return c
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
