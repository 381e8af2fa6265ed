package lambdahost

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
)

// process is one running instance of the function, with its own Runtime
// API server. It is held by at most one invocation at a time.
type process struct {
	f       *Function
	id      int // sequence number within the function, for logs
	gen     int // the Function's gen when it started
	cmd     *exec.Cmd
	api     *apiServer
	started time.Time
	stdout  *lineWriter
	stderr  *lineWriter
	limit   *time.Timer // kills the process if it has not asked for work in time
	release func()      // called once the process is reaped (see startProcess)

	next   chan *invocation // capacity 1: the invocation waiting for GET /next
	exited chan struct{}    // closed once the process has exited and been reaped

	ready  atomic.Bool   // it has asked for work at least once
	readyc chan struct{} // closed when ready is first set
	doomed atomic.Bool   // killed by the host or failed its init: never reused

	waiting atomic.Int32 // GET /next requests waiting for an invocation (tests read it)

	mu       sync.Mutex
	inflight map[string]*invocation // handed out by /next, not yet answered
	initErr  error                  // set by /runtime/init/error or the start-up limit
}

// start launches a new process and its Runtime API server. The caller has
// reserved a slot (f.nprocs).
func (f *Function) start() (*process, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%w: runtime API listener: %v", ErrInit, err)
	}
	prefix := "[" + f.opts.Name + "] "
	p := &process{
		f:        f,
		next:     make(chan *invocation, 1),
		exited:   make(chan struct{}),
		readyc:   make(chan struct{}),
		inflight: make(map[string]*invocation),
		stdout:   &lineWriter{w: f.opts.Output, prefix: prefix},
		stderr:   &lineWriter{w: f.opts.Output, prefix: prefix},
	}
	p.api = &apiServer{p: p, ln: ln, conns: make(map[net.Conn]struct{})}
	cmd := exec.Command(f.path, f.args[1:]...)
	cmd.Args[0] = f.args[0]
	cmd.Dir = f.taskRoot
	cmd.Env = f.processEnv(ln.Addr().String())
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = time.Second // a child that inherited the pipes must not hold up Wait
	setProcessGroup(cmd)
	p.cmd = cmd

	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = ln.Close()
		return nil, ErrClosed
	}
	f.seq++
	p.id = f.seq
	p.gen = f.gen
	f.log.Info("starting function "+f.opts.Name+" (cold start)", "function", f.opts.Name, "process", p.id)
	p.started = time.Now()
	release, err := startProcess(cmd)
	if err != nil {
		f.mu.Unlock()
		_ = ln.Close()
		return nil, fmt.Errorf("%w: start %s: %v", ErrInit, f.path, err)
	}
	p.release = release
	f.procs[p] = struct{}{}
	f.wg.Add(2)
	p.limit = time.AfterFunc(f.opts.InitTimeout, p.startupExpired)
	f.mu.Unlock()

	go func() {
		defer f.wg.Done()
		p.api.serve() // until the process is reaped
	}()
	go f.reap(p)
	return p, nil
}

// reap waits for p to exit, then closes its server and frees its slot.
func (f *Function) reap(p *process) {
	defer f.wg.Done()
	err := p.cmd.Wait()
	p.release()
	p.limit.Stop()
	p.stdout.flush()
	p.stderr.flush()
	close(p.exited) // ends a pending GET /next
	// What the process sent before it exited is answered.
	p.api.close(time.Second)

	f.mu.Lock()
	delete(f.procs, p)
	if i := slices.Index(f.idle, p); i >= 0 {
		f.idle = slices.Delete(f.idle, i, i+1)
	}
	f.nprocs--
	f.broadcastLocked()
	closed := f.closed
	f.mu.Unlock()

	if !closed && !p.doomed.Load() {
		f.log.Warn("function "+f.opts.Name+" process exited; a new one will start on demand",
			"function", f.opts.Name, "process", p.id, "pid", p.pid(), "err", err)
	}
}

// startupExpired kills p if it has not asked for work within the timeout.
func (p *process) startupExpired() {
	if p.ready.Load() {
		return
	}
	p.mu.Lock()
	if p.initErr == nil {
		p.initErr = fmt.Errorf("%w: no request for work within %v", ErrInit, p.f.opts.InitTimeout)
	}
	p.mu.Unlock()
	p.f.log.Warn("function "+p.f.opts.Name+" did not start in time; killing its process",
		"function", p.f.opts.Name, "process", p.id, "pid", p.pid(), "timeout", p.f.opts.InitTimeout)
	p.kill()
}

// markReady records p's first request for work.
func (p *process) markReady() {
	if p.ready.Swap(true) {
		return
	}
	p.limit.Stop()
	p.f.log.Info("function "+p.f.opts.Name+" ready", "function", p.f.opts.Name, "process", p.id,
		"pid", p.pid(), "startup", time.Since(p.started).Round(time.Millisecond))
	close(p.readyc) // after the line: Warm's callers see it logged
}

