// Package examples_test runs every example end to end: real gateway, real
// function processes, real WebSocket clients and the AWS SDKs.
package examples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var (
	buildOnce sync.Once
	goFnPath  string
	buildErr  error
)

// goFunction builds examples/chat-go/fn once per test binary.
func goFunction(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-chat-go-")
		if err != nil {
			buildErr = err
			return
		}
		goFnPath = filepath.Join(dir, "chatfn")
		out, err := exec.Command("go", "build", "-o", goFnPath, "./chat-go/fn").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return goFnPath
}

var (
	serveOnce sync.Once
	servePath string
	serveErr  error
)

// switchboardBinary builds cmd/switchboard once per test binary.
func switchboardBinary(t testing.TB) string {
	t.Helper()
	serveOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-examples-")
		if err != nil {
			serveErr = err
			return
		}
		servePath = filepath.Join(dir, "switchboard")
		out, err := exec.Command("go", "build", "-o", servePath, "../cmd/switchboard").CombinedOutput()
		if err != nil {
			serveErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if serveErr != nil {
		t.Fatal(serveErr)
	}
	return servePath
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range []string{goFnPath, servePath} {
		if p != "" {
			_ = os.RemoveAll(filepath.Dir(p))
		}
	}
	os.Exit(code)
}

func chatGoConfig(t testing.TB) string {
	return fmt.Sprintf(`
functions:
  chat: {command: [%q], maxProcesses: 2, timeout: 20s}
routes:
  $connect:    {integration: {type: lambda, function: chat}}
  $disconnect: {integration: {type: lambda, function: chat}}
  sendMessage: {integration: {type: lambda, function: chat}}
  whoami:      {integration: {type: lambda, function: chat}}
  echo:        {integration: {type: lambda, function: chat}, routeResponse: true}
`, goFunction(t))
}

// connIDs lists the open connections through the management API.
func connIDs(t testing.TB, base string) []string {
	t.Helper()
	status, body := testutil.Get(t, base+"/@connections")
	var page struct {
		Items []struct {
			ConnectionID string `json:"connectionId"`
		} `json:"items"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil {
		t.Fatalf("GET /@connections = %d %s", status, body)
	}
	var ids []string
	for _, it := range page.Items {
		ids = append(ids, it.ConnectionID)
	}
	return ids
}

func TestChatGoFunctionReceivesTheAPIGatewayEvent(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, chatGoConfig(t))
	if got := testutil.DialStatus(t, srv.WS+"?deny=1", nil); got != http.StatusUnauthorized {
		t.Errorf("$connect returning 401: handshake status %d, want 401", got)
	}
	c := testutil.Dial(t, srv.WS+"/dev?room=blue", &websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {"examples-test"}}})
	var ids []string
	testutil.Eventually(t, 5*time.Second, func() bool { ids = connIDs(t, srv.HTTP); return len(ids) == 1 }, "one connection listed, have %v", ids)
	before := time.Now()
	const body = `{"action":"whoami","x":[1,2]}`
	raw := testutil.ReadTextAfter(t, c, body)
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		t.Fatalf("the function posted %q: %v", raw, err)
	}
	rc := ev.RequestContext
	idRE := regexp.MustCompile(`^[A-Za-z0-9_-]{15}=$`)
	checks := []struct {
		name string
		ok   bool
	}{
		{"body verbatim", ev.Body == body && !ev.IsBase64Encoded},
		{"no headers on a message", ev.Headers == nil && ev.QueryStringParameters == nil},
		{"routeKey", rc.RouteKey == "whoami"},
		{"eventType", rc.EventType == "MESSAGE"},
		{"connectionId", rc.ConnectionID == ids[0]},
		{"stage", rc.Stage == "dev"},
		{"apiId", rc.APIID == "local"},
		{"domainName", strings.HasPrefix(srv.HTTP, "http://"+rc.DomainName)},
		{"messageDirection", rc.MessageDirection == "IN"},
		{"messageId", rc.MessageID != nil && idRE.MatchString(fmt.Sprint(rc.MessageID))},
		{"requestId", idRE.MatchString(rc.RequestID) && rc.ExtendedRequestID == rc.RequestID},
		{"identity", rc.Identity.SourceIP == "127.0.0.1" && rc.Identity.UserAgent == "examples-test"},
		{"connectedAt before the message", rc.ConnectedAt > 0 && rc.ConnectedAt <= before.UnixMilli()},
		{"requestTimeEpoch", rc.RequestTimeEpoch >= before.UnixMilli()-1000 && rc.RequestTimeEpoch <= time.Now().UnixMilli()},
		{"requestTime", rc.RequestTime == time.UnixMilli(rc.RequestTimeEpoch).UTC().Format("02/Jan/2006:15:04:05 +0000")},
		{"no authorizer", rc.Authorizer == nil},
		{"no disconnect fields", rc.DisconnectStatusCode == 0 && rc.DisconnectReason == nil},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("event %s wrong: %s", c.name, raw)
		}
	}
}

func TestChatGoFunctionsBroadcast(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, chatGoConfig(t))
	a := testutil.Dial(t, srv.WS, nil)
	b := testutil.Dial(t, srv.WS, nil)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, srv.HTTP)) == 2 }, "two connections")
	testutil.Write(t, a, `{"action":"sendMessage","data":"hello from Go"}`)
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		if got := testutil.ReadText(t, c); got != "hello from Go" {
			t.Errorf("client %s got %q", name, got)
		}
	}
	if got := testutil.ReadTextAfter(t, a, `{"action":"echo","n":1}`); got != `{"action":"echo","n":1}` {
		t.Errorf("two-way route answered %q", got)
	}
}

// nodeProject makes sure the Node example's dependencies are installed.
func nodeProject(t testing.TB) string {
	t.Helper()
	return npmProject(t, "chat-node")
}

// npmProject makes sure the dependencies of the example in folder name are
// installed (those it runs with: no devDependencies), and returns its
// absolute path.
func npmProject(t testing.TB, name string) string {
	t.Helper()
	return npmProjectWith(t, name, "@aws-sdk/client-apigatewaymanagementapi")
}

// npmProjectWith is npmProject for an example whose installed
// dependencies are told by the package want.
func npmProjectWith(t testing.TB, name, want string) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	testutil.NPMModules(t, dir, want, "--omit=dev")
	return dir
}

func TestChatNodeServerlessProject(t *testing.T) {
	t.Parallel()
	dir := nodeProject(t)
	cfg, err := config.LoadServerless(filepath.Join(dir, "serverless.yml"), func(k string) string {
		return map[string]string{"CHAT_GREETING": "hello from the environment"}[k]
	}, config.Overrides{})
	if err != nil {
		t.Fatalf("LoadServerless: %v", err)
	}
	srv := servertest.Start(t, cfg)
	if got := testutil.DialStatus(t, srv.WS+"?deny=1", nil); got != http.StatusUnauthorized {
		t.Errorf("$connect returning 401: handshake status %d, want 401", got)
	}
	a := testutil.Dial(t, srv.WS, nil)
	b := testutil.Dial(t, srv.WS+"/dev", nil)
	testutil.Eventually(t, 10*time.Second, func() bool { return len(connIDs(t, srv.HTTP)) == 2 }, "two connections")

	// sendMessage posts through @aws-sdk/client-apigatewaymanagementapi.
	testutil.Write(t, a, `{"action":"sendMessage","data":"hello from Node"}`)
	for name, c := range map[string]*websocket.Conn{"a": a, "b": b} {
		if got := testutil.ReadText(t, c); got != "hello from Node" {
			t.Errorf("client %s got %q", name, got)
		}
	}
	// whoami is a callback-style handler on a two-way route.
	var who map[string]string
	if err := json.Unmarshal([]byte(testutil.ReadTextAfter(t, b, `{"action":"whoami"}`)), &who); err != nil {
		t.Fatal(err)
	}
	if who["routeKey"] != "whoami" || who["greeting"] != "hello from the environment" || who["requestId"] == "" {
		t.Errorf("whoami = %v", who)
	}
	// No $default route: API Gateway's Forbidden frame.
	if got := testutil.ReadTextAfter(t, b, `{"action":"nope"}`); !strings.HasPrefix(got, `{"message": "Forbidden", "connectionId":"`) {
		t.Errorf("unknown route answered %q", got)
	}
}

// Callback-style handlers, one of them returning {} without calling back,
// run as on AWS.
func TestCallbackNodeServerlessProject(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	cfg, err := config.LoadServerless(filepath.Join("callback-node", "serverless.yml"), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("LoadServerless: %v", err)
	}
	srv := servertest.Start(t, cfg)
	// $connect's null answer opens the connection.
	c := testutil.Dial(t, srv.WS, nil)
	// ping pushes its pong before it ends: it ends once its event loop is
	// empty. A second ping sent on the pong could find the process still
	// busy and start another, cold, so it is sent once the first invocation
	// is over and the process is warm and free. The first pays a cold start
	// (node, the handler, fetch's client), which on a loaded machine takes
	// seconds: its bound is one for a hang.
	for i := range 2 {
		testutil.Write(t, c, `{"action":"ping"}`)
		if _, got := testutil.Read(t, c, time.Minute); got != "pong" {
			t.Errorf("ping %d pushed %q, want pong", i, got)
		}
		testutil.Eventually(t, time.Minute, func() bool { return routeInvocations(t, srv.HTTP, "ping") == i+1 },
			"ping %d's invocation is over", i)
	}
	if got := testutil.ReadTextAfter(t, c, `{"action":"echo","data":"hi"}`); got != "echo: hi" {
		t.Errorf("echo answered %q, want \"echo: hi\"", got)
	}
}

// routeInvocations returns how many invocations of route are over, from
// the gateway's metrics.
func routeInvocations(t *testing.T, base, route string) int {
	t.Helper()
	_, body := testutil.Get(t, base+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "switchboard_integration_duration_seconds_count{") && strings.Contains(line, `route="`+route+`"`) {
			n, _ := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
			return n
		}
	}
	return 0
}

func TestFaultyHandlersKeepTheConnectionOpen(t *testing.T) {
	t.Parallel()
	nodeProject(t)
	dir, err := filepath.Abs("testdata/faulty")
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.StartYAML(t, fmt.Sprintf(`
functions:
  faulty: {runtime: nodejs20.x, handler: handler.handle, codeDir: %q, timeout: 1s, maxProcesses: 2}
routes:
  $default: {integration: {type: lambda, function: faulty}, routeResponse: true}
`, dir))
	c := testutil.Dial(t, srv.WS, nil)
	for _, msg := range []string{`{"do":"throw"}`, `{"do":"exit"}`, `{"do":"hang"}`} {
		got := testutil.ReadTextAfter(t, c, msg)
		if !strings.HasPrefix(got, `{"message": "Internal server error", "connectionId":"`) {
			t.Errorf("after %s got %q, want the Internal server error frame", msg, got)
		}
		if got := testutil.ReadTextAfter(t, c, `{"do":"echo"}`); got != `{"do":"echo"}` {
			t.Errorf("after %s the connection answered %q, want the echo", msg, got)
		}
	}
}

func TestEntitySubscriptions(t *testing.T) {
	t.Parallel()
	cfgPath, err := filepath.Abs("entities/switchboard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, cfg)
	sub := testutil.Dial(t, srv.WS, nil)
	other := testutil.Dial(t, srv.WS, nil)
	testutil.Write(t, sub, `{"action":"subscribe","entityId":"order-42"}`)
	testutil.Write(t, other, `{"action":"subscribe","entityId":"order-7"}`)

	publisher := exec.Command("go", "run", "./entities/publisher", "-endpoint", srv.HTTP+"/dev", "-entity", "order-42")
	publisher.Stdin = strings.NewReader("{\"status\":\"packed\"}\n{\"status\":\"shipped\"}\n")
	testutil.Eventually(t, 5*time.Second, func() bool {
		status, body := testutil.Get(t, srv.HTTP+"/@connections")
		return status == 200 && strings.Count(body, `"topics"`) == 2
	}, "both subscriptions registered")
	out, err := publisher.CombinedOutput()
	if err != nil {
		t.Fatalf("publisher: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "published to 1 subscriber(s) of order-42") {
		t.Errorf("publisher output %q", out)
	}
	for _, want := range []string{`{"status":"packed"}`, `{"status":"shipped"}`} {
		if got := testutil.ReadText(t, sub); got != want {
			t.Errorf("subscriber got %q, want %q", got, want)
		}
	}
	// The other entity's subscriber got nothing: its next message is its own.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = other.Write(ctx, websocket.MessageText, []byte("not json"))
	if got := testutil.ReadText(t, other); !strings.Contains(got, "subscribe") {
		t.Errorf("non-subscriber got %q, want only the $default mock's answer", got)
	}
}

// With a signed management API, hosted functions sign their calls with its
// key and their PostToConnection goes through.
func TestChatGoFunctionSignsForAProtectedManagementAPI(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, chatGoConfig(t)+"management: {accessKeys: {AKIDFUNCTIONS: functions-secret}}\n")
	c := testutil.Dial(t, srv.WS, nil)
	raw := testutil.ReadTextAfter(t, c, `{"action":"whoami"}`)
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal([]byte(raw), &ev); err != nil || ev.RequestContext.RouteKey != "whoami" {
		t.Fatalf("whoami answered %q (%v), want the event posted back through the signed API", raw, err)
	}
	if status, _ := testutil.Get(t, srv.HTTP+"/@connections"); status != http.StatusForbidden {
		t.Errorf("unsigned listing = %d, want 403: the API is protected", status)
	}
}

// servedProcess is `switchboard serve` running as a process of its own.
type servedProcess struct {
	cmd    *exec.Cmd
	ws     string // ws://127.0.0.1:PORT
	stdout *testutil.Buffer
	stderr *testutil.Buffer
}

var bannerWSRE = regexp.MustCompile(`WebSocket:\s+(wss?://\S+)`)

// serve runs `switchboard serve args...` until the end of the test, with a
// data directory of its own for the local CA, and waits for its banner.
func serve(t *testing.T, args ...string) *servedProcess {
	t.Helper()
	return serveEnv(t, nil, args...)
}

// serveEnv is serve with env (KEY=value) added to the process's
// environment.
func serveEnv(t *testing.T, env []string, args ...string) *servedProcess {
	t.Helper()
	cmd := exec.Command(switchboardBinary(t), append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "SWITCHBOARD_DATA_DIR="+t.TempDir()), env...)
	p := &servedProcess{cmd: cmd, stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}}
	stdout := p.stdout
	cmd.Stdout, cmd.Stderr = stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("switchboard stdout:\n%s\nstderr:\n%s", stdout, p.stderr)
		}
	})
	// A cap for a loaded machine, not a pace: the banner ends the wait.
	testutil.Eventually(t, 90*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("switchboard exited before its banner (%v); stderr:\n%s", err, p.stderr)
		default:
		}
		return bannerWSRE.MatchString(stdout.String())
	}, "banner printed; stdout %q stderr %q", stdout, p.stderr)
	p.ws = bannerWSRE.FindStringSubmatch(stdout.String())[1]
	return p
}

