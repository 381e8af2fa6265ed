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

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/integration"
)

// Hub is what the built-in integrations need from the gateway.
type Hub interface {
	// Broadcast sends data to every open connection and returns how many it reached.
	Broadcast(ctx context.Context, data []byte) (int, error)
	// Publish sends data to the subscribers of topic.
	Publish(ctx context.Context, topic string, data []byte) (int, error)
	// Subscribe subscribes connID to topic unless it already has max other
	// topics (max negative: no cap), when it returns an error wrapping
	// ErrTooManySubscriptions. Subscribing to a topic again changes nothing.
	Subscribe(ctx context.Context, connID, topic string, max int) error
	Unsubscribe(ctx context.Context, connID, topic string) error
}

// Resumer is implemented by hubs that keep topic history: a subscribe
// message with "history": true or a "since" position asks for it.
type Resumer interface {
	// SubscribeFrom subscribes connID to topic with every publication in
	// the history envelope; with from, what was missed after from comes
	// first. An error wrapping history.ErrNoHistory: the topic keeps none.
	SubscribeFrom(ctx context.Context, connID, topic string, max int, from *history.Position) error
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

// ErrTooManySubscriptions is wrapped by a Hub's Subscribe when the
// connection has reached its cap; the client is told in an error frame.
var ErrTooManySubscriptions = errors.New("builtin: too many subscriptions")

// Default caps of the topic routes. A topic is a name, not a payload:
// 256 bytes leave room for "tenant.room.thread"-shaped names while one
// connection's subscriptions stay under 64 KiB at the cap.
const (
	DefaultMaxTopicBytes    = 256
	DefaultMaxSubscriptions = 256
)

// Options configures a built-in integration. The zero value works. Every
// limit follows one convention: zero means its default, negative disables it.
type Options struct {
	// MockResponse is the body the mock integration answers with.
	MockResponse string
	// MaxTopicBytes is the longest topic subscribe, unsubscribe and publish
	// take; a longer one is answered with an error frame. Zero means
	// DefaultMaxTopicBytes.
	MaxTopicBytes int
	// MaxSubscriptions is how many topics one connection may subscribe to;
	// one more is answered with an error frame and not stored. Zero means
	// DefaultMaxSubscriptions.
	MaxSubscriptions int
}

func (o Options) withDefaults() Options {
	if o.MaxTopicBytes == 0 {
		o.MaxTopicBytes = DefaultMaxTopicBytes
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	return o
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
	f, err := newFunc(kind, hub, opts.withDefaults())
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
	topicOf := func(body []byte) (string, error) { return topicOf(body, opts.MaxTopicBytes) }
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
	case KindSubscribe:
		return integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
			topic, err := topicOf(req.Body)
			if err != nil {
				return nil, err
			}
			kept, from, err := resumeOf(req.Body)
			if err != nil {
				return nil, err
			}
			if kept {
				r, _ := hub.(Resumer)
				err = history.ErrNoHistory
				if r != nil {
					err = r.SubscribeFrom(ctx, req.Conn.ID, topic, opts.MaxSubscriptions, from)
				}
				if errors.Is(err, history.ErrNoHistory) {
					return nil, &integration.ClientError{Message: "Topic " + strconv.Quote(topic) + " keeps no history", Err: err}
				}
			} else {
				err = hub.Subscribe(ctx, req.Conn.ID, topic, opts.MaxSubscriptions)
			}
			if errors.Is(err, ErrTooManySubscriptions) {
				return nil, &integration.ClientError{Message: "Too many subscriptions: the limit is " + strconv.Itoa(opts.MaxSubscriptions) + " topics per connection"}
			}
			return ok(nil), err
		}), nil
	case KindUnsubscribe:
		return integration.Func(func(ctx context.Context, req *integration.Request) (*integration.Response, error) {
			topic, err := topicOf(req.Body)
			if err != nil {
				return nil, err
			}
			return ok(nil), hub.Unsubscribe(ctx, req.Conn.ID, topic)
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

// topicOf reads the topic from "entityId" or "topic": a non-empty string, or
// a number, of at most maxBytes bytes (negative: any length).
func topicOf(body []byte, maxBytes int) (string, error) {
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
		if json.Unmarshal(raw, &s) != nil || s == "" {
			n, err := strconv.ParseFloat(string(raw), 64)
			if err != nil {
				return "", badRequest("%q must be a non-empty string or a number", name)
			}
			s = strconv.FormatFloat(n, 'f', -1, 64) // 1e308 is 309 bytes
		}
		if maxBytes >= 0 && len(s) > maxBytes {
			return "", badRequest("%q is longer than %d bytes", name, maxBytes)
		}
		return s, nil
	}
	return "", badRequest(`"entityId" or "topic" is required`)
}

// resumeOf reads a subscribe message's history request: "history": true
// asks for the envelope, "since": {"epoch": "…", "offset": N} for the
// envelope and what was published after that position.
func resumeOf(body []byte) (kept bool, from *history.Position, err error) {
	m, err := fields(body)
	if err != nil {
		return false, nil, err
	}
	if raw, ok := m["history"]; ok {
		if json.Unmarshal(raw, &kept) != nil {
			return false, nil, badRequest(`"history" must be true or false`)
		}
	}
	raw, ok := m["since"]
	if !ok {
		return kept, nil, nil
	}
	var since struct {
		Epoch  *string `json:"epoch"`
		Offset *uint64 `json:"offset"`
	}
	if json.Unmarshal(raw, &since) != nil || since.Epoch == nil || since.Offset == nil {
		return false, nil, badRequest(`"since" must be {"epoch": string, "offset": non-negative integer}`)
	}
	return true, &history.Position{Epoch: *since.Epoch, Offset: *since.Offset}, nil
}
