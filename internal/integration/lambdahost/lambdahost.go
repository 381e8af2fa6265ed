// Package lambdahost runs Lambda functions as local processes and invokes
// them through the Lambda Runtime API (version 2018-06-01), so that a
// function written for AWS runs unchanged behind a route: a Go program that
// calls aws-lambda-go's lambda.Start, any other custom runtime, or a Node.js
// handler module run by an embedded bootstrap.
//
// A Function owns a pool of processes. Each process gets its own Runtime API
// listener on the loopback interface, so the host always knows which process
// holds which invocation, and a process serves one invocation at a time.
// Processes start on demand, stay warm between invocations, and are replaced
// on demand after they crash or time out. Close kills them all. Between
// invocations a process waiting for work is frozen (SIGSTOP on Unix, with
// what it started) and thawed when the next event is handed to it, as AWS
// freezes an execution environment: work a handler left pending resumes in
// the next invocation.
package lambdahost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/integration"
)

var _ integration.Integration = (*Function)(nil)

var (
	// ErrTimeout is returned when an invocation does not complete before its
	// deadline: Options.Timeout or the caller's, whichever comes first. It
	// wraps context.DeadlineExceeded. The process that held the invocation is
	// killed, since it may be stuck.
	ErrTimeout = fmt.Errorf("lambdahost: invocation timed out: %w", context.DeadlineExceeded)

	// ErrCrashed is returned when the process holding an invocation exits
	// before answering it. The next invocation starts a new process.
	ErrCrashed = errors.New("lambdahost: function process crashed")

	// ErrInit is returned when a new process fails before taking its first
	// invocation: it could not be started, it reported an error on
	// /runtime/init/error (the error then also wraps a *FunctionError), or it
	// exited or hung before asking for work.
	ErrInit = errors.New("lambdahost: function failed to initialise")

	// ErrClosed is returned by invocations made or cut short by Close.
	ErrClosed = errors.New("lambdahost: function closed")

	// ErrHandlerNotFound is returned by New when no file for a nodejs
	// Handler exists; the message names the files tried.
	ErrHandlerNotFound = errors.New("lambdahost: handler file not found")

	// ErrUnsupportedRuntime is returned by New for a Runtime it cannot run;
	// the message names the supported ones.
	ErrUnsupportedRuntime = errors.New("lambdahost: unsupported runtime")
)

// FunctionError is a failure the function itself reported on
// /runtime/invocation/{id}/error (a returned error, a thrown exception, a
// recovered panic) or on /runtime/init/error. The process stays in the pool
// unless it exits.
type FunctionError struct {
	Type    string // errorType, e.g. "errorString" from aws-lambda-go, "TypeError" from Node.js
	Message string // errorMessage
}

func (e *FunctionError) Error() string {
	if e.Type == "" {
		return "lambdahost: function error: " + e.Message
	}
	return "lambdahost: function error: " + e.Type + ": " + e.Message
}

