// Package switchboard embeds the Switchboard WebSocket gateway in a Go
// program. The gateway speaks API Gateway's WebSocket wire contract
// (connection IDs, $connect, $disconnect, $default and custom routes picked
// by a route selection expression, the @connections management API), as
// `switchboard serve` does; here its routes can be Go functions, and the
// program pushes to connections, topics and every client from Go.
//
// New builds a gateway from Options; Serve or ListenAndServe serves it (or
// Handler, on a server of the caller's own); Send, Publish, Broadcast,
// Disconnect, Subscribe and Unsubscribe act on its connections; Shutdown
// drains it. A gateway of a cluster (Options.Cluster) reaches the
// connections of the other nodes too.
//
// The package is a small front over the gateway's internal packages, which
// it does not expose: its types are its own, so that those can change.
// docs/library.md says what it promises to keep stable.
package switchboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/conn"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/server"
)

// Errors of the delivery methods. They are the same whichever node of a
// cluster holds the connection.
var (
	// ErrGone is returned for a connection that does not exist or is
	// closing (the management API's 410 GoneException), and by Subscribe and
	// Unsubscribe for a connection this gateway does not hold.
	ErrGone = errors.New("switchboard: connection gone")
	// ErrSlowConsumer is returned when a message overflowed the
	// connection's send queue (Limits.SendQueueMessages, SendQueueBytes):
	// the connection is being closed with 1008 (the management API's 429
	// LimitExceededException).
	ErrSlowConsumer = errors.New("switchboard: connection too slow, closed")
)

