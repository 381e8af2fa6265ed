// Package lambdaapi serves the Lambda Invoke API for the gateway's hosted
// functions: POST /2015-03-31/functions/{name}/invocations, with the
// invocation types, headers, status codes and error bodies of AWS Lambda, so
// that the AWS SDKs' Lambda clients and `aws lambda invoke --endpoint-url`
// call them unchanged. It owns the API's wire format only: credentials are
// checked by whoever serves it, and the functions are run by their owner.
package lambdaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
)

// Function is what the API needs of a hosted function.
type Function interface {
	// InvokeRaw runs the function with event and returns its result. It
	// bounds its own run by the function's timeout.
	InvokeRaw(ctx context.Context, event []byte) ([]byte, error)
}

// FunctionError describes an invocation that failed in the function (it
// threw, crashed or timed out): Lambda answers it with 200 and
// X-Amz-Function-Error, the error in the payload.
type FunctionError struct {
	Type    string // errorType, e.g. "Error", "Runtime.ExitError"
	Message string // errorMessage
}

// Options configures the API. Functions is required; the zero value of
// every other field works.
type Options struct {
	// Functions are the functions the API invokes, by every name they
	// answer to (the function's key, and its deployed name).
	Functions map[string]Function
	// FunctionError tells a failure of the function itself from a failure
	// to run it. Nil treats every error as a failure to run it (502).
	FunctionError func(err error) (FunctionError, bool)
	// Region and Account make the ARNs in error messages. Empty means
	// us-east-1 and 123456789012, as local emulators use.
	Region, Account string
	// MaxPayloadBytes caps a request's payload (413 beyond). Zero means
	// 6 MiB, Lambda's limit for synchronous invocations.
	MaxPayloadBytes int64
	// Go runs an Event invocation in the background. Nil means a plain
	// goroutine; the server passes one that it waits for at shutdown.
	Go func(func())
	// Logger receives failures of Event invocations, which have no caller
	// to tell. Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Account == "" {
		o.Account = "123456789012"
	}
	if o.MaxPayloadBytes == 0 {
		o.MaxPayloadBytes = 6 << 20
	}
	if o.Go == nil {
		o.Go = func(f func()) { go f() }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FunctionError == nil {
		o.FunctionError = func(error) (FunctionError, bool) { return FunctionError{}, false }
	}
	return o
}

// Pattern is the path the API answers on, in net/http's pattern syntax.
const Pattern = "POST /2015-03-31/functions/{name}/invocations"

// API is the Invoke API's handler. It is safe for concurrent use.
type API struct {
	opts Options
}

// New returns the API over opts.Functions.
func New(opts Options) *API { return &API{opts: opts.withDefaults()} }

// Register adds the API's route to mux.
func (a *API) Register(mux *http.ServeMux) { mux.Handle(Pattern, a) }

// apiError is an answer in Lambda's error shape: the type in
// X-Amzn-ErrorType, {"Type": "User", "Message": ...} in the body.
type apiError struct {
	status int
	kind   string // ResourceNotFoundException, ...
	msg    string
}

func (e *apiError) Error() string { return "lambdaapi: " + e.kind + ": " + e.msg }

// ServeHTTP implements http.Handler for Pattern.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := apigw.NewUUID()
	w.Header().Set("X-Amzn-RequestId", id)
	if err := a.serve(w, r, id); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{http.StatusInternalServerError, "ServiceException", err.Error()}
		}
		w.Header().Set("X-Amzn-ErrorType", ae.kind)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ae.status)
		kind := "User"
		if ae.status >= 500 {
			kind = "Service"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"Type": kind, "Message": ae.msg, "message": ae.msg})
	}
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, id string) error {
	name, qualifier := functionName(r.PathValue("name"))
	if q := r.URL.Query().Get("Qualifier"); q != "" {
		qualifier = q
	}
	fn, ok := a.opts.Functions[name]
	if !ok || (qualifier != "" && qualifier != "$LATEST") {
		arn := a.arn(name)
		if qualifier != "" {
			arn += ":" + qualifier
		}
		return &apiError{http.StatusNotFound, "ResourceNotFoundException", "Function not found: " + arn}
	}
	kind := r.Header.Get("X-Amz-Invocation-Type")
	switch kind {
	case "", "RequestResponse", "Event", "DryRun":
	default:
		return &apiError{http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("X-Amz-Invocation-Type %q: want RequestResponse, Event or DryRun", kind)}
	}
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxPayloadBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &apiError{http.StatusRequestEntityTooLarge, "RequestTooLargeException",
			fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", a.opts.MaxPayloadBytes)}
	}
	if err != nil {
		return &apiError{http.StatusBadRequest, "InvalidRequestContentException", "reading the payload: " + err.Error()}
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if !json.Valid(payload) {
		return &apiError{http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json"}
	}
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	switch kind {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return nil
	case "Event":
		a.opts.Go(func() {
			// The function bounds its own run; the caller has gone.
			if _, err := fn.InvokeRaw(context.WithoutCancel(r.Context()), payload); err != nil {
				a.opts.Logger.Warn("asynchronous invocation failed", "function", name, "requestId", id, "err", err)
			}
		})
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	out, err := fn.InvokeRaw(r.Context(), payload)
	if err != nil {
		fe, ok := a.opts.FunctionError(err)
		if !ok {
			if r.Context().Err() != nil {
				return nil // the caller has gone: nobody to answer
			}
			return &apiError{http.StatusBadGateway, "ServiceException", fmt.Sprintf("function %s could not be run: %v", name, err)}
		}
		out, _ = json.Marshal(map[string]any{"errorType": fe.Type, "errorMessage": fe.Message, "trace": []string{}})
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

// functionName reads the name part of a FunctionName: a name, a partial
// ARN (123456789012:function:name) or a full one, each with an optional
// :qualifier.
func functionName(s string) (name, qualifier string) {
	if i := strings.LastIndex(s, "function:"); i >= 0 {
		s = s[i+len("function:"):]
	}
	name, qualifier, _ = strings.Cut(s, ":")
	return name, qualifier
}

func (a *API) arn(name string) string {
	return "arn:aws:lambda:" + a.opts.Region + ":" + a.opts.Account + ":function:" + name
}
