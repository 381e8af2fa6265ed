package lambdahost_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// pendingEvent is an event whose handler leaves work pending that writes a
// file of the test's own after ms milliseconds.
func pendingEvent(t *testing.T, ms int, extra string) (event, file string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "pending")
	b, _ := json.Marshal(file)
	return fmt.Sprintf(`{"file":%s,"ms":%d%s}`, b, ms, extra), file
}

func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}

// A handler that answers neither by promise nor by callback succeeds with
// null once its event loop is empty, as under AWS's runtime interface
// client: its pending work has run by the time the answer arrives.
func TestNodeNoAnswerIsNullWhenTheEventLoopEmpties(t *testing.T) {
	t.Parallel()
	for _, handler := range []string{"handler.returnsObject", "handler.returnsValue"} {
		t.Run(handler, func(t *testing.T) {
			t.Parallel()
			h := newNodeHost(t, handler, lambdahost.Options{MaxProcs: 1, Timeout: 20 * time.Second})
			for i := range 2 { // the second in a warm process, whose answers are quick
				event, file := pendingEvent(t, 200, "")
				if got := h.mustInvoke(t, event); got != "null" {
					t.Errorf("InvokeRaw #%d = %s, want null", i, got)
				}
				if !exists(file) {
					t.Errorf("InvokeRaw #%d answered before the handler's pending work ran", i)
				}
			}
			if strings.Count(h.log.String(), "cold start") != 1 {
				t.Errorf("want one cold start; log:\n%s", h.log)
			}
		})
	}
}

// callback(null, result) answers when the event loop is empty by default.
func TestNodeCallbackWaitsForEmptyEventLoop(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.callbackWaits", lambdahost.Options{MaxProcs: 1, Timeout: 20 * time.Second})
	for i := range 2 { // the second in a warm process, whose answers are quick
		event, file := pendingEvent(t, 200, `,"waits":true`)
		h.mustInvoke(t, event)
		if !exists(file) {
			t.Errorf("InvokeRaw #%d: with callbackWaitsForEmptyEventLoop true, the answer came before the pending work ran", i)
		}
	}
}

// With callbackWaitsForEmptyEventLoop false the answer is sent at once, and
// the work left pending is frozen with the process until the next
// invocation, as on AWS.
func TestNodeCallbackDoesNotWait(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.callbackWaits", lambdahost.Options{MaxProcs: 1, Timeout: 20 * time.Second})
	event, file := pendingEvent(t, 3000, `,"waits":false`)
	var first struct{ PID int }
	if err := json.Unmarshal([]byte(h.mustInvoke(t, event)), &first); err != nil || first.PID == 0 {
		t.Fatalf("answer: %v, want {pid}", err)
	}
	if runtime.GOOS == "linux" {
		testutil.Eventually(t, 10*time.Second, func() bool { return procState(first.PID) == "T" },
			"process %d is frozen (state T) between invocations; state %q", first.PID, procState(first.PID))
	}
	if exists(file) {
		t.Fatalf("with callbackWaitsForEmptyEventLoop false, the answer waited for the pending work, or it ran while the function was idle")
	}
	// The next invocation waits for an empty event loop: the timer the first
	// left behind runs in it.
	next, _ := pendingEvent(t, 1, `,"waits":true`)
	var second struct{ PID int }
	if err := json.Unmarshal([]byte(h.mustInvoke(t, next)), &second); err != nil || second.PID != first.PID {
		t.Errorf("next invocation ran in process %d (%v), want the warm %d", second.PID, err, first.PID)
	}
	if !exists(file) {
		t.Errorf("the first invocation's pending work did not run in the next one")
	}
}

// procState is the state letter of process pid from /proc, or "".
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// context.done, succeed and fail answer at once, whatever is pending and
// whatever callbackWaitsForEmptyEventLoop says.
func TestNodeLegacyContextMethods(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.legacy", lambdahost.Options{MaxProcs: 1, Timeout: 10 * time.Second})
	tests := []struct {
		call    string
		want    string                    // the answer, when it succeeds
		wantErr *lambdahost.FunctionError // the error, when it fails
	}{
		{call: "done", want: `{"via":"done"}`},
		{call: "succeed", want: `{"via":"succeed"}`},
		{call: "doneError", wantErr: &lambdahost.FunctionError{Type: "URIError", Message: "done failed"}},
		{call: "fail", wantErr: &lambdahost.FunctionError{Type: "RangeError", Message: "fail failed"}},
		{call: "failEmpty", wantErr: &lambdahost.FunctionError{Type: "string", Message: "handled"}},
	}
	for _, tt := range tests {
		// Pending for longer than Timeout: an answer that waited would time out.
		event, _ := pendingEvent(t, 15000, `,"call":"`+tt.call+`"`)
		out, err := h.invoke(t, event)
		if tt.wantErr == nil {
			if err != nil || !jsonEqual(t, out, tt.want) {
				t.Errorf("context.%s: InvokeRaw = %s, %v; want %s", tt.call, out, err, tt.want)
			}
			continue
		}
		var fe *lambdahost.FunctionError
		if !errors.As(err, &fe) || *fe != *tt.wantErr {
			t.Errorf("context.%s: InvokeRaw = %s, %v; want %+v", tt.call, out, err, *tt.wantErr)
		}
	}
	if strings.Count(h.log.String(), "cold start") != 1 {
		t.Errorf("want one cold start; log:\n%s", h.log)
	}
}