// Options configures one hosted function. The zero value of each field has
// a documented default; Name and one of Command or Runtime are required.
type Options struct {
	// Name is the function's name: AWS_LAMBDA_FUNCTION_NAME, the last part
	// of its ARN, and the prefix of its output lines. Required.
	Name string

	// Command is a custom runtime's executable and arguments, e.g. a Go
	// binary built with aws-lambda-go. A bare name is looked up in PATH; a
	// relative path is relative to CodeDir. Set Command or Runtime, not both.
	Command []string

	// Runtime selects a built-in runtime: "nodejs" (or any "nodejs*" value,
	// such as "nodejs20.x") runs Handler with the embedded Node.js bootstrap.
	Runtime string

	// Handler is passed to the process as _HANDLER. For nodejs it is
	// required and has the form "file.export" (e.g. "handler.connect"),
	// file relative to CodeDir, with extension .js, .mjs or .cjs left out,
	// or .ts, .mts or .cts for a TypeScript handler (tried in that order, so
	// a compiled .js beside its source wins, as on AWS). A TypeScript
	// handler is bundled by esbuild when New is called, for the runtime's
	// Node.js version with a source map (stack traces name .ts lines), and
	// again when one of its source files changes: new processes run the
	// new build and idle ones are stopped; a change that does not compile
	// is logged and the previous build stays.
	Handler string

	// CodeDir is the processes' working directory and LAMBDA_TASK_ROOT.
	// Empty means ".".
	CodeDir string

	// Env is extra environment for the processes (e.g. APIG_ENDPOINT or
	// AWS credentials), merged over the defaults: PATH and HOME from this
	// process, the Lambda variables, AWS_REGION and AWS_DEFAULT_REGION
	// ("us-east-1" unless Env sets either), and placeholder AWS credentials
	// unless Env sets AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY.
	// AWS_LAMBDA_RUNTIME_API and _LAMBDA_SERVER_PORT cannot be set.
	Env map[string]string

	// MaxProcs is how many processes may run at once; an invocation that
	// finds them all busy waits for one, as long as its context allows,
	// and the invocations that wait get the processes that become free in
	// the order they began to wait. Zero means 4.
	MaxProcs int

	// Timeout limits one invocation, counted from the moment the function
	// receives the event, as on AWS. It is also AWS_LAMBDA_FUNCTION_TIMEOUT,
	// in whole seconds. Zero means 29s.
	Timeout time.Duration

	// InitTimeout limits a new process's start-up until it first asks for
	// work (AWS's init phase); it does not eat into Timeout. Zero means 10s.
	InitTimeout time.Duration

	// Output receives the processes' stdout and stderr, each line prefixed
	// with "[Name] ". Lines are written whole, one Write each. Nil means
	// os.Stderr.
	Output io.Writer

	// Logger receives host events: process starts, crashes and
	// replacements. Nil means slog.Default().
	Logger *slog.Logger

	// NodePath is the node executable for the nodejs runtime. Empty means
	// "node", looked up in PATH.
	NodePath string
}

const (
	defaultMaxProcs = 4
	defaultTimeout  = 29 * time.Second
	defaultInit     = 10 * time.Second
)

