// Package sigv4 verifies that a management API request (@connections) is
// signed with AWS Signature Version 4 by a known access key, the way the AWS
// SDKs and CLI sign calls to API Gateway's management API (service
// "execute-api"), or carries a configured bearer token, for callers that do
// not use AWS tooling. It owns the parsing of the signature, the clock-skew
// and payload checks, and recomputes signatures with the AWS SDK's own
// signer so that canonicalisation matches the clients exactly.
package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
)

// Errors returned by Verify, possibly wrapped with detail. The management
// API answers each with 403 ForbiddenException (see Deny), as API Gateway
// does; they are told apart for logs and metrics.
var (
	// ErrMissing: the request has no Authorization header and no presigned
	// query.
	ErrMissing = errors.New("sigv4: missing authentication")
	// ErrUnknownKey: the access key ID is not configured, or the bearer
	// token is not one of the configured ones.
	ErrUnknownKey = errors.New("sigv4: unknown access key or token")
	// ErrBadSignature: the signature does not match the request, or the body
	// does not match X-Amz-Content-Sha256.
	ErrBadSignature = errors.New("sigv4: signature does not match")
	// ErrStale: X-Amz-Date is further from now than MaxSkew, or a presigned
	// URL has expired.
	ErrStale = errors.New("sigv4: request time outside the allowed window")
	// ErrMalformed: the Authorization header or presigned query cannot be
	// parsed, X-Amz-Date is missing or invalid, or the credential scope
	// names another region or service.
	ErrMalformed = errors.New("sigv4: malformed signature")
	// ErrTooLarge: the body is over MaxBodyBytes, so it cannot be hashed to
	// check the signature. A caller may answer 413 instead of 403.
	ErrTooLarge = errors.New("sigv4: body too large to verify")
	// ErrUnsignedPayload: X-Amz-Content-Sha256 is "UNSIGNED-PAYLOAD". API
	// Gateway's execute-api hashes the body of every request it verifies;
	// accepting an unsigned payload would let a captured request be sent
	// again with another body while its date is in the window.
	ErrUnsignedPayload = errors.New("sigv4: unsigned payload not accepted")
	// ErrBodyUnread: the body could not be read to hash it, for example
	// because the connection's read deadline passed; the error wraps the
	// read's (os.ErrDeadlineExceeded for a deadline).
	ErrBodyUnread = errors.New("sigv4: body could not be read")
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	maxPresignAge   = 7 * 24 * time.Hour // the longest X-Amz-Expires AWS accepts
)

// Options configures a Verifier. The zero value accepts nothing: set
// Credentials, BearerTokens or both.
type Options struct {
	// Credentials maps access key IDs to their secret access keys.
	Credentials map[string]string
	// Region, when set, must be the region of the signature's credential
	// scope. Empty accepts any region, since clients sign with whatever
	// region they were configured with.
	Region string
	// Service is the service of the credential scope. Zero means
	// "execute-api", the management API's signing name.
	Service string
	// MaxSkew is how far X-Amz-Date may be from the gateway's clock, either
	// way. Zero means 5m, AWS's window.
	MaxSkew time.Duration
	// BearerTokens are accepted as "Authorization: Bearer <token>", for
	// callers outside AWS tooling. They are compared in constant time.
	BearerTokens []string
	// MaxBodyBytes caps how much of a body Verify reads to hash it. Zero
	// means 1 MiB, well above PostToConnection's 128 KB.
	MaxBodyBytes int64

	now func() time.Time // the clock; tests replace it
}

