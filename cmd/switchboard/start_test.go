package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// pidProject is a project whose function writes its PID to fn.pid when its
// module loads and answers each message with its PID.
func pidProject(t *testing.T, warmKey string) (dir string) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir = t.TempDir()
	files := map[string]string{
		"handler.js": `const fs = require('fs');
fs.writeFileSync('fn.pid.tmp', String(process.pid));
fs.renameSync('fn.pid.tmp', 'fn.pid');
exports.pid = async () => ({ statusCode: 200, body: String(process.pid) });
`,
		"switchboard.yaml": warmKey + `
functions:
  pid: {runtime: nodejs20.x, handler: handler.pid}
routes:
  $default: {integration: {type: lambda, function: pid}, routeResponse: true}
`,
	}
	if err := writeFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	return dir
}

// With --warm or the config's warm: true, every function's process runs
// before the banner, and the first message is served by it.
func TestServeWarm(t *testing.T) {
	tests := []struct {
		name, key string
		flags     []string
		warm      bool
	}{
		{"flag", "", []string{"--warm"}, true},
		{"config key", "warm: true", nil, true},
		{"default", "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := pidProject(t, tt.key)
			gw := startProcess(t, append([]string{"--config", filepath.Join(dir, "switchboard.yaml")}, tt.flags...)...)
			b, err := os.ReadFile(filepath.Join(dir, "fn.pid"))
			if !tt.warm {
				if err == nil {
					t.Fatalf("without warm, the function started before the first message")
				}
				return
			}
			// Logged before the banner; stderr's pipe may trail stdout's.
			testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(gw.stderr.String(), "function pid warm") },
				"no progress line for the function; stderr:\n%s", gw.stderr)
			pid, _ := strconv.Atoi(string(b))
			if err != nil || pid == 0 || !running(pid) {
				t.Fatalf("at the banner: fn.pid %q, %v: want the function's process running", b, err)
			}
			c := testutil.Dial(t, gw.ws, nil)
			if got := testutil.ReadTextAfter(t, c, "hi"); got != strconv.Itoa(pid) {
				t.Errorf("first message served by process %s, want the warm %d", got, pid)
			}
		})
	}
}

// A handler file that does not exist stops serve before the banner with one
// line naming the files tried; so does an unsupported runtime, naming the
// supported ones.
func TestServeStartErrors(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		want  string
	}{
		{
			name: "missing handler file",
			files: map[string]string{"switchboard.yaml": `
functions:
  hello: {runtime: nodejs20.x, handler: src/handler.hello}
routes:
  $default: {integration: {type: lambda, function: hello}}
`},
			args: []string{"--config", "switchboard.yaml"},
			want: `handler "src/handler.hello": tried src/handler.js, src/handler.mjs, src/handler.cjs, src/handler.ts, src/handler.mts, src/handler.cts in `,
		},
		{
			name: "missing handler file, serverless",
			files: map[string]string{"serverless.yml": `service: s
provider: {runtime: nodejs20.x}
functions:
  hello:
    handler: src/handler.hello
    events: [{websocket: $default}]
`},
			args: []string{"--serverless", "serverless.yml"},
			want: `tried src/handler.js, src/handler.mjs, src/handler.cjs, src/handler.ts, src/handler.mts, src/handler.cts in `,
		},
		{
			name: "TypeScript handler does not compile",
			files: map[string]string{
				"serverless.yml": `service: s
provider: {runtime: nodejs20.x}
functions:
  hello:
    handler: handler.hello
    events: [{websocket: $default}]
`,
				"handler.ts": "export const hello = async () => {\n  return ;;;}}\n",
			},
			args: []string{"--serverless", "serverless.yml"},
			want: `handler.ts:2:14: Unexpected "}"`,
		},
		{
			name: "warm function fails to start",
			files: map[string]string{
				"switchboard.yaml": `
warm: true
functions:
  hello: {runtime: nodejs20.x, handler: handler.hello}
routes:
  $default: {integration: {type: lambda, function: hello}}
`,
				"handler.js": "throw new Error('broken at load');\n",
			},
			args: []string{"--config", "switchboard.yaml"},
			want: `broken at load`,
		},
		{
			name: "unsupported runtime",
			files: map[string]string{"switchboard.yaml": `
functions:
  hello: {runtime: python3.12, handler: app.hello}
routes:
  $default: {integration: {type: lambda, function: hello}}
`},
			args: []string{"--config", "switchboard.yaml"},
			want: `switchboard.yaml:3: functions.hello.runtime: "python3.12" is not supported: runtime supports nodejs* (nodejs18.x, nodejs20.x, nodejs22.x...); run other runtimes with command`,
		},
		{
			name: "unsupported runtime, serverless",
			files: map[string]string{"serverless.yml": `service: s
provider: {runtime: python3.12}
functions:
  hello:
    handler: app.hello
    events: [{websocket: $default}]
`},
			args: []string{"--serverless", "serverless.yml"},
			want: `runtime "python3.12" is not supported (nodejs*, provided*, go1.x)`,
		},
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := writeFiles(dir, tt.files); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, append([]string{"serve", "--listen", "127.0.0.1:0"}, tt.args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("serve = %v, want a non-zero exit; stderr %q", err, stderr.String())
			}
			if wsURLRE.MatchString(stdout.String()) {
				t.Errorf("banner printed before the error:\n%s", stdout.String())
			}
			var lines []string
			for _, l := range strings.Split(stderr.String(), "\n") {
				if strings.HasPrefix(l, "switchboard:") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr %q: want one error line containing %q", stderr.String(), tt.want)
			}
		})
	}
}

