// Package invoke is the Lambda integration: it calls a function through the
// Lambda Invoke API (POST /2015-03-31/functions/{name}/invocations, signed
// with SigV4), as API Gateway does for an AWS_PROXY route. The endpoint may
// be AWS or anything that speaks the same API, such as a local emulator.
package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/switchboard-gateway/switchboard/internal/integration"
)

// defaultRegion is the region used when neither Options nor the shared AWS
// configuration names one.
const defaultRegion = "us-east-1"

// FunctionError is returned by Invoke, wrapped, when the function ran and
// failed (the Invoke API answered 200 with X-Amz-Function-Error). API
// Gateway turns it into the "Internal server error" frame, or 502 on
// $connect.
type FunctionError struct {
	Type    string // the payload's errorType; the X-Amz-Function-Error value ("Unhandled") when it has none
	Message string // the payload's errorMessage; the payload itself when it is not an error object
}

func (e *FunctionError) Error() string {
	return "function error: " + e.Type + ": " + e.Message
}

// ServiceError is returned by Invoke, wrapped, when the Invoke API refused
// the call (a status outside 2xx): the function did not run, or its outcome
// is unknown. Type is the AWS error type, such as "TooManyRequestsException"
// or "ResourceNotFoundException".
type ServiceError struct {
	StatusCode int
	Type       string
	Message    string
	err        error // the client's error, with the request ID
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("Lambda %s (status %d): %s", e.Type, e.StatusCode, e.Message)
}

// Unwrap returns the Lambda client's error (a smithy.APIError).
func (e *ServiceError) Unwrap() error { return e.err }

// Options configures a Lambda integration.
type Options struct {
	// Endpoint is the base URL of the Invoke API, http or https. Empty means
	// AWS's, https://lambda.{Region}.amazonaws.com.
	Endpoint string
	// Function is the function's name, ARN or partial ARN. Required.
	Function string
	// Qualifier is the version or alias to invoke. Empty means the
	// unqualified function ($LATEST, or the version a qualified ARN names).
	Qualifier string
	// Region is the region requests are signed for (and, without Endpoint,
	// sent to). Empty means the region of the standard AWS configuration
	// (AWS_REGION, the shared config file's profile), or us-east-1.
	Region string
	// Credentials sign the requests. Nil means the standard AWS credential
	// chain: environment, shared files (AWS_PROFILE), SSO, web identity,
	// container and instance roles.
	Credentials aws.CredentialsProvider
	// Client sends the requests. Nil means a client of this integration's
	// own, which keeps up to 100 idle connections to the endpoint, and whose
	// idle connections Close releases. Either way it sets no timeout of
	// its own: an invocation is bounded by the caller's ctx.
	Client *http.Client
}

// Integration invokes one Lambda function. It is safe for concurrent use.
type Integration struct {
	lambda    *lambda.Client
	function  string
	qualifier *string
	http      *http.Client
	owned     bool // http was made by New, and Close releases its connections
}

var _ integration.Integration = (*Integration)(nil)

// New returns an integration that invokes opts.Function. When Credentials
// is nil or Region is empty it loads the standard AWS configuration with
// ctx, which reads environment variables and shared files but makes no
// request: credentials that need one are fetched on the first Invoke.
//
// Failed invocations are not retried: the event may have had effects, and
// API Gateway does not retry them either.
func New(ctx context.Context, opts Options) (*Integration, error) {
	if opts.Function == "" {
		return nil, errors.New("invoke: no function")
	}
	var endpoint *string
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("invoke: invalid endpoint: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("invoke: endpoint %q: want an http or https URL", u.Redacted())
		}
		endpoint = aws.String(strings.TrimSuffix(opts.Endpoint, "/"))
	}

	creds, region := opts.Credentials, opts.Region
	if creds == nil || region == "" {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("invoke: load AWS configuration: %w", err)
		}
		if creds == nil {
			creds = cfg.Credentials
		}
		if region == "" {
			region = cfg.Region
		}
	}
	if region == "" {
		region = defaultRegion
	}

	i := &Integration{function: opts.Function, http: opts.Client}
	if opts.Qualifier != "" {
		i.qualifier = aws.String(opts.Qualifier)
	}
	if i.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 100 // one host, many concurrent invocations
		i.http = &http.Client{Transport: t}
		i.owned = true
	}
	i.lambda = lambda.New(lambda.Options{
		Region:       region,
		Credentials:  creds,
		BaseEndpoint: endpoint,
		HTTPClient:   i.http,
		Retryer:      aws.NopRetryer{},
	})
	return i, nil
}

// Invoke calls the function synchronously (RequestResponse) with req's
// proxy event and reads its output with integration.ParseResponse. A failed
// function is a *FunctionError, a refused call a *ServiceError; an error
// caused by ctx wraps ctx's error.
func (i *Integration) Invoke(ctx context.Context, req *integration.Request) (*integration.Response, error) {
	event, err := integration.MarshalEvent(req)
	if err != nil {
		return nil, fmt.Errorf("invoke: %s: %w", i.function, err)
	}
	out, err := i.InvokeRaw(ctx, event)
	if err != nil {
		return nil, err
	}
	resp, err := integration.ParseResponse(out)
	if err != nil {
		return nil, fmt.Errorf("invoke: %s: %w", i.function, err)
	}
	return resp, nil
}

// InvokeRaw calls the function synchronously with payload and returns its
// output as it is, for callers with events of their own (authorizers).
// Errors are as for Invoke.
func (i *Integration) InvokeRaw(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := i.lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(i.function),
		Qualifier:      i.qualifier,
		InvocationType: types.InvocationTypeRequestResponse,
		Payload:        payload,
	})
	if err != nil {
		return nil, fmt.Errorf("invoke: %s: %w", i.function, serviceError(err))
	}
	if out.FunctionError != nil {
		return nil, fmt.Errorf("invoke: %s: %w", i.function, functionError(*out.FunctionError, out.Payload))
	}
	return out.Payload, nil
}

// Close releases the idle connections of the HTTP client New made. It does
// nothing when Options.Client was set: the caller owns that client.
func (i *Integration) Close() error {
	if i.owned {
		i.http.CloseIdleConnections()
	}
	return nil
}

// serviceError turns the client's error for an answer outside 2xx into a
// *ServiceError, and returns any other error (transport, ctx) as it is.
func serviceError(err error) error {
	var ae smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || !errors.As(err, &re) {
		return err
	}
	return &ServiceError{
		StatusCode: re.HTTPStatusCode(),
		Type:       ae.ErrorCode(),
		Message:    ae.ErrorMessage(),
		err:        err,
	}
}

// maxErrorPayload bounds the payload text a FunctionError carries when the
// payload is not an error object.
const maxErrorPayload = 1024

// functionError reads the error object a failed function returns:
// {"errorMessage": "...", "errorType": "...", "stackTrace": [...]}.
func functionError(kind string, payload []byte) *FunctionError {
	var obj struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if err := json.Unmarshal(payload, &obj); err != nil || (obj.Type == "" && obj.Message == "") {
		msg := strings.TrimSpace(string(payload))
		if len(msg) > maxErrorPayload {
			msg = msg[:maxErrorPayload] + "..."
		}
		return &FunctionError{Type: kind, Message: msg}
	}
	if obj.Type == "" {
		obj.Type = kind
	}
	return &FunctionError{Type: obj.Type, Message: obj.Message}
}