// Options configures a gateway. The zero value works: it is the gateway
// `switchboard serve` runs with no configuration, a node alone with the
// built-in chat and topic routes, its management API without credentials
// on loopback only. Every default is the one `switchboard serve` applies.
type Options struct {
	// Addr is the address ListenAndServe listens on, host:port. Empty
	// means 127.0.0.1:3001.
	Addr string
	// Stage is the stage name: clients connect at / or /{stage}, and the
	// management API answers under / and /{stage}. Empty means "dev".
	Stage string
	// RouteSelectionExpression picks a message's route key from its body,
	// such as $request.body.action or ${request.body.type}/${request.body.op}.
	// Empty means $request.body.action.
	RouteSelectionExpression string
	// Routes maps route keys ($connect, $disconnect, $default and custom
	// keys) to what they run. Nil means the built-in routes of
	// `switchboard serve`: sendMessage (broadcast), subscribe, unsubscribe
	// and publish. An empty map means no route: every message is answered
	// {"message": "Forbidden", ...}.
	Routes map[string]Route
	// Limits on connections and messages.
	Limits Limits
	// IntegrationTimeout bounds one route invocation: the context of a
	// Handler ends then, and the client gets {"message": "Endpoint request
	// timed out", ...}. Zero means 29s; negative is refused.
	IntegrationTimeout time.Duration
	// Origins, when not empty, are the only Origin header values accepted
	// on upgrades (patterns as path.Match: https://*.example.com); a
	// handshake without Origin (not a browser) is accepted.
	Origins []string
	// Subprotocols, when not empty, are the only Sec-WebSocket-Protocol
	// values accepted; empty accepts the client's first offer.
	Subprotocols []string
	// TrustedProxies are the addresses or CIDR prefixes whose
	// X-Forwarded-For is believed for a client's source IP.
	TrustedProxies []string
	// Management says who may call the management API.
	Management Management
	// Cluster joins this gateway to others; the zero value is a node alone.
	Cluster Cluster
	// Logger receives the gateway's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Route is what one route runs: a Go function (Handler) or a built-in
// integration (Builtin), exactly one of them.
type Route struct {
	// Handler runs the route. The body of its response goes back to the
	// caller of a message route; see Handler.
	Handler Handler
	// Inline lets Handler run on the connection's reader when no other
	// message of the connection waits, which saves a handoff per message.
	// Only for a handler that never waits: no I/O, no lock another holds,
	// no call of a gateway of a cluster. While it runs, the connection is
	// not read, and no timer bounds it. False runs the handler on a
	// goroutine of its own, bounded by IntegrationTimeout.
	Inline bool
	// Builtin names a built-in integration instead of Handler.
	Builtin Builtin
	// MockResponse is the body BuiltinMock answers with.
	MockResponse string
}

// Builtin names a built-in integration, as the configuration's
// integration.type does.
type Builtin string

// The built-in integrations. Each reads the message as its README
// section "Built-in integrations" says.
const (
	BuiltinBroadcast   Builtin = "broadcast"   // sends "data" to every connection
	BuiltinSubscribe   Builtin = "subscribe"   // subscribes the caller to "topic" or "entityId"
	BuiltinUnsubscribe Builtin = "unsubscribe" // unsubscribes the caller
	BuiltinPublish     Builtin = "publish"     // sends "data" to the topic's subscribers
	BuiltinEcho        Builtin = "echo"        // sends the message back
	BuiltinMock        Builtin = "mock"        // sends MockResponse back
)

var builtins = []Builtin{BuiltinBroadcast, BuiltinSubscribe, BuiltinUnsubscribe, BuiltinPublish, BuiltinEcho, BuiltinMock}

// Limits are the gateway's limits. Every one follows one convention: zero
// means its default (API Gateway's where it has one; the README's table
// "Transport and limits" lists them), negative disables it.
type Limits struct {
	// MaxMessageBytes is the largest message a client may send (1009 beyond).
	MaxMessageBytes int64
	// IdleTimeout closes a connection with no data message either way for this long.
	IdleTimeout time.Duration
	// MaxLifetime closes a connection this long after it opened.
	MaxLifetime time.Duration
	// PingInterval is how often the gateway pings a client, and
	// PongTimeout how long its pong may take.
	PingInterval, PongTimeout time.Duration
	// SendQueueMessages and SendQueueBytes bound what may wait to be sent
	// to one client; beyond, it is closed with 1008 (ErrSlowConsumer).
	SendQueueMessages int
	SendQueueBytes    int64
	// MaxPostBytes is the largest management API payload (413 beyond). It
	// does not bound Send, Publish or Broadcast.
	MaxPostBytes int64
	// MaxConnections caps open connections (503 beyond), and
	// MaxConnectionsPerIP those of one source IP (429 beyond).
	MaxConnections, MaxConnectionsPerIP int
	// ConnectRate is new connections per second (429 beyond), with bursts
	// of ConnectBurst (zero: the rate).
	ConnectRate  float64
	ConnectBurst int
	// MessageRate is messages per second one connection may send, with
	// bursts of MessageBurst (zero: the rate); a message beyond is dropped
	// and answered with a "Too Many Requests" frame.
	MessageRate  float64
	MessageBurst int
	// MaxTopicBytes and MaxSubscriptions bound the built-in topic routes:
	// the longest topic, and the topics one connection may subscribe to.
	// Subscribe from Go is bounded by neither.
	MaxTopicBytes    int64
	MaxSubscriptions int
	// HandshakeTimeout bounds reading an upgrade request's headers, and
	// MaxHeaderBytes their size (431 beyond), on the servers Serve makes.
	HandshakeTimeout time.Duration
	MaxHeaderBytes   int64
}

// Management says who may call the management API (/@connections and its
// extensions, the dashboard at /_/, /metrics), served by the same handler
// as the WebSocket clients. With no credentials it answers only on a
// loopback address: Serve refuses another unless AllowUnauthenticated.
type Management struct {
	// AccessKeys maps AWS access key IDs to their secrets, accepted in
	// SigV4 signatures (service execute-api), as the AWS SDKs sign.
	AccessKeys map[string]string
	// Tokens are accepted as "Authorization: Bearer TOKEN".
	Tokens []string
	// Region, when set, is the only region signatures may be scoped to.
	Region string
	// AllowUnauthenticated serves the management API without credentials
	// on a non-loopback address.
	AllowUnauthenticated bool
}

// Cluster says how a gateway joins the others of its cluster, so that each
// reaches the connections of all: see docs/cluster.md. Zero fields take
// the defaults of `switchboard serve`.
type Cluster struct {
	// URL is the engine: empty for a node alone (an in-memory registry and
	// no bus); nats://host:port[,host:port] (tls:// for TLS);
	// redis://[user:password@]host:port[/db] (rediss:// for TLS); or
	// "embedded", a NATS server inside this process (see Embedded).
	URL string
	// Node names this gateway in the cluster, unique per process. Empty
	// means the host name and a random suffix.
	Node string
	// TTL is the node's lease: how long a dead node's connections stay
	// known. Zero means 15s.
	TTL time.Duration
	// Grace is how long the node may be cut off from the engine before
	// /healthz answers 503. Zero means 10s; negative: never.
	Grace time.Duration
	// CallTimeout bounds each directory and bus call. Zero means 5s.
	CallTimeout time.Duration
	// Credentials for the engine where the URL has none: NATS takes User
	// and Password, Token or CredsFile (one kind); Redis takes User and
	// Password.
	User, Password, Token, CredsFile string
	// CAFile trusts the engine's certificate; CertFile and KeyFile are
	// this node's client certificate.
	CAFile, CertFile, KeyFile string
	// Embedded configures the NATS server of URL "embedded".
	Embedded Embedded
}

// Embedded configures the NATS server a gateway runs inside itself.
type Embedded struct {
	// Listen is its client address. Empty means 127.0.0.1:0.
	Listen string
	// Cluster is the route address the other nodes' servers connect to;
	// empty runs the server alone.
	Cluster string
	// Peers are every node's route address, the same list everywhere.
	Peers []string
	// StoreDir keeps JetStream's data. Empty means a temporary directory.
	StoreDir string
}

// Gateway is a running gateway: its connections, routes, management API
// and, on a cluster, its place among the other nodes. Create it with New
// and stop it with Shutdown or Close. Its methods are safe for concurrent
// use, from Handlers too.
type Gateway struct {
	srv  *server.Server
	hub  *gateway.Hub
	addr string
	log  *slog.Logger

	mu      sync.Mutex
	servers []*http.Server // made by Serve
	stopped bool           // Shutdown or Close began: Serve refuses

	stopMu   sync.Mutex // one Shutdown or Close at a time
	released bool       // the server was closed
}

// New builds a gateway from opts: it checks every option, and on a cluster
// joins it (within Cluster's join bound). The gateway serves nothing
// until Serve, ListenAndServe or Handler; Send and the other deliveries
// work at once.
func New(opts Options) (*Gateway, error) {
	cfg, handlers, err := opts.config()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	srv, err := server.New(cfg, server.Options{Logger: log, Handlers: handlers})
	if err != nil {
		return nil, fmt.Errorf("switchboard: %w", err)
	}
	srv.SetReady(true)
	return &Gateway{srv: srv, hub: srv.Gateway().Hub(), addr: cfg.Listen, log: log}, nil
}

// config turns opts into the configuration `switchboard serve` would read,
// completed and checked by the same code, and the routes given in Go.
func (o Options) config() (*config.Config, map[string]integration.Integration, error) {
	cfg := &config.Config{
		Listen:                   o.Addr,
		Stage:                    o.Stage,
		RouteSelectionExpression: o.RouteSelectionExpression,
		Limits:                   o.Limits.config(),
		IntegrationTimeout:       duration(o.IntegrationTimeout),
		Origins:                  o.Origins,
		Subprotocols:             o.Subprotocols,
		TrustedProxies:           o.TrustedProxies,
		Management: config.Management{
			AccessKeys:           o.Management.AccessKeys,
			Tokens:               o.Management.Tokens,
			Region:               o.Management.Region,
			AllowUnauthenticated: o.Management.AllowUnauthenticated,
		},
		Cluster: o.Cluster.config(),
		TLS:     config.TLS{Disable: true}, // Serve takes any listener, a TLS one included
		Source:  "switchboard.Options",
	}
	var handlers map[string]integration.Integration
	if o.Routes != nil {
		cfg.Routes = map[string]config.Route{}
		handlers = map[string]integration.Integration{}
	}
	for key, r := range o.Routes {
		switch {
		case (r.Handler == nil) == (r.Builtin == ""):
			return nil, nil, fmt.Errorf("switchboard: route %q: set exactly one of Handler and Builtin", key)
		case r.Handler != nil:
			handlers[key] = goRoute{key: key, h: r.Handler, inline: r.Inline}
		case !slices.Contains(builtins, r.Builtin):
			return nil, nil, fmt.Errorf("switchboard: route %q: unknown Builtin %q: want one of %v", key, r.Builtin, builtins)
		default:
			cfg.Routes[key] = config.Route{Integration: config.Integration{Type: string(r.Builtin), Response: r.MockResponse}}
		}
	}
	// The keys of the Go routes are checked by the server, with the
	// configured ones' rule.
	if err := cfg.Complete(); err != nil {
		return nil, nil, fmt.Errorf("switchboard: options: %w", err)
	}
	return cfg, handlers, nil
}

func (l Limits) config() config.Limits {
	return config.Limits{
		MaxMessageBytes:     size(l.MaxMessageBytes),
		IdleTimeout:         duration(l.IdleTimeout),
		MaxLifetime:         duration(l.MaxLifetime),
		PingInterval:        duration(l.PingInterval),
		PongTimeout:         duration(l.PongTimeout),
		SendQueueMessages:   count(l.SendQueueMessages),
		SendQueueBytes:      size(l.SendQueueBytes),
		MaxPostBytes:        size(l.MaxPostBytes),
		MaxConnections:      count(l.MaxConnections),
		MaxConnectionsPerIP: count(l.MaxConnectionsPerIP),
		ConnectRate:         rate(l.ConnectRate),
		ConnectBurst:        l.ConnectBurst,
		MessageRate:         rate(l.MessageRate),
		MessageBurst:        l.MessageBurst,
		MaxTopicBytes:       size(l.MaxTopicBytes),
		MaxSubscriptions:    count(l.MaxSubscriptions),
		HandshakeTimeout:    duration(l.HandshakeTimeout),
		MaxHeaderBytes:      size(l.MaxHeaderBytes),
	}
}

func (c Cluster) config() config.Cluster {
	return config.Cluster{
		URL:         c.URL,
		Node:        c.Node,
		TTL:         duration(c.TTL),
		Grace:       duration(c.Grace),
		CallTimeout: duration(c.CallTimeout),
		User:        c.User, Password: c.Password, Token: c.Token, CredsFile: c.CredsFile,
		TLS: config.ClusterTLS{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile},
		Embedded: config.Embedded{Listen: c.Embedded.Listen, Cluster: c.Embedded.Cluster,
			Peers: c.Embedded.Peers, StoreDir: c.Embedded.StoreDir},
	}
}

// Limits in Go read zero as the default and negative as disabled; the
// configuration reads absent (zero) as the default and Unlimited as
// disabled: negative values become Unlimited, the others stay.
func duration(d time.Duration) config.Duration { return config.Duration(max(d, config.Unlimited)) }
func size(n int64) config.Size                 { return config.Size(max(n, config.Unlimited)) }
func count(n int) config.Count                 { return config.Count(max(n, config.Unlimited)) }

func rate(r float64) config.Rate {
	if r < 0 {
		return config.Unlimited
	}
	return config.Rate(r)
}

// ListenAndServe listens on Options.Addr and serves the gateway until
// Shutdown or Close, when it returns http.ErrServerClosed.
func (g *Gateway) ListenAndServe() error {
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		return fmt.Errorf("switchboard: %w", err)
	}
	return g.Serve(ln)
}

