// Package builtin provides the gateway's own integrations: broadcast,
// subscribe, unsubscribe, publish, echo and mock. They act through the
// Hub interface, which the gateway implements.
package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/switchboard-gateway/switchboard/internal/integration"
)

// Hub is what the built-in integrations need from the gateway.
type Hub interface {
	// Broadcast sends data to every open connection and returns how many it reached.
	Broadcast(ctx context.Context, data []byte) (int, error)
	// Publish sends data to the subscribers of topic.
	Publish(ctx context.Context, topic string, data []byte) (int, error)
	Subscribe(ctx context.Context, connID, topic string) error
	Unsubscribe(ctx context.Context, connID, topic string) error
}

// Kinds of built-in integration, as written in the config's integration.type.
const (
	KindBroadcast   = "broadcast"
	KindSubscribe   = "subscribe"
	KindUnsubscribe = "unsubscribe"
	KindPublish     = "publish"
	KindEcho        = "echo"
	KindMock        = "mock"
)

// ErrUnknownKind is returned by New for a kind that is not built in.
var ErrUnknownKind = errors.New("builtin: unknown integration kind")

// Options configures a built-in integration.
type Options struct {
	// MockResponse is the body the mock integration answers with.
	MockResponse string
}

// Nonblocking is implemented by hubs that can tell whether their methods
// never wait (no call crosses a network): the built-ins acting on such a
// hub declare that they may run inline (integration.Inliner). Those on
// other hubs do not.
type Nonblocking interface {
	Nonblocking() bool
}

// New returns the built-in integration of the given kind. It implements
// integration.Inliner: echo and mock run inline, the others when hub is
// Nonblocking.
func New(kind string, hub Hub, opts Options) (integration.Integration, error) {
	f, err := newFunc(kind, hub, opts)
	if err != nil {
		return nil, err
	}
	nb, _ := hub.(Nonblocking)
	inline := kind == KindEcho || kind == KindMock || (nb != nil && nb.Nonblocking())
	return declared{Func: f, inline: inline}, nil
}

// declared is a built-in integration with what it declares of itself.
type declared struct {
	integration.Func
	inline bool
}

// Inline implements integration.Inliner.
func (d declared) Inline() bool { return d.inline }

func newFunc(kind string, hub Hub, opts Options) (integration.Func, error) {
	switch kind {
	case KindBroadcast:
		return integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
			data, err := field(req.Body, "data")
			if err != nil {
				return nil, err
			}
			_, err = hub.Broadcast(ctx, data)
			return ok(nil), err
		}), nil
	case KindSubscribe, KindUnsubscribe:
		act := hub.Subscribe
		if kind == KindUnsubscribe {
			act = hub.Unsubscribe
		}
		return integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
			topic, err := topicOf(req.Body)
			if err != nil {
				return nil, err
			}
			return ok(nil), act(ctx, req.Conn.ID, topic)
		}), nil
	case KindPublish:
		return integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
			topic, err := topicOf(req.Body)
			if err != nil {
				return nil, err
			}
			data, err := field(req.Body, "data")
			if err != nil {
				return nil, err
			}
			_, err = hub.Publish(ctx, topic, data)
			return ok(nil), err
		}), nil
	case KindEcho:
		return integration.Func(func(_ context.Context, req *integration.Request) (*integration.Response, error) {
			resp := ok(req.Body)
			resp.Binary = req.Binary // a binary message comes back binary, even when it is valid UTF-8
			return resp, nil
		}), nil
	case KindMock:
		body := []byte(opts.MockResponse)
		return integration.Func(func(context.Context, *integration.Request) (*integration.Response, error) {
			return ok(body), nil
		}), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKind, kind)
}

func ok(body []byte) *integration.Response {
	return &integration.Response{StatusCode: http.StatusOK, Body: body}
}

func badRequest(format string, args ...any) error {
	return &integration.ClientError{
		Message: integration.ErrBadRequest.Error() + ": " + fmt.Sprintf(format, args...),
		Err:     integration.ErrBadRequest,
	}
}

// fields decodes the top level of a JSON object message.
func fields(body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, badRequest("the message must be a JSON object")
	}
	return m, nil
}

// field returns the payload to deliver from a message field: a JSON string
// goes out as its raw text, any other JSON value as its JSON text. The result
// is encoded once and shared by every recipient.
func field(body []byte, name string) ([]byte, error) {
	m, err := fields(body)
	if err != nil {
		return nil, err
	}
	raw, found := m[name]
	if !found {
		return nil, badRequest("%q is required", name)
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("%q is not a valid string", name)
		}
		return []byte(s), nil
	}
	return bytes.Clone(raw), nil
}

// topicOf reads the topic from "entityId" or "topic": a non-empty string, or a number.
func topicOf(body []byte) (string, error) {
	m, err := fields(body)
	if err != nil {
		return "", err
	}
	for _, name := range []string{"entityId", "topic"} {
		raw, found := m[name]
		if !found {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return s, nil
		}
		if n, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return strconv.FormatFloat(n, 'f', -1, 64), nil
		}
		return "", badRequest("%q must be a non-empty string or a number", name)
	}
	return "", badRequest(`"entityId" or "topic" is required`)
}
