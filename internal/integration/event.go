package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
)

// disconnectHeaders are the only headers API Gateway sends with $disconnect.
var disconnectHeaders = []string{"Host", "x-api-key", "X-Forwarded-For", "x-restapi"}

// NewEvent builds the API Gateway WebSocket proxy event for req; req.Conn is required.
func NewEvent(req *Request) *apigw.Event {
	c := req.Conn
	ev := &apigw.Event{
		RequestContext: apigw.RequestContext{
			RouteKey:          req.RouteKey,
			EventType:         req.EventType,
			ExtendedRequestID: req.RequestID,
			RequestID:         req.RequestID,
			RequestTime:       apigw.RequestTime(req.Time),
			RequestTimeEpoch:  req.Time.UnixMilli(),
			MessageDirection:  "IN",
			Stage:             c.Stage,
			ConnectedAt:       c.ConnectedAt.UnixMilli(),
			Identity:          apigw.Identity{SourceIP: c.SourceIP, UserAgent: c.UserAgent},
			DomainName:        c.DomainName,
			ConnectionID:      c.ID,
			APIID:             c.APIID,
			MessageID:         req.MessageID,
			Authorizer:        c.Authorizer,
		},
	}
	switch req.EventType {
	case apigw.EventConnect:
		ev.Headers, ev.MultiValueHeaders = apigw.Headers(c.Header)
		// API Gateway shows these to the authorizer only.
		for _, k := range []string{"Connection", "Upgrade"} {
			delete(ev.Headers, k)
			delete(ev.MultiValueHeaders, k)
		}
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = apigw.Query(c.Query)
	case apigw.EventMessage:
		body := string(req.Body)
		if req.Binary {
			body = base64.StdEncoding.EncodeToString(req.Body)
			ev.IsBase64Encoded = true
		}
		ev.Body = &body
	case apigw.EventDisconnect:
		ev.Headers = make(map[string]string, len(disconnectHeaders))
		ev.MultiValueHeaders = make(map[string][]string, len(disconnectHeaders))
		for _, h := range disconnectHeaders {
			v := ""
			if h == "Host" {
				v = c.DomainName
			}
			ev.Headers[h], ev.MultiValueHeaders[h] = v, []string{v}
		}
		reason := req.DisconnectReason
		ev.RequestContext.DisconnectStatusCode = req.DisconnectStatusCode
		ev.RequestContext.DisconnectReason = &reason
	}
	return ev
}

// MarshalEvent returns the JSON proxy event for req.
func MarshalEvent(req *Request) ([]byte, error) {
	b, err := json.Marshal(NewEvent(req))
	if err != nil {
		return nil, fmt.Errorf("marshal event: %w", err)
	}
	return b, nil
}

// ErrBadResponse is returned by ParseResponse for output API Gateway would
// reject as a malformed proxy response.
var ErrBadResponse = errors.New("integration: malformed proxy response")

// CheckStatus returns an error wrapping ErrBadResponse for a status an
// integration may not answer with: anything outside 200–599. A 1xx is not a
// final answer (a 101 would pass for the gateway's own upgrade), so API
// Gateway treats it as an integration failure, and so does the gateway.
func CheckStatus(code int) error {
	if code < 200 || code > 599 {
		return fmt.Errorf("%w: statusCode %d outside 200-599", ErrBadResponse, code)
	}
	return nil
}

// ParseResponse reads a function's output. A JSON object with a statusCode
// is a proxy response: its body (a string, or any JSON value taken as its
// text) is decoded from base64 when isBase64Encoded, and then goes out as
// a binary frame. Any other output (a
// string, a number, an object without statusCode) is a 200 whose body is the
// output itself (a JSON string unquoted), as a two-way route sends it.
func ParseResponse(data []byte) (*Response, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return &Response{StatusCode: http.StatusOK}, nil
	}
	if data[0] == '{' {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(data, &probe); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
		}
		if _, ok := probe["statusCode"]; ok {
			return parseProxy(data)
		}
	}
	if data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
		}
		return &Response{StatusCode: http.StatusOK, Body: []byte(s)}, nil
	}
	return &Response{StatusCode: http.StatusOK, Body: append([]byte(nil), data...)}, nil
}

func parseProxy(data []byte) (*Response, error) {
	var pr struct {
		StatusCode        json.RawMessage     `json:"statusCode"`
		Headers           map[string]string   `json:"headers"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
		Body              json.RawMessage     `json:"body"`
		IsBase64Encoded   bool                `json:"isBase64Encoded"`
	}
	if err := json.Unmarshal(data, &pr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	// Some runtimes send statusCode as a string ("200").
	code, err := strconv.Atoi(string(bytes.Trim(pr.StatusCode, `"`)))
	if err != nil {
		return nil, fmt.Errorf("%w: statusCode %s", ErrBadResponse, pr.StatusCode)
	}
	if err := CheckStatus(code); err != nil {
		return nil, err
	}
	resp := &Response{StatusCode: code, Headers: pr.Headers}
	for k, vs := range pr.MultiValueHeaders {
		if _, ok := resp.Headers[k]; !ok && len(vs) > 0 {
			if resp.Headers == nil {
				resp.Headers = map[string]string{}
			}
			resp.Headers[k] = vs[len(vs)-1]
		}
	}
	if len(pr.Body) > 0 && string(pr.Body) != "null" {
		body := []byte(pr.Body)
		if pr.Body[0] == '"' {
			var s string
			if err := json.Unmarshal(pr.Body, &s); err != nil {
				return nil, fmt.Errorf("%w: body: %v", ErrBadResponse, err)
			}
			body = []byte(s)
		}
		if pr.IsBase64Encoded {
			dec, err := base64.StdEncoding.DecodeString(string(body))
			if err != nil {
				return nil, fmt.Errorf("%w: body is not base64: %v", ErrBadResponse, err)
			}
			body = dec
			resp.Binary = true // the answer to a binary frame arriving in base64
		}
		resp.Body = body
	}
	return resp, nil
}
