package builtin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
)

// topics is a Hub that keeps one connection's subscriptions, and applies the
// cap as the gateway's hub does.
type topics struct{ held []string }

func (h *topics) Broadcast(context.Context, []byte) (int, error)       { return 0, nil }
func (h *topics) Publish(context.Context, string, []byte) (int, error) { return 0, nil }
func (h *topics) Unsubscribe(context.Context, string, string) error    { return nil }
func (h *topics) Subscribe(_ context.Context, _, topic string, max int) error {
	if slices.Contains(h.held, topic) {
		return nil
	}
	if max >= 0 && len(h.held) >= max {
		return builtin.ErrTooManySubscriptions
	}
	h.held = append(h.held, topic)
	return nil
}

func TestSubscribeCaps(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("t", 300)
	tests := []struct {
		name    string
		opts    builtin.Options
		topics  []string
		wantErr []string // a substring of each answer's client error; "" for none
		want    []string // what the hub holds after
	}{
		{"defaults refuse a topic over 256 bytes", builtin.Options{}, []string{"a", long}, []string{"", "longer than 256 bytes"}, []string{"a"}},
		{"cap of 2, repeat is free", builtin.Options{MaxSubscriptions: 2}, []string{"a", "b", "a", "c"}, []string{"", "", "", "Too many subscriptions: the limit is 2"}, []string{"a", "b"}},
		{"negative disables both", builtin.Options{MaxSubscriptions: -1, MaxTopicBytes: -1}, []string{"a", "b", "c", long}, []string{"", "", "", ""}, []string{"a", "b", "c", long}},
		{"topic cap of 3", builtin.Options{MaxTopicBytes: 3}, []string{"abc", "abcd"}, []string{"", "longer than 3 bytes"}, []string{"abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := &topics{}
			in, err := builtin.New(builtin.KindSubscribe, hub, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, topic := range tt.topics {
				_, err := in.Invoke(context.Background(), &integration.Request{
					Conn: &integration.Conn{ID: "c"},
					Body: []byte(`{"action":"subscribe","topic":"` + topic + `"}`),
				})
				var ce *integration.ClientError
				switch {
				case tt.wantErr[i] == "" && err != nil:
					t.Errorf("subscribe %.10q: %v, want none", topic, err)
				case tt.wantErr[i] != "" && (!errors.As(err, &ce) || !strings.Contains(ce.Message, tt.wantErr[i])):
					t.Errorf("subscribe %.10q: %v, want a client error saying %q", topic, err, tt.wantErr[i])
				}
			}
			if !slices.Equal(hub.held, tt.want) {
				t.Errorf("hub holds %d topics %.40q, want %d", len(hub.held), hub.held, len(tt.want))
			}
		})
	}
}

// A topic given as a number is held to MaxTopicBytes in its text form too:
// 1e308 is a topic of 309 bytes.
func TestNumericTopicCapped(t *testing.T) {
	t.Parallel()
	hub := &topics{}
	in, err := builtin.New(builtin.KindSubscribe, hub, builtin.Options{MaxTopicBytes: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"123", "12345", "1e308"} {
		_, _ = in.Invoke(context.Background(), &integration.Request{
			Conn: &integration.Conn{ID: "c"},
			Body: []byte(`{"action":"subscribe","topic":` + raw + `}`),
		})
	}
	if !slices.Equal(hub.held, []string{"123"}) {
		t.Errorf("hub holds %.40q, want only 123", hub.held)
	}
}

// waitsHub declares whether its methods wait.
type waitsHub struct {
	nopHub
	nonblocking bool
}

func (h waitsHub) Nonblocking() bool { return h.nonblocking }

// A built-in declares that it may run inline only when it never waits:
// echo and mock always, the hub's kinds only on a hub that says it never waits.
func TestInlineIsDeclared(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind string
		hub  builtin.Hub
		want bool
	}{
		{builtin.KindEcho, waitsHub{}, true},
		{builtin.KindMock, waitsHub{}, true},
		{builtin.KindBroadcast, waitsHub{nonblocking: true}, true},
		{builtin.KindPublish, waitsHub{nonblocking: true}, true},
		{builtin.KindSubscribe, waitsHub{nonblocking: true}, true},
		{builtin.KindBroadcast, waitsHub{nonblocking: false}, false},
		{builtin.KindSubscribe, waitsHub{nonblocking: false}, false},
		{builtin.KindPublish, nopHub{}, false}, // declares nothing: may wait
	} {
		in, err := builtin.New(tc.kind, tc.hub, builtin.Options{})
		if err != nil {
			t.Fatalf("New(%s): %v", tc.kind, err)
		}
		if got := integration.Inline(in); got != tc.want {
			t.Errorf("Inline(%s on %T %+v) = %v, want %v", tc.kind, tc.hub, tc.hub, got, tc.want)
		}
	}
}