func (o Options) withDefaults() Options {
	if o.Service == "" {
		o.Service = "execute-api"
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = 5 * time.Minute
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// Verifier checks management API requests. It is safe for concurrent use.
//
// A signature is checked by re-signing a copy of the request with the AWS
// SDK's signer (aws/signer/v4), with the secret of the claimed access key,
// the request's X-Amz-Date and payload hash, and only the headers the
// client signed, then comparing the two signatures in constant time. The
// path is taken as it came on the wire (RequestURI), so that
// "/dev/%40connections/R0oXAdfD0kwCH6w%3D" is canonicalised as the client
// did. The payload hash is always the body's SHA-256, as execute-api has
// it: the body is read (up to MaxBodyBytes), hashed, compared with
// X-Amz-Content-Sha256 when present, and put back for the handler;
// "UNSIGNED-PAYLOAD" is refused (ErrUnsignedPayload). Presigned
// query-string requests (X-Amz-Signature in the query) are verified the
// same way, and expire after X-Amz-Expires (at most 7 days).
//
// A header-signed request can be sent again unchanged while its X-Amz-Date
// is within MaxSkew of the gateway's clock (SigV4 has no nonce, and API
// Gateway keeps no replay cache either); a presigned URL, until it expires.
//
// Limitations: the SDK signer never signs User-Agent, X-Amzn-Trace-Id,
// Expect or Transfer-Encoding, so a client that listed one of those in
// SignedHeaders gets ErrMalformed; the Date header is not accepted in place
// of X-Amz-Date; only AWS4-HMAC-SHA256 is supported (no SigV4a).
type Verifier struct {
	opts    Options
	tokens  [][sha256.Size]byte // hashes of BearerTokens: equal-length inputs to ConstantTimeCompare
	signer  *v4.Signer
	skipped map[string]bool // headers the SDK signer ignores
}

// New returns a Verifier.
func New(opts Options) (*Verifier, error) {
	opts = opts.withDefaults()
	if len(opts.Credentials) == 0 && len(opts.BearerTokens) == 0 {
		return nil, errors.New("sigv4: no Credentials and no BearerTokens: every request would be refused")
	}
	for id, secret := range opts.Credentials {
		if id == "" || secret == "" || strings.ContainsAny(id, "/ ,=") {
			return nil, fmt.Errorf("sigv4: invalid credential for access key %q", id)
		}
	}
	v := &Verifier{
		opts:    opts,
		signer:  v4.NewSigner(),
		skipped: map[string]bool{"authorization": true, "user-agent": true, "x-amzn-trace-id": true, "expect": true, "transfer-encoding": true},
	}
	for _, t := range opts.BearerTokens {
		if t == "" {
			return nil, errors.New("sigv4: empty bearer token")
		}
		v.tokens = append(v.tokens, sha256.Sum256([]byte(t)))
	}
	return v, nil
}

// Verify checks r's signature or bearer token and returns nil when it is
// good, else one of the package's errors (wrapped). It may read r.Body, and
// then replaces it with an equivalent reader.
//
// Everything that can be checked before the body is: the bearer token, the
// access key, the credential scope, the signing time and the signed header
// list, a Content-Length over MaxBodyBytes, and, when the client sent
// X-Amz-Content-Sha256, the signature itself (it covers that hash). Only a
// request that passed those has its body read. Reading the body is bounded
// in size here and in time by the caller (a read deadline on the
// connection).
func (v *Verifier) Verify(r *http.Request) error {
	authz := r.Header.Values("Authorization")
	if len(authz) > 1 {
		return fmt.Errorf("%w: several Authorization headers", ErrMalformed)
	}
	h := ""
	if len(authz) == 1 {
		h = strings.TrimSpace(authz[0])
	}
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return v.verifyBearer(strings.TrimSpace(token))
	}
	// A query that does not parse would be canonicalised without its bad
	// parts on both sides; refuse it rather than let unsigned bytes through.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("%w: query: %v", ErrMalformed, err)
	}
	if h == "" {
		if q.Has("X-Amz-Signature") || q.Has("X-Amz-Algorithm") || q.Has("X-Amz-Credential") {
			return v.verifyPresigned(r, q)
		}
		return ErrMissing
	}
	a, err := parseAuthorization(h)
	if err != nil {
		return err
	}
	date := r.Header.Get("X-Amz-Date")
	if date == "" {
		return fmt.Errorf("%w: no X-Amz-Date", ErrMalformed)
	}
	signed, err := v.check(a, date, 0)
	if err != nil {
		return err
	}
	return v.verifyPayload(r, r.Header.Get("X-Amz-Content-Sha256"), func(payload string) error {
		c, err := v.clone(r, a.signedHeaders, r.URL.RawQuery)
		if err != nil {
			return err
		}
		if err := v.signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: a.accessKey, SecretAccessKey: v.opts.Credentials[a.accessKey]},
			c, payload, a.service, a.region, signed); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		want, err := parseAuthorization(c.Header.Get("Authorization"))
		if err != nil {
			return fmt.Errorf("%w: re-signing: %v", ErrBadSignature, err)
		}
		return compare(want.signature, a.signature)
	})
}

func (v *Verifier) verifyBearer(token string) error {
	if token == "" {
		return fmt.Errorf("%w: empty bearer token", ErrMalformed)
	}
	sum := sha256.Sum256([]byte(token))
	match := 0
	for i := range v.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], v.tokens[i][:]) // no early exit
	}
	if match != 1 {
		return ErrUnknownKey
	}
	return nil
}

