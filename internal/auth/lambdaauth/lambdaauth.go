// Package lambdaauth is a $connect authorizer that calls an API Gateway
// Lambda REQUEST authorizer: it builds the authorizer's input event exactly
// as API Gateway does for a WebSocket API, invokes the function through a
// function the gateway supplies, and evaluates the IAM policy the function
// returns against the $connect method ARN. It owns identity-source checks,
// the input event, policy evaluation and the result cache; how the function
// runs (hosted process, Lambda Invoke API, HTTP) is the caller's.
package lambdaauth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/auth"
)

// MaxOutputBytes is the largest authorizer result API Gateway accepts (8 KB);
// a larger one is a broken authorizer (500).
const MaxOutputBytes = 8 * 1024

var (
	// ErrUnauthorized, anywhere in the chain of Invoke's error, means the
	// function failed with the message "Unauthorized": the client gets 401.
	// An error whose own message is exactly "Unauthorized" counts too.
	ErrUnauthorized = errors.New("lambdaauth: Unauthorized")

	// ErrInvoke is wrapped by Authorize's error when Invoke failed for any
	// other reason (the function threw, timed out, could not run). The
	// gateway answers 500.
	ErrInvoke = errors.New("lambdaauth: authorizer failed")

	// ErrBadOutput is wrapped by Authorize's error when the function's result
	// is not a valid authorizer response: not a JSON object, over
	// MaxOutputBytes, no principalId, no or a malformed policyDocument, or a
	// context value that is not a string, number or boolean. The gateway
	// answers 500, as API Gateway does.
	ErrBadOutput = errors.New("lambdaauth: malformed authorizer output")
)

// Options configures an Authorizer. Invoke is required; every other field
// has a default.
type Options struct {
	// Invoke runs the authorizer function with the JSON input event and
	// returns its JSON result. A function error (the function threw) is
	// reported either as an error, which means 401 when it is or wraps
	// ErrUnauthorized or an error whose message is "Unauthorized" and 500
	// otherwise, or as the function's error payload returned as the result
	// ({"errorMessage": "Unauthorized", "errorType": ...}, the body Lambda's
	// Invoke API answers with X-Amz-Function-Error), read the same way.
	// Invoke is called concurrently and must honour ctx.
	Invoke func(ctx context.Context, event []byte) ([]byte, error)

	// IdentitySources are the request values the authorizer depends on:
	// "route.request.header.NAME" (NAME in any case) or
	// "route.request.querystring.NAME". When any is missing or empty the
	// client gets 401 and the function is not invoked. They also key the
	// result cache. Empty means no check.
	IdentitySources []string

	// TTL is how long a result (Allow or Deny) is reused for handshakes with
	// the same identity-source values, API, and stage. Zero means no
	// caching. API Gateway's REST default is 300s, but a $connect is one
	// call per connection, not per request, so caching saves little, and a
	// cached Allow outlives a credential revoked in the meantime; opt in
	// when the function is slow or costly. Caching requires
	// IdentitySources: without them every client would share one result.
	TTL time.Duration
	// CacheSize bounds the cached results; the oldest goes first. Zero
	// means 10000.
	CacheSize int

	// Region and AccountID appear in the methodArn the function receives,
	// arn:aws:execute-api:{Region}:{AccountID}:{apiId}/{stage}/$connect,
	// and which an Allow statement's Resource must match. Zero means
	// "us-east-1" and "000000000000".
	Region    string
	AccountID string

	// Timeout bounds one invocation; a timed-out authorizer is a broken one
	// (500). Zero means 29s, API Gateway's integration timeout; negative
	// means only ctx's deadline applies.
	Timeout time.Duration

	now func() time.Time // the clock; tests replace it
}