func (o Options) withDefaults() Options {
	if o.CodeDir == "" {
		o.CodeDir = "."
	}
	if o.MaxProcs == 0 {
		o.MaxProcs = defaultMaxProcs
	}
	if o.Timeout == 0 {
		o.Timeout = defaultTimeout
	}
	if o.InitTimeout == 0 {
		o.InitTimeout = defaultInit
	}
	if o.Output == nil {
		o.Output = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.NodePath == "" {
		o.NodePath = "node"
	}
	return o
}

// Function is one hosted Lambda function and its pool of processes. Its
// methods are safe for concurrent use. The caller must call Close, which
// kills every process it started.
type Function struct {
	opts       Options // with defaults
	path       string  // the executable, resolved
	args       []string
	taskRoot   string
	runtimeDir string
	tmpDir     string            // holds the Node.js bootstrap; "" for Command
	build      *tsBuild          // a TypeScript handler's build; nil for others
	env        map[string]string // every process's environment but its own variables
	arn        string
	log        *slog.Logger

	mu       sync.Mutex
	closed   bool
	retiring bool                  // Retire waits for active to reach zero
	active   int                   // invocations in InvokeRaw
	nprocs   int                   // processes running or being started; at most opts.MaxProcs
	procs    map[*process]struct{} // started and not yet reaped
	idle     []*process            // warm and free, most recently used last
	wake     chan struct{}         // closed and replaced when a process becomes idle or a slot frees
	waitq    []*waiter             // invocations waiting in acquire for a process, oldest first
	seq      int                   // numbers processes in logs
	gen      int                   // counts the handler's rebuilds; a process of an older one is not reused

	wg sync.WaitGroup // reapers, Runtime API servers, finishers; added to only while !closed
}

// Timeout returns the per-invocation timeout in force.
func (f *Function) Timeout() time.Duration { return f.opts.Timeout }

// InitTimeout returns the start-up limit in force.
func (f *Function) InitTimeout() time.Duration { return f.opts.InitTimeout }

// New checks opts and prepares the function; it starts no process: the
// first invocation does. For the nodejs runtime it writes the bootstrap to a
// temporary directory, switchboard-fn-PID-*, removed by Close. The first New
// in a process removes such directories whose PID no longer runs: the
// leftovers of a host killed without Close.
//
// On Linux each function process gets SIGKILL from the kernel when the host
// process dies, even by SIGKILL; what a function process started itself (its
// process group) is killed by Close only.
func New(opts Options) (*Function, error) {
	o := opts.withDefaults()
	switch {
	case o.Name == "":
		return nil, errors.New("lambdahost: Name is required")
	case strings.ContainsAny(o.Name, "/: \t\r\n"):
		return nil, fmt.Errorf("lambdahost: invalid function name %q", o.Name)
	case len(o.Command) > 0 && o.Runtime != "":
		return nil, fmt.Errorf("lambdahost: function %s: set Command or Runtime, not both", o.Name)
	case len(o.Command) == 0 && o.Runtime == "":
		return nil, fmt.Errorf("lambdahost: function %s: Command or Runtime is required", o.Name)
	case o.Runtime != "" && !isNode(o.Runtime):
		return nil, fmt.Errorf("%w %q for function %s: supported are %s; run other runtimes with Command", ErrUnsupportedRuntime, o.Runtime, o.Name, SupportedRuntimes)
	case isNode(o.Runtime) && o.Handler == "":
		return nil, fmt.Errorf("lambdahost: function %s: Handler is required for runtime %s", o.Name, o.Runtime)
	case o.MaxProcs < 0:
		return nil, fmt.Errorf("lambdahost: function %s: negative MaxProcs %d", o.Name, o.MaxProcs)
	case o.Timeout < 0:
		return nil, fmt.Errorf("lambdahost: function %s: negative Timeout %v", o.Name, o.Timeout)
	}
	root, err := filepath.Abs(o.CodeDir)
	if err != nil {
		return nil, fmt.Errorf("lambdahost: function %s: code dir: %w", o.Name, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("lambdahost: function %s: code dir: %w", o.Name, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("lambdahost: function %s: code dir %s is not a directory", o.Name, root)
	}

	var handlerFile string // the handler's source file, when the bootstrap's own lookup is not enough
	if isNode(o.Runtime) {
		file, err := findHandler(root, o.Handler)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", o.Name, err)
		}
		handlerFile = file
	}

	staleOnce.Do(func() {
		n, err := removeStale("")
		if n > 0 {
			o.Logger.Info("removed temporary directories of function hosts that no longer run", "count", n)
		}
		if err != nil {
			o.Logger.Warn("could not remove a temporary directory of a function host that no longer runs", "err", err)
		}
	})

	f := &Function{
		opts:     o,
		taskRoot: root,
		log:      o.Logger,
		procs:    make(map[*process]struct{}),
		wake:     make(chan struct{}),
	}
	if isNode(o.Runtime) {
		node, err := exec.LookPath(o.NodePath)
		if err != nil {
			return nil, fmt.Errorf("lambdahost: function %s: %w", o.Name, err)
		}
		dir, err := writeBootstrap("")
		if err != nil {
			return nil, fmt.Errorf("lambdahost: function %s: %w", o.Name, err)
		}
		f.path, f.args = node, []string{o.NodePath, filepath.Join(dir, bootstrapName)}
		f.tmpDir, f.runtimeDir = dir, dir
		if isTS(handlerFile) {
			// The bundle sits where the bootstrap looks for the handler,
			// under the build directory instead of CodeDir.
			out := filepath.Join(dir, buildDir, strings.TrimSuffix(handlerFile, filepath.Ext(handlerFile))+".js")
			b, err := newTSBuild(o.Name, filepath.Join(root, handlerFile), out, o.Runtime, o.Logger, f.rebuilt)
			if err != nil {
				_ = os.RemoveAll(dir)
				return nil, fmt.Errorf("function %s: %w", o.Name, err)
			}
			f.build = b
			f.args = []string{o.NodePath, "--enable-source-maps", filepath.Join(dir, bootstrapName)}
		}
	} else {
		name := o.Command[0]
		if strings.ContainsRune(name, '/') || strings.ContainsRune(name, filepath.Separator) {
			if !filepath.IsAbs(name) {
				name = filepath.Join(root, name)
			}
		}
		path, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("lambdahost: function %s: %w", o.Name, err)
		}
		if path, err = filepath.Abs(path); err != nil {
			return nil, fmt.Errorf("lambdahost: function %s: %w", o.Name, err)
		}
		f.path, f.args = path, append([]string(nil), o.Command...)
		f.runtimeDir = filepath.Dir(path)
	}
	f.env = f.baseEnv()
	f.arn = "arn:aws:lambda:" + f.env["AWS_REGION"] + ":000000000000:function:" + o.Name
	return f, nil
}

// staleOnce runs removeStale once per process, at the first New.
var staleOnce sync.Once

// SupportedRuntimes describes the Runtime values New accepts.
const SupportedRuntimes = "nodejs* (nodejs18.x, nodejs20.x, nodejs22.x...)"

func isNode(runtime string) bool { return strings.HasPrefix(runtime, "nodejs") }

// handlerExts are the extensions the Node.js bootstrap tries, in its
// order, then those of TypeScript handlers, which New compiles.
var handlerExts = []string{".js", ".mjs", ".cjs", ".ts", ".mts", ".cts"}

// buildDir is the directory, in a function's temporary directory, that
// holds a TypeScript handler's bundle.
const buildDir = "build"

func isTS(file string) bool {
	switch filepath.Ext(file) {
	case ".ts", ".mts", ".cts":
		return true
	}
	return false
}

// findHandler finds the file, relative to root, for the Node.js handler
// spec ("dir/file.export"), trying handlerExts in order; the error names
// the files tried. A malformed spec gives "" and no error: it is left for
// the bootstrap to report as AWS does (Runtime.MalformedHandlerName).
func findHandler(root, spec string) (string, error) {
	slash := strings.LastIndexByte(spec, '/')
	dot := strings.IndexByte(spec[slash+1:], '.') + slash + 1
	if dot <= slash+1 || dot == len(spec)-1 {
		return "", nil
	}
	base := spec[:dot]
	tried := make([]string, 0, len(handlerExts))
	for _, ext := range handlerExts {
		if fi, err := os.Stat(filepath.Join(root, base+ext)); err == nil && !fi.IsDir() {
			return filepath.FromSlash(base + ext), nil
		}
		tried = append(tried, base+ext)
	}
	return "", fmt.Errorf("%w: handler %q: tried %s in %s", ErrHandlerNotFound, spec, strings.Join(tried, ", "), root)
}

// rebuilt is called once a changed TypeScript handler's new build is in
// place: idle processes, which loaded the old one, are stopped, and busy
// ones are not reused, so that the next invocation runs the new build.
func (f *Function) rebuilt() {
	f.mu.Lock()
	f.gen++
	idle := f.idle
	f.idle = nil
	f.mu.Unlock()
	for _, p := range idle {
		p.kill()
	}
}

// InvokeRaw runs one invocation with event as its payload and returns the
// function's response bytes. Errors: ErrTimeout, *FunctionError (via
// errors.As), ErrCrashed, ErrInit, ErrClosed, or ctx's error when ctx is
// cancelled. A cancelled caller does not kill a function already running:
// it finishes in the background (within its deadline) and its process
// returns to the pool.
func (f *Function) InvokeRaw(ctx context.Context, event []byte) ([]byte, error) {
	// The caller waits at most for a cold start and the function's run; the
	// function's own deadline starts when it receives the event.
	deadline := time.Now().Add(f.opts.InitTimeout + f.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	f.mu.Lock()
	f.active++
	f.mu.Unlock()
	defer f.done()
	for {
		p, err := f.acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("invoke %s: %w", f.opts.Name, err)
		}
		out, err := f.run(ctx, p, newInvocation(event, f.opts.Timeout, deadline))
		if errors.Is(err, errNotDelivered) {
			continue // a warm process died before taking the event: try another
		}
		if err != nil {
			return nil, fmt.Errorf("invoke %s: %w", f.opts.Name, err)
		}
		return out, nil
	}
}

// Warm makes sure the function has a process ready for work, starting one
// if none is idle, so that the next invocation pays no cold start. It
// returns once that process has asked for work, with ErrInit (wrapping the
// function's *FunctionError when it reported one) if it failed to start,
// or ErrTimeout when ctx ends first (the process is then killed).
func (f *Function) Warm(ctx context.Context) error {
	p, err := f.acquire(ctx)
	if err != nil {
		return fmt.Errorf("warm %s: %w", f.opts.Name, err)
	}
	select {
	case <-p.readyc:
		f.release(p)
		return nil
	case <-p.exited:
		if err := p.initError(); err != nil {
			return fmt.Errorf("warm %s: %w", f.opts.Name, err)
		}
		if f.isClosed() {
			return fmt.Errorf("warm %s: %w", f.opts.Name, ErrClosed)
		}
		return fmt.Errorf("warm %s: %w: exited before asking for work (%s)", f.opts.Name, ErrInit, p.exitStatus())
	case <-ctx.Done():
		p.kill()
		return fmt.Errorf("warm %s: %w", f.opts.Name, ctxError(ctx))
	}
}

// Invoke implements integration.Integration: the request becomes an API
// Gateway WebSocket proxy event, and the function's output a response.
func (f *Function) Invoke(ctx context.Context, req *integration.Request) (*integration.Response, error) {
	event, err := integration.MarshalEvent(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.opts.Name, err)
	}
	out, err := f.InvokeRaw(ctx, event)
	if err != nil {
		return nil, err
	}
	resp, err := integration.ParseResponse(out)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.opts.Name, err)
	}
	return resp, nil
}

// done counts an invocation out of InvokeRaw, and wakes Retire on the last.
func (f *Function) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active--
	if f.retiring && f.active == 0 {
		f.broadcastLocked()
	}
}

// Retire closes the function once the invocations in flight have finished:
// a function a new configuration replaced or removed keeps serving the
// invocations that started before, then stops its processes and removes
// its files as Close does. When ctx ends first, Close cuts the remaining
// invocations short (they fail with ErrClosed) and Retire returns ctx's
// error.
func (f *Function) Retire(ctx context.Context) error {
	for {
		f.mu.Lock()
		f.retiring = true
		if f.active == 0 || f.closed {
			f.mu.Unlock()
			return f.Close()
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return errors.Join(ctx.Err(), f.Close())
		}
	}
}

// Close kills every process, waits for them to exit and their listeners to
// close, and removes the bootstrap's temporary directory. Invocations in
// flight fail with ErrClosed. Close may be called more than once.
func (f *Function) Close() error {
	f.mu.Lock()
	already := f.closed
	f.closed = true
	procs := make([]*process, 0, len(f.procs))
	for p := range f.procs {
		procs = append(procs, p)
	}
	f.idle = nil
	f.broadcastLocked()
	f.mu.Unlock()

	if f.build != nil && !already {
		f.build.close() // no rebuild from now on; not under f.mu, which rebuilt takes
	}
	for _, p := range procs {
		p.kill()
	}
	f.wg.Wait()
	if already || f.tmpDir == "" {
		return nil
	}
	if err := os.RemoveAll(f.tmpDir); err != nil {
		return fmt.Errorf("lambdahost: function %s: %w", f.opts.Name, err)
	}
	return nil
}

