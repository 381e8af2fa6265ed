package builtin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
)

// nopHub accepts every action; the cases below never reach it.
type nopHub struct{}

func (nopHub) Broadcast(context.Context, []byte) (int, error)       { return 0, nil }
func (nopHub) Publish(context.Context, string, []byte) (int, error) { return 0, nil }
func (nopHub) Subscribe(context.Context, string, string) error      { return nil }
func (nopHub) Unsubscribe(context.Context, string, string) error    { return nil }

// A malformed body is a *integration.ClientError that wraps
// integration.ErrBadRequest, as the sentinel's documentation says.
func TestBadRequestWrapsErrBadRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, kind, body string
	}{
		{"not a JSON object", builtin.KindBroadcast, `[1,2]`},
		{"missing data", builtin.KindBroadcast, `{"action":"broadcast"}`},
		{"missing topic", builtin.KindSubscribe, `{"action":"subscribe"}`},
		{"empty topic", builtin.KindPublish, `{"topic":"","data":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, err := builtin.New(tt.kind, nopHub{}, builtin.Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = in.Invoke(context.Background(), &integration.Request{Conn: &integration.Conn{ID: "c"}, Body: []byte(tt.body)})
			if !errors.Is(err, integration.ErrBadRequest) {
				t.Errorf("%s %s: err = %v, want one that wraps ErrBadRequest", tt.kind, tt.body, err)
			}
			var ce *integration.ClientError
			if !errors.As(err, &ce) {
				t.Fatalf("%s %s: err = %T, want *integration.ClientError", tt.kind, tt.body, err)
			}
		})
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