func (o Options) withDefaults() Options {
	if o.CacheSize == 0 {
		o.CacheSize = 10000
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "000000000000"
	}
	if o.Timeout == 0 {
		o.Timeout = 29 * time.Second
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// identitySource is one parsed entry of Options.IdentitySources.
type identitySource struct {
	header bool   // a header; else a query string parameter
	name   string // canonical header name, or the exact parameter name
}

// Authorizer calls a REQUEST authorizer function on $connect. It is safe
// for concurrent use and holds no goroutines.
//
// The client gets 401 (reason "Unauthorized") when an identity source is
// missing or the function fails with "Unauthorized"; 403 (reason
// "Forbidden") when the policy denies $connect or does not allow it; and
// the Identity {Principal: principalId, Context: context plus principalId}
// when an Allow statement matches. Any other failure is an error wrapping
// ErrInvoke or ErrBadOutput (500).
//
// Policy evaluation follows IAM for the statements an authorizer returns:
// Statement is one object or a list; Effect is "Allow" or "Deny" in any
// case; Action/NotAction and Resource/NotResource are a string or a list,
// with "*" and "?" wildcards (actions case-insensitive, against
// "execute-api:Invoke"); a matching Deny wins over any Allow. A statement
// with a Condition cannot be evaluated here, so it is taken the safe way:
// as matching when it denies, as not matching when it allows. The
// usageIdentifierKey is ignored.
type Authorizer struct {
	opts    Options
	sources []identitySource
	cache   *cache // nil when TTL is zero
}

var _ auth.Authorizer = (*Authorizer)(nil)

// New returns an Authorizer.
func New(opts Options) (*Authorizer, error) {
	opts = opts.withDefaults()
	if opts.Invoke == nil {
		return nil, errors.New("lambdaauth: Invoke is required")
	}
	a := &Authorizer{opts: opts}
	for _, s := range opts.IdentitySources {
		switch {
		case strings.HasPrefix(s, "route.request.header.") && len(s) > len("route.request.header."):
			a.sources = append(a.sources, identitySource{true, http.CanonicalHeaderKey(strings.TrimPrefix(s, "route.request.header."))})
		case strings.HasPrefix(s, "route.request.querystring.") && len(s) > len("route.request.querystring."):
			a.sources = append(a.sources, identitySource{false, strings.TrimPrefix(s, "route.request.querystring.")})
		default:
			return nil, fmt.Errorf("lambdaauth: identity source %q: want route.request.header.NAME or route.request.querystring.NAME", s)
		}
	}
	if opts.TTL > 0 {
		if len(a.sources) == 0 {
			return nil, errors.New("lambdaauth: TTL needs IdentitySources to key the cache")
		}
		a.cache = newCache(opts.TTL, opts.CacheSize)
	}
	return a, nil
}

// MethodARN is the ARN the function receives as methodArn for req.
func (a *Authorizer) MethodARN(req *auth.ConnectRequest) string {
	return "arn:aws:execute-api:" + a.opts.Region + ":" + a.opts.AccountID + ":" + req.APIID + "/" + req.Stage + "/" + apigw.RouteConnect
}

// Authorize implements auth.Authorizer.
func (a *Authorizer) Authorize(ctx context.Context, req *auth.ConnectRequest) (*auth.Identity, error) {
	values, ok := a.identityValues(req)
	if !ok {
		return nil, auth.Unauthorized("Unauthorized")
	}
	var key string
	if a.cache != nil {
		key = cacheKey(req, values)
		if res, ok := a.cache.get(key, a.opts.now()); ok {
			return res.identity()
		}
	}
	event, err := json.Marshal(a.event(req))
	if err != nil {
		return nil, fmt.Errorf("lambdaauth: marshal event: %w", err)
	}
	if a.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.opts.Timeout)
		defer cancel()
	}
	out, err := a.opts.Invoke(ctx, event)
	if err != nil {
		if unauthorized(err) {
			return nil, auth.Unauthorized("Unauthorized")
		}
		return nil, fmt.Errorf("%w: %w", ErrInvoke, err)
	}
	res, err := parseResult(out, a.MethodARN(req))
	if err != nil {
		return nil, err
	}
	if a.cache != nil {
		a.cache.put(key, res, a.opts.now())
	}
	return res.identity()
}

// identityValues returns the identity sources' values, and false when one is
// missing or empty.
func (a *Authorizer) identityValues(req *auth.ConnectRequest) ([]string, bool) {
	values := make([]string, len(a.sources))
	for i, s := range a.sources {
		var vs []string
		if s.header {
			vs = headerValues(req.Header, s.name)
		} else {
			vs = req.Query[s.name]
		}
		if len(vs) == 0 || vs[len(vs)-1] == "" {
			return nil, false
		}
		values[i] = vs[len(vs)-1] // the value the function sees in headers / queryStringParameters
	}
	return values, true
}

// headerValues finds a header in any case, even under a key that was not
// canonicalised.
func headerValues(h http.Header, name string) []string {
	if vs, ok := h[name]; ok {
		return vs
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			return vs
		}
	}
	return nil
}