// errNotDelivered reports that a warm process exited with an invocation
// still waiting for it: the event never reached the function.
var errNotDelivered = errors.New("lambdahost: process exited before taking the invocation")

// waiter is an invocation waiting in line for a process.
type waiter struct {
	got chan *process // receives the process handed to it; buffered, sent to once
}

// acquire returns a warm idle process, or starts one if fewer than MaxProcs
// exist, or waits in line for one of those to happen. A process that
// becomes free is handed to the oldest waiter, which alone wakes: were every
// waiter woken to race for it, some would lose many rounds in a row (a
// tail of round trips several times their median, measured with a
// connection's concurrent messages).
func (f *Function) acquire(ctx context.Context) (*process, error) {
	var w *waiter // non-nil while this invocation waits in line
	f.mu.Lock()
	for {
		if w != nil {
			select {
			case p := <-w.got: // handed over while it was woken for something else
				f.mu.Unlock()
				return p, nil
			default:
			}
		}
		if f.closed {
			f.leaveLocked(w)
			f.mu.Unlock()
			return nil, ErrClosed
		}
		if w == nil || f.waitq[0] == w { // nobody ahead in line
			for len(f.idle) > 0 {
				p := f.idle[len(f.idle)-1]
				f.idle = f.idle[:len(f.idle)-1]
				if p.usable() {
					f.leaveLocked(w)
					f.mu.Unlock()
					return p, nil
				}
			}
		}
		if f.nprocs < f.opts.MaxProcs {
			f.nprocs++
			f.leaveLocked(w)
			f.mu.Unlock()
			p, err := f.start()
			if err != nil {
				f.mu.Lock()
				f.nprocs--
				f.broadcastLocked()
				f.mu.Unlock()
				return nil, err
			}
			return p, nil
		}
		if w == nil {
			w = &waiter{got: make(chan *process, 1)}
			f.waitq = append(f.waitq, w)
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case p := <-w.got:
			return p, nil // release took w out of line
		case <-wake: // a slot freed, or the function closed
		case <-ctx.Done():
			f.mu.Lock()
			f.leaveLocked(w)
			select {
			case p := <-w.got: // handed over meanwhile: pass it on
				f.mu.Unlock()
				f.release(p)
			default:
				f.mu.Unlock()
			}
			return nil, ctxError(ctx)
		}
		f.mu.Lock()
	}
}

