package lambdaauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"go.uber.org/goleak"

	"github.com/switchboard-gateway/switchboard/internal/auth"
)

// Timed-out invocations must leave nothing running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const methodARN = "arn:aws:execute-api:us-east-1:000000000000:abcdef123/prod/$connect"

// fn is a fake authorizer function: it records every event and answers
// with a fixed result or error.
type fn struct {
	out   []byte
	err   error
	calls atomic.Int64

	mu     sync.Mutex
	events [][]byte
}

func (f *fn) invoke(ctx context.Context, event []byte) ([]byte, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.events = append(f.events, event)
	f.mu.Unlock()
	return f.out, f.err
}

func (f *fn) lastEvent(t *testing.T) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.events) == 0 {
		t.Fatal("the function was never invoked")
	}
	return f.events[len(f.events)-1]
}

func connectReq() *auth.ConnectRequest {
	return &auth.ConnectRequest{
		ConnID:     "R1kmxc2VNjMCFIA=",
		SourceIP:   "203.0.113.7",
		UserAgent:  "wscat/6.1.0",
		Stage:      "prod",
		APIID:      "abcdef123",
		DomainName: "abcdef123.execute-api.us-east-1.amazonaws.com",
		RequestID:  "WyHPAHbQBcwFWMw=",
		Header: http.Header{
			"Host":                  {"abcdef123.execute-api.us-east-1.amazonaws.com"},
			"Auth":                  {"secret-token"},
			"Sec-Websocket-Version": {"13"},
			"X-Multi":               {"first", "second"},
		},
		Query: url.Values{"token": {"q1"}, "room": {"a", "b"}},
		Time:  time.Date(2024, 1, 20, 11, 55, 0, 453e6, time.UTC),
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// allowOutput is what an aws-lambda-go authorizer returns.
func policyOutput(effect string, resources ...string) []byte {
	return mustJSON(events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: "user-42",
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version:   "2012-10-17",
			Statement: []events.IAMPolicyStatement{{Action: []string{"execute-api:Invoke"}, Effect: effect, Resource: resources}},
		},
		Context: map[string]any{"tenant": "acme", "level": 3, "admin": true},
	})
}