// --warm works with a Serverless Framework project too: the example's
// functions are all warm before the banner.
func TestServeWarmServerlessExample(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	t.Parallel()
	gw := startProcess(t, "--serverless", filepath.Join("..", "..", "examples", "callback-node", "serverless.yml"), "--warm")
	// The process logs each line before its banner, but its stderr reaches
	// this test through a pipe of its own, which may trail stdout's.
	for _, name := range []string{"connect", "echo", "ping"} {
		testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(gw.stderr.String(), "function "+name+" warm") },
			"no warm line for %s; stderr:\n%s", name, gw.stderr)
	}
	c := testutil.Dial(t, gw.ws, nil)
	if got := testutil.ReadTextAfter(t, c, `{"action":"echo","data":"warm"}`); got != "echo: warm" {
		t.Errorf("echo answered %q", got)
	}
}

// With --warm the listener is bound before the functions start (they are
// given its address), and the gateway serves once they are warm: a client
// that connects meanwhile waits in the accept queue, is not refused, and
// is answered by the warm process once the banner is printed.
func TestServeWarmHoldsEarlyClients(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	t.Parallel()
	dir := t.TempDir()
	// The module's load waits for a file named go: the warm-up lasts as
	// long as the test wants.
	err := writeFiles(dir, map[string]string{
		"handler.js": `const fs = require('fs');
fs.writeFileSync('loading', String(process.pid));
const nap = new Int32Array(new SharedArrayBuffer(4));
while (!fs.existsSync('go')) Atomics.wait(nap, 0, 0, 20);
exports.pid = async () => ({ statusCode: 200, body: String(process.pid) });
`,
		"switchboard.yaml": `
functions:
  pid: {runtime: nodejs20.x, handler: handler.pid}
routes:
  $default: {integration: {type: lambda, function: pid}, routeResponse: true}
`,
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	gw := launchProcess(t, nil, "--config", filepath.Join(dir, "switchboard.yaml"), "--warm", "--listen", addr)
	testutil.Eventually(t, 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "loading"))
		return err == nil
	}, "the function's module never started loading; stderr:\n%s", gw.stderr)

	// Bound before the warm-up: a connection is accepted by the kernel,
	// not refused.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("during the warm-up: %v", err)
	}
	_ = raw.Close()

	type dialed struct {
		got string
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws://"+addr, nil)
		if err != nil {
			done <- dialed{err: err}
			return
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			done <- dialed{err: err}
			return
		}
		_, b, err := c.Read(ctx)
		done <- dialed{got: string(b), err: err}
	}()
	// The handshake waits while the function warms: it cannot have been
	// answered, since the gateway serves only after the warm-up.
	select {
	case d := <-done:
		t.Fatalf("a client was answered before the warm-up ended: %q, %v", d.got, d.err)
	default:
	}
	if wsURLRE.MatchString(gw.stdout.String()) {
		t.Fatalf("banner printed before the function was warm:\n%s", gw.stdout)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gw.awaitBanner(t)
	d := <-done
	if d.err != nil {
		t.Fatalf("the client that connected during the warm-up: %v", d.err)
	}
	warmPID, err := os.ReadFile(filepath.Join(dir, "loading"))
	if err != nil {
		t.Fatal(err)
	}
	if d.got != string(warmPID) {
		t.Errorf("answered by process %q, want the warm %s", d.got, warmPID)
	}
}
