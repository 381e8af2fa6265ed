package lambdahost_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// binDir holds the test functions built once for the whole run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdahost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var goFunc struct {
	once sync.Once
	path string
	err  error
}

// buildGoFunc builds testdata/gofunc, an aws-lambda-go program, once per run.
func buildGoFunc(tb testing.TB) string {
	tb.Helper()
	goFunc.once.Do(func() {
		path := filepath.Join(binDir, "gofunc")
		out, err := exec.Command("go", "build", "-o", path, "./testdata/gofunc").CombinedOutput()
		if err != nil {
			goFunc.err = fmt.Errorf("go build ./testdata/gofunc: %v\n%s", err, out)
		}
		goFunc.path = path
	})
	if goFunc.err != nil {
		tb.Fatal(goFunc.err)
	}
	return goFunc.path
}

// host holds a Function under test and what it wrote.
type host struct {
	*lambdahost.Function
	out *testutil.Buffer // Options.Output
	log *testutil.Buffer // Options.Logger's text
}

// newHost starts hosting opts (Output and Logger are captured) and closes
// the function when the test ends.
func newHost(tb testing.TB, opts lambdahost.Options) *host {
	tb.Helper()
	h := &host{out: &testutil.Buffer{}, log: &testutil.Buffer{}}
	opts.Output = h.out
	opts.Logger = slog.New(slog.NewTextHandler(h.log, nil))
	f, err := lambdahost.New(opts)
	if err != nil {
		tb.Fatalf("New(%+v): %v", opts, err)
	}
	tb.Cleanup(func() {
		if err := f.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	h.Function = f
	return h
}

func newGoHost(tb testing.TB, opts lambdahost.Options) *host {
	tb.Helper()
	opts.Command = []string{buildGoFunc(tb)}
	if opts.Name == "" {
		opts.Name = "gofunc"
	}
	return newHost(tb, opts)
}

// invoke runs one invocation with a generous outer limit.
func (h *host) invoke(tb testing.TB, event string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.InvokeRaw(ctx, []byte(event))
	return string(out), err
}

// mustInvoke runs an invocation that must succeed.
func (h *host) mustInvoke(tb testing.TB, event string) string {
	tb.Helper()
	out, err := h.invoke(tb, event)
	if err != nil {
		tb.Fatalf("InvokeRaw(%s): %v", event, err)
	}
	return out
}

// pid asks the function which process served the invocation.
func (h *host) pid(tb testing.TB, event string) int {
	tb.Helper()
	var r struct{ PID int }
	out := h.mustInvoke(tb, event)
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.PID == 0 {
		tb.Fatalf("InvokeRaw(%s) = %s, want {\"pid\":N}", event, out)
	}
	return r.PID
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts lambdahost.Options
	}{
		{"no name", lambdahost.Options{Command: []string{"true"}}},
		{"name with a slash", lambdahost.Options{Name: "a/b", Command: []string{"true"}}},
		{"neither command nor runtime", lambdahost.Options{Name: "f"}},
		{"both command and runtime", lambdahost.Options{Name: "f", Command: []string{"true"}, Runtime: "nodejs"}},
		{"unsupported runtime", lambdahost.Options{Name: "f", Runtime: "python3.12", Handler: "app.handler"}},
		{"nodejs without handler", lambdahost.Options{Name: "f", Runtime: "nodejs20.x"}},
		{"negative MaxProcs", lambdahost.Options{Name: "f", Command: []string{"true"}, MaxProcs: -1}},
		{"negative Timeout", lambdahost.Options{Name: "f", Command: []string{"true"}, Timeout: -time.Second}},
		{"missing code dir", lambdahost.Options{Name: "f", Command: []string{"true"}, CodeDir: "testdata/nope"}},
		{"command not found", lambdahost.Options{Name: "f", Command: []string{"./no-such-binary"}}},
		{"node not found", lambdahost.Options{Name: "f", Runtime: "nodejs", Handler: "h.x", NodePath: "/no/such/node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := lambdahost.New(tt.opts)
			if err == nil {
				_ = f.Close()
				t.Fatalf("New(%+v) succeeded, want an error", tt.opts)
			}
		})
	}
}

func TestGoEcho(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{MaxProcs: 2})
	tests := []struct{ name, event string }{
		{"object", `{"action":"sendMessage","data":"Hello World!"}`},
		{"string", `"hello"`},
		{"number", `42`},
		{"array", `[1,"two",{"three":3}]`},
		{"null", `null`},
		{"unicode", `{"msg":"héllo ✓"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := h.mustInvoke(t, tt.event); got != tt.event {
				t.Errorf("InvokeRaw(%s) = %s, want the event back", tt.event, got)
			}
		})
	}
}

func TestGoFunctionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, event string
		want        lambdahost.FunctionError
	}{
		{"returned error", `{"fail":true}`, lambdahost.FunctionError{Type: "errorString", Message: "gofunc: failure requested"}},
		// aws-lambda-go reports a panic on /error, then exits.
		{"panic", `{"crash":true}`, lambdahost.FunctionError{Type: "string", Message: "gofunc: crash requested"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newGoHost(t, lambdahost.Options{})
			_, err := h.invoke(t, tt.event)
			var fe *lambdahost.FunctionError
			if !errors.As(err, &fe) {
				t.Fatalf("InvokeRaw(%s): err = %v, want a *FunctionError", tt.event, err)
			}
			if *fe != tt.want {
				t.Errorf("InvokeRaw(%s): FunctionError = %+v, want %+v", tt.event, *fe, tt.want)
			}
			if got := h.mustInvoke(t, `{"after":true}`); got != `{"after":true}` {
				t.Errorf("next InvokeRaw = %s, want the event back", got)
			}
		})
	}
}

func TestGoExitIsCrash(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{MaxProcs: 1})
	before := h.pid(t, `{"pid":true}`)
	_, err := h.invoke(t, `{"exit":true}`)
	if !errors.Is(err, lambdahost.ErrCrashed) {
		t.Fatalf("InvokeRaw(exit): err = %v, want ErrCrashed", err)
	}
	after := h.pid(t, `{"pid":true}`)
	if after == before {
		t.Errorf("after a crash the function ran in the same process %d, want a new one", before)
	}
	if alive(before) {
		t.Errorf("crashed process %d is still running", before)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(h.log.String(), "process exited")
	}, "the crash is logged; log:\n%s", h.log)
}

func TestGoTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration // Options.Timeout
		caller  time.Duration // the caller's deadline
	}{
		{"function timeout", time.Second, 30 * time.Second},
		{"caller deadline", 30 * time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newGoHost(t, lambdahost.Options{MaxProcs: 1, Timeout: tt.timeout})
			stuck := h.pid(t, `{"pid":true}`)

			ctx, cancel := context.WithTimeout(context.Background(), tt.caller)
			defer cancel()
			start := time.Now()
			_, err := h.InvokeRaw(ctx, []byte(`{"sleep":20000}`))
			if !errors.Is(err, lambdahost.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("InvokeRaw(sleep): err = %v, want ErrTimeout wrapping context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("InvokeRaw(sleep) returned after %v, want about 1s", d)
			}
			if got := h.pid(t, `{"pid":true}`); got == stuck {
				t.Errorf("after a timeout the function ran in the stuck process %d, want a new one", stuck)
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return !alive(stuck) },
				"the stuck process %d is killed", stuck)
		})
	}
}

func TestGoConcurrentInvocations(t *testing.T) {
	t.Parallel()
	const maxProcs, calls = 2, 8
	h := newGoHost(t, lambdahost.Options{MaxProcs: maxProcs})
	var wg sync.WaitGroup
	pids := make([]int, calls)
	errs := make([]error, calls)
	for i := range calls {
		wg.Go(func() {
			out, err := h.invoke(t, `{"pid":true,"sleep":100}`)
			var r struct{ PID int }
			if err == nil {
				err = json.Unmarshal([]byte(out), &r)
			}
			pids[i], errs[i] = r.PID, err
		})
	}
	wg.Wait()
	distinct := make(map[int]bool)
	for i := range calls {
		if errs[i] != nil {
			t.Errorf("invocation %d: %v", i, errs[i])
		}
		distinct[pids[i]] = true
	}
	if len(distinct) > maxProcs {
		t.Errorf("%d invocations ran in %d processes %v, want at most %d", calls, len(distinct), distinct, maxProcs)
	}
}

// expectedEnv lists the variables without the AWS_ prefix that a function
// may see besides Options.Env.
var expectedEnv = map[string]bool{
	"PATH": true, "HOME": true, "_HANDLER": true, "LAMBDA_TASK_ROOT": true, "LAMBDA_RUNTIME_DIR": true,
	"_X_AMZN_TRACE_ID": true, // set by aws-lambda-go from Lambda-Runtime-Trace-Id
}

func TestGoEnvironment(t *testing.T) {
	t.Parallel()
	codeDir, err := filepath.Abs("testdata/gofunc")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    map[string]string
		want   map[string]string // exact values
		absent []string
	}{
		{
			name: "defaults",
			env:  map[string]string{"APIG_ENDPOINT": "http://127.0.0.1:8080", "EXTRA": "extra value"},
			want: map[string]string{
				"APIG_ENDPOINT":                   "http://127.0.0.1:8080",
				"EXTRA":                           "extra value",
				"AWS_LAMBDA_FUNCTION_NAME":        "envfunc",
				"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
				"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
				"AWS_LAMBDA_FUNCTION_TIMEOUT":     "10",
				"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/envfunc",
				"LAMBDA_TASK_ROOT":                codeDir,
				"_HANDLER":                        "bootstrap",
				"AWS_REGION":                      "us-east-1",
				"AWS_DEFAULT_REGION":              "us-east-1",
				"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
				"PATH":                            os.Getenv("PATH"),
			},
			absent: []string{"_LAMBDA_SERVER_PORT"},
		},
		{
			name: "region and credentials from Env",
			env: map[string]string{
				"AWS_REGION":            "eu-west-1",
				"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
				"AWS_SECRET_ACCESS_KEY": "secret",
				"_LAMBDA_SERVER_PORT":   "9999",
			},
			want: map[string]string{
				"AWS_REGION":            "eu-west-1",
				"AWS_DEFAULT_REGION":    "eu-west-1",
				"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
				"AWS_SECRET_ACCESS_KEY": "secret",
			},
			absent: []string{"AWS_SESSION_TOKEN", "_LAMBDA_SERVER_PORT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newGoHost(t, lambdahost.Options{
				Name:    "envfunc",
				Handler: "bootstrap",
				CodeDir: "testdata/gofunc",
				Timeout: 10 * time.Second,
				Env:     tt.env,
			})
			start := time.Now()
			out := h.mustInvoke(t, `{"env":true}`)
			var got struct {
				Env          map[string]string
				RequestID    string
				ARN          string
				FunctionName string
				DeadlineMs   int64
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("InvokeRaw(env) = %s: %v", out, err)
			}
			for k, v := range tt.want {
				if got.Env[k] != v {
					t.Errorf("env %s = %q, want %q", k, got.Env[k], v)
				}
			}
			for k := range got.Env {
				if !strings.HasPrefix(k, "AWS_") && !expectedEnv[k] && tt.env[k] == "" {
					t.Errorf("env has %s, which the host should not pass", k)
				}
			}
			for _, k := range tt.absent {
				if v, ok := got.Env[k]; ok {
					t.Errorf("env %s = %q, want it unset", k, v)
				}
			}
			for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_LAMBDA_LOG_STREAM_NAME", "LAMBDA_RUNTIME_DIR"} {
				if got.Env[k] == "" {
					t.Errorf("env %s is empty, want a value", k)
				}
			}
			if api := got.Env["AWS_LAMBDA_RUNTIME_API"]; !strings.HasPrefix(api, "127.0.0.1:") {
				t.Errorf("env AWS_LAMBDA_RUNTIME_API = %q, want 127.0.0.1:PORT", api)
			}
			if !uuidRE.MatchString(got.RequestID) {
				t.Errorf("request id %q, want a UUID", got.RequestID)
			}
			region := got.Env["AWS_REGION"]
			if want := "arn:aws:lambda:" + region + ":000000000000:function:envfunc"; got.ARN != want {
				t.Errorf("invoked function ARN = %q, want %q", got.ARN, want)
			}
			if got.FunctionName != "envfunc" {
				t.Errorf("lambdacontext.FunctionName = %q, want envfunc", got.FunctionName)
			}
			deadline := time.UnixMilli(got.DeadlineMs)
			if deadline.Before(start) || deadline.After(start.Add(11*time.Second)) {
				t.Errorf("context deadline %v, want within 10s of %v", deadline, start)
			}
		})
	}
}

func TestGoOutput(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{Name: "talker"})
	h.mustInvoke(t, `{"log":"hello from the function"}`)
	for _, want := range []string{"[talker] hello from the function\n", "[talker] hello from the function (stderr)\n"} {
		testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(h.out.String(), want) },
			"output has %q; output:\n%s", want, h.out)
	}
	for _, line := range strings.SplitAfter(h.out.String(), "\n") {
		if line != "" && !strings.HasPrefix(line, "[talker] ") {
			t.Errorf("output line %q lacks the [talker] prefix", line)
		}
	}
	log := h.log.String()
	for _, want := range []string{"starting function talker (cold start)", "function talker ready", "startup="} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q; log:\n%s", want, log)
		}
	}
}

func TestGoOversizeResponse(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{MaxProcs: 1})
	_, err := h.invoke(t, fmt.Sprintf(`{"big":%d}`, 7<<20))
	var fe *lambdahost.FunctionError
	if !errors.As(err, &fe) || fe.Type != "RequestEntityTooLarge" {
		t.Fatalf("InvokeRaw(7 MiB response): err = %v, want a RequestEntityTooLarge FunctionError", err)
	}
	// aws-lambda-go exits when its response is refused; the next
	// invocation gets a new process.
	if got := h.mustInvoke(t, `{"small":true}`); got != `{"small":true}` {
		t.Errorf("next InvokeRaw = %s, want the event back", got)
	}
}

func TestGoCancelledCallerKeepsProcess(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{MaxProcs: 1})
	first := h.pid(t, `{"pid":true}`)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := h.InvokeRaw(ctx, []byte(`{"pid":true,"sleep":500}`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("InvokeRaw(cancelled): err = %v, want context.Canceled", err)
	}
	// The function finishes in the background and its process stays warm.
	if got := h.pid(t, `{"pid":true}`); got != first {
		t.Errorf("after a cancelled call the function ran in process %d, want the warm %d", got, first)
	}
}

func TestCloseKillsProcesses(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{Name: "closer", MaxProcs: 2})
	// Two processes, both warm.
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() { outs[i], errs[i] = h.invoke(t, `{"pid":true,"sleep":200}`) })
	}
	wg.Wait()
	var pids []int
	for i := range outs {
		var r struct{ PID int }
		if errs[i] == nil {
			errs[i] = json.Unmarshal([]byte(outs[i]), &r)
		}
		if errs[i] != nil {
			t.Fatalf("invocation %d: %v", i, errs[i])
		}
		pids = append(pids, r.PID)
	}
	// One of them busy.
	inflight := make(chan error, 1)
	go func() {
		_, err := h.invoke(t, `{"log":"sleeping","sleep":20000}`)
		inflight <- err
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(h.out.String(), "[closer] sleeping\n") },
		"the invocation is running; output:\n%s", h.out)

	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-inflight; !errors.Is(err, lambdahost.ErrClosed) {
		t.Errorf("invocation in flight during Close: err = %v, want ErrClosed", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d still running after Close", pid)
		}
	}
	if _, err := h.InvokeRaw(context.Background(), []byte(`{}`)); !errors.Is(err, lambdahost.ErrClosed) {
		t.Errorf("InvokeRaw after Close: err = %v, want ErrClosed", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestInvokeIntegration(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{})
	req := &integration.Request{
		RouteKey:  "sendMessage",
		EventType: apigw.EventMessage,
		RequestID: "req-1",
		MessageID: "msg-1",
		Time:      time.Now(),
		Conn:      &integration.Conn{ID: "conn-1", ConnectedAt: time.Now(), Stage: "dev"},
		Body:      []byte(`{"action":"sendMessage","data":"hi"}`),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := h.Invoke(ctx, req)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	// gofunc echoes the proxy event: a 200 whose body is the event.
	var ev struct {
		Body           string
		RequestContext struct {
			RouteKey     string
			ConnectionID string
			EventType    string
		}
	}
	if err := json.Unmarshal(resp.Body, &ev); err != nil {
		t.Fatalf("Invoke body %s: %v", resp.Body, err)
	}
	if resp.StatusCode != 200 || ev.Body != string(req.Body) || ev.RequestContext.RouteKey != "sendMessage" ||
		ev.RequestContext.ConnectionID != "conn-1" || ev.RequestContext.EventType != apigw.EventMessage {
		t.Errorf("Invoke = %d %s, want 200 and the MESSAGE event for conn-1", resp.StatusCode, resp.Body)
	}
}

// BenchmarkInvoke measures warm invocations of a Go function built with
// aws-lambda-go and of a Node function, one after the other.
func BenchmarkInvoke(b *testing.B) {
	event := []byte(`{"action":"sendMessage","data":"Hello World!"}`)
	for _, runtime := range []string{"go", "node"} {
		b.Run(runtime, func(b *testing.B) {
			opts := lambdahost.Options{
				Name:     "bench",
				MaxProcs: 1,
				Output:   io.Discard,
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
			if runtime == "go" {
				opts.Command = []string{buildGoFunc(b)}
			} else {
				if _, err := exec.LookPath("node"); err != nil {
					b.Skip("node is not on PATH")
				}
				opts.Runtime, opts.Handler, opts.CodeDir = "nodejs20.x", "handler.echo", "testdata/nodefunc"
				opts.NodePath = os.Getenv("BENCH_NODE") // a wrapper that profiles, when set
			}
			f, err := lambdahost.New(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			ctx := context.Background()
			if _, err := f.InvokeRaw(ctx, event); err != nil { // cold start
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := f.InvokeRaw(ctx, event); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Retire lets an invocation in flight finish, then stops the processes;
// when its context ends first, it cuts the invocation short as Close does.
func TestRetireWaitsForInvocationsInFlight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		sleep      int   // milliseconds the invocation in flight takes
		cancelled  bool  // Retire's context has ended
		wantInvoke error // the invocation in flight
	}{
		{"finishes in flight", 1500, false, nil},
		{"context ended", 20000, true, lambdahost.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newGoHost(t, lambdahost.Options{Name: "retiree", MaxProcs: 1})
			pid := h.pid(t, `{"pid":true}`)
			inflight := make(chan error, 1)
			go func() {
				_, err := h.invoke(t, fmt.Sprintf(`{"log":"working","sleep":%d}`, tt.sleep))
				inflight <- err
			}()
			testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(h.out.String(), "[retiree] working\n") },
				"the invocation is running; output:\n%s", h.out)

			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancelled {
				cancel()
			}
			defer cancel()
			err := h.Retire(ctx)
			if tt.cancelled != (err != nil) {
				t.Errorf("Retire: err = %v, want an error: %v", err, tt.cancelled)
			}
			if err := <-inflight; !errors.Is(err, tt.wantInvoke) {
				t.Errorf("invocation in flight during Retire: err = %v, want %v", err, tt.wantInvoke)
			}
			testutil.Eventually(t, 5*time.Second, func() bool { return !alive(pid) }, "process %d stopped by Retire", pid)
			if _, err := h.InvokeRaw(context.Background(), []byte(`{}`)); !errors.Is(err, lambdahost.ErrClosed) {
				t.Errorf("InvokeRaw after Retire: err = %v, want ErrClosed", err)
			}
		})
	}
}

// Invocations that find every process busy get one in the order they began
// to wait.
func TestWaitingInvocationsAreServedInOrder(t *testing.T) {
	t.Parallel()
	const waiters = 6
	h := newGoHost(t, lambdahost.Options{MaxProcs: 1})
	h.mustInvoke(t, `{}`) // a warm process
	var wg sync.WaitGroup
	wg.Go(func() { h.mustInvoke(t, `{"sleep":3000}`) }) // holds the process while the others line up
	// The process numbers the invocations it starts: the order it served
	// the waiters in, which the order their calls return in need not be
	// (one that returns late may be overtaken by the next one's whole run).
	seqs := make([]int64, waiters)
	for i := range waiters {
		if i == 0 { // once the sleeper holds the process
			testutil.Eventually(t, 10*time.Second, func() bool {
				procs, idle := h.ProcsForTest()
				return procs == 1 && idle == 0
			}, "the sleeper holding the process")
		}
		wg.Go(func() {
			var out struct{ Seq int64 }
			if err := json.Unmarshal([]byte(h.mustInvoke(t, `{"seq":true}`)), &out); err != nil {
				t.Errorf("waiter %d: %v", i, err)
			}
			seqs[i] = out.Seq
		})
		testutil.Eventually(t, 10*time.Second, func() bool { return h.WaitingForTest() == i+1 }, "%d invocations waiting", i+1)
	}
	wg.Wait()
	served := make([]int, waiters) // the waiters in the order the process started them
	for i := range served {
		served[i] = i
	}
	slices.SortFunc(served, func(a, b int) int { return cmp.Compare(seqs[a], seqs[b]) })
	if want := []int{0, 1, 2, 3, 4, 5}; !slices.Equal(served, want) {
		t.Errorf("waiting invocations served in the order %v (the process's numbers %v), want %v", served, seqs, want)
	}
}