func newAuthorizer(t *testing.T, opts Options) *Authorizer {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func keys[M ~map[string]V, V any](m M) []string { return slices.Sorted(maps.Keys(m)) }

func TestEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      Options
		query     url.Values
		wantARN   string
		wantQuery bool
	}{
		{"defaults, with a query", Options{}, url.Values{"token": {"q1"}, "room": {"a", "b"}}, methodARN, true},
		{"no query", Options{}, nil, methodARN, false},
		{"empty query", Options{}, url.Values{}, methodARN, false},
		{"region and account", Options{Region: "eu-west-1", AccountID: "123456789012"}, nil,
			"arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/$connect", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fn{out: policyOutput("Allow", tt.wantARN)}
			tt.opts.Invoke = f.invoke
			a := newAuthorizer(t, tt.opts)
			req := connectReq()
			req.Query = tt.query
			if _, err := a.Authorize(context.Background(), req); err != nil {
				t.Fatalf("Authorize = %v", err)
			}
			raw := f.lastEvent(t)

			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("event is not JSON: %v", err)
			}
			wantTop := []string{"headers", "methodArn", "multiValueHeaders", "requestContext", "stageVariables", "type"}
			if tt.wantQuery {
				wantTop = []string{"headers", "methodArn", "multiValueHeaders", "multiValueQueryStringParameters",
					"queryStringParameters", "requestContext", "stageVariables", "type"}
			}
			if got := keys(m); !slices.Equal(got, wantTop) {
				t.Errorf("event keys = %q, want %q", got, wantTop)
			}
			rc, _ := m["requestContext"].(map[string]any)
			wantRC := []string{"apiId", "connectedAt", "connectionId", "domainName", "eventType", "extendedRequestId",
				"identity", "messageDirection", "requestId", "requestTime", "requestTimeEpoch", "routeKey", "stage"}
			if got := keys(rc); !slices.Equal(got, wantRC) {
				t.Errorf("requestContext keys = %q, want %q", got, wantRC)
			}
			if id, _ := rc["identity"].(map[string]any); !slices.Equal(keys(id), []string{"sourceIp"}) || id["sourceIp"] != "203.0.113.7" {
				t.Errorf("requestContext.identity = %v, want {sourceIp: 203.0.113.7}", rc["identity"])
			}
			if sv, ok := m["stageVariables"].(map[string]any); !ok || len(sv) != 0 {
				t.Errorf("stageVariables = %#v, want {}", m["stageVariables"])
			}

			var ev events.APIGatewayCustomAuthorizerRequestTypeRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatalf("decode as APIGatewayCustomAuthorizerRequestTypeRequest: %v", err)
			}
			if ev.Type != "REQUEST" || ev.MethodArn != tt.wantARN {
				t.Errorf("type %q, methodArn %q; want REQUEST, %q", ev.Type, ev.MethodArn, tt.wantARN)
			}
			if ev.Headers["Auth"] != "secret-token" || ev.Headers["X-Multi"] != "second" ||
				!slices.Equal(ev.MultiValueHeaders["X-Multi"], []string{"first", "second"}) {
				t.Errorf("headers %v, multiValueHeaders %v", ev.Headers, ev.MultiValueHeaders)
			}
			if tt.wantQuery && (ev.QueryStringParameters["room"] != "b" || !slices.Equal(ev.MultiValueQueryStringParameters["room"], []string{"a", "b"})) {
				t.Errorf("queryStringParameters %v, multiValueQueryStringParameters %v", ev.QueryStringParameters, ev.MultiValueQueryStringParameters)
			}
			if ev.RequestContext.Stage != "prod" || ev.RequestContext.APIID != "abcdef123" || ev.RequestContext.RequestID != "WyHPAHbQBcwFWMw=" ||
				ev.RequestContext.Identity.SourceIP != "203.0.113.7" {
				t.Errorf("requestContext = %+v", ev.RequestContext)
			}

			// The same requestContext read the way a WebSocket handler reads it.
			var ws events.APIGatewayWebsocketProxyRequest
			if err := json.Unmarshal(raw, &ws); err != nil {
				t.Fatalf("decode as APIGatewayWebsocketProxyRequest: %v", err)
			}
			c := ws.RequestContext
			want := events.APIGatewayWebsocketProxyRequestContext{
				RouteKey: "$connect", EventType: "CONNECT", ConnectionID: "R1kmxc2VNjMCFIA=", MessageDirection: "IN",
				ExtendedRequestID: "WyHPAHbQBcwFWMw=", RequestID: "WyHPAHbQBcwFWMw=", RequestTime: "20/Jan/2024:11:55:00 +0000",
				ConnectedAt: 1705751700453, RequestTimeEpoch: 1705751700453, Stage: "prod", APIID: "abcdef123",
				DomainName: "abcdef123.execute-api.us-east-1.amazonaws.com",
				Identity:   events.APIGatewayRequestIdentity{SourceIP: "203.0.113.7"},
			}
			if fmt.Sprintf("%+v", c) != fmt.Sprintf("%+v", want) {
				t.Errorf("requestContext =\n%+v\nwant\n%+v", c, want)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	allowCtx := map[string]any{"principalId": "user-42", "tenant": "acme", "level": json.Number("3"), "admin": true}
	raw := func(s string) []byte { return []byte(s) }
	stmt := func(s string) []byte {
		return raw(`{"principalId":"p","policyDocument":{"Version":"2012-10-17","Statement":` + s + `}}`)
	}
	big := `{"principalId":"p","context":{"pad":"` + strings.Repeat("x", MaxOutputBytes) + `"},` +
		`"policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}}`
	atLimit := `{"principalId":"p","policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}}`
	atLimit += strings.Repeat(" ", MaxOutputBytes-len(atLimit))

	tests := []struct {
		name        string
		out         []byte
		wantStatus  int
		wantContext map[string]any // checked when 200
		wantErr     error          // checked when 500
	}{
		{"allow the method ARN", policyOutput("Allow", methodARN), 200, allowCtx, nil},
		{"allow star", policyOutput("Allow", "*"), 200, allowCtx, nil},
		{"allow any account and stage", policyOutput("Allow", "arn:aws:execute-api:us-east-1:*:abcdef123/*"), 200, allowCtx, nil},
		{"allow with ?", policyOutput("Allow", "arn:aws:execute-api:us-east-1:000000000000:abcdef123/pro?/$connec?"), 200, allowCtx, nil},
		{"allow among several resources", policyOutput("Allow", "arn:aws:execute-api:us-east-1:000000000000:other/*", methodARN), 200, allowCtx, nil},
		{"single statement, strings, lower-case effect", stmt(`{"Effect":"allow","Action":"execute-api:Invoke","Resource":"` + methodARN + `"}`), 200,
			map[string]any{"principalId": "p"}, nil},
		{"action wildcard, any case", stmt(`[{"Effect":"Allow","Action":"EXECUTE-API:*","Resource":["*"]}]`), 200, nil, nil},
		{"allow beside a deny elsewhere", stmt(`[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"arn:aws:execute-api:*:*:abcdef123/dev/*"}]`), 200, nil, nil},
		{"NotResource allow", stmt(`[{"Effect":"Allow","Action":"*","NotResource":"arn:aws:execute-api:*:*:abcdef123/dev/*"}]`), 200, nil, nil},
		{"context keeps its types, principalId wins", raw(`{"principalId":"p","context":{"s":"v","n":1.50,"b":false,"principalId":"spoof"},` +
			`"policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}}`), 200,
			map[string]any{"principalId": "p", "s": "v", "n": json.Number("1.50"), "b": false}, nil},
		{"output of exactly 8 KB", raw(atLimit), 200, nil, nil},

		{"deny the method ARN", policyOutput("Deny", methodARN), 403, nil, nil},
		{"deny wins over allow", stmt(`[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"DENY","Action":"execute-api:Invoke","Resource":"*"}]`), 403, nil, nil},
		{"allow another stage", policyOutput("Allow", "arn:aws:execute-api:us-east-1:000000000000:abcdef123/dev/$connect"), 403, nil, nil},
		{"REST-style resource does not cover $connect", policyOutput("Allow", "arn:aws:execute-api:us-east-1:000000000000:abcdef123/prod/*/*"), 403, nil, nil},
		{"allow another account", policyOutput("Allow", "arn:aws:execute-api:us-east-1:111111111111:abcdef123/prod/$connect"), 403, nil, nil},
		{"allow another action", stmt(`[{"Effect":"Allow","Action":"execute-api:ManageConnections","Resource":"*"}]`), 403, nil, nil},
		{"NotAction excludes Invoke", stmt(`[{"Effect":"Allow","NotAction":"execute-api:Invoke","Resource":"*"}]`), 403, nil, nil},
		{"NotResource deny", stmt(`[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","NotResource":"arn:aws:execute-api:*:*:abcdef123/dev/*"}]`), 403, nil, nil},
		{"conditional allow is not trusted", stmt(`[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]`), 403, nil, nil},
		{"conditional deny is honoured", stmt(`[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"x":"true"}}}]`), 403, nil, nil},
		{"no statements", stmt(`[]`), 403, nil, nil},

		{"function error Unauthorized", raw(`{"errorMessage":"Unauthorized","errorType":"Error","stackTrace":[]}`), 401, nil, nil},
		{"function error other", raw(`{"errorMessage":"boom","errorType":"Error"}`), 500, nil, ErrInvoke},
		{"not JSON", raw(`<html>`), 500, nil, ErrBadOutput},
		{"a JSON string", raw(`"Allow"`), 500, nil, ErrBadOutput},
		{"null", raw(`null`), 500, nil, ErrBadOutput},
		{"proxy response instead", raw(`{"statusCode":401}`), 500, nil, ErrBadOutput},
		{"no principalId", raw(`{"policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}}`), 500, nil, ErrBadOutput},
		{"empty principalId", raw(`{"principalId":"","policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}}`), 500, nil, ErrBadOutput},
		{"numeric principalId", raw(`{"principalId":7,"policyDocument":{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}}`), 500, nil, ErrBadOutput},
		{"no policyDocument", raw(`{"principalId":"p"}`), 500, nil, ErrBadOutput},
		{"unknown effect", stmt(`[{"Effect":"Maybe","Action":"*","Resource":"*"}]`), 500, nil, ErrBadOutput},
		{"numeric resource", stmt(`[{"Effect":"Allow","Action":"*","Resource":7}]`), 500, nil, ErrBadOutput},
		{"null resource", stmt(`[{"Effect":"Allow","Action":"*","NotResource":null}]`), 500, nil, ErrBadOutput},
		{"no resource", stmt(`[{"Effect":"Allow","Action":"*"}]`), 500, nil, ErrBadOutput},
		{"Action and NotAction", stmt(`[{"Effect":"Allow","Action":"*","NotAction":"x","Resource":"*"}]`), 500, nil, ErrBadOutput},
		{"statement is a string", stmt(`"Allow"`), 500, nil, ErrBadOutput},
		{"context object", raw(`{"principalId":"p","context":{"o":{"a":1}},"policyDocument":{"Statement":[]}}`), 500, nil, ErrBadOutput},
		{"context array", raw(`{"principalId":"p","context":{"a":[1]},"policyDocument":{"Statement":[]}}`), 500, nil, ErrBadOutput},
		{"context null", raw(`{"principalId":"p","context":{"n":null},"policyDocument":{"Statement":[]}}`), 500, nil, ErrBadOutput},
		{"over 8 KB", raw(big), 500, nil, ErrBadOutput},
		{"one byte over 8 KB", raw(atLimit + " "), 500, nil, ErrBadOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fn{out: tt.out}
			a := newAuthorizer(t, Options{Invoke: f.invoke})
			id, err := a.Authorize(context.Background(), connectReq())
			if got := auth.Status(err); got != tt.wantStatus {
				t.Fatalf("Authorize: status %d (%v), want %d", got, err, tt.wantStatus)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Authorize: %v, want %v", err, tt.wantErr)
			}
			if tt.wantStatus == 200 {
				if id.Principal != id.Context["principalId"] {
					t.Errorf("Principal %q, principalId %v: want them equal", id.Principal, id.Context["principalId"])
				}
				if tt.wantContext != nil && !maps.Equal(id.Context, tt.wantContext) {
					t.Errorf("Context = %#v, want %#v", id.Context, tt.wantContext)
				}
			}
		})
	}
}

func TestInvokeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		wantStatus int
	}{
		{"message Unauthorized", errors.New("Unauthorized"), 401},
		{"wrapped sentinel", fmt.Errorf("invoke authorizer: %w", ErrUnauthorized), 401},
		{"wrapped message", fmt.Errorf("invoke: %w", errors.New("Unauthorized")), 401},
		{"joined", errors.Join(errors.New("first"), errors.New("Unauthorized")), 401},
		{"other message", errors.New("unauthorized"), 500},
		{"function crashed", errors.New("function process crashed"), 500},
		{"deadline", context.DeadlineExceeded, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fn{err: tt.err}
			a := newAuthorizer(t, Options{Invoke: f.invoke})
			_, err := a.Authorize(context.Background(), connectReq())
			if got := auth.Status(err); got != tt.wantStatus {
				t.Errorf("Authorize: status %d (%v), want %d", got, err, tt.wantStatus)
			}
			if tt.wantStatus == 500 && !errors.Is(err, ErrInvoke) {
				t.Errorf("Authorize: %v, want ErrInvoke", err)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	a := newAuthorizer(t, Options{Timeout: 20 * time.Millisecond, Invoke: func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done() // a hung function
		return nil, ctx.Err()
	}})
	_, err := a.Authorize(context.Background(), connectReq())
	if auth.Status(err) != 500 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Authorize(hung function) = %v, want 500 with DeadlineExceeded", err)
	}
}