// leaveLocked takes w out of the line, if it is in it.
func (f *Function) leaveLocked(w *waiter) {
	if i := slices.Index(f.waitq, w); w != nil && i >= 0 {
		f.waitq = slices.Delete(f.waitq, i, i+1)
	}
}

// release returns p to the idle pool unless it is dead, doomed, closed or
// runs a build of the handler that was replaced since it started.
func (f *Function) release(p *process) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.gen != f.gen && !f.closed {
		p.kill()
		return
	}
	if f.closed || !p.usable() {
		return
	}
	if len(f.waitq) > 0 {
		w := f.waitq[0]
		f.waitq = f.waitq[1:]
		w.got <- p // never blocks: w is taken out of line before its one send
		return
	}
	f.idle = append(f.idle, p)
	f.broadcastLocked()
}

// broadcastLocked wakes every invocation waiting in acquire.
func (f *Function) broadcastLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// run hands inv to p and waits for the runtime's answer, p's exit or ctx.
func (f *Function) run(ctx context.Context, p *process, inv *invocation) ([]byte, error) {
	// p belongs to this invocation alone, so anything in its slot is an
	// invocation withdrawn before the process asked for it.
	select {
	case <-p.next:
	default:
	}
	p.next <- inv // never blocks: this is the slot's only sender
	delivered := inv.delivered
	var fnTimeout <-chan time.Time
	for {
		select {
		case <-delivered:
			delivered = nil
			t := time.NewTimer(time.Until(inv.deadlineAt()))
			defer t.Stop()
			fnTimeout = t.C
			continue
		case <-fnTimeout:
			select {
			case <-inv.done:
				f.release(p)
				return inv.out, inv.err
			default:
			}
			f.log.Warn("function "+f.opts.Name+" timed out; killing its process",
				"function", f.opts.Name, "process", p.id, "pid", p.pid(), "request_id", inv.id)
			p.kill()
			return nil, ErrTimeout
		case <-inv.done:
			f.release(p)
			return inv.out, inv.err
		case <-p.exited:
			select {
			case <-inv.done: // answered, then exited (aws-lambda-go exits after reporting a panic)
				return inv.out, inv.err
			default:
			}
			if f.isClosed() {
				return nil, ErrClosed
			}
			if !inv.withdraw() {
				return nil, fmt.Errorf("%w (%s)", ErrCrashed, p.exitStatus())
			}
			if err := p.initError(); err != nil {
				return nil, err
			}
			if p.ready.Load() {
				return nil, errNotDelivered
			}
			return nil, fmt.Errorf("%w: exited before asking for work (%s)", ErrInit, p.exitStatus())
		case <-ctx.Done():
			select {
			case <-inv.done:
				f.release(p)
				return inv.out, inv.err
			default:
			}
			timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
			withdrawn := inv.withdraw()
			switch {
			case withdrawn && (!timedOut || !p.ready.Load()):
				// The event never reached the function. A process still starting
				// goes on starting (its own start-up limit applies) for the next
				// invocation.
				f.release(p)
			case withdrawn: // warm, yet it did not ask for work before the deadline
				f.log.Warn("function "+f.opts.Name+" did not take an invocation in time; killing its process",
					"function", f.opts.Name, "process", p.id, "pid", p.pid())
				p.kill()
			case timedOut:
				f.log.Warn("function "+f.opts.Name+" timed out; killing its process",
					"function", f.opts.Name, "process", p.id, "pid", p.pid(), "request_id", inv.id)
				p.kill()
			default:
				f.finishLater(p, inv)
			}
			return nil, ctxError(ctx)
		}
	}
}

// finishLater lets a function whose caller gave up finish its invocation,
// then returns its process to the pool, or kills it at the deadline.
func (f *Function) finishLater(p *process, inv *invocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return // Close kills p
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.NewTimer(time.Until(inv.deadlineAt()))
		defer t.Stop()
		select {
		case <-inv.done:
			f.release(p)
		case <-p.exited:
		case <-t.C:
			f.log.Warn("function "+f.opts.Name+" timed out; killing its process",
				"function", f.opts.Name, "process", p.id, "pid", p.pid(), "request_id", inv.id)
			p.kill()
		}
	}()
}

func (f *Function) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// ctxError maps ctx's error: a deadline becomes ErrTimeout.
func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ctx.Err()
}
