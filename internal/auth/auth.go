// Package auth is the contract between the gateway and the authorizers that
// run on $connect: what an authorizer sees of the handshake (ConnectRequest),
// what it answers (Identity, or an error), and how a refusal maps to the
// HTTP status of the failed upgrade (DeniedError, Status). Implementations
// live in subpackages: jwtauth verifies JSON Web Tokens itself, lambdaauth
// calls an API Gateway REQUEST authorizer function. sigv4, also here, guards
// the management API rather than $connect. The package runs no HTTP server.
package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ConnectRequest is what an authorizer sees of a $connect handshake. The
// gateway fills it from the upgrade request before any integration runs;
// authorizers must treat it as read-only.
type ConnectRequest struct {
	ConnID     string // the connection ID the connection will have if accepted
	SourceIP   string // the client's address, after trusted proxies
	UserAgent  string
	Stage      string
	APIID      string
	DomainName string
	RequestID  string // the $connect request's ID

	Header http.Header // the upgrade request's headers
	Query  url.Values  // the upgrade request's query string; nil or empty when it had none
	Time   time.Time   // when the handshake arrived
}

// Identity is an authorizer's verdict on an accepted client: the principal
// and the context the gateway replays as requestContext.authorizer on every
// event of the connection.
type Identity struct {
	// Principal is the authenticated subject (principalId).
	Principal string
	// Context is requestContext.authorizer. It always includes
	// "principalId" (equal to Principal); every other value is a string, a
	// bool or a json.Number, the types API Gateway allows in an authorizer
	// context, so that it encodes back to the JSON the authorizer meant.
	Context map[string]any
	// Subprotocol is the Sec-WebSocket-Protocol the gateway should accept
	// when the credential came from that header (browsers cannot set other
	// headers, and they fail a handshake that selects none of the
	// subprotocols they offered). Empty means the authorizer has no opinion.
	Subprotocol string
}

// Authorizer decides whether a $connect handshake may proceed. Authorize is
// called concurrently for different handshakes and must honour ctx.
//
// It returns an Identity to accept the client, a *DeniedError to refuse it
// with a given status, or any other error for a broken authorizer, which the
// gateway answers with 500 as API Gateway does.
type Authorizer interface {
	Authorize(ctx context.Context, req *ConnectRequest) (*Identity, error)
}

// Func adapts a function to Authorizer.
type Func func(ctx context.Context, req *ConnectRequest) (*Identity, error)

// Authorize implements Authorizer.
func (f Func) Authorize(ctx context.Context, req *ConnectRequest) (*Identity, error) {
	return f(ctx, req)
}

// DeniedError reports why an Authorizer refused a client.
type DeniedError struct {
	// Status is the HTTP status of the refused upgrade: 401 (no or bad
	// credentials), 403 (valid credentials, access denied) or 500 (the
	// authorizer itself is broken).
	Status int
	// Reason is safe to show the client: it never contains the credential.
	Reason string
}

func (e *DeniedError) Error() string {
	return "auth: denied (" + strconv.Itoa(e.Status) + "): " + e.Reason
}

// Status is the HTTP status with which the gateway answers an Authorize
// error: the Status of a *DeniedError in err's chain, or 500 for any other
// non-nil error, as API Gateway answers a broken authorizer. It returns 200
// for a nil error.
func Status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var de *DeniedError
	if errors.As(err, &de) && de.Status != 0 {
		return de.Status
	}
	return http.StatusInternalServerError
}

// Unauthorized returns the 401 DeniedError with the given reason.
func Unauthorized(reason string) *DeniedError {
	return &DeniedError{Status: http.StatusUnauthorized, Reason: reason}
}

// Forbidden returns the 403 DeniedError with the given reason.
func Forbidden(reason string) *DeniedError {
	return &DeniedError{Status: http.StatusForbidden, Reason: reason}
}
