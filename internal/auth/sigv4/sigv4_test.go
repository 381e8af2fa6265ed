package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"go.uber.org/goleak"
)

// Client connections of the tests' servers must be gone at the end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	akid   = "AKIDEXAMPLE"
	secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	token  = "s3cr3t-bearer-token-for-scripts"
)

var sentinels = []error{ErrMissing, ErrUnknownKey, ErrBadSignature, ErrStale, ErrMalformed, ErrTooLarge, ErrUnsignedPayload, ErrBodyUnread}

// errName names the sentinel err wraps, so that a server can report it.
func errName(err error) string {
	if err == nil {
		return "ok"
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "unexpected: " + err.Error()
}

func newVerifier(t *testing.T, opts Options) *Verifier {
	t.Helper()
	if opts.Credentials == nil {
		opts.Credentials = map[string]string{akid: secret, "AKIDOTHER": "other-secret"}
	}
	v, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// verifyServer answers each request with the result of Verify and, when it
// passed, the body the handler could still read.
func verifyServer(t *testing.T, v *Verifier) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := v.Verify(r)
		body, rerr := io.ReadAll(r.Body)
		if rerr != nil {
			body = []byte("read error: " + rerr.Error())
		}
		_, _ = io.WriteString(w, errName(err)+"\n"+string(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, srv *httptest.Server, req *http.Request) (result, body string) {
	t.Helper()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	result, body, _ = strings.Cut(string(b), "\n")
	return result, body
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signedRequest is a request as the AWS SDK for Go v2 signer signs it.
type signedRequest struct {
	method, path string // path may carry a query
	body         []byte
	key, secret  string
	session      string
	region       string
	service      string
	at           time.Duration // signing time relative to now
	before       func(*http.Request)
	after        func(*http.Request) // a forgery, applied after signing
	payloadHash  string              // empty: the body's hash
}

func (s signedRequest) build(t *testing.T, base string) *http.Request {
	t.Helper()
	var body io.Reader
	if s.body != nil {
		body = bytes.NewReader(s.body)
	}
	req, err := http.NewRequest(s.method, base+s.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if s.before != nil {
		s.before(req)
	}
	ph := s.payloadHash
	if ph == "" {
		ph = hashHex(s.body)
	}
	key, sec := s.key, s.secret
	if key == "" {
		key = akid
	}
	if sec == "" {
		sec = secret
	}
	region, service := s.region, s.service
	if region == "" {
		region = "us-east-1"
	}
	if service == "" {
		service = "execute-api"
	}
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: sec, SessionToken: s.session}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, ph, service, region, time.Now().Add(s.at)); err != nil {
		t.Fatal(err)
	}
	if s.after != nil {
		s.after(req)
	}
	return req
}

func setBody(b string) func(*http.Request) {
	return func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(b))
		r.ContentLength = int64(len(b))
	}
}

func TestVerifySignedRequests(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Options{BearerTokens: []string{"another-token", token}, MaxBodyBytes: 64 << 10})
	srv := verifyServer(t, v)
	post := []byte(`{"message":"hello"}`)
	const connPath = "/dev/%40connections/AAAAAAAAAAAAAAA%3D"

	tests := []struct {
		name     string
		req      signedRequest
		want     error // nil: accepted
		wantBody string
	}{
		{"GET", signedRequest{method: "GET", path: "/@connections/abc"}, nil, ""},
		{"GET escaped connection ID", signedRequest{method: "GET", path: connPath}, nil, ""},
		{"GET raw @ and =", signedRequest{method: "GET", path: "/dev/@connections/AAAAAAAAAAAAAAA="}, nil, ""},
		{"POST with body", signedRequest{method: "POST", path: connPath, body: post}, nil, string(post)},
		{"DELETE", signedRequest{method: "DELETE", path: connPath}, nil, ""},
		{"query strings", signedRequest{method: "GET", path: "/dev/@connections?b=2&a=1&a=0&empty=&sp=a%20b&plus=a+b&uni=%C3%A9&slash=a%2Fb"}, nil, ""},
		{"empty body POST", signedRequest{method: "POST", path: connPath, body: []byte{}}, nil, ""},
		{"binary body", signedRequest{method: "POST", path: connPath, body: []byte{0, 1, 2, 0xff}}, nil, "\x00\x01\x02\xff"},
		{"session token", signedRequest{method: "GET", path: connPath, session: "FwoGZXIvYXdzEXAMPLE"}, nil, ""},
		{"extra signed header", signedRequest{method: "POST", path: connPath, body: post,
			before: func(r *http.Request) { r.Header.Set("X-Custom", "  a   b  "); r.Header.Add("X-Custom", "c") }}, nil, string(post)},
		{"content hash header", signedRequest{method: "POST", path: connPath, body: post,
			before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", hashHex(post)) }}, nil, string(post)},
		{"unsigned payload", signedRequest{method: "POST", path: connPath, body: post, payloadHash: unsignedPayload,
			before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", unsignedPayload) }}, ErrUnsignedPayload, ""},
		{"unsigned payload replayed with another body", signedRequest{method: "POST", path: connPath, body: post, payloadHash: unsignedPayload,
			before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", unsignedPayload) }, after: setBody(`{"message":"HELLO"}`)}, ErrUnsignedPayload, ""},
		{"unsigned payload signed but not sent as a header", signedRequest{method: "POST", path: connPath, body: post, payloadHash: unsignedPayload}, ErrBadSignature, ""},
		{"GET with a content hash header", signedRequest{method: "GET", path: connPath,
			before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", hashHex(nil)) }}, nil, ""},
		{"other region accepted by default", signedRequest{method: "GET", path: connPath, region: "eu-west-1"}, nil, ""},
		{"second key", signedRequest{method: "GET", path: connPath, key: "AKIDOTHER", secret: "other-secret"}, nil, ""},
		{"clock skew inside 5m", signedRequest{method: "GET", path: connPath, at: -4 * time.Minute}, nil, ""},

		{"wrong secret", signedRequest{method: "POST", path: connPath, body: post, secret: "not-the-secret"}, ErrBadSignature, ""},
		{"unknown key", signedRequest{method: "GET", path: connPath, key: "AKIDUNKNOWN", secret: secret}, ErrUnknownKey, ""},
		{"altered body, same length", signedRequest{method: "POST", path: connPath, body: post, after: setBody(`{"message":"HELLO"}`)}, ErrBadSignature, ""},
		{"altered body, longer", signedRequest{method: "POST", path: connPath, body: post, after: setBody(`{"message":"hello!!"}`)}, ErrBadSignature, ""},
		{"altered body under a content hash header", signedRequest{method: "POST", path: connPath, body: post,
			before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", hashHex(post)) }, after: setBody(`{"message":"HELLO"}`)}, ErrBadSignature, ""},
		{"altered path", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) {
			r.URL.Path, r.URL.RawPath = "/dev/@connections/BBBBBBBBBBBBBBB=", "/dev/%40connections/BBBBBBBBBBBBBBB%3D"
		}}, ErrBadSignature, ""},
		{"path escaped differently", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) {
			r.URL.RawPath = "/dev/@connections/AAAAAAAAAAAAAAA="
		}}, ErrBadSignature, ""},
		{"altered query", signedRequest{method: "GET", path: "/dev/@connections?a=1", after: func(r *http.Request) { r.URL.RawQuery = "a=2" }}, ErrBadSignature, ""},
		{"added query", signedRequest{method: "GET", path: "/dev/@connections?a=1", after: func(r *http.Request) { r.URL.RawQuery += "&b=1" }}, ErrBadSignature, ""},
		{"altered method", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Method = "DELETE" }}, ErrBadSignature, ""},
		{"altered signed header", signedRequest{method: "GET", path: connPath,
			before: func(r *http.Request) { r.Header.Set("X-Custom", "a") }, after: func(r *http.Request) { r.Header.Set("X-Custom", "b") }}, ErrBadSignature, ""},
		{"removed signed header", signedRequest{method: "GET", path: connPath,
			before: func(r *http.Request) { r.Header.Set("X-Custom", "a") }, after: func(r *http.Request) { r.Header.Del("X-Custom") }}, ErrBadSignature, ""},
		{"other host", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Host = "evil.example" }}, ErrBadSignature, ""},
		{"stale date", signedRequest{method: "GET", path: connPath, at: -10 * time.Minute}, ErrStale, ""},
		{"future date", signedRequest{method: "GET", path: connPath, at: 10 * time.Minute}, ErrStale, ""},
		{"X-Amz-Date moved", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) {
			t, _ := time.Parse(amzDateFormat, r.Header.Get("X-Amz-Date"))
			r.Header.Set("X-Amz-Date", t.Add(time.Second).Format(amzDateFormat))
		}}, ErrBadSignature, ""},
		{"missing Authorization", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Header.Del("Authorization") }}, ErrMissing, ""},
		{"missing X-Amz-Date", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Header.Del("X-Amz-Date") }}, ErrMalformed, ""},
		{"garbage X-Amz-Date", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Header.Set("X-Amz-Date", "yesterday") }}, ErrMalformed, ""},
		{"garbage Authorization", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 garbage") }}, ErrMalformed, ""},
		{"other scheme", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Header.Set("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l") }}, ErrMalformed, ""},
		{"two Authorization headers", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+token) }}, ErrMalformed, ""},
		{"unparsable query added", signedRequest{method: "GET", path: "/dev/@connections?a=1", after: func(r *http.Request) { r.URL.RawQuery += "&%zz" }}, ErrMalformed, ""},
		{"signed for another service", signedRequest{method: "GET", path: connPath, service: "s3"}, ErrMalformed, ""},
		{"body over the limit", signedRequest{method: "POST", path: connPath, body: bytes.Repeat([]byte("x"), 64<<10+1)}, ErrTooLarge, ""},
		{"streaming payload", signedRequest{method: "POST", path: connPath, body: post, payloadHash: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
			before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") }}, ErrMalformed, ""},

		{"bearer token", signedRequest{method: "POST", path: connPath, body: post, after: func(r *http.Request) {
			r.Header = http.Header{"Authorization": {"Bearer " + token}}
		}}, nil, string(post)},
		{"bearer scheme in any case", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) {
			r.Header = http.Header{"Authorization": {"bearer   " + token}}
		}}, nil, ""},
		{"wrong bearer token", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) {
			r.Header = http.Header{"Authorization": {"Bearer " + token + "x"}}
		}}, ErrUnknownKey, ""},
		{"bearer prefix of a token", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) {
			r.Header = http.Header{"Authorization": {"Bearer " + token[:10]}}
		}}, ErrUnknownKey, ""},
		{"empty bearer token", signedRequest{method: "GET", path: connPath, after: func(r *http.Request) {
			r.Header = http.Header{"Authorization": {"Bearer "}}
		}}, ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, body := send(t, srv, tt.req.build(t, srv.URL))
			if want := errName(tt.want); got != want {
				t.Fatalf("Verify = %q, want %q", got, want)
			}
			if tt.want == nil && body != tt.wantBody {
				t.Errorf("handler read body %q after Verify, want %q", body, tt.wantBody)
			}
		})
	}
}