// verifyPresigned checks a request signed in its query string.
func (v *Verifier) verifyPresigned(r *http.Request, q url.Values) error {
	for _, k := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if len(q[k]) != 1 {
			return fmt.Errorf("%w: presigned query needs one %s", ErrMalformed, k)
		}
	}
	if q.Get("X-Amz-Algorithm") != algorithm {
		return fmt.Errorf("%w: algorithm %q", ErrMalformed, q.Get("X-Amz-Algorithm"))
	}
	a := &authorization{signature: strings.ToLower(q.Get("X-Amz-Signature"))}
	if err := a.setCredential(q.Get("X-Amz-Credential")); err != nil {
		return err
	}
	if err := a.setSignedHeaders(q.Get("X-Amz-SignedHeaders")); err != nil {
		return err
	}
	if !validSignature(a.signature) {
		return fmt.Errorf("%w: signature is not 64 hex digits", ErrMalformed)
	}
	var expires time.Duration
	if e := q.Get("X-Amz-Expires"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil || n <= 0 || time.Duration(n)*time.Second > maxPresignAge {
			return fmt.Errorf("%w: X-Amz-Expires %q", ErrMalformed, e)
		}
		expires = time.Duration(n) * time.Second
	}
	signed, err := v.check(a, q.Get("X-Amz-Date"), expires)
	if err != nil {
		return err
	}
	claimed := q.Get("X-Amz-Content-Sha256")
	if claimed == "" {
		claimed = r.Header.Get("X-Amz-Content-Sha256")
	}
	return v.verifyPayload(r, claimed, func(payload string) error {
		q := maps.Clone(q)
		q.Del("X-Amz-Signature")
		c, err := v.clone(r, a.signedHeaders, q.Encode())
		if err != nil {
			return err
		}
		signedURL, _, err := v.signer.PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: a.accessKey, SecretAccessKey: v.opts.Credentials[a.accessKey]},
			c, payload, a.service, a.region, signed, func(o *v4.SignerOptions) { o.DisableHeaderHoisting = true })
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		u, err := url.Parse(signedURL)
		if err != nil {
			return fmt.Errorf("%w: re-signing: %v", ErrBadSignature, err)
		}
		return compare(u.Query().Get("X-Amz-Signature"), a.signature)
	})
}

// check validates the parsed signature's key, scope and time, and returns
// the signing time. expires > 0 is a presigned URL's lifetime.
func (v *Verifier) check(a *authorization, date string, expires time.Duration) (time.Time, error) {
	if _, ok := v.opts.Credentials[a.accessKey]; !ok {
		return time.Time{}, ErrUnknownKey
	}
	if a.service != v.opts.Service {
		return time.Time{}, fmt.Errorf("%w: credential scope service %q, want %q", ErrMalformed, a.service, v.opts.Service)
	}
	if v.opts.Region != "" && a.region != v.opts.Region {
		return time.Time{}, fmt.Errorf("%w: credential scope region %q, want %q", ErrMalformed, a.region, v.opts.Region)
	}
	t, err := time.Parse(amzDateFormat, date)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: X-Amz-Date %q", ErrMalformed, date)
	}
	if t.Format("20060102") != a.date {
		return time.Time{}, fmt.Errorf("%w: credential scope date %s is not X-Amz-Date's", ErrMalformed, a.date)
	}
	now := v.opts.now()
	switch {
	case t.Sub(now) > v.opts.MaxSkew:
		return time.Time{}, fmt.Errorf("%w: signed %s ahead", ErrStale, t.Sub(now).Round(time.Second))
	case expires > 0 && now.Sub(t) > expires:
		return time.Time{}, fmt.Errorf("%w: presigned URL expired", ErrStale)
	case expires == 0 && now.Sub(t) > v.opts.MaxSkew:
		return time.Time{}, fmt.Errorf("%w: signed %s ago", ErrStale, now.Sub(t).Round(time.Second))
	}
	for _, h := range a.signedHeaders {
		if v.skipped[h] {
			return time.Time{}, fmt.Errorf("%w: signed header %q cannot be verified", ErrMalformed, h)
		}
	}
	return t, nil
}

