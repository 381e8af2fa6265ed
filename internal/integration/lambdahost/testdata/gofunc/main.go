// Command gofunc is the Go function lambdahost's tests host: an ordinary
// aws-lambda-go program, built by the tests, that knows nothing of its host.
//
// It echoes its event, and obeys these fields: "log" (print it to stdout and
// stderr), "sleep" (milliseconds, ignoring the deadline), "crash" (panic),
// "exit" (exit with status 3), "fail" (return an error), "env" (return its
// environment and invocation context), "pid" (return its process id), "seq"
// (return how many invocations the process has started, this one included),
// "big" (return a string of that many bytes).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Log   string `json:"log"`
	Sleep int    `json:"sleep"`
	Crash bool   `json:"crash"`
	Exit  bool   `json:"exit"`
	Fail  bool   `json:"fail"`
	Env   bool   `json:"env"`
	PID   bool   `json:"pid"`
	Seq   bool   `json:"seq"`
	Big   int    `json:"big"`
}

// started counts the invocations the process has started.
var started atomic.Int64

func handle(ctx context.Context, event json.RawMessage) (any, error) {
	n := started.Add(1)
	var req request
	_ = json.Unmarshal(event, &req) // an event that is not an object is echoed
	if req.Log != "" {
		fmt.Println(req.Log)
		fmt.Fprintln(os.Stderr, req.Log+" (stderr)")
	}
	time.Sleep(time.Duration(req.Sleep) * time.Millisecond)
	switch {
	case req.Crash:
		panic("gofunc: crash requested")
	case req.Exit:
		os.Exit(3)
	case req.Fail:
		return nil, errors.New("gofunc: failure requested")
	case req.Env:
		env := make(map[string]string)
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		lc, _ := lambdacontext.FromContext(ctx)
		deadline, _ := ctx.Deadline()
		return map[string]any{
			"env":          env,
			"requestId":    lc.AwsRequestID,
			"arn":          lc.InvokedFunctionArn,
			"functionName": lambdacontext.FunctionName,
			"deadlineMs":   deadline.UnixMilli(),
		}, nil
	case req.PID:
		return map[string]int{"pid": os.Getpid()}, nil
	case req.Seq:
		return map[string]int64{"seq": n}, nil
	case req.Big > 0:
		return strings.Repeat("x", req.Big), nil
	}
	return event, nil
}

func main() {
	lambda.Start(handle)
}