// kill ends p (and anything it started) without waiting; reap does the rest.
func (p *process) kill() {
	p.doomed.Store(true)
	select {
	case <-p.exited:
	default:
		killProcess(p.cmd.Process)
	}
}

// usable reports whether p may take another invocation.
func (p *process) usable() bool {
	if p.doomed.Load() {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exitStatus describes how p ended; only valid once p.exited is closed.
func (p *process) exitStatus() string { return p.cmd.ProcessState.String() }

func (p *process) initError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.initErr
}

// baseEnv is the environment every process shares, Options.Env included.
func (f *Function) baseEnv() map[string]string {
	o := f.opts
	env := make(map[string]string)
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	region := o.Env["AWS_REGION"]
	if region == "" {
		region = o.Env["AWS_DEFAULT_REGION"]
	}
	if region == "" {
		region = "us-east-1"
	}
	execEnv := "AWS_Lambda_provided.al2023"
	if isNode(o.Runtime) {
		execEnv = "AWS_Lambda_" + o.Runtime
	}
	maps.Copy(env, map[string]string{
		"_HANDLER":                        o.Handler,
		"LAMBDA_TASK_ROOT":                f.taskRoot,
		"LAMBDA_RUNTIME_DIR":              f.runtimeDir,
		"AWS_LAMBDA_FUNCTION_NAME":        o.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
		"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(int(math.Ceil(o.Timeout.Seconds()))),
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + o.Name,
		"AWS_REGION":                      region,
		"AWS_DEFAULT_REGION":              region,
		"AWS_EXECUTION_ENV":               execEnv,
	})
	if o.Env["AWS_ACCESS_KEY_ID"] == "" && o.Env["AWS_SECRET_ACCESS_KEY"] == "" {
		// Placeholders, so that an AWS SDK inside the function can sign
		// requests to the gateway's management API.
		env["AWS_ACCESS_KEY_ID"] = "SWITCHBOARDLOCAL"
		env["AWS_SECRET_ACCESS_KEY"] = "switchboard-local-secret"
		env["AWS_SESSION_TOKEN"] = "switchboard-local-session"
	}
	maps.Copy(env, o.Env)
	// The Runtime API address is the host's to choose, and aws-lambda-go
	// would prefer the legacy RPC mode over it if _LAMBDA_SERVER_PORT were set.
	delete(env, "AWS_LAMBDA_RUNTIME_API")
	delete(env, "_LAMBDA_SERVER_PORT")
	delete(env, handlerRootEnv)
	if f.build != nil {
		env[handlerRootEnv] = filepath.Join(f.tmpDir, buildDir)
	}
	return env
}

// processEnv is one process's environment, in os/exec's form.
func (f *Function) processEnv(runtimeAPI string) []string {
	env := maps.Clone(f.env)
	env["AWS_LAMBDA_RUNTIME_API"] = runtimeAPI
	if _, ok := env["AWS_LAMBDA_LOG_STREAM_NAME"]; !ok {
		env["AWS_LAMBDA_LOG_STREAM_NAME"] = time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + randomHex(16)
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// invocation is one event on its way through a process.
type invocation struct {
	id        string
	event     []byte
	timeout   time.Duration // the function's, from delivery
	trace     string
	done      chan struct{} // closed by complete; out and err are set before
	delivered chan struct{} // closed by deliver; deadline is final then

	mu       sync.Mutex
	state    invocationState
	deadline time.Time // the caller's bound until delivery, then the function's deadline
	out      []byte
	err      error
}

type invocationState int

const (
	queued    invocationState = iota // waiting for the process to ask for work
	delivered                        // returned by /next; the function has it
	withdrawn                        // its caller gave up before /next took it
	completed                        // answered on /response or /error
)

func newInvocation(event []byte, timeout time.Duration, bound time.Time) *invocation {
	return &invocation{
		id:        apigw.NewUUID(),
		event:     event,
		timeout:   timeout,
		deadline:  bound,
		trace:     fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), randomHex(12), randomHex(8)),
		done:      make(chan struct{}),
		delivered: make(chan struct{}),
	}
}

// deadlineAt returns the invocation's deadline.
func (inv *invocation) deadlineAt() time.Time {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.deadline
}

// transition moves inv from state from to state to, reporting whether it was in from.
func (inv *invocation) transition(from, to invocationState) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.state != from {
		return false
	}
	inv.state = to
	return true
}

// deliver is called by /next as it hands inv to the function; the
// function's deadline starts now, within the caller's bound.
func (inv *invocation) deliver() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.state != queued {
		return false
	}
	inv.state = delivered
	if d := time.Now().Add(inv.timeout); d.Before(inv.deadline) {
		inv.deadline = d
	}
	close(inv.delivered)
	return true
}

// withdraw takes inv back if the function has not received it.
func (inv *invocation) withdraw() bool { return inv.transition(queued, withdrawn) }

// complete records the function's answer; it reports false if inv was not
// waiting for one.
func (inv *invocation) complete(out []byte, err error) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.state != delivered {
		return false
	}
	inv.state, inv.out, inv.err = completed, out, err
	close(inv.done)
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}