// A handler that throws or returns a rejected promise fails with its error;
// the process stays for the next invocation.
func TestNodeThrowAndReject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		handler string
		want    lambdahost.FunctionError
	}{
		{"handler.rejects", lambdahost.FunctionError{Type: "SyntaxError", Message: "rejected"}},
		{"handler.throwsSync", lambdahost.FunctionError{Type: "EvalError", Message: "thrown"}},
	}
	for _, tt := range tests {
		t.Run(tt.handler, func(t *testing.T) {
			t.Parallel()
			h := newNodeHost(t, tt.handler, lambdahost.Options{MaxProcs: 1})
			for i := range 2 {
				_, err := h.invoke(t, `{}`)
				var fe *lambdahost.FunctionError
				if !errors.As(err, &fe) || *fe != tt.want {
					t.Errorf("InvokeRaw #%d: err = %v, want %+v", i, err, tt.want)
				}
			}
			if strings.Count(h.log.String(), "cold start") != 1 {
				t.Errorf("want one cold start; log:\n%s", h.log)
			}
		})
	}
}

// The first answer counts; a second is reported on the function's output.
func TestNodeSecondAnswerIgnored(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.twice", lambdahost.Options{Name: "twice"})
	if got := h.mustInvoke(t, `{}`); got != `"first"` {
		t.Errorf("InvokeRaw = %s, want \"first\"", got)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(h.out.String(), "already been answered") },
		"the second answer is reported; output:\n%s", h.out)
}

// The context has every field AWS's Node.js runtime provides.
func TestNodeContextFields(t *testing.T) {
	t.Parallel()
	h := newNodeHost(t, "handler.contextFields", lambdahost.Options{Name: "ctxfunc", Timeout: 10 * time.Second})
	var got struct {
		FunctionName, FunctionVersion, InvokedFunctionArn, MemoryLimitInMB string
		AwsRequestID                                                       string `json:"awsRequestId"`
		LogGroupName, LogStreamName                                        string
		RemainingMs                                                        int64
		Waits                                                              bool
		Legacy                                                             []string
	}
	out := h.mustInvoke(t, `{}`)
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("InvokeRaw = %s: %v", out, err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"functionName ctxfunc", got.FunctionName == "ctxfunc"},
		{"functionVersion $LATEST", got.FunctionVersion == "$LATEST"},
		{"invokedFunctionArn ending :function:ctxfunc", strings.HasPrefix(got.InvokedFunctionArn, "arn:aws:lambda:") && strings.HasSuffix(got.InvokedFunctionArn, ":function:ctxfunc")},
		{"memoryLimitInMB 128", got.MemoryLimitInMB == "128"},
		{"awsRequestId a UUID", uuidRE.MatchString(got.AwsRequestID)},
		{"logGroupName /aws/lambda/ctxfunc", got.LogGroupName == "/aws/lambda/ctxfunc"},
		{"logStreamName [$LATEST]", strings.Contains(got.LogStreamName, "[$LATEST]")},
		{"getRemainingTimeInMillis() in (0, 10000]", got.RemainingMs > 0 && got.RemainingMs <= 10000},
		{"callbackWaitsForEmptyEventLoop true", got.Waits},
		{"done, succeed, fail functions", strings.Join(got.Legacy, ",") == "function,function,function"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("context: want %s; got %s", c.name, out)
		}
	}
}

// An event larger than a socket's buffers reaches a process frozen between
// invocations: the process reads it only once it is thawed.
func TestLargeEventToFrozenProcess(t *testing.T) {
	t.Parallel()
	h := newGoHost(t, lambdahost.Options{MaxProcs: 1})
	pid := h.pid(t, `{"pid":true}`)
	if runtime.GOOS == "linux" {
		testutil.Eventually(t, 10*time.Second, func() bool { return procState(pid) == "T" },
			"process %d is frozen (state T) between invocations; state %q", pid, procState(pid))
	}
	event := `{"pad":"` + strings.Repeat("x", 4<<20) + `"}`
	if got, err := h.invoke(t, event); err != nil || got != event {
		t.Errorf("InvokeRaw(%d bytes) = %d bytes, %v; want the event back", len(event), len(got), err)
	}
}
