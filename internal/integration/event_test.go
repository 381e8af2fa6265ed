package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/integration"
)

// The times of the test events: connectedAt in UTC, the request time in
// another zone, which requestTime must still render as +0000.
var (
	testConnectedAt = time.Date(2024, time.January, 20, 11, 54, 57, 419e6, time.UTC)
	testRequestTime = time.Date(2024, time.January, 20, 20, 55, 0, 453e6, time.FixedZone("JST", 9*60*60))
)

const (
	testConnID     = "R1kmxc2VNjMCFIA="
	testRequestID  = "R1knPH17NjMFftw="
	testMessageID  = "R1knPc2ntjMCFIA="
	testDomainName = "dl7ptocha9.execute-api.ap-northeast-1.amazonaws.com"
	testUserAgent  = "Mozilla/5.0 (X11; Linux x86_64)"
)

// newConn returns the connection every test event belongs to; authorizer is
// its requestContext.authorizer (nil: no authorizer ran).
func newConn(query url.Values, authorizer map[string]any) *integration.Conn {
	return &integration.Conn{
		ID:          testConnID,
		ConnectedAt: testConnectedAt,
		SourceIP:    "49.105.91.154",
		UserAgent:   testUserAgent,
		Header: http.Header{
			"Host":                  {testDomainName},
			"Sec-WebSocket-Key":     {"mNRIjuK+dWTWDS8VCYeuyg=="},
			"Sec-WebSocket-Version": {"13"},
			"X-Forwarded-For":       {"49.105.91.154"},
			"X-Multi":               {"first", "second"},
		},
		Query:      query,
		Stage:      "prod",
		DomainName: testDomainName,
		APIID:      "dl7ptocha9",
		Authorizer: authorizer,
	}
}

// wantContext is the requestContext AWS sends for an event of the test connection.
func wantContext(routeKey, eventType string) events.APIGatewayWebsocketProxyRequestContext {
	return events.APIGatewayWebsocketProxyRequestContext{
		Stage:     "prod",
		RequestID: testRequestID,
		Identity: events.APIGatewayRequestIdentity{
			SourceIP:  "49.105.91.154",
			UserAgent: testUserAgent,
		},
		APIID:             "dl7ptocha9",
		ConnectedAt:       1705751697419,
		ConnectionID:      testConnID,
		DomainName:        testDomainName,
		EventType:         eventType,
		ExtendedRequestID: testRequestID,
		MessageDirection:  "IN",
		RequestTime:       "20/Jan/2024:11:55:00 +0000",
		RequestTimeEpoch:  1705751700453,
		RouteKey:          routeKey,
	}
}

func TestMarshalEvent(t *testing.T) {
	t.Parallel()

	wantHeaders := map[string]string{
		"Host":                  testDomainName,
		"Sec-WebSocket-Key":     "mNRIjuK+dWTWDS8VCYeuyg==",
		"Sec-WebSocket-Version": "13",
		"X-Forwarded-For":       "49.105.91.154",
		"X-Multi":               "second",
	}
	wantMultiHeaders := map[string][]string{
		"Host":                  {testDomainName},
		"Sec-WebSocket-Key":     {"mNRIjuK+dWTWDS8VCYeuyg=="},
		"Sec-WebSocket-Version": {"13"},
		"X-Forwarded-For":       {"49.105.91.154"},
		"X-Multi":               {"first", "second"},
	}
	query := url.Values{"token": {"abc"}, "tag": {"x", "y"}}
	authorizer := map[string]any{"principalId": "user-1", "tenant": "acme", "level": 3}
	wantAuthorizer := map[string]any{"principalId": "user-1", "tenant": "acme", "level": float64(3)}
	binary := []byte{0x00, 0xff, 0x10, 'h', 'i'}
	text := "{\r\n\t\"a\": 1, \"html\": \"<b>&amp;</b>\", \"emoji\": \"\u00e9\u2603\"\r\n}"

	with := func(ctx events.APIGatewayWebsocketProxyRequestContext, f func(*events.APIGatewayWebsocketProxyRequestContext)) events.APIGatewayWebsocketProxyRequestContext {
		f(&ctx)
		return ctx
	}
	reason := func(s string) *string { return &s }
	disconnectHeaders := map[string]string{"Host": testDomainName, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
	disconnectMultiHeaders := map[string][]string{"Host": {testDomainName}, "x-api-key": {""}, "X-Forwarded-For": {""}, "x-restapi": {""}}

	tests := []struct {
		name    string
		req     *integration.Request
		want    events.APIGatewayWebsocketProxyRequest
		present []string // JSON paths that must be there even when their value is a zero value
		absent  []string // JSON paths that must not be there at all
	}{
		{
			name: "connect with query",
			req: &integration.Request{
				RouteKey: "$connect", EventType: apigw.EventConnect, RequestID: testRequestID,
				Time: testRequestTime, Conn: newConn(query, nil),
			},
			want: events.APIGatewayWebsocketProxyRequest{
				Headers:                         wantHeaders,
				MultiValueHeaders:               wantMultiHeaders,
				QueryStringParameters:           map[string]string{"token": "abc", "tag": "y"},
				MultiValueQueryStringParameters: map[string][]string{"token": {"abc"}, "tag": {"x", "y"}},
				RequestContext:                  wantContext("$connect", apigw.EventConnect),
			},
			present: []string{"isBase64Encoded"},
			absent: []string{
				"body", "requestContext.messageId", "requestContext.authorizer",
				"requestContext.disconnectStatusCode", "requestContext.disconnectReason",
			},
		},
		{
			name: "connect without query",
			req: &integration.Request{
				RouteKey: "$connect", EventType: apigw.EventConnect, RequestID: testRequestID,
				Time: testRequestTime, Conn: newConn(nil, nil),
			},
			want: events.APIGatewayWebsocketProxyRequest{
				Headers:           wantHeaders,
				MultiValueHeaders: wantMultiHeaders,
				RequestContext:    wantContext("$connect", apigw.EventConnect),
			},
			present: []string{"isBase64Encoded"},
			absent:  []string{"queryStringParameters", "multiValueQueryStringParameters", "body", "requestContext.messageId"},
		},
		{
			name: "connect with empty query",
			req: &integration.Request{
				RouteKey: "$connect", EventType: apigw.EventConnect, RequestID: testRequestID,
				Time: testRequestTime, Conn: newConn(url.Values{}, nil),
			},
			want: events.APIGatewayWebsocketProxyRequest{
				Headers:           wantHeaders,
				MultiValueHeaders: wantMultiHeaders,
				RequestContext:    wantContext("$connect", apigw.EventConnect),
			},
			absent: []string{"queryStringParameters", "multiValueQueryStringParameters"},
		},
		{
			name: "connect with authorizer",
			req: &integration.Request{
				RouteKey: "$connect", EventType: apigw.EventConnect, RequestID: testRequestID,
				Time: testRequestTime, Conn: newConn(nil, authorizer),
			},
			want: events.APIGatewayWebsocketProxyRequest{
				Headers:           wantHeaders,
				MultiValueHeaders: wantMultiHeaders,
				RequestContext: with(wantContext("$connect", apigw.EventConnect), func(c *events.APIGatewayWebsocketProxyRequestContext) {
					c.Authorizer = wantAuthorizer
				}),
			},
			present: []string{"requestContext.authorizer"},
		},
		{
			name: "message text",
			req: &integration.Request{
				RouteKey: "sendmessage", EventType: apigw.EventMessage, RequestID: testRequestID,
				MessageID: testMessageID, Time: testRequestTime, Conn: newConn(query, nil),
				Body: []byte(text),
			},
			want: events.APIGatewayWebsocketProxyRequest{
				RequestContext: with(wantContext("sendmessage", apigw.EventMessage), func(c *events.APIGatewayWebsocketProxyRequestContext) {
					c.MessageID = testMessageID
				}),
				Body: text,
			},
			present: []string{"isBase64Encoded", "requestContext.messageId"},
			absent: []string{
				"headers", "multiValueHeaders", "queryStringParameters", "multiValueQueryStringParameters",
				"requestContext.authorizer", "requestContext.disconnectStatusCode", "requestContext.disconnectReason",
			},
		},
		{
			name: "message binary",
			req: &integration.Request{
				RouteKey: "$default", EventType: apigw.EventMessage, RequestID: testRequestID,
				MessageID: testMessageID, Time: testRequestTime, Conn: newConn(nil, nil),
				Body: binary, Binary: true,
			},
			want: events.APIGatewayWebsocketProxyRequest{
				RequestContext: with(wantContext("$default", apigw.EventMessage), func(c *events.APIGatewayWebsocketProxyRequestContext) {
					c.MessageID = testMessageID
				}),
				Body:            base64.StdEncoding.EncodeToString(binary),
				IsBase64Encoded: true,
			},
			absent: []string{"headers", "multiValueHeaders"},
		},
		{
			name: "message empty",
			req: &integration.Request{
				RouteKey: "$default", EventType: apigw.EventMessage, RequestID: testRequestID,
				MessageID: testMessageID, Time: testRequestTime, Conn: newConn(nil, nil),
			},
			want: events.APIGatewayWebsocketProxyRequest{
				RequestContext: with(wantContext("$default", apigw.EventMessage), func(c *events.APIGatewayWebsocketProxyRequestContext) {
					c.MessageID = testMessageID
				}),
			},
			present: []string{"body"},
		},
		{
			name: "message replays authorizer",
			req: &integration.Request{
				RouteKey: "$default", EventType: apigw.EventMessage, RequestID: testRequestID,
				MessageID: testMessageID, Time: testRequestTime, Conn: newConn(nil, authorizer),
				Body: []byte("hi"),
			},
			want: events.APIGatewayWebsocketProxyRequest{
				RequestContext: with(wantContext("$default", apigw.EventMessage), func(c *events.APIGatewayWebsocketProxyRequestContext) {
					c.MessageID = testMessageID
					c.Authorizer = wantAuthorizer
				}),
				Body: "hi",
			},
		},
		{
			name: "disconnect",
			req: &integration.Request{
				RouteKey: "$disconnect", EventType: apigw.EventDisconnect, RequestID: testRequestID,
				Time: testRequestTime, Conn: newConn(query, nil),
				DisconnectStatusCode: 1000, DisconnectReason: "Connection Closed Normally",
			},
			want: events.APIGatewayWebsocketProxyRequest{
				Headers:           disconnectHeaders,
				MultiValueHeaders: disconnectMultiHeaders,
				RequestContext: with(wantContext("$disconnect", apigw.EventDisconnect), func(c *events.APIGatewayWebsocketProxyRequestContext) {
					c.DisconnectStatusCode = 1000
					c.DisconnectReason = reason("Connection Closed Normally")
				}),
			},
			present: []string{"isBase64Encoded"},
			absent: []string{
				"body", "queryStringParameters", "multiValueQueryStringParameters",
				"requestContext.messageId", "requestContext.authorizer",
			},
		},
		{
			name: "disconnect with empty reason",
			req: &integration.Request{
				RouteKey: "$disconnect", EventType: apigw.EventDisconnect, RequestID: testRequestID,
				Time: testRequestTime, Conn: newConn(nil, authorizer),
				DisconnectStatusCode: 1001,
			},
			want: events.APIGatewayWebsocketProxyRequest{
				Headers:           disconnectHeaders,
				MultiValueHeaders: disconnectMultiHeaders,
				RequestContext: with(wantContext("$disconnect", apigw.EventDisconnect), func(c *events.APIGatewayWebsocketProxyRequestContext) {
					c.DisconnectStatusCode = 1001
					c.DisconnectReason = reason("")
					c.Authorizer = wantAuthorizer
				}),
			},
			present: []string{"requestContext.disconnectReason", "requestContext.disconnectStatusCode"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := integration.MarshalEvent(tt.req)
			if err != nil {
				t.Fatalf("MarshalEvent: %v", err)
			}
			var got events.APIGatewayWebsocketProxyRequest
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("decode as APIGatewayWebsocketProxyRequest: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("MarshalEvent decoded =\n%+v\nwant\n%+v\nJSON: %s", got, tt.want, data)
			}
			var raw map[string]any
			if err := json.Unmarshal(data, &raw); err != nil {
				t.Fatalf("decode as map: %v", err)
			}
			for _, p := range tt.present {
				if _, ok := lookup(raw, p); !ok {
					t.Errorf("MarshalEvent: %s is missing in %s", p, data)
				}
			}
			for _, p := range tt.absent {
				if v, ok := lookup(raw, p); ok {
					t.Errorf("MarshalEvent: %s = %#v, want it absent", p, v)
				}
			}
		})
	}
}

// lookup finds a dotted path such as "requestContext.messageId" in decoded JSON.
func lookup(m map[string]any, path string) (any, bool) {
	var v any = m
	for _, key := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// TestNewEventIsolated checks that the event does not share the connection's
// header and query slices: an integration that edits the event must not
// change what later events of the connection carry.
func TestNewEventIsolated(t *testing.T) {
	t.Parallel()
	conn := newConn(url.Values{"tag": {"x", "y"}}, nil)
	ev := integration.NewEvent(&integration.Request{
		RouteKey: "$connect", EventType: apigw.EventConnect, RequestID: testRequestID,
		Time: testRequestTime, Conn: conn,
	})
	ev.MultiValueHeaders["X-Multi"][0] = "changed"
	ev.MultiValueQueryStringParameters["tag"][0] = "changed"
	if got := conn.Header["X-Multi"][0]; got != "first" {
		t.Errorf("Conn.Header[X-Multi][0] = %q after editing the event, want %q", got, "first")
	}
	if got := conn.Query["tag"][0]; got != "x" {
		t.Errorf("Conn.Query[tag][0] = %q after editing the event, want %q", got, "x")
	}
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    *integration.Response
		wantErr error
	}{
		{
			name: "proxy with string body",
			in:   `{"statusCode":200,"headers":{"Content-Type":"text/plain"},"body":"hello"}`,
			want: &integration.Response{StatusCode: 200, Headers: map[string]string{"Content-Type": "text/plain"}, Body: []byte("hello")},
		},
		{
			name: "proxy with escaped string body",
			in:   `{"statusCode":200,"body":"{\"a\":\"\u00e9\"}\n"}`,
			want: &integration.Response{StatusCode: 200, Body: []byte("{\"a\":\"\u00e9\"}\n")},
		},
		{
			name: "statusCode as string",
			in:   `{"statusCode":"201","body":"created"}`,
			want: &integration.Response{StatusCode: 201, Body: []byte("created")},
		},
		{
			name: "non-2xx status",
			in:   `{"statusCode":401}`,
			want: &integration.Response{StatusCode: 401},
		},
		{
			name: "lowest status",
			in:   `{"statusCode":200}`,
			want: &integration.Response{StatusCode: 200},
		},
		{
			name: "highest status",
			in:   `{"statusCode":599}`,
			want: &integration.Response{StatusCode: 599},
		},
		{
			name: "base64 body",
			in:   `{"statusCode":200,"body":"AP8QaGk=","isBase64Encoded":true}`,
			want: &integration.Response{StatusCode: 200, Body: []byte{0x00, 0xff, 0x10, 'h', 'i'}, Binary: true},
		},
		{
			name: "base64 flag false keeps the text",
			in:   `{"statusCode":200,"body":"AP8QaGk=","isBase64Encoded":false}`,
			want: &integration.Response{StatusCode: 200, Body: []byte("AP8QaGk=")},
		},
		{
			name: "multiValueHeaders fill missing headers with the last value",
			in: `{"statusCode":200,"headers":{"A":"single"},` +
				`"multiValueHeaders":{"A":["multi"],"Sec-WebSocket-Protocol":["chat","chat.v2"],"Empty":[]}}`,
			want: &integration.Response{StatusCode: 200, Headers: map[string]string{
				"A": "single", "Sec-WebSocket-Protocol": "chat.v2",
			}},
		},
		{
			name: "multiValueHeaders alone",
			in:   `{"statusCode":200,"multiValueHeaders":{"X-Id":["1"]}}`,
			want: &integration.Response{StatusCode: 200, Headers: map[string]string{"X-Id": "1"}},
		},
		{
			name: "body as an object",
			in:   `{"statusCode":200,"body":{"a":[1,2]}}`,
			want: &integration.Response{StatusCode: 200, Body: []byte(`{"a":[1,2]}`)},
		},
		{
			name: "body as a number",
			in:   `{"statusCode":200,"body":42}`,
			want: &integration.Response{StatusCode: 200, Body: []byte("42")},
		},
		{
			name: "body null",
			in:   `{"statusCode":204,"body":null}`,
			want: &integration.Response{StatusCode: 204},
		},
		{
			name: "plain string output",
			in:   `"hello \"world\""`,
			want: &integration.Response{StatusCode: 200, Body: []byte(`hello "world"`)},
		},
		{
			name: "number output",
			in:   `42`,
			want: &integration.Response{StatusCode: 200, Body: []byte("42")},
		},
		{
			name: "array output",
			in:   `[1,"two"]`,
			want: &integration.Response{StatusCode: 200, Body: []byte(`[1,"two"]`)},
		},
		{
			name: "object without statusCode is the body",
			in:   `{"message":"hi","body":"not this"}`,
			want: &integration.Response{StatusCode: 200, Body: []byte(`{"message":"hi","body":"not this"}`)},
		},
		{
			name: "text that is not JSON",
			in:   `hello world`,
			want: &integration.Response{StatusCode: 200, Body: []byte("hello world")},
		},
		{
			name: "surrounding space is ignored",
			in:   " \n{\"statusCode\":200,\"body\":\"ok\"}\n",
			want: &integration.Response{StatusCode: 200, Body: []byte("ok")},
		},
		{name: "null", in: `null`, want: &integration.Response{StatusCode: 200}},
		{name: "empty", in: ``, want: &integration.Response{StatusCode: 200}},
		{name: "only space", in: " \n\t", want: &integration.Response{StatusCode: 200}},
		{name: "truncated proxy object", in: `{"statusCode":200,`, wantErr: integration.ErrBadResponse},
		{name: "truncated object", in: `{"message":`, wantErr: integration.ErrBadResponse},
		{name: "unterminated string", in: `"hello`, wantErr: integration.ErrBadResponse},
		{name: "statusCode 700", in: `{"statusCode":700}`, wantErr: integration.ErrBadResponse},
		{name: "statusCode 99", in: `{"statusCode":99}`, wantErr: integration.ErrBadResponse},
		{name: "statusCode 100 is not final", in: `{"statusCode":100}`, wantErr: integration.ErrBadResponse},
		{name: "statusCode 101 is not final", in: `{"statusCode":101}`, wantErr: integration.ErrBadResponse},
		{name: "statusCode 199 as a string", in: `{"statusCode":"199"}`, wantErr: integration.ErrBadResponse},
		{name: "statusCode 600", in: `{"statusCode":600}`, wantErr: integration.ErrBadResponse},
		{name: "statusCode not a number", in: `{"statusCode":"ok"}`, wantErr: integration.ErrBadResponse},
		{name: "statusCode null", in: `{"statusCode":null}`, wantErr: integration.ErrBadResponse},
		{name: "headers not strings", in: `{"statusCode":200,"headers":{"X-N":1}}`, wantErr: integration.ErrBadResponse},
		{name: "isBase64Encoded not a bool", in: `{"statusCode":200,"isBase64Encoded":"yes"}`, wantErr: integration.ErrBadResponse},
		{name: "body not base64", in: `{"statusCode":200,"body":"%%%","isBase64Encoded":true}`, wantErr: integration.ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := integration.ParseResponse([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseResponse(%q) = %+v, %v; want error %v", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseResponse(%q) = %+v (body %q), want %+v (body %q)", tt.in, got, got.Body, tt.want, tt.want.Body)
			}
		})
	}
}

// TestParseResponseOwnsBody checks that the body does not alias the input,
// which callers may reuse (a pooled read buffer).
func TestParseResponseOwnsBody(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`hello`, `[1,2]`, `{"statusCode":200,"body":{"a":1}}`} {
		data := []byte(in)
		resp, err := integration.ParseResponse(data)
		if err != nil {
			t.Fatalf("ParseResponse(%q): %v", in, err)
		}
		want := bytes.Clone(resp.Body)
		for i := range data {
			data[i] = 'X'
		}
		if !bytes.Equal(resp.Body, want) {
			t.Errorf("ParseResponse(%q).Body = %q after the input changed, want %q", in, resp.Body, want)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		``, `null`, `"text"`, `42`, `[1]`, `hello`, `{"message":"x"}`,
		`{"statusCode":200,"body":"hi"}`,
		`{"statusCode":"404","headers":{"A":"b"},"multiValueHeaders":{"C":["d","e"]}}`,
		`{"statusCode":200,"body":"aGk=","isBase64Encoded":true}`,
		`{"statusCode":200,"body":{"nested":[true,null]}}`,
		`{"statusCode":700}`, `{"statusCode":`, `"unterminated`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := integration.ParseResponse(data)
		if err != nil {
			if !errors.Is(err, integration.ErrBadResponse) {
				t.Fatalf("ParseResponse(%q) error %v does not wrap ErrBadResponse", data, err)
			}
			if resp != nil {
				t.Fatalf("ParseResponse(%q) = %+v with error %v, want nil", data, resp, err)
			}
			return
		}
		if resp == nil {
			t.Fatalf("ParseResponse(%q) = nil, nil", data)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 599 {
			t.Fatalf("ParseResponse(%q).StatusCode = %d, outside 200-599", data, resp.StatusCode)
		}
	})
}