func TestIdentitySources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		sources    []string
		edit       func(r *auth.ConnectRequest)
		wantStatus int
	}{
		{"all present", []string{"route.request.header.Auth", "route.request.querystring.token"}, nil, 200},
		{"header name in any case", []string{"route.request.header.AUTH"}, nil, 200},
		{"header under a raw key", []string{"route.request.header.x-raw"}, func(r *auth.ConnectRequest) { r.Header["x-raw"] = []string{"v"} }, 200},
		{"header missing", []string{"route.request.header.Authorization"}, nil, 401},
		{"header empty", []string{"route.request.header.Auth"}, func(r *auth.ConnectRequest) { r.Header.Set("Auth", "") }, 401},
		{"query missing", []string{"route.request.header.Auth", "route.request.querystring.missing"}, nil, 401},
		{"query name is case-sensitive", []string{"route.request.querystring.TOKEN"}, nil, 401},
		{"query empty", []string{"route.request.querystring.token"}, func(r *auth.ConnectRequest) { r.Query.Set("token", "") }, 401},
		{"no query at all", []string{"route.request.querystring.token"}, func(r *auth.ConnectRequest) { r.Query = nil }, 401},
		{"no headers at all", []string{"route.request.header.Auth"}, func(r *auth.ConnectRequest) { r.Header = nil }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fn{out: policyOutput("Allow", methodARN)}
			a := newAuthorizer(t, Options{Invoke: f.invoke, IdentitySources: tt.sources})
			req := connectReq()
			if tt.edit != nil {
				tt.edit(req)
			}
			_, err := a.Authorize(context.Background(), req)
			if got := auth.Status(err); got != tt.wantStatus {
				t.Fatalf("Authorize: status %d (%v), want %d", got, err, tt.wantStatus)
			}
			wantCalls := int64(1)
			if tt.wantStatus == 401 {
				wantCalls = 0
				var de *auth.DeniedError
				if !errors.As(err, &de) || de.Reason != "Unauthorized" {
					t.Errorf("Authorize: %v, want reason Unauthorized", err)
				}
			}
			if got := f.calls.Load(); got != wantCalls {
				t.Errorf("Invoke called %d times, want %d", got, wantCalls)
			}
		})
	}
}