// The Serverless Framework's TypeScript template: serverless.ts importing
// its functions through tsconfig paths, .ts handlers compiled at start, a
// handler answering through @aws-sdk/client-apigatewaymanagementapi at
// https://{domainName}/{stage} (the gateway's local CA trusted through
// NODE_EXTRA_CA_CERTS), and a thrown error's stack naming the .ts line.
// The http hello function is declared but not served: http events are
// listed as not supported.
func TestTypeScriptServerlessProject(t *testing.T) {
	t.Parallel()
	dir := npmProject(t, "typescript")
	gw := serve(t, "--serverless", filepath.Join(dir, "serverless.ts"), "--warm")
	if !strings.Contains(gw.stderr.String(), "function chat warm") {
		t.Errorf("no warm line for chat; stderr:\n%s", gw.stderr)
	}
	a := testutil.Dial(t, gw.ws+"/dev", nil)
	b := testutil.Dial(t, gw.ws+"/dev", nil)
	base := "http" + strings.TrimPrefix(gw.ws, "ws")
	var ids []string
	testutil.Eventually(t, 10*time.Second, func() bool { ids = connIDs(t, base); return len(ids) == 2 }, "two connections, have %v", ids)

	// a posts to each connection in turn, b included, through the SDK.
	for _, to := range ids {
		testutil.Write(t, a, fmt.Sprintf(`{"action":"sendMessage","to":%q,"data":"hello %s"}`, to, to))
	}
	gotA, gotB := testutil.ReadText(t, a), testutil.ReadText(t, b)
	if !strings.HasPrefix(gotA, "hello ") || !strings.HasPrefix(gotB, "hello ") || gotA == gotB {
		t.Errorf("a got %q and b got %q, want each its own hello", gotA, gotB)
	}

	// $default throws: the client gets API Gateway's error frame, and the
	// function's output has the stack with the .ts file and line.
	if got := testutil.ReadTextAfter(t, b, `{"action":"nope"}`); !strings.HasPrefix(got, `{"message": "Internal server error", "connectionId":"`) {
		t.Errorf("a throwing handler answered %q", got)
	}
	want := filepath.Join(dir, "src", "functions", "chat", "handler.ts") + ":20:"
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(gw.stderr.String(), want) },
		"the stack trace names %s; stderr:\n%s", want, gw.stderr)
	// The http event of hello is served beside the WebSocket API, at /{stage}/hello.
	resp, err := http.Post(base+"/dev/hello", "application/json", strings.NewReader(`{"name":"Ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Hello Ada, welcome") {
		t.Errorf("POST /dev/hello = %d %s, want the hello function's greeting", resp.StatusCode, body)
	}
}
