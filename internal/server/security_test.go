package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// eventSink is an http integration backend that records the events it gets.
type eventSink struct {
	mu     sync.Mutex
	events []map[string]any
	srv    *httptest.Server
}

func newEventSink(t *testing.T) *eventSink {
	s := &eventSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		_, _ = io.WriteString(w, `{"statusCode":200,"body":"ok"}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *eventSink) authorizers() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, ev := range s.events {
		rc, _ := ev["requestContext"].(map[string]any)
		a, _ := rc["authorizer"].(map[string]any)
		out = append(out, a)
	}
	return out
}

// jwtIssuer signs test tokens and serves its keys as a JWKS.
type jwtIssuer struct {
	key  *rsa.PrivateKey
	kid  string
	jwks *httptest.Server
}

func newJWTIssuer(t *testing.T) *jwtIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &jwtIssuer{key: key, kid: "test-key-1"}
	iss.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": iss.kid, "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(iss.jwks.Close)
	return iss
}

const testIssuer, testAudience = "https://issuer.test", "switchboard-test"

func (iss *jwtIssuer) claims() jwt.MapClaims {
	return jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "user-7", "tier": "gold",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
}

func (iss *jwtIssuer) sign(t *testing.T, claims jwt.MapClaims, mutate func(*jwt.Token)) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = iss.kid
	if mutate != nil {
		mutate(tok)
	}
	s, err := tok.SignedString(iss.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwtConfig(iss *jwtIssuer, sink *eventSink) string {
	return fmt.Sprintf(`
authorizers:
  users:
    type: jwt
    jwksUrl: %s
    issuer: %s
    audience: [%s]
    tokenSources: ["header:Authorization", "query:token", "subprotocol"]
routes:
  $connect: {authorizer: users, integration: {type: http, url: %q}}
  $default: {integration: {type: http, url: %q}, routeResponse: true}
`, iss.jwks.URL, testIssuer, testAudience, sink.srv.URL, sink.srv.URL)
}

func TestJWTAuthorizerEndToEnd(t *testing.T) {
	t.Parallel()
	iss := newJWTIssuer(t)
	sink := newEventSink(t)
	srv := servertest.StartYAML(t, jwtConfig(iss, sink))
	good := iss.sign(t, iss.claims(), nil)

	// The three token sources.
	byHeader := testutil.Dial(t, srv.WS, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + good}}})
	testutil.Dial(t, srv.WS+"?token="+good, nil)
	bySubprotocol := testutil.Dial(t, srv.WS, &websocket.DialOptions{Subprotocols: []string{"bearer", good}})
	if got := bySubprotocol.Subprotocol(); got != "bearer" {
		t.Errorf("subprotocol accepted = %q, want bearer (never the token)", got)
	}

	// The claims reach later routes as requestContext.authorizer.
	if got := testutil.ReadTextAfter(t, byHeader, "hello"); got != "ok" {
		t.Fatalf("message answered %q", got)
	}
	auths := sink.authorizers()
	if len(auths) != 4 { // three $connect events and one message
		t.Fatalf("backend saw %d events, want 4", len(auths))
	}
	for i, a := range auths {
		if a["principalId"] != "user-7" || a["tier"] != "gold" || a["iss"] != testIssuer {
			t.Errorf("event %d authorizer = %v, want the token's claims with principalId user-7", i, a)
		}
	}

	forged := map[string]string{
		"expired":        iss.sign(t, withClaim(iss.claims(), "exp", time.Now().Add(-time.Hour).Unix()), nil),
		"not yet valid":  iss.sign(t, withClaim(iss.claims(), "nbf", time.Now().Add(time.Hour).Unix()), nil),
		"wrong audience": iss.sign(t, withClaim(iss.claims(), "aud", "someone-else"), nil),
		"wrong issuer":   iss.sign(t, withClaim(iss.claims(), "iss", "https://evil.test"), nil),
		"unknown kid":    iss.sign(t, iss.claims(), func(tok *jwt.Token) { tok.Header["kid"] = "nope" }),
		"tampered payload": func() string {
			parts := strings.Split(good, ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://issuer.test","aud":"switchboard-test","sub":"admin","exp":9999999999}`))
			return strings.Join(parts, ".")
		}(),
		"alg none": func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, iss.claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(),
		"HS256 with the public key": func() string {
			pub, _ := x509.MarshalPKIXPublicKey(&iss.key.PublicKey)
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, iss.claims())
			tok.Header["kid"] = iss.kid
			s, _ := tok.SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
			return s
		}(),
		"signed by another key": func() string {
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, iss.claims())
			tok.Header["kid"] = iss.kid
			s, _ := tok.SignedString(other)
			return s
		}(),
		"garbage": "not.a.token",
	}
	for name, tok := range forged {
		t.Run(name, func(t *testing.T) {
			if got := testutil.DialStatus(t, srv.WS, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}}); got != http.StatusUnauthorized {
				t.Errorf("handshake status %d, want 401", got)
			}
		})
	}
	if got := testutil.DialStatus(t, srv.WS, nil); got != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", got)
	}
	if n := len(sink.authorizers()); n != 4 {
		t.Errorf("refused handshakes reached $connect: backend saw %d events, want 4", n)
	}
	if c := len(connIDs(t, srv.HTTP)); c != 3 {
		t.Errorf("%d connections open, want the 3 accepted ones (no half-open connection)", c)
	}
}

