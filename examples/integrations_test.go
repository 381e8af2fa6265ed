package examples_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// buildCommand builds the Go command in pkg (relative to examples/) once
// per test binary and returns the executable's path.
var buildCommand = func() func(t *testing.T, pkg string) string {
	var mu sync.Mutex
	built := map[string]string{}
	return func(t *testing.T, pkg string) string {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if p, ok := built[pkg]; ok {
			return p
		}
		out := filepath.Join(os.TempDir(), "switchboard-example-"+strings.NewReplacer("/", "-", ".", "").Replace(pkg)+"-"+rand.Text()[:8])
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		built[pkg] = out
		return out
	}
}()

// startCommand runs cmd until the end of the test and returns its output.
func startCommand(t *testing.T, cmd *exec.Cmd) *testutil.Buffer {
	t.Helper()
	out := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out)
		}
	})
	return out
}

// exampleCopy copies the files of the example in folder name (not its
// node_modules) to a temporary folder, replacing in switchboard.yaml each
// old string of replace by its new one: the README's fixed ports become the
// test's own.
func exampleCopy(t *testing.T, name string, replace ...string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(name, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "switchboard.yaml" {
			r := strings.NewReplacer(replace...)
			if r.Replace(string(b)) == string(b) && len(replace) > 0 {
				t.Fatalf("%s/switchboard.yaml has none of %q", name, replace)
			}
			b = []byte(r.Replace(string(b)))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func requireNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
}

var backendRE = regexp.MustCompile(`backend listening on (http://\S+)`)

// examples/http-backend: $connect, $disconnect, a custom route and $default
// answered by an HTTP backend, as its README shows.
func TestHTTPBackendExample(t *testing.T) {
	t.Parallel()
	backend := startCommand(t, exec.Command(buildCommand(t, "./http-backend/backend"), "-listen", "127.0.0.1:0"))
	testutil.Eventually(t, 30*time.Second, func() bool { return backendRE.MatchString(backend.String()) }, "backend started: %q", backend)
	url := backendRE.FindStringSubmatch(backend.String())[1]
	dir := exampleCopy(t, "http-backend", "http://127.0.0.1:8080", url)
	gw := serve(t, "--config", filepath.Join(dir, "switchboard.yaml"))

	if got := testutil.DialStatus(t, gw.ws, nil); got != http.StatusUnauthorized {
		t.Errorf("no name: handshake status %d, want 401 from the backend's $connect", got)
	}
	c := testutil.Dial(t, gw.ws+"?name=Ada", nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"greet"}`); got != "Hello, Ada!" {
		t.Errorf("greet answered %q, want \"Hello, Ada!\"", got)
	}
	if got := testutil.ReadTextAfter(t, c, `hello`); got != "no route for hello" {
		t.Errorf("$default answered %q, want \"no route for hello\"", got)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return regexp.MustCompile(`disconnected \S+ \(Ada\), close code 1000`).MatchString(backend.String())
	}, "the backend's $disconnect ran: %q", backend)
}

// examples/invoke: the gateway's routes call a function through the Lambda
// Invoke API of another switchboard, which hosts it and checks signatures.
func TestInvokeExample(t *testing.T) {
	t.Parallel()
	requireNode(t)
	abs, err := filepath.Abs("invoke")
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := serveIn(t, abs, "SWITCHBOARD_CONFIG=functions.yaml", "SWITCHBOARD_MANAGEMENT_KEYS=AKIDEXAMPLE:example-secret")
	endpoint := "http" + strings.TrimPrefix(host, "ws")
	dir := exampleCopy(t, "invoke", "http://127.0.0.1:9001", endpoint)
	aws := []string{"AWS_REGION=us-east-1", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_SESSION_TOKEN="}

	ws, _, _ := serveIn(t, dir, append(aws, "SWITCHBOARD_CONFIG=switchboard.yaml",
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=example-secret")...)
	c := testutil.Dial(t, ws, nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"shout","data":"hello"}`); got != "HELLO" {
		t.Errorf("shout answered %q, want HELLO", got)
	}
	if got := testutil.ReadTextAfter(t, c, `quiet please`); got != "QUIET PLEASE" {
		t.Errorf("$default answered %q, want QUIET PLEASE", got)
	}

	// Signed with another secret, the host refuses the call: the client gets
	// API Gateway's error frame.
	ws, _, _ = serveIn(t, dir, append(aws, "SWITCHBOARD_CONFIG=switchboard.yaml",
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=wrong")...)
	c = testutil.Dial(t, ws, nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"shout","data":"hello"}`); !strings.HasPrefix(got, `{"message": "Internal server error"`) {
		t.Errorf("with a wrong secret shout answered %q, want the Internal server error frame", got)
	}
}

// examples/jwt-authorizer: tokens minted by its mint command with the
// example's key are accepted; expired ones, ones of another key or
// audience, and none at all get 401.
func TestJWTAuthorizerExample(t *testing.T) {
	t.Parallel()
	mint := buildCommand(t, "./jwt-authorizer/mint")
	token := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(mint, append([]string{"-key", "jwt-authorizer/example-key.pem"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("mint %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	gw := serve(t, "--config", "jwt-authorizer/switchboard.yaml")

	// A key of the same kid whose public half is not in jwks.json.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": "mallory", "iss": "https://auth.example.com", "aud": "switchboard-example", "exp": time.Now().Add(time.Hour).Unix(),
	})
	forged.Header["kid"] = "example-es256"
	forgedToken, err := forged.SignedString(other)
	if err != nil {
		t.Fatal(err)
	}
	for name, url := range map[string]string{
		"no token":       gw.ws,
		"expired":        gw.ws + "?token=" + token("-ttl", "-5m"),
		"another key":    gw.ws + "?token=" + forgedToken,
		"wrong audience": gw.ws + "?token=" + token("-aud", "another-app"),
	} {
		if got := testutil.DialStatus(t, url, nil); got != http.StatusUnauthorized {
			t.Errorf("%s: handshake status %d, want 401", name, got)
		}
	}

	a := testutil.Dial(t, gw.ws, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token("-sub", "alice")}}})
	b := testutil.Dial(t, gw.ws+"?token="+token("-sub", "bob"), nil)
	testutil.Write(t, a, `{"action":"sendMessage","data":"hello from alice"}`)
	for name, c := range map[string]*websocket.Conn{"alice": a, "bob": b} {
		if got := testutil.ReadText(t, c); got != "hello from alice" {
			t.Errorf("%s got %q", name, got)
		}
	}
	base := "http" + strings.TrimPrefix(gw.ws, "ws")
	_, list := testutil.Get(t, base+"/@connections")
	for _, who := range []string{`"principal":"alice"`, `"principal":"bob"`} {
		if !strings.Contains(list, who) {
			t.Errorf("GET /@connections lacks %s: %s", who, list)
		}
	}
	// jwks.json is read again on SIGHUP: in a copy of the example, the
	// other key replaces the example's.
	dir := exampleCopy(t, "jwt-authorizer")
	gw = serve(t, "--config", filepath.Join(dir, "switchboard.yaml"))
	valid := token("-sub", "carol")
	testutil.Dial(t, gw.ws+"?token="+valid, nil)
	set, err := json.Marshal(map[string]any{"keys": []any{jwkES256("example-es256", &other.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), set, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(gw.stderr.String(), "configuration reloaded") },
		"the reload is logged; stderr:\n%s", gw.stderr)
	if got := testutil.DialStatus(t, gw.ws+"?token="+valid, nil); got != http.StatusUnauthorized {
		t.Errorf("after the key changed, the example key's token: handshake status %d, want 401", got)
	}
	testutil.Dial(t, gw.ws+"?token="+forgedToken, nil)
}

// jwkES256 is pub as a JWK.
func jwkES256(kid string, pub *ecdsa.PublicKey) map[string]string {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256", "x": enc(b[1:33]), "y": enc(b[33:])}
}

// examples/lambda-authorizer: a Node REQUEST authorizer allows one token
// and denies others; what it says reaches the connection's events.
func TestLambdaAuthorizerExample(t *testing.T) {
	t.Parallel()
	requireNode(t)
	gw := serve(t, "--config", "lambda-authorizer/switchboard.yaml")
	if got := testutil.DialStatus(t, gw.ws, nil); got != http.StatusUnauthorized {
		t.Errorf("no token: handshake status %d, want 401", got)
	}
	// The first handshake starts the function: a cap for a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, gw.ws+"?token=wrong", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("token=wrong: handshake %v %v, want 403 (Deny)", resp, err)
	}
	c := testutil.Dial(t, gw.ws+"?token=let-me-in", nil)
	var who map[string]any
	raw := testutil.ReadTextAfter(t, c, `{"action":"whoami"}`)
	if err := json.Unmarshal([]byte(raw), &who); err != nil || who["principalId"] != "user-42" || who["plan"] != "pro" {
		t.Errorf("whoami answered %s, want principalId user-42 and plan pro", raw)
	}
}

// examples/tls: the certificate made by Go's generate_cert.go, as the README
// says; wss:// and https:// work for a client trusting it, plain ws:// does
// not.
func TestTLSExample(t *testing.T) {
	t.Parallel()
	dir := exampleCopy(t, "tls")
	gen := exec.Command("go", "run", filepath.Join(runtime.GOROOT(), "src", "crypto", "tls", "generate_cert.go"), "--host", "127.0.0.1,localhost", "--ca")
	gen.Dir = dir
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("generate_cert.go: %v\n%s", err, out)
	}
	ws, stdout, _ := serveIn(t, dir, "SWITCHBOARD_CONFIG=switchboard.yaml")
	if !strings.HasPrefix(ws, "wss://127.0.0.1:") {
		t.Fatalf("banner WebSocket URL %q, want wss://", ws)
	}
	if strings.Contains(stdout.String(), "ws://") && !strings.Contains(stdout.String(), "wss://") {
		t.Errorf("banner names plain ws://:\n%s", stdout)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("cert.pem holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := testutil.Dial(t, ws, &websocket.DialOptions{HTTPClient: client})
	testutil.Write(t, c, `{"action":"sendMessage","data":"over TLS"}`)
	if got := testutil.ReadText(t, c); got != "over TLS" {
		t.Errorf("sendMessage over wss:// got %q", got)
	}
	base := "https" + strings.TrimPrefix(ws, "wss")
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("GET /healthz over https = %d %s", resp.StatusCode, body)
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "--cacert", filepath.Join(dir, "cert.pem"), base+"/healthz").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"status":"ok"`) {
			t.Errorf("curl --cacert cert.pem %s/healthz: %v %s", base, err, out)
		}
	}
	// A client that does not trust the certificate is refused by its own TLS.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, _, err := websocket.Dial(ctx, ws, nil); err == nil {
		_ = c.CloseNow()
		t.Error("a client without the CA connected")
	}
	// Plain ws:// on the TLS port.
	plain := "ws" + strings.TrimPrefix(ws, "wss")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	c2, resp2, err := websocket.Dial(ctx2, plain, nil)
	if err == nil {
		_ = c2.CloseNow()
		t.Fatalf("plain %s connected", plain)
	}
	if resp2 == nil || resp2.StatusCode != http.StatusBadRequest {
		t.Errorf("plain %s: %v, want 400 Bad Request", plain, err)
	}
}

// Each example's README names files that exist and configurations that
// load: its commands can be typed as written.
func TestExampleREADMEs(t *testing.T) {
	t.Parallel()
	pathRE := regexp.MustCompile(`(?:\./)?examples/[\w./-]+`)
	for _, name := range []string{"go-library", "http-backend", "invoke", "jwt-authorizer", "lambda-authorizer", "tls"} {
		b, err := os.ReadFile(filepath.Join(name, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		inSh, commands := false, 0
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "```") {
				inSh = !inSh && strings.TrimSpace(line) == "```sh"
				continue
			}
			if !inSh {
				continue
			}
			commands++
			for _, p := range pathRE.FindAllString(line, -1) {
				if _, err := os.Stat(filepath.Join("..", p)); err != nil {
					t.Errorf("%s/README.md: %q names %s, which does not exist", name, strings.TrimSpace(line), p)
				}
			}
		}
		if commands == 0 {
			t.Errorf("%s/README.md shows no command", name)
		}
	}
}
