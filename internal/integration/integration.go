// Package integration defines what a route invokes: the Integration contract,
// the request it receives and the response it returns. Each kind of
// integration lives in a subpackage (builtin/ for the gateway's own routes).
// It must not import gateway, mgmtapi or wsconn.
package integration

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// Integration handles one route invocation. Invoke is called concurrently
// for different connections and must honour ctx's deadline.
type Integration interface {
	Invoke(ctx context.Context, req *Request) (*Response, error)
}

// Inliner is implemented by integrations that declare whether they may run
// on the connection's reader: only ones that never wait (no I/O, no call
// that crosses a network) may.
type Inliner interface {
	Inline() bool
}

// Inline reports whether in declared that it may run inline; an
// integration that declares nothing may not.
func Inline(in Integration) bool {
	i, ok := in.(Inliner)
	return ok && i.Inline()
}

// Func adapts a function to Integration.
type Func func(ctx context.Context, req *Request) (*Response, error)

// Invoke implements Integration.
func (f Func) Invoke(ctx context.Context, req *Request) (*Response, error) { return f(ctx, req) }

// Request is one route invocation: what API Gateway puts in the proxy event.
// Integrations that need the event JSON build it from these fields.
type Request struct {
	RouteKey  string
	EventType string // apigw.EventConnect, EventMessage or EventDisconnect
	RequestID string
	MessageID string // set for MESSAGE events only
	Time      time.Time

	Conn *Conn

	Body   []byte // the message, verbatim; empty on CONNECT and DISCONNECT
	Binary bool   // the message came in a binary frame

	DisconnectStatusCode int    // DISCONNECT only
	DisconnectReason     string // DISCONNECT only
}

// Conn is what is known of a connection from its handshake. It is read-only
// once the connection is open.
type Conn struct {
	ID          string
	ConnectedAt time.Time
	SourceIP    string
	UserAgent   string
	Header      http.Header // the upgrade request's headers
	Query       url.Values  // the upgrade request's query string
	Stage       string
	DomainName  string
	APIID       string
	Principal   string         // set by an authorizer
	Authorizer  map[string]any // requestContext.authorizer, nil when no authorizer ran
	// User is the user the connection belongs to: the UserHeader of
	// $connect's response, else Principal; empty for none.
	User string
}

// UserHeader is the header of a $connect response (a proxy response's
// "headers", or an http integration's own response header) that names the
// user the connection belongs to. API Gateway ignores it.
const UserHeader = "X-Switchboard-User"

// MaxUserBytes is the longest user ID a connection may have.
const MaxUserBytes = 256

// Response is an integration's answer, shaped like a Lambda proxy response.
type Response struct {
	StatusCode int
	Headers    map[string]string
	Body       []byte
	// Binary sends Body in a binary frame. Otherwise it goes out as text
	// when it is valid UTF-8, and as binary when it is not.
	Binary bool
}

// ClientError is an error the caller is told about in an error frame
// ({"message": "...", "connectionId":..., "requestId":...}); the connection
// stays open. Message is safe to show the client.
type ClientError struct {
	Message string
	// Err is the sentinel the error is an instance of (ErrBadRequest), found
	// by errors.Is; nil when there is none.
	Err error
}

func (e *ClientError) Error() string { return "integration: " + e.Message }

// Unwrap returns e.Err.
func (e *ClientError) Unwrap() error { return e.Err }

// ErrBadRequest is wrapped by ClientErrors about a malformed message body:
// errors.Is(err, ErrBadRequest) finds it.
var ErrBadRequest = errors.New("Bad request body")