func withClaim(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	c[k] = v
	return c
}

func TestLambdaAuthorizerEndToEnd(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	counter := filepath.Join(dir, "calls")
	handler := `const fs = require("fs");
exports.auth = async (event) => {
  fs.appendFileSync(process.env.CALLS, "x");
  const key = event.headers["X-Api-Key"] || event.headers["x-api-key"];
  if (key === "throw") throw new Error("Unauthorized");
  if (key === "broken") return { nope: true };
  const effect = key === "let-me-in" ? "Allow" : "Deny";
  return {
    principalId: "key-owner",
    policyDocument: { Version: "2012-10-17", Statement: [{ Action: "execute-api:Invoke", Effect: effect, Resource: event.methodArn }] },
    context: { plan: "pro", seats: 3, beta: true },
  };
};`
	if err := writeFiles(dir, map[string]string{"auth.js": handler}); err != nil {
		t.Fatal(err)
	}
	sink := newEventSink(t)
	srv := servertest.StartYAML(t, fmt.Sprintf(`
functions:
  authfn: {runtime: nodejs20.x, handler: auth.auth, codeDir: %q, environment: {CALLS: %q}}
authorizers:
  keys: {type: lambda, function: authfn, identitySources: [route.request.header.X-Api-Key]}
routes:
  $connect: {authorizer: keys}
  $default: {integration: {type: http, url: %q}, routeResponse: true}
`, dir, counter, sink.srv.URL))
	calls := func() int { b, _ := readFile(counter); return len(b) }

	if got := testutil.DialStatus(t, srv.WS, nil); got != http.StatusUnauthorized || calls() != 0 {
		t.Errorf("missing identity source: status %d after %d calls, want 401 without invoking", got, calls())
	}
	for key, want := range map[string]int{"wrong-key": http.StatusForbidden, "throw": http.StatusUnauthorized, "broken": http.StatusInternalServerError} {
		if got := testutil.DialStatus(t, srv.WS, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key}}}); got != want {
			t.Errorf("key %q: status %d, want %d", key, got, want)
		}
	}
	c := testutil.Dial(t, srv.WS, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {"let-me-in"}}})
	if got := testutil.ReadTextAfter(t, c, "hi"); got != "ok" {
		t.Fatalf("message answered %q", got)
	}
	a := sink.authorizers()
	if len(a) != 1 || a[0]["principalId"] != "key-owner" || a[0]["plan"] != "pro" || a[0]["seats"] != float64(3) || a[0]["beta"] != true {
		t.Errorf("authorizer context in the message event = %v", a)
	}
}