// clock is a settable clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestCache(t *testing.T) {
	t.Parallel()
	withToken := func(tok string) *auth.ConnectRequest {
		r := connectReq()
		r.Header.Set("Auth", tok)
		return r
	}
	type step struct {
		req        *auth.ConnectRequest
		advance    time.Duration
		wantStatus int
		wantCalls  int64
	}
	otherStage := withToken("a")
	otherStage.Stage = "dev"
	tests := []struct {
		name      string
		out       []byte
		err       error
		ttl       time.Duration
		cacheSize int
		steps     []step
	}{
		{"allow reused within TTL, not after; keyed by identity", policyOutput("Allow", "*"), nil, time.Minute, 0, []step{
			{withToken("a"), 0, 200, 1},
			{withToken("a"), 59 * time.Second, 200, 1},
			{withToken("b"), 0, 200, 2},
			{withToken("a"), 2 * time.Second, 200, 3},
			{otherStage, 0, 200, 4},
		}},
		{"deny is cached too", policyOutput("Deny", "*"), nil, time.Minute, 0, []step{
			{withToken("a"), 0, 403, 1},
			{withToken("a"), 0, 403, 1},
		}},
		{"Unauthorized is not cached", nil, errors.New("Unauthorized"), time.Minute, 0, []step{
			{withToken("a"), 0, 401, 1},
			{withToken("a"), 0, 401, 2},
		}},
		{"failures are not cached", []byte(`nonsense`), nil, time.Minute, 0, []step{
			{withToken("a"), 0, 500, 1},
			{withToken("a"), 0, 500, 2},
		}},
		{"zero TTL disables the cache", policyOutput("Allow", "*"), nil, 0, 0, []step{
			{withToken("a"), 0, 200, 1},
			{withToken("a"), 0, 200, 2},
		}},
		{"bounded: the oldest is evicted", policyOutput("Allow", "*"), nil, time.Minute, 2, []step{
			{withToken("a"), 0, 200, 1},
			{withToken("b"), 0, 200, 2},
			{withToken("c"), 0, 200, 3},
			{withToken("c"), 0, 200, 3},
			{withToken("b"), 0, 200, 3},
			{withToken("a"), 0, 200, 4},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fn{out: tt.out, err: tt.err}
			c := &clock{}
			c.ns.Store(time.Now().UnixNano())
			a := newAuthorizer(t, Options{Invoke: f.invoke, IdentitySources: []string{"route.request.header.Auth"},
				TTL: tt.ttl, CacheSize: tt.cacheSize, now: c.now})
			for i, s := range tt.steps {
				c.advance(s.advance)
				_, err := a.Authorize(context.Background(), s.req)
				if got := auth.Status(err); got != s.wantStatus {
					t.Fatalf("step %d: status %d (%v), want %d", i, got, err, s.wantStatus)
				}
				if got := f.calls.Load(); got != s.wantCalls {
					t.Fatalf("step %d: Invoke called %d times, want %d", i, got, s.wantCalls)
				}
			}
			if a.cache != nil && tt.cacheSize > 0 && a.cache.len() > tt.cacheSize {
				t.Errorf("cache holds %d results, want at most %d", a.cache.len(), tt.cacheSize)
			}
		})
	}
}