// Serve serves WebSocket clients, the management API and /healthz on ln
// until Shutdown or Close, when it returns http.ErrServerClosed; it closes
// ln. It refuses a listener on a non-loopback address while the management
// API has no credentials (see Management). Serve may be called for several
// listeners.
func (g *Gateway) Serve(ln net.Listener) error {
	if err := g.srv.CheckExposure(ln.Addr().String()); err != nil {
		_ = ln.Close()
		return fmt.Errorf("switchboard: %w", err)
	}
	hs := &http.Server{Handler: g.srv.Handler(), ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
	g.srv.ConfigureHTTP(hs)
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		_ = ln.Close()
		return http.ErrServerClosed
	}
	g.servers = append(g.servers, hs)
	g.mu.Unlock()
	return hs.Serve(ln)
}

// Handler returns the gateway's HTTP handler, to serve it on an
// http.Server of the caller's own: WebSocket upgrades at / and /{stage},
// the management API, the dashboard, /healthz and /metrics. That server's
// address is not checked as Serve's is: give the management API
// credentials (Management) unless it listens on loopback only. Shutdown
// still drains the gateway's connections, which the caller's
// http.Server.Shutdown does not track; shut that server down after it.
func (g *Gateway) Handler() http.Handler { return g.srv.Handler() }