func TestManagementAPIRequiresCredentials(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, `
management:
  accessKeys: {AKIDGOOD: good-secret}
  tokens: [dashboard-token-123]
`)
	c := testutil.Dial(t, srv.WS, nil)
	ctx := context.Background()

	signed := func(secret string) *apigatewaymanagementapi.Client {
		return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.HTTP + "/dev"), RetryMaxAttempts: 1,
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKIDGOOD", SecretAccessKey: secret}, nil
			}),
		})
	}
	var forbidden *types.ForbiddenException
	if _, err := signed("wrong-secret").PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String("AAAAAAAAAAAAAAA="), Data: []byte("x")}); !errors.As(err, &forbidden) {
		t.Errorf("wrong secret: err = %v, want *types.ForbiddenException", err)
	}

	// Find the connection with the bearer token, then post with SigV4.
	req, _ := http.NewRequest(http.MethodGet, srv.HTTP+"/@connections", nil)
	req.Header.Set("Authorization", "Bearer dashboard-token-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Items []struct{ ConnectionID string } `json:"items"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(page.Items) != 1 {
		t.Fatalf("bearer listing: %d %v", resp.StatusCode, page)
	}
	if _, err := signed("good-secret").PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(page.Items[0].ConnectionID), Data: []byte("signed")}); err != nil {
		t.Fatalf("signed post: %v", err)
	}
	if got := testutil.ReadText(t, c); got != "signed" {
		t.Errorf("client got %q", got)
	}

	// Forgeries: each gets 403 ForbiddenException and changes nothing.
	id := page.Items[0].ConnectionID
	path := "/dev/@connections/" + strings.ReplaceAll(id, "=", "%3D")
	signReq := func(method, url, body string, at time.Time) *http.Request {
		r, _ := http.NewRequest(method, url, strings.NewReader(body))
		sum := sha256hex(body)
		r.Header.Set("X-Amz-Content-Sha256", sum)
		_ = v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "AKIDGOOD", SecretAccessKey: "good-secret"}, r, sum, "execute-api", "us-east-1", at)
		return r
	}
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"unsigned", func() *http.Request { r, _ := http.NewRequest("POST", srv.HTTP+path, strings.NewReader("x")); return r }},
		{"altered body", func() *http.Request {
			r := signReq("POST", srv.HTTP+path, "original", time.Now())
			r.Body = io.NopCloser(strings.NewReader("altered!"))
			return r
		}},
		{"altered path", func() *http.Request {
			r := signReq("POST", srv.HTTP+"/dev/@connections/BBBBBBBBBBBBBBB%3D", "x", time.Now())
			r.URL.Path, r.URL.RawPath = "/dev/@connections/"+id, path
			return r
		}},
		{"stale date", func() *http.Request { return signReq("POST", srv.HTTP+path, "x", time.Now().Add(-10*time.Minute)) }},
		{"unsigned payload replayed with another body", func() *http.Request {
			r, _ := http.NewRequest("POST", srv.HTTP+path, strings.NewReader("original"))
			r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
			_ = v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "AKIDGOOD", SecretAccessKey: "good-secret"}, r, "UNSIGNED-PAYLOAD", "execute-api", "us-east-1", time.Now())
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader("replayed")), 8
			return r
		}},
		{"missing X-Amz-Date", func() *http.Request {
			r := signReq("POST", srv.HTTP+path, "x", time.Now())
			r.Header.Del("X-Amz-Date")
			return r
		}},
		{"wrong bearer", func() *http.Request {
			r, _ := http.NewRequest("POST", srv.HTTP+path, strings.NewReader("x"))
			r.Header.Set("Authorization", "Bearer guess")
			return r
		}},
		{"dashboard without token", func() *http.Request { r, _ := http.NewRequest("GET", srv.HTTP+"/_/api/stats", nil); return r }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.DefaultClient.Do(tt.req())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-amzn-ErrorType") != "ForbiddenException" {
				t.Errorf("status %d type %q, want 403 ForbiddenException", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
			}
		})
	}
	// The dashboard's tail accepts the token as a query parameter (EventSource cannot set headers).
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx2, "GET", srv.HTTP+"/_/api/tail?access_token=dashboard-token-123", nil)
	tailResp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	tailResp.Body.Close()
	if tailResp.StatusCode != http.StatusOK {
		t.Errorf("tail with access_token: %d, want 200", tailResp.StatusCode)
	}
	if status, _ := testutil.Get(t, srv.HTTP+"/healthz"); status != http.StatusOK {
		t.Errorf("healthz needs no credentials: %d", status)
	}
}

func TestSeparateManagementListener(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, "management: {listen: 127.0.0.1:0}\n")
	testutil.Dial(t, srv.WS, nil)
	if srv.Management == srv.HTTP {
		t.Fatal("management has no listener of its own")
	}
	resp, err := http.Get(srv.HTTP + "/@connections")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("x-amzn-ErrorType") != "NotFoundException" ||
		resp.Header.Get("x-amzn-RequestId") == "" || !strings.Contains(string(body), `"message":"No method found matching route @connections for http method GET."`) {
		t.Errorf("management API on the client listener: %d %v %s, want 404 NotFoundException as API Gateway sends it", resp.StatusCode, resp.Header, body)
	}
	if status, _ := testutil.Get(t, srv.HTTP+"/_/"); status != http.StatusNotFound {
		t.Errorf("dashboard on the client listener: %d, want 404", status)
	}
	// The connection is listed a moment after its 101.
	testutil.Eventually(t, 5*time.Second, func() bool {
		status, body := testutil.Get(t, srv.Management+"/@connections")
		return status == http.StatusOK && strings.Contains(body, "connectionId")
	}, "the management listener lists the connection")
	if got := testutil.DialStatus(t, strings.Replace(srv.Management, "http", "ws", 1), nil); got != http.StatusNotFound {
		t.Errorf("WebSocket on the management listener: %d, want 404", got)
	}
	if got := testutil.DialStatus(t, srv.WS+"/prod", nil); got != http.StatusForbidden {
		t.Errorf("WebSocket at an unknown stage: %d, want 403, as API Gateway answers", got)
	}
}

