package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// gate is an integration whose invocations wait for a release each; it
// counts those running and remembers the most at once.
type gate struct {
	release chan struct{}

	mu      sync.Mutex
	running int
	most    int
	order   []string // bodies, in the order their invocations started
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) Invoke(ctx context.Context, req *integration.Request) (*integration.Response, error) {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	g.order = append(g.order, string(req.Body))
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &integration.Response{Body: req.Body}, nil
}

func (g *gate) state() (running, most int, order []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.most, slices.Clone(g.order)
}

// The messages of one connection through a Concurrent route run at once;
// through an Ordered one (the route's own or the gateway's default), one
// after another in the order they arrived. Either way each is answered.
func TestOrderingOfOneConnectionsMessages(t *testing.T) {
	t.Parallel()
	const n = 10
	tests := []struct {
		name     string
		gateway  gateway.Ordering // Options.Ordering
		route    gateway.Ordering // Route.Ordering
		wantMost int
	}{
		{"default is ordered", gateway.OrderingDefault, gateway.OrderingDefault, 1},
		{"route ordered", gateway.Concurrent, gateway.Ordered, 1},
		{"route concurrent", gateway.OrderingDefault, gateway.Concurrent, n},
		{"gateway concurrent", gateway.Concurrent, gateway.OrderingDefault, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGate()
			_, url := startGateway(t, gateway.Options{Ordering: tt.gateway, Routes: map[string]gateway.Route{
				"$default": {Integration: g, RouteResponse: true, Ordering: tt.route},
			}})
			c := testutil.Dial(t, url, nil)
			for i := range n {
				testutil.Write(t, c, strconv.Itoa(i))
			}
			testutil.Eventually(t, 10*time.Second, func() bool {
				running, _, _ := g.state()
				return running == tt.wantMost
			}, "%d invocations running", tt.wantMost)
			got := map[string]bool{}
			var answers []string
			for range n {
				g.release <- struct{}{}
				a := testutil.ReadText(t, c)
				got[a] = true
				answers = append(answers, a)
			}
			_, most, order := g.state()
			if most != tt.wantMost {
				t.Errorf("at most %d invocations ran at once, want %d", most, tt.wantMost)
			}
			if len(got) != n {
				t.Errorf("answers %q, want %d different ones", answers, n)
			}
			if tt.wantMost == 1 {
				want := make([]string, n)
				for i := range want {
					want[i] = strconv.Itoa(i)
				}
				if !slices.Equal(order, want) || !slices.Equal(answers, want) {
					t.Errorf("started %q and answered %q, want both in the order sent %q", order, answers, want)
				}
			}
		})
	}
}

// One connection starts at most InboxSize concurrent messages; the next
// ones wait, unread, and each is answered once an earlier one is done.
func TestConcurrentMessagesOfOneConnectionAreBounded(t *testing.T) {
	t.Parallel()
	const n, bound = 12, 4
	g := newGate()
	_, url := startGateway(t, gateway.Options{InboxSize: bound, Ordering: gateway.Concurrent, Routes: map[string]gateway.Route{
		"$default": {Integration: g, RouteResponse: true},
	}})
	c := testutil.Dial(t, url, nil)
	for i := range n {
		testutil.Write(t, c, fmt.Sprint(i))
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		running, _, _ := g.state()
		return running == bound
	}, "%d invocations running", bound)
	got := map[string]bool{}
	for range n {
		g.release <- struct{}{}
		got[testutil.ReadText(t, c)] = true
	}
	if _, most, _ := g.state(); most != bound {
		t.Errorf("at most %d invocations ran at once, want the bound, %d", most, bound)
	}
	if len(got) != n {
		t.Errorf("%d different answers, want %d", len(got), n)
	}
}

// A concurrent inline route is not held behind an ordered message of the
// same connection that is still running.
func TestConcurrentInlineRouteOvertakesAnOrderedOne(t *testing.T) {
	t.Parallel()
	g := newGate()
	_, url := startGateway(t, gateway.Options{Routes: map[string]gateway.Route{
		"slow":     {Integration: g, RouteResponse: true},
		"$default": {Integration: echo, RouteResponse: true, Inline: true, Ordering: gateway.Concurrent},
	}})
	c := testutil.Dial(t, url, nil)
	testutil.Write(t, c, `{"action":"slow"}`)
	testutil.Eventually(t, 10*time.Second, func() bool {
		running, _, _ := g.state()
		return running == 1
	}, "the slow route running")
	if got := testutil.ReadTextAfter(t, c, "quick"); got != "quick" {
		t.Fatalf("first answer %q, want the concurrent route's, before the slow one's", got)
	}
	g.release <- struct{}{}
	if got := testutil.ReadText(t, c); got != `{"action":"slow"}` {
		t.Fatalf("second answer %q, want the slow route's", got)
	}
}