// tripwire is a body that must not be read.
type tripwire struct{ read chan struct{} }

func (b *tripwire) Read([]byte) (int, error) {
	select {
	case <-b.read:
	default:
		close(b.read)
	}
	return 0, io.ErrUnexpectedEOF
}

func (b *tripwire) Close() error { return nil }

// A request that can be refused from its headers is refused without its
// body being read: a caller that knows an access key ID cannot make the
// gateway wait for a body it will refuse anyway.
func TestVerifyRefusesBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Options{MaxBodyBytes: 1024})
	post := []byte(`{"message":"hello"}`)
	const connPath = "/dev/%40connections/AAAAAAAAAAAAAAA%3D"
	claim := func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", hashHex(post)) }
	tests := []struct {
		name string
		req  signedRequest
		want error
	}{
		{"unknown key", signedRequest{method: "POST", path: connPath, body: post, key: "AKIDUNKNOWN"}, ErrUnknownKey},
		{"stale date", signedRequest{method: "POST", path: connPath, body: post, at: -10 * time.Minute}, ErrStale},
		{"other service", signedRequest{method: "POST", path: connPath, body: post, service: "s3"}, ErrMalformed},
		{"wrong secret, content hash sent", signedRequest{method: "POST", path: connPath, body: post, secret: "nope", before: claim}, ErrBadSignature},
		{"garbage signature, content hash sent", signedRequest{method: "POST", path: connPath, body: post, before: claim, after: func(r *http.Request) {
			h := r.Header.Get("Authorization")
			r.Header.Set("Authorization", h[:len(h)-64]+strings.Repeat("0", 64))
		}}, ErrBadSignature},
		{"unsigned payload", signedRequest{method: "POST", path: connPath, body: post, payloadHash: unsignedPayload,
			before: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", unsignedPayload) }}, ErrUnsignedPayload},
		{"Content-Length over the limit", signedRequest{method: "POST", path: connPath, body: bytes.Repeat([]byte("x"), 1025)}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.req.build(t, "http://127.0.0.1:3001")
			body := &tripwire{read: make(chan struct{})}
			r.Body = body
			err := v.Verify(r)
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
			select {
			case <-body.read:
				t.Errorf("Verify read the body of a request it could refuse from its headers")
			default:
			}
		})
	}
}

func TestVerifyScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   Options
		region string
		want   error
	}{
		{"region pinned, matching", Options{Region: "eu-west-1"}, "eu-west-1", nil},
		{"region pinned, other", Options{Region: "eu-west-1"}, "us-east-1", ErrMalformed},
		{"custom service", Options{Service: "execute-api"}, "us-east-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := verifyServer(t, newVerifier(t, tt.opts))
			got, _ := send(t, srv, signedRequest{method: "GET", path: "/@connections/x", region: tt.region}.build(t, srv.URL))
			if want := errName(tt.want); got != want {
				t.Errorf("Verify = %q, want %q", got, want)
			}
		})
	}
}

func TestVerifyPresigned(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Options{})
	srv := verifyServer(t, v)
	presign := func(t *testing.T, path string, expires string, at time.Duration, sec string) string {
		t.Helper()
		u := srv.URL + path
		if expires != "" {
			u += "?X-Amz-Expires=" + expires
		}
		req, err := http.NewRequest("GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: sec},
			req, hashHex(nil), "execute-api", "us-east-1", time.Now().Add(at))
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	tests := []struct {
		name string
		url  func(t *testing.T) string
		want error
	}{
		{"presigned with expiry", func(t *testing.T) string {
			return presign(t, "/dev/%40connections/AAAAAAAAAAAAAAA%3D", "60", 0, secret)
		}, nil},
		{"presigned without expiry", func(t *testing.T) string { return presign(t, "/dev/@connections", "", 0, secret) }, nil},
		{"still valid 10 minutes on", func(t *testing.T) string { return presign(t, "/dev/@connections", "3600", -10*time.Minute, secret) }, nil},
		{"expired", func(t *testing.T) string { return presign(t, "/dev/@connections", "60", -10*time.Minute, secret) }, ErrStale},
		{"no expiry, stale", func(t *testing.T) string { return presign(t, "/dev/@connections", "", -10*time.Minute, secret) }, ErrStale},
		{"expiry over 7 days", func(t *testing.T) string { return presign(t, "/dev/@connections", "604801", 0, secret) }, ErrMalformed},
		{"wrong secret", func(t *testing.T) string { return presign(t, "/dev/@connections", "60", 0, "nope") }, ErrBadSignature},
		{"altered path", func(t *testing.T) string {
			return strings.Replace(presign(t, "/dev/@connections/a", "60", 0, secret), "@connections/a?", "@connections/b?", 1)
		}, ErrBadSignature},
		{"added query", func(t *testing.T) string { return presign(t, "/dev/@connections", "60", 0, secret) + "&x=1" }, ErrBadSignature},
		{"unsigned payload", func(t *testing.T) string {
			req, err := http.NewRequest("GET", srv.URL+"/dev/@connections?X-Amz-Expires=60&X-Amz-Content-Sha256="+unsignedPayload, nil)
			if err != nil {
				t.Fatal(err)
			}
			signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
				req, unsignedPayload, "execute-api", "us-east-1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(signed, "X-Amz-Content-Sha256=UNSIGNED-PAYLOAD") {
				t.Fatalf("presigned URL %s carries no unsigned payload", signed)
			}
			return signed
		}, ErrUnsignedPayload},
		{"signature removed", func(t *testing.T) string {
			u, _ := url.Parse(presign(t, "/dev/@connections", "60", 0, secret))
			q := u.Query()
			q.Del("X-Amz-Signature")
			u.RawQuery = q.Encode()
			return u.String()
		}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest("GET", tt.url(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := send(t, srv, req); got != errName(tt.want) {
				t.Errorf("Verify = %q, want %q", got, errName(tt.want))
			}
		})
	}
}