// Shutdown stops the gateway gracefully: it closes every connection with
// 1001 Going Away, runs $disconnect for each, and waits for them until ctx
// ends, while the listeners keep answering (/healthz and new upgrades with
// 503, the management API as usual). Then it closes the listeners, lets
// management requests in flight finish within ctx, leaves the cluster and
// releases everything. When ctx ends first, the remaining connections are
// dropped and ctx's error is returned. Shutdown and Close may be called
// more than once; the later calls do nothing.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopMu.Lock()
	defer g.stopMu.Unlock()
	if g.released {
		return nil
	}
	servers := g.stop()
	err := g.srv.Drain(ctx)
	for _, hs := range servers {
		if err != nil {
			_ = hs.Close()
			continue
		}
		if serr := hs.Shutdown(ctx); serr != nil {
			_ = hs.Close()
			err = errors.Join(err, fmt.Errorf("switchboard: shutdown: %w", serr))
		}
	}
	return errors.Join(err, g.release())
}

// Close stops the gateway at once: it closes the listeners and every
// connection (1001), cancels the running route invocations, leaves the
// cluster and releases everything, without waiting for $disconnect.
func (g *Gateway) Close() error {
	g.stopMu.Lock()
	defer g.stopMu.Unlock()
	if g.released {
		return nil
	}
	var errs []error
	for _, hs := range g.stop() {
		errs = append(errs, hs.Close())
	}
	return errors.Join(append(errs, g.release())...)
}