// verifyPayload checks the signature (with sign, given the payload hash the
// client signed) and the body. The hash is always the body's SHA-256, as
// execute-api computes it: "UNSIGNED-PAYLOAD" (an Amazon S3 convention) is
// refused, so that a captured request cannot be replayed with another body.
// When the client sent its hash as claimed, the signature is checked before
// the body is read, and the body must then match the hash; otherwise the
// body is read and hashed first. It restores r.Body.
func (v *Verifier) verifyPayload(r *http.Request, claimed string, sign func(payload string) error) error {
	switch {
	case claimed == unsignedPayload:
		return ErrUnsignedPayload
	case claimed != "" && !validSignature(claimed):
		return fmt.Errorf("%w: X-Amz-Content-Sha256 %q not supported", ErrMalformed, claimed)
	case r.ContentLength > v.opts.MaxBodyBytes:
		return fmt.Errorf("%w: Content-Length %d over %d bytes", ErrTooLarge, r.ContentLength, v.opts.MaxBodyBytes)
	}
	if claimed != "" {
		if err := sign(claimed); err != nil { // as the client wrote it into its canonical request
			return err
		}
	}
	sum, err := v.hashBody(r)
	if err != nil {
		return err
	}
	if claimed == "" {
		return sign(sum)
	}
	if !strings.EqualFold(claimed, sum) {
		return fmt.Errorf("%w: body does not match X-Amz-Content-Sha256", ErrBadSignature)
	}
	return nil
}

// hashBody returns the hex SHA-256 of r's body, read up to MaxBodyBytes,
// and puts the body back for the handler.
func (v *Verifier) hashBody(r *http.Request) (string, error) {
	h := sha256.New()
	if r.Body != nil && r.Body != http.NoBody {
		orig := r.Body
		buf, err := io.ReadAll(io.LimitReader(orig, v.opts.MaxBodyBytes+1))
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), orig), orig}
		if err != nil {
			return "", fmt.Errorf("%w: reading body: %w", ErrBodyUnread, err)
		}
		if int64(len(buf)) > v.opts.MaxBodyBytes {
			return "", fmt.Errorf("%w: over %d bytes", ErrTooLarge, v.opts.MaxBodyBytes)
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// clone builds the request the client signed: method, host and path as on
// the wire, the given raw query, and only the signed headers.
func (v *Verifier) clone(r *http.Request, signedHeaders []string, rawQuery string) (*http.Request, error) {
	path, err := wirePath(r)
	if err != nil {
		return nil, err
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	c := &http.Request{
		Method: r.Method,
		// Opaque carries the path verbatim; the signer reads it from there
		// and escapes it once more, as SigV4 wants for execute-api.
		URL:    &url.URL{Opaque: "//h" + path, RawQuery: rawQuery},
		Host:   host,
		Header: make(http.Header, len(signedHeaders)+2),
	}
	hasHost := false
	for _, name := range signedHeaders {
		switch name {
		case "host":
			hasHost = true
		case "content-length":
			c.ContentLength = r.ContentLength // the signer signs this field, not a header
		default:
			if vs := r.Header.Values(name); len(vs) > 0 {
				c.Header[http.CanonicalHeaderKey(name)] = vs
			}
		}
	}
	if !hasHost {
		return nil, fmt.Errorf("%w: host is not a signed header", ErrMalformed)
	}
	return c, nil
}

// wirePath is the request's path exactly as the client sent it.
func wirePath(r *http.Request) (string, error) {
	p := r.RequestURI
	if p == "" || p == "*" {
		return r.URL.EscapedPath(), nil
	}
	if !strings.HasPrefix(p, "/") { // absolute form, through a proxy
		u, err := url.ParseRequestURI(p)
		if err != nil {
			return "", fmt.Errorf("%w: request URI: %v", ErrMalformed, err)
		}
		return u.EscapedPath(), nil
	}
	p, _, _ = strings.Cut(p, "?")
	return p, nil
}

func compare(want, got string) error {
	if !hmac.Equal([]byte(want), []byte(got)) {
		return ErrBadSignature
	}
	return nil
}

// Middleware verifies each request before next sees it. A refused request
// goes to deny, which writes the answer; nil means Deny.
func (v *Verifier) Middleware(next http.Handler, deny func(w http.ResponseWriter, err error)) http.Handler {
	if deny == nil {
		deny = Deny
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := v.Verify(r); err != nil {
			deny(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Deny answers a refused management call as API Gateway does: 403 with
// x-amzn-ErrorType ForbiddenException, which the AWS SDKs turn into their
// ForbiddenException, and {"message":"Forbidden"}. The reason stays in err,
// for the caller's logs: it is not sent.
func Deny(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", apigw.ErrTypeForbidden)
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, `{"message":"Forbidden"}`)
}