func TestVerifyMalformedAuthorization(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Options{})
	now := time.Now().UTC()
	date := now.Format("20060102")
	sig := strings.Repeat("ab", 32)
	cred := "Credential=" + akid + "/" + date + "/us-east-1/execute-api/aws4_request"
	tests := []struct {
		name, authz string
		want        error
	}{
		{"well formed, wrong signature", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date, Signature=" + sig, ErrBadSignature},
		{"any order and spacing", "AWS4-HMAC-SHA256   Signature=" + sig + " ,SignedHeaders=host;x-amz-date,   " + cred, ErrBadSignature},
		{"unknown key first", "AWS4-HMAC-SHA256 Credential=NOPE/" + date + "/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + sig, ErrUnknownKey},
		{"algorithm only", "AWS4-HMAC-SHA256", ErrMalformed},
		{"other algorithm", "AWS4-ECDSA-P256-SHA256 " + cred + ", SignedHeaders=host, Signature=" + sig, ErrMalformed},
		{"missing signature", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;x-amz-date", ErrMalformed},
		{"short signature", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=abc", ErrMalformed},
		{"signature not hex", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + strings.Repeat("zz", 32), ErrMalformed},
		{"repeated component", "AWS4-HMAC-SHA256 " + cred + ", " + cred + ", SignedHeaders=host, Signature=" + sig, ErrMalformed},
		{"unknown component", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + sig + ", Extra=1", ErrMalformed},
		{"component without =", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders, Signature=" + sig, ErrMalformed},
		{"credential too short", "AWS4-HMAC-SHA256 Credential=" + akid + "/" + date + "/us-east-1, SignedHeaders=host, Signature=" + sig, ErrMalformed},
		{"credential terminator", "AWS4-HMAC-SHA256 Credential=" + akid + "/" + date + "/us-east-1/execute-api/aws4, SignedHeaders=host, Signature=" + sig, ErrMalformed},
		{"credential date", "AWS4-HMAC-SHA256 Credential=" + akid + "/2024-1-1/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=" + sig, ErrMalformed},
		{"scope date is not X-Amz-Date's", "AWS4-HMAC-SHA256 Credential=" + akid + "/19990101/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + sig, ErrMalformed},
		{"upper-case signed header", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=Host;x-amz-date, Signature=" + sig, ErrMalformed},
		{"empty signed header", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, Signature=" + sig, ErrMalformed},
		{"host not signed", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date, Signature=" + sig, ErrMalformed},
		{"unverifiable signed header", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;user-agent;x-amz-date, Signature=" + sig, ErrMalformed},
		{"bearer without tokens configured", "Bearer abc", ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "http://gw.example/dev/@connections/x", nil)
			r.Header.Set("Authorization", tt.authz)
			r.Header.Set("X-Amz-Date", now.Format(amzDateFormat))
			if err := v.Verify(r); !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q) = %v, want %v", tt.authz, err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
	}{
		{"nothing to accept", Options{}},
		{"empty secret", Options{Credentials: map[string]string{akid: ""}}},
		{"empty key ID", Options{Credentials: map[string]string{"": secret}}},
		{"slash in key ID", Options{Credentials: map[string]string{"AK/ID": secret}}},
		{"empty bearer token", Options{BearerTokens: []string{""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.opts); err == nil {
				t.Errorf("New(%s) succeeded, want an error", tt.name)
			}
		})
	}
}

// sdkClient is the AWS SDK for Go v2 management client.
func sdkClient(endpoint, key, sec string) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:       "eu-central-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: sec}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func TestAWSSDKClient(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Options{})
	got := make(chan string, 10)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dev/@connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.PathValue("id") + " " + string(b)
	})
	mux.HandleFunc("GET /dev/@connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"connectedAt":"2025-02-03T01:46:33.523Z","identity":{"sourceIp":"127.0.0.1","userAgent":"t"},"lastActiveAt":"2025-02-03T01:46:36.076Z"}`)
	})
	mux.HandleFunc("DELETE /dev/@connections/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(v.Middleware(mux, nil))
	t.Cleanup(srv.Close)
	const id = "AAAAAAAAAAAAAAA="
	ctx := context.Background()

	t.Run("good key", func(t *testing.T) {
		api := sdkClient(srv.URL+"/dev", akid, secret)
		if _, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("hi there")}); err != nil {
			t.Fatalf("PostToConnection: %v", err)
		}
		if msg := <-got; msg != id+" hi there" {
			t.Errorf("handler got %q, want %q", msg, id+" hi there")
		}
		if _, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)}); err != nil {
			t.Errorf("GetConnection: %v", err)
		}
		if _, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
			t.Errorf("DeleteConnection: %v", err)
		}
	})
	for _, tt := range []struct{ name, key, secret string }{
		{"wrong secret", akid, "wrong-secret"},
		{"unknown key", "AKIDNOBODY", secret},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api := sdkClient(srv.URL+"/dev", tt.key, tt.secret)
			_, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: []byte("hi")})
			var fe *types.ForbiddenException
			if !errors.As(err, &fe) {
				t.Errorf("PostToConnection: %v, want *types.ForbiddenException", err)
			}
			select {
			case msg := <-got:
				t.Errorf("handler ran for a refused request: %q", msg)
			default:
			}
		})
	}
}

