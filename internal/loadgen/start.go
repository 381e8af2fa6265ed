package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
)

var startHelp = &cli.Help{
	Usage: []string{"switchboard bench start [flags] -- COMMAND [ARG...]"},
	Text: `Starts COMMAND (a gateway, or another server of the same WebSocket API, such
as serverless-offline) in its own process group and measures how soon it
serves: the time from the start until a WebSocket handshake with --url
succeeds (the server's $connect route answered), tried every 10ms while the
port refuses, each attempt waiting as long as the run may; then the
round trip of the first --message on that connection, whose answer must
contain --expect (a function's first invocation: a cold start unless the
server started it beforehand); then the median round trip of --repeat more.
The command is stopped afterwards (SIGTERM to its process group, SIGKILL 10s
later); its output goes to --log, or nowhere. The workload opens one
connection: it measures latency, not load.`,
	Examples: []string{
		`switchboard bench start --url ws://127.0.0.1:3101 --message '{"action":"sendMessage","data":"hi"}' --expect hi -- switchboard serve --listen 127.0.0.1:3101`,
	},
}

const (
	startPoll      = 10 * time.Millisecond
	startStopWait  = 10 * time.Second
	maxStartRepeat = 10_000
)

type startResult struct {
	report
	Command []string `json:"command"`
	Message string   `json:"message"`
	Expect  string   `json:"expect"`
	Repeat  int      `json:"repeat"`

	Attempts int     `json:"attempts"`             // handshakes tried until one succeeded
	ReadyMs  float64 `json:"ready_ms"`             // from the start to the first handshake answered
	FirstMs  float64 `json:"first_message_ms"`     // the first message's round trip
	AnswerMs float64 `json:"first_answer_ms"`      // from the start to the first answer: ready + first
	WarmMs   float64 `json:"warm_message_ms"`      // median round trip of the --repeat that follow
	Exited   string  `json:"exited,omitempty"`     // how the command ended, when it ended by itself
	Stopped  string  `json:"stop_error,omitempty"` // a stop that needed SIGKILL or failed
}

func start(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("start")
	var t target
	t.register(fs, getenv, flagWS)
	msg := fs.String("message", `{"action":"echo","data":"start"}`, "the message sent once the handshake succeeded")
	expect := fs.String("expect", "start", "text the answer to --message contains")
	repeat := fs.Int("repeat", 20, fmt.Sprintf("messages sent after the first, for the warm round trip (at most %d)", maxStartRepeat))
	dir := fs.String("dir", "", "working directory of the command (default: this one)")
	logPath := fs.String("log", "", "file the command's output is appended to (default: discarded)")
	if err := cli.ParseFlags(fs, args, startHelp, stdout); err != nil {
		return err
	}
	command := fs.Args()
	if len(command) == 0 {
		return cli.Usagef("no command given: put it after --")
	}
	if err := t.check(ctx, flagWS); err != nil {
		return err
	}
	if err := checkRange("--repeat", *repeat, 0, maxStartRepeat); err != nil {
		return err
	}
	if *expect == "" {
		return cli.Usagef("--expect is empty: every frame would count as the answer")
	}

	r := newRun("start", &t, stderr)
	res := startResult{Command: command, Message: *msg, Expect: *expect, Repeat: *repeat}
	runCtx, cancel := context.WithTimeout(ctx, t.duration)
	defer cancel()

	cmd := exec.Command(command[0], command[1:]...)
	cmd.Dir = *dir
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("--log: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	ownGroup(cmd)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var exitErr error
	processDone := false
	stopCmd := func() {
		if processDone {
			return
		}
		processDone = true
		if err := stopGroup(cmd, exited, startStopWait); err != nil {
			res.Stopped = err.Error()
		}
	}
	defer stopCmd()

	// The progress line reads these as the run writes them.
	var attempts atomic.Int64
	var ready atomic.Bool
	stop := r.progress(func() string {
		if !ready.Load() {
			return fmt.Sprintf("waiting for %s: %d handshakes tried", t.url, attempts.Load())
		}
		return "messaging"
	})
	defer stop()

	c, err := firstHandshake(runCtx, t.url, exited, &attempts)
	res.Attempts = int(attempts.Load())
	if err != nil {
		if ee := (exitedError{}); errors.As(err, &ee) {
			processDone = true
			exitErr = ee.err
			res.Exited = describeExit(exitErr)
		}
		r.fail(err)
		stop()
		res.report = r.report(runCtx.Err() != nil && ctx.Err() == nil)
		return r.finish(ctx, stdout, res, nil)
	}
	defer c.CloseNow()
	res.ReadyMs = ms(time.Since(began))
	ready.Store(true)

	rt, err := roundTripText(runCtx, c, []byte(*msg), *expect)
	if err != nil {
		r.fail(fmt.Errorf("first message: %w", err))
	} else {
		res.FirstMs = ms(rt)
		res.AnswerMs = round(res.ReadyMs+res.FirstMs, 3)
		warm := make([]time.Duration, 0, *repeat)
		for range *repeat {
			rt, err := roundTripText(runCtx, c, []byte(*msg), *expect)
			if err != nil {
				r.fail(fmt.Errorf("message: %w", err))
				break
			}
			warm = append(warm, rt)
		}
		if len(warm) > 0 {
			slices.Sort(warm)
			res.WarmMs = ms(warm[len(warm)/2])
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	stop()
	stopCmd()
	res.report = r.report(runCtx.Err() != nil && ctx.Err() == nil)
	return r.finish(ctx, stdout, res, nil)
}

// exitedError is a command that ended before it served.
type exitedError struct{ err error }

func (e exitedError) Error() string {
	return "the command ended before a handshake succeeded: " + describeExit(e.err)
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// firstHandshake dials u every startPoll until a handshake succeeds, the
// command ends (exitedError) or ctx ends.
func firstHandshake(ctx context.Context, u string, exited <-chan error, attempts *atomic.Int64) (*websocket.Conn, error) {
	var last error
	for {
		attempts.Add(1)
		// No bound of its own on an attempt: a server that accepts before it
		// serves (its port bound while its functions start) answers this
		// handshake once it serves; a port not yet bound refuses at once.
		c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: userAgent("-start")})
		if err == nil {
			c.SetReadLimit(-1)
			return c, nil
		}
		last = err
		select {
		case err := <-exited:
			return nil, exitedError{err}
		case <-ctx.Done():
			return nil, fmt.Errorf("no handshake succeeded in time (last: %v)", last)
		case <-time.After(startPoll):
		}
	}
}

// roundTripText sends msg and reads frames until one contains expect,
// returning the time between.
func roundTripText(ctx context.Context, c *websocket.Conn, msg []byte, expect string) (time.Duration, error) {
	sent := time.Now()
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return 0, err
	}
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return 0, err
		}
		if strings.Contains(string(b), expect) {
			return time.Since(sent), nil
		}
	}
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }
