package switchboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/integration"
)

// Handler runs a route: $connect when a client connects, $disconnect when
// it has gone, and the route its message selected otherwise. It is called
// concurrently for different connections, and one at a time, in order, for
// the messages of one connection. ctx ends after Options.IntegrationTimeout
// (unless the route is Inline) and when the gateway is closed.
//
// What it returns is the route's answer, as a Lambda function's would be:
//
//   - On $connect, a Response whose StatusCode is not 2xx refuses the
//     handshake with that status; a nil Response or a 2xx accepts it. Its
//     Headers may pick the subprotocol (Sec-WebSocket-Protocol) and name the
//     connection's user (X-Switchboard-User). An error refuses it with 502.
//   - On a message route, the Response's Body, when not empty, is sent back
//     to the caller. An error sends the caller {"message": "Internal server
//     error", ...}, and is logged; a *ClientError sends its Message instead.
//   - On $disconnect, the answer is ignored (an error is logged).
//
// A StatusCode of zero means 200; one outside 200-599 is an error. A panic
// is an error too, with its stack.
type Handler func(ctx context.Context, req *Request) (*Response, error)

// Event types, as Request.EventType and API Gateway's requestContext.eventType name them.
const (
	EventConnect    = "CONNECT"
	EventMessage    = "MESSAGE"
	EventDisconnect = "DISCONNECT"
)

// Request is one invocation of a route: what API Gateway puts in the proxy
// event's requestContext and body.
type Request struct {
	RouteKey  string    // the route that runs: $connect, $disconnect, $default or a custom key
	EventType string    // EventConnect, EventMessage or EventDisconnect
	RequestID string    // unique per invocation
	MessageID string    // unique per message; EventMessage only
	Time      time.Time // when the event happened

	Conn Connection // the caller

	Body   []byte // the message, verbatim; empty on $connect and $disconnect
	Binary bool   // the message came in a binary frame

	DisconnectStatusCode int    // the close code; EventDisconnect only
	DisconnectReason     string // the close reason; EventDisconnect only
}

// Connection is what is known of a connection from its handshake.
type Connection struct {
	ID          string // the connection ID, as Send and the management API take it
	ConnectedAt time.Time
	SourceIP    string // the client's address, through Options.TrustedProxies
	UserAgent   string
	Stage       string
	// User is the user the connection belongs to: the X-Switchboard-User
	// header of $connect's Response; empty for none.
	User string
	// Header and Query are the upgrade request's headers and query string,
	// on $connect only (nil otherwise). They must not be modified.
	Header http.Header
	Query  url.Values
}

// Response is a route's answer, shaped like a Lambda proxy response.
type Response struct {
	// StatusCode is the answer's status. Zero means 200.
	StatusCode int
	// Headers are $connect's response headers (see Handler).
	Headers map[string]string
	// Body goes back to the caller of a message route.
	Body []byte
	// Binary sends Body in a binary frame. Otherwise it goes in a text
	// frame when it is valid UTF-8, and in a binary one when it is not.
	Binary bool
}

// ClientError is an error a Handler returns to tell the caller why its
// message failed: the caller gets {"message": Message, "connectionId": ...,
// "requestId": ...} and the connection stays open. Message is shown to the
// client as it is.
type ClientError struct {
	Message string
}

func (e *ClientError) Error() string { return "switchboard: client error: " + e.Message }

// goRoute is a Handler plugged into the gateway's route table as an
// integration of kind "go".
type goRoute struct {
	key    string
	h      Handler
	inline bool
}

var (
	_ integration.Integration = goRoute{}
	_ integration.Inliner     = goRoute{}
)

// Inline implements integration.Inliner: a Go handler may block, so it
// runs on the connection's reader only when its Route says so.
func (r goRoute) Inline() bool { return r.inline }

// Invoke implements integration.Integration.
func (r goRoute) Invoke(ctx context.Context, ir *integration.Request) (resp *integration.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("switchboard: handler of route %q panicked: %v\n%s", r.key, p, debug.Stack())
		}
	}()
	out, err := r.h(ctx, request(ir))
	if ce := (*ClientError)(nil); errors.As(err, &ce) {
		return nil, &integration.ClientError{Message: ce.Message}
	}
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, nil
	}
	return &integration.Response{StatusCode: out.StatusCode, Headers: out.Headers, Body: out.Body, Binary: out.Binary}, nil
}

// request is ir as a Handler sees it.
func request(ir *integration.Request) *Request {
	r := &Request{
		RouteKey:             ir.RouteKey,
		EventType:            ir.EventType,
		RequestID:            ir.RequestID,
		MessageID:            ir.MessageID,
		Time:                 ir.Time,
		Body:                 ir.Body,
		Binary:               ir.Binary,
		DisconnectStatusCode: ir.DisconnectStatusCode,
		DisconnectReason:     ir.DisconnectReason,
	}
	if c := ir.Conn; c != nil {
		r.Conn = Connection{ID: c.ID, ConnectedAt: c.ConnectedAt, SourceIP: c.SourceIP, UserAgent: c.UserAgent,
			Stage: c.Stage, User: c.User, Header: c.Header, Query: c.Query}
	}
	return r
}