func TestMiddlewareCustomDeny(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Options{BearerTokens: []string{token}})
	var denied error
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }),
		func(w http.ResponseWriter, err error) { denied = err; w.WriteHeader(http.StatusUnauthorized) })
	tests := []struct {
		name, authz string
		want        int
		wantErr     error
	}{
		{"allowed", "Bearer " + token, http.StatusTeapot, nil},
		{"denied", "", http.StatusUnauthorized, ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { // not parallel: they share denied
			denied = nil
			r := httptest.NewRequest("GET", "/dev/@connections/x", nil)
			if tt.authz != "" {
				r.Header.Set("Authorization", tt.authz)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want || !errors.Is(denied, tt.wantErr) || (tt.wantErr == nil) != (denied == nil) {
				t.Errorf("status %d, deny saw %v; want %d, %v", w.Code, denied, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDeny(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	Deny(w, ErrBadSignature)
	if w.Code != http.StatusForbidden || w.Header().Get("X-Amzn-Errortype") != "ForbiddenException" || w.Body.String() != `{"message":"Forbidden"}` {
		t.Errorf("Deny wrote %d %v %q", w.Code, w.Header(), w.Body.String())
	}
}

func FuzzParseAuthorization(f *testing.F) {
	sig := strings.Repeat("0f", 32)
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240120/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + sig)
	f.Add("AWS4-HMAC-SHA256 Signature=" + sig + ",SignedHeaders=host,Credential=a/20240120/r/s/aws4_request")
	f.Add("AWS4-HMAC-SHA256 ,,,")
	f.Add("AWS4-HMAC-SHA256 Credential==/=/=/=/=, SignedHeaders=;, Signature==")
	f.Add("Bearer x")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parseAuthorization(%q) = %v, want ErrMalformed", h, err)
			}
			return
		}
		if !validSignature(a.signature) || len(a.signedHeaders) == 0 || a.accessKey == "" || len(a.date) != 8 {
			t.Fatalf("parseAuthorization(%q) accepted %+v", h, a)
		}
		again := "AWS4-HMAC-SHA256 Credential=" + a.accessKey + "/" + a.date + "/" + a.region + "/" + a.service + "/aws4_request, SignedHeaders=" +
			strings.Join(a.signedHeaders, ";") + ", Signature=" + a.signature
		b, err := parseAuthorization(again)
		if err != nil || b.accessKey != a.accessKey || b.region != a.region || b.service != a.service ||
			strings.Join(b.signedHeaders, ";") != strings.Join(a.signedHeaders, ";") || b.signature != a.signature {
			t.Fatalf("re-parsing %q gave %+v, %v; want %+v", again, b, err, a)
		}
	})
}

// A handler mounted under the stage with http.StripPrefix still verifies
// against the path the client signed.
func TestVerifyBehindStripPrefix(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, Options{})
	srv := httptest.NewServer(http.StripPrefix("/dev", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n"+r.URL.Path)
	}), func(w http.ResponseWriter, err error) { _, _ = io.WriteString(w, errName(err)+"\n") })))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, path string
	}{
		{"plain", "/dev/@connections/abc"},
		{"escaped", "/dev/%40connections/AAAAAAAAAAAAAAA%3D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, path := send(t, srv, signedRequest{method: "GET", path: tt.path}.build(t, srv.URL))
			if got != "ok" || !strings.HasPrefix(path, "/@connections/") {
				t.Errorf("Verify = %q (handler path %q), want ok", got, path)
			}
		})
	}
}