func TestCachedContextIsPrivate(t *testing.T) {
	t.Parallel()
	f := &fn{out: policyOutput("Allow", "*")}
	a := newAuthorizer(t, Options{Invoke: f.invoke, IdentitySources: []string{"route.request.header.Auth"}, TTL: time.Hour})
	first, err := a.Authorize(context.Background(), connectReq())
	if err != nil {
		t.Fatal(err)
	}
	first.Context["tenant"] = "changed by a caller"
	second, err := a.Authorize(context.Background(), connectReq())
	if err != nil {
		t.Fatal(err)
	}
	if second.Context["tenant"] != "acme" || f.calls.Load() != 1 {
		t.Errorf("cached Context[tenant] = %v after %d calls, want acme after 1", second.Context["tenant"], f.calls.Load())
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	invoke := (&fn{}).invoke
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no Invoke", Options{}, "Invoke is required"},
		{"stage variable source", Options{Invoke: invoke, IdentitySources: []string{"stageVariables.x"}}, "identity source"},
		{"header without a name", Options{Invoke: invoke, IdentitySources: []string{"route.request.header."}}, "identity source"},
		{"TTL without sources", Options{Invoke: invoke, TTL: time.Minute}, "TTL needs IdentitySources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestWildcardMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{"a*", "abc/def", true},
		{"a*c", "abc/dc", true},
		{"a*c", "abcd", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*/*", "prod/$connect", true},
		{"prod/*/*", "prod/$connect", false},
		{"**a", "bba", true},
		{"a*b*c*d", "axxbxxcxxd", true},
		{"a*b*c*d", "axxbxxcxx", false},
	}
	for _, tt := range tests {
		t.Run(tt.p+" "+tt.s, func(t *testing.T) {
			t.Parallel()
			if got := wildcardMatch(tt.p, tt.s); got != tt.want {
				t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
			}
		})
	}
}
