package switchboard

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// newForTest builds a gateway from opts and closes it at the end of the test.
func newForTest(t *testing.T, opts Options) *Gateway {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// A Go handler runs on the connection's reader only when its Route says
// so; the built-ins of a node alone declare that they may.
func TestInlineAsDeclared(t *testing.T) {
	t.Parallel()
	h := func(context.Context, *Request) (*Response, error) { return nil, nil }
	g := newForTest(t, Options{Routes: map[string]Route{
		"blocking": {Handler: h},
		"quick":    {Handler: h, Inline: true},
		"echo":     {Builtin: BuiltinEcho},
		"pub":      {Builtin: BuiltinPublish},
	}})
	routes := g.srv.Gateway().OptionsForTest().Routes
	for key, want := range map[string]bool{"blocking": false, "quick": true, "echo": true, "pub": true} {
		if got := routes[key].Inline; got != want {
			t.Errorf("route %s: Inline = %v, want %v", key, got, want)
		}
	}
	if got := g.srv.Gateway().OptionsForTest().Kinds["quick"]; got != "go" {
		t.Errorf("kind of a Go route = %q, want go", got)
	}
}

// The defaults the documentation states are those New applies.
func TestDocumentedDefaults(t *testing.T) {
	t.Parallel()
	g := newForTest(t, Options{})
	if g.addr != "127.0.0.1:3001" {
		t.Errorf("default Addr = %q, want 127.0.0.1:3001", g.addr)
	}
	o := g.srv.Gateway().OptionsForTest()
	if o.Stage != "dev" || o.IntegrationTimeout != 29*time.Second || o.Selection.String() != "$request.body.action" {
		t.Errorf("defaults: stage %q, integration timeout %v, selection %q; want dev, 29s, $request.body.action", o.Stage, o.IntegrationTimeout, o.Selection)
	}
	for _, key := range []string{"sendMessage", "subscribe", "unsubscribe", "publish"} {
		if _, ok := o.Routes[key]; !ok {
			t.Errorf("default routes lack %s", key)
		}
	}
	if len(o.Routes) != 4 {
		t.Errorf("default routes = %d, want 4", len(o.Routes))
	}
	for got, want := range map[string]string{EventConnect: apigw.EventConnect, EventMessage: apigw.EventMessage, EventDisconnect: apigw.EventDisconnect} {
		if got != want {
			t.Errorf("event type %q, want %q", got, want)
		}
	}
	if config.DefaultListen != g.addr {
		t.Errorf("config.DefaultListen = %q, the library's %q", config.DefaultListen, g.addr)
	}
}

// Limits reach the connections: zero is the component's default,
// negative disables, a value is taken as it is.
func TestLimitsReachTheConnections(t *testing.T) {
	t.Parallel()
	g := newForTest(t, Options{Limits: Limits{MaxMessageBytes: 1000, IdleTimeout: -1, SendQueueMessages: 7, MaxConnections: 3, MessageRate: -1}})
	o := g.srv.Gateway().OptionsForTest()
	c := o.Conn
	if c.ReadLimit != 1000 || c.IdleTimeout >= 0 || c.SendQueueMessages != 7 || o.MaxConnections != 3 || o.MessageRate >= 0 {
		t.Errorf("given limits: read %d, idle %v, queue %d, max conns %d, message rate %v; want 1000, disabled, 7, 3, disabled",
			c.ReadLimit, c.IdleTimeout, c.SendQueueMessages, o.MaxConnections, o.MessageRate)
	}
	if c.MaxLifetime != apigw.MaxConnectionDuration || c.SendQueueBytes != wsconn.DefaultSendQueueBytes || c.PingInterval != 30*time.Second {
		t.Errorf("zero limits: lifetime %v, queue bytes %d, ping %v; want the defaults %v, %d, 30s",
			c.MaxLifetime, c.SendQueueBytes, c.PingInterval, apigw.MaxConnectionDuration, wsconn.DefaultSendQueueBytes)
	}
}