// stop makes Serve refuse and returns the servers it made.
func (g *Gateway) stop() []*http.Server {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	return slices.Clone(g.servers)
}

// release closes the server; g.stopMu is held, and it runs once.
func (g *Gateway) release() error {
	g.released = true
	return g.srv.Close()
}

// Send sends data to one connection, of this gateway or, on a cluster, of
// another node, as the management API's PostToConnection does: in a text
// frame when data is valid UTF-8, else in a binary one. It returns ErrGone
// for a connection that does not exist or is closing, and ErrSlowConsumer
// when data overflowed its send queue.
func (g *Gateway) Send(ctx context.Context, connID string, data []byte) error {
	return deliveryErr("send to "+connID, g.hub.Send(ctx, connID, data))
}

// Disconnect closes a connection (1000), as the management API's
// DeleteConnection does; $disconnect runs once it is closed. It returns
// ErrGone for a connection that does not exist or is closing.
func (g *Gateway) Disconnect(ctx context.Context, connID string) error {
	return deliveryErr("disconnect "+connID, g.hub.Disconnect(ctx, connID))
}

// Publish sends data to the subscribers of topic, of every node of a
// cluster, and returns how many of this gateway's connections it reached.
// The frame is encoded once and shared by the recipients. On a cluster, an
// error means that this gateway's subscribers have it but the other nodes
// may not.
func (g *Gateway) Publish(ctx context.Context, topic string, data []byte) (int, error) {
	n, err := g.hub.Publish(ctx, topic, data)
	return n, deliveryErr("publish to "+topic, err)
}

// Broadcast sends data to every connection of every node and returns how
// many of this gateway's connections it reached; an error as Publish's.
func (g *Gateway) Broadcast(ctx context.Context, data []byte) (int, error) {
	n, err := g.hub.Broadcast(ctx, data)
	return n, deliveryErr("broadcast", err)
}

// Subscribe subscribes a connection of this gateway (such as a Handler's
// caller) to topic; subscribing again changes nothing. It returns ErrGone
// for a connection this gateway does not hold.
func (g *Gateway) Subscribe(ctx context.Context, connID, topic string) error {
	return deliveryErr("subscribe "+connID, g.hub.Subscribe(ctx, connID, topic, -1))
}

// Unsubscribe unsubscribes a connection of this gateway from topic;
// unsubscribing from a topic it is not subscribed to changes nothing. It
// returns ErrGone for a connection this gateway does not hold.
func (g *Gateway) Unsubscribe(ctx context.Context, connID, topic string) error {
	if !g.hub.Holds(connID) {
		return fmt.Errorf("unsubscribe %s: %w", connID, ErrGone)
	}
	return deliveryErr("unsubscribe "+connID, g.hub.Unsubscribe(ctx, connID, topic))
}

// deliveryErr names op in err and turns the gateway's errors into this
// package's.
func deliveryErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, conn.ErrGone), errors.Is(err, registry.ErrNotFound):
		return fmt.Errorf("%s: %w", op, ErrGone)
	case errors.Is(err, conn.ErrSlowConsumer):
		return fmt.Errorf("%s: %w", op, ErrSlowConsumer)
	}
	return fmt.Errorf("%s: %w", op, err)
}