// cacheKey identifies a result: the API, the stage and the identity values,
// each length-prefixed so that no two lists collide; hashed so that the
// cache holds no credential.
func cacheKey(req *auth.ConnectRequest, values []string) string {
	h := sha256.New()
	var n [8]byte
	for _, v := range append([]string{req.APIID, req.Stage}, values...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	return string(h.Sum(nil))
}

// event is the REQUEST authorizer input of a WebSocket $connect, with API
// Gateway's keys; aws-lambda-go decodes it as
// events.APIGatewayCustomAuthorizerRequestTypeRequest.
type event struct {
	Type                            string              `json:"type"`
	MethodArn                       string              `json:"methodArn"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters,omitempty"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters,omitempty"`
	StageVariables                  map[string]string   `json:"stageVariables"`
	RequestContext                  eventContext        `json:"requestContext"`
}

type eventContext struct {
	RouteKey          string        `json:"routeKey"`
	EventType         string        `json:"eventType"`
	ExtendedRequestID string        `json:"extendedRequestId"`
	RequestTime       string        `json:"requestTime"`
	MessageDirection  string        `json:"messageDirection"`
	Stage             string        `json:"stage"`
	ConnectedAt       int64         `json:"connectedAt"`
	RequestTimeEpoch  int64         `json:"requestTimeEpoch"`
	Identity          eventIdentity `json:"identity"`
	RequestID         string        `json:"requestId"`
	DomainName        string        `json:"domainName"`
	ConnectionID      string        `json:"connectionId"`
	APIID             string        `json:"apiId"`
}

type eventIdentity struct {
	SourceIP string `json:"sourceIp"`
}

func (a *Authorizer) event(req *auth.ConnectRequest) *event {
	ev := &event{
		Type:           "REQUEST",
		MethodArn:      a.MethodARN(req),
		StageVariables: map[string]string{},
		RequestContext: eventContext{
			RouteKey:          apigw.RouteConnect,
			EventType:         apigw.EventConnect,
			ExtendedRequestID: req.RequestID,
			RequestTime:       apigw.RequestTime(req.Time),
			MessageDirection:  "IN",
			Stage:             req.Stage,
			ConnectedAt:       req.Time.UnixMilli(),
			RequestTimeEpoch:  req.Time.UnixMilli(),
			Identity:          eventIdentity{SourceIP: req.SourceIP},
			RequestID:         req.RequestID,
			DomainName:        req.DomainName,
			ConnectionID:      req.ConnID,
			APIID:             req.APIID,
		},
	}
	ev.Headers, ev.MultiValueHeaders = apigw.Headers(req.Header)
	if ev.Headers == nil { // the authorizer always gets the maps
		ev.Headers, ev.MultiValueHeaders = map[string]string{}, map[string][]string{}
	}
	ev.QueryStringParameters, ev.MultiValueQueryStringParameters = apigw.Query(req.Query)
	return ev
}

// unauthorized reports whether err's chain holds ErrUnauthorized or an error
// whose message is exactly "Unauthorized".
func unauthorized(err error) bool {
	return errors.Is(err, ErrUnauthorized) || hasMessage(err, "Unauthorized")
}

// hasMessage walks err's chain, both single and multiple wraps, for an
// error whose own message is msg.
func hasMessage(err error, msg string) bool {
	if err == nil {
		return false
	}
	if err.Error() == msg {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return hasMessage(u.Unwrap(), msg)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if hasMessage(e, msg) {
				return true
			}
		}
	}
	return false
}

// result is a parsed authorizer answer: an Allow with its principal and
// context, or a Deny.
type result struct {
	allow     bool
	principal string
	context   map[string]any
}

// identity returns the verdict; each call gets its own context map.
func (r *result) identity() (*auth.Identity, error) {
	if !r.allow {
		return nil, auth.Forbidden("Forbidden")
	}
	c := make(map[string]any, len(r.context)+1)
	maps.Copy(c, r.context)
	c["principalId"] = r.principal
	return &auth.Identity{Principal: r.principal, Context: c}, nil
}

// output is an authorizer's result, plus the members of a function error
// payload.
type output struct {
	PrincipalID    json.RawMessage            `json:"principalId"`
	PolicyDocument *policyDocument            `json:"policyDocument"`
	Context        map[string]json.RawMessage `json:"context"`
	ErrorMessage   *string                    `json:"errorMessage"`
}

func badOutput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadOutput}, args...)...)
}

// parseResult reads the function's result and evaluates its policy for
// methodARN.
func parseResult(data []byte, methodARN string) (*result, error) {
	if len(data) > MaxOutputBytes {
		return nil, badOutput("%d bytes, over %d", len(data), MaxOutputBytes)
	}
	var out output
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, badOutput("%v", err)
	}
	if out.ErrorMessage != nil && out.PolicyDocument == nil {
		if *out.ErrorMessage == "Unauthorized" {
			return nil, auth.Unauthorized("Unauthorized")
		}
		return nil, fmt.Errorf("%w: function error: %s", ErrInvoke, *out.ErrorMessage)
	}
	var principal string
	if err := json.Unmarshal(out.PrincipalID, &principal); err != nil || principal == "" {
		return nil, badOutput("principalId must be a non-empty string")
	}
	if out.PolicyDocument == nil {
		return nil, badOutput("no policyDocument")
	}
	res := &result{principal: principal, context: make(map[string]any, len(out.Context))}
	for k, raw := range out.Context {
		v, err := contextValue(raw)
		if err != nil {
			return nil, badOutput("context[%q]: %v", k, err)
		}
		res.context[k] = v
	}
	allow, err := out.PolicyDocument.allows("execute-api:Invoke", methodARN)
	if err != nil {
		return nil, badOutput("policyDocument: %v", err)
	}
	res.allow = allow
	return res, nil
}

// contextValue decodes a context value, which must be a string, a number
// (kept as json.Number so it encodes back unchanged) or a boolean.
func contextValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch v.(type) {
	case string, json.Number, bool:
		return v, nil
	}
	return nil, fmt.Errorf("a %s, want a string, number or boolean", jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}