func TestCheckExposure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, addr string
		exposed          bool
	}{
		{"loopback without credentials", "", "127.0.0.1:3001", false},
		{"ipv6 loopback", "", "[::1]:3001", false},
		{"all interfaces without credentials", "", "0.0.0.0:3001", true},
		{"public address without credentials", "", "192.0.2.10:3001", true},
		{"all interfaces with keys", "management: {accessKeys: {AKID: s}}\n", "0.0.0.0:3001", false},
		{"all interfaces with a token", "management: {tokens: [t]}\n", "0.0.0.0:3001", false},
		{"explicitly allowed", "management: {allowUnauthenticated: true}\n", "0.0.0.0:3001", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := servertest.StartYAML(t, tt.yaml)
			err := srv.CheckExposure(tt.addr)
			if exposed := err != nil; exposed != tt.exposed {
				t.Errorf("CheckExposure(%s) = %v, want exposed %v", tt.addr, err, tt.exposed)
			}
		})
	}
}

func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A Lambda authorizer behind the Lambda Invoke API (here a local emulator).
// Not parallel: the AWS credential chain reads the environment.
func TestLambdaAuthorizerThroughInvokeAPI(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	var mu sync.Mutex
	var events []map[string]any
	emulator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2015-03-31/functions/authfn/invocations" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
			http.Error(w, "unexpected call "+r.URL.Path, http.StatusBadRequest)
			return
		}
		var ev map[string]any
		_ = json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		headers, _ := ev["headers"].(map[string]any)
		if headers["X-Api-Key"] != "ok" {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			_, _ = io.WriteString(w, `{"errorMessage":"Unauthorized","errorType":"Error"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"principalId":    "invoked",
			"policyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ev["methodArn"]}}},
		})
	}))
	defer emulator.Close()
	srv := servertest.StartYAML(t, fmt.Sprintf(`
authorizers:
  keys: {type: lambda, invoke: {function: authfn, endpoint: %q}, identitySources: [route.request.header.X-Api-Key]}
routes:
  $connect: {authorizer: keys}
  $default: {integration: {type: echo}}
`, emulator.URL))
	if got := testutil.DialStatus(t, srv.WS, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {"nope"}}}); got != http.StatusUnauthorized {
		t.Errorf("authorizer threw Unauthorized: status %d, want 401", got)
	}
	c := testutil.Dial(t, srv.WS, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {"ok"}}})
	if got := testutil.ReadTextAfter(t, c, "in"); got != "in" {
		t.Errorf("echo = %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[1]["type"] != "REQUEST" || !strings.HasSuffix(fmt.Sprint(events[1]["methodArn"]), "/dev/$connect") {
		t.Errorf("authorizer events = %v", events)
	}
}

// A jwksFile is read relative to the config file; one that is missing,
// empty or holds no usable key stops the build with its name.
func TestJWTAuthorizerJWKSFile(t *testing.T) {
	t.Parallel()
	iss := newJWTIssuer(t)
	resp, err := http.Get(iss.jwks.URL)
	if err != nil {
		t.Fatal(err)
	}
	set, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		jwks []byte // nil: no file
		want string // "" means it builds
	}{
		{"the issuer's set", set, ""},
		{"missing", nil, ""},
		{"empty", []byte{}, "is empty"},
		{"no usable key", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), "no usable signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.jwks != nil {
				if err := os.WriteFile(filepath.Join(dir, "jwks.json"), tt.jwks, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "switchboard.yaml")
			yaml := "authorizers:\n  users: {type: jwt, jwksFile: jwks.json}\nroutes:\n  $connect: {authorizer: users}\n"
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
			if tt.jwks == nil {
				// A missing file stops the load, naming the key and the line.
				if want := path + ":2: authorizers.users.jwksFile: no such file: " + filepath.Join(dir, "jwks.json"); err == nil || err.Error() != want {
					t.Fatalf("Load = %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				srv := servertest.Start(t, cfg)
				testutil.Dial(t, srv.WS+"?token="+iss.sign(t, iss.claims(), nil), nil)
				if got := testutil.DialStatus(t, srv.WS, nil); got != http.StatusUnauthorized {
					t.Errorf("no token: %d, want 401", got)
				}
				return
			}
			s, err := server.New(cfg, server.Options{})
			if err == nil {
				_ = s.Close()
				t.Fatalf("New succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `authorizer "users"`) {
				t.Errorf("New = %v, want the authorizer named and %q", err, tt.want)
			}
		})
	}
}
