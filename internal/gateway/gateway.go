// Package gateway is the core of Switchboard: it owns the connection
// lifecycle ($connect, messages, $disconnect), routes each message to its
// integration, and delivers to connections through the Hub. It depends on
// the registry and integration contracts, never on a backend.
package gateway

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/auth"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/route"
	"github.com/switchboard-gateway/switchboard/internal/tail"
	"github.com/switchboard-gateway/switchboard/internal/workers"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// Route is one entry of the route table.
type Route struct {
	Integration integration.Integration
	// RouteResponse sends the integration's response body back to the caller
	// (API Gateway's two-way routes).
	RouteResponse bool
	// Timeout bounds one invocation of this route. Zero means Options.IntegrationTimeout.
	Timeout time.Duration
	// Inline runs the integration on the connection's reader when no other
	// message of the connection waits, instead of handing the message to a
	// goroutine of its own: one handoff less per message. Only for
	// integrations that never wait (on a network, a process or a timer):
	// while it runs, the connection is not read.
	Inline bool
	// Ordering says whether the messages of one connection that select
	// this route run one after another or at once. OrderingDefault means
	// Options.Ordering.
	Ordering Ordering
}

// Ordering says how the messages of one connection run through a route.
type Ordering uint8

const (
	// OrderingDefault is the gateway's Options.Ordering on a Route, and
	// Ordered on Options.
	OrderingDefault Ordering = iota
	// Ordered runs one connection's messages one at a time, in the order
	// they arrived: a message's route starts once the previous ordered
	// message of the connection is done.
	Ordered
	// Concurrent runs each message as soon as it arrives, as API Gateway
	// invokes a route's function for each message without waiting for the
	// previous ones: their answers may arrive in any order. What one
	// connection may start is bounded by Options.InboxSize, and a hosted
	// function runs at most its own concurrency at once; the others wait
	// for a free process within the route's timeout.
	Concurrent
)

// String returns "ordered", "concurrent", or "default".
func (o Ordering) String() string {
	switch o {
	case Ordered:
		return "ordered"
	case Concurrent:
		return "concurrent"
	}
	return "default"
}

// Options configures a Gateway. The zero value works: stage "dev", the
// default selection expression, no routes. Every limit follows one
// convention: zero means its default, negative disables it.
type Options struct {
	// Stage is the stage name reported in events. Empty means "dev".
	Stage string
	// APIID and DomainName fill requestContext. Empty means "local" and the request's Host.
	APIID      string
	DomainName string
	// Selection is the route selection expression. Nil means $request.body.action.
	Selection *route.Expression
	// Routes maps route keys, including $connect, $disconnect and $default, to routes.
	Routes map[string]Route
	// Conn configures every connection.
	Conn wsconn.Options
	// Subprotocols, when not empty, are the only subprotocols accepted; the
	// first one the client offers is selected. When empty, the first offered
	// subprotocol is echoed, so a client offering "websocket" connects.
	Subprotocols []string
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// InboxSize is how many received messages of one connection may wait
	// for their route or run at once, ordered and concurrent ones together;
	// when that many are in flight, the connection is not read until one
	// finishes. Zero or negative means DefaultInboxSize: it cannot be
	// disabled.
	InboxSize int
	// Ordering is the ordering of the routes that do not set their own.
	// Zero (OrderingDefault) means Ordered, the default: every schedule
	// Ordered produces is one API Gateway could produce, so an application
	// correct on AWS is correct here; and clients that send several
	// messages at once and read the answers in turn (scripts, tests,
	// tutorial clients) keep working, without starting a process of the
	// function for each message of a burst.
	Ordering Ordering
	// IntegrationTimeout bounds one route invocation. Zero means 29s.
	IntegrationTimeout time.Duration
	// Logger receives errors and lifecycle events. Nil means slog.Default().
	Logger *slog.Logger
	// Authorizer, when set, decides every handshake before $connect runs.
	Authorizer Authorizer
	// Origins, when not empty, are the Origin patterns (path.Match, matched
	// against "scheme://host" and "host") accepted on upgrades; 403 otherwise.
	// A handshake without Origin (not a browser) is accepted.
	Origins []string
	// MaxConnections caps open connections (503 beyond). Zero means no
	// cap, the default.
	MaxConnections int
	// MaxConnectionsPerIP caps open connections per source IP (429 beyond).
	// Zero means no cap, the default.
	MaxConnectionsPerIP int
	// ConnectRate limits new handshakes per second (429 beyond), with bursts
	// of ConnectBurst (zero means the rate, at least 1). Zero means no
	// limit, the default.
	ConnectRate  float64
	ConnectBurst int
	// MessageRate limits the messages per second one connection may send,
	// with bursts of MessageBurst (zero means the rate, at least 1); a
	// message beyond is dropped and answered with a "Too Many Requests"
	// frame. Zero means DefaultMessageRate.
	MessageRate  float64
	MessageBurst int

	// AccessLog logs one line per route invocation ($connect and
	// $disconnect included) with API Gateway's $context variable names.
	AccessLog bool
	// AccessLogFormat, when set, renders the line from a template of
	// $context.* variables, as API Gateway's access log format does, e.g.
	// "$context.requestId $context.routeKey $context.status".
	AccessLogFormat string

	// Tail, when set, receives a record of every route invocation.
	Tail *tail.Hub
	// Kinds names each route's integration kind in Tail records, by route key.
	Kinds map[string]string
}

// DefaultMessageRate is the messages per second one connection may send
// unless configured, with bursts of as many. With the send queue's
// defaults (wsconn.DefaultSendQueueBytes) a whole burst of the largest
// messages fits every receiver's queue, so a burst of one client never cuts
// a client that reads; and a hundred messages a second is more than a
// person types or most state updates need.
const DefaultMessageRate = 100

// DefaultInboxSize is how many messages of one connection may wait for
// their route or run at once unless configured: enough for a burst of
// concurrent messages to reach a function's processes at once, few enough
// that one connection holds little memory (at most this many messages of
// at most the connection's read limit) and starts little work.
const DefaultInboxSize = 32

func (o Options) withDefaults() Options {
	if o.MessageRate == 0 {
		o.MessageRate = DefaultMessageRate
	}
	if o.Stage == "" {
		o.Stage = "dev"
	}
	if o.APIID == "" {
		o.APIID = "local"
	}
	if o.Selection == nil {
		o.Selection, _ = route.Parse(route.DefaultExpression) // a constant that parses
	}
	if o.InboxSize <= 0 { // the inbox cannot be disabled
		o.InboxSize = DefaultInboxSize
	}
	if o.Ordering == OrderingDefault {
		o.Ordering = Ordered
	}
	if o.IntegrationTimeout == 0 {
		o.IntegrationTimeout = 29 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// OptionsForTest returns the options the gateway runs with, defaults
// applied, its connections' included.
func (g *Gateway) OptionsForTest() Options {
	s := g.cur.Load()
	o := s.opts
	o.Conn = s.ws.Options()
	return o
}

// ErrIntegrationTimeout is returned when a route's integration did not answer
// within its timeout; the caller gets "Endpoint request timed out". An
// integration's own timeout (a Lambda function's) is an integration error.
var ErrIntegrationTimeout = errors.New("gateway: integration timed out")

// Gateway terminates client connections and runs their routes. Create it
// with New; it serves WebSocket upgrades as an http.Handler.
type Gateway struct {
	hub *Hub
	log *slog.Logger
	cur atomic.Pointer[snapshot] // what Reload swaps; loaded once per handshake and per message

	draining atomic.Bool
	conns    sync.WaitGroup // one per served connection, through $disconnect

	capMu sync.Mutex // guards open and perIP
	open  int
	perIP map[string]int

	// base is cancelled by Close to abandon route invocations still running.
	base   context.Context
	cancel context.CancelFunc
}

// snapshot is the configuration in force: built whole by New and Reload and
// never modified, so that a handshake or a message reads one consistent
// version of it with a single atomic load and no lock.
type snapshot struct {
	opts           Options // with defaults
	routes         *route.Table[Route]
	ws             *wsconn.Upgrader
	connectLimiter *rate.Limiter // nil when unlimited
	// series are each route's per-message metrics and invocation context,
	// by route key, so that a message does not look its labels up or
	// make a context.
	series map[string]*routeSeries
	base   context.Context // the gateway's: invocations run under it
}

// routeSeries are one route's per-message metrics, each looked up by its
// labels once, when first used, and then kept for the snapshot's life, and
// the context its invocations run under (base, marked as the route's for
// the deliveries they make).
type routeSeries struct {
	kind     string
	source   context.Context
	in       func() prometheus.Counter
	out      func() prometheus.Counter
	duration func() prometheus.Observer
}

func newRouteSeries(m *metrics.Metrics, base context.Context, key, kind string) *routeSeries {
	return &routeSeries{
		kind:     kind,
		source:   withSource(base, key),
		in:       sync.OnceValue(func() prometheus.Counter { return m.MessagesIn.WithLabelValues(key) }),
		out:      sync.OnceValue(func() prometheus.Counter { return m.MessagesOut.WithLabelValues(key) }),
		duration: sync.OnceValue(func() prometheus.Observer { return m.IntegrationDuration.WithLabelValues(key, kind) }),
	}
}

func newSnapshot(opts Options, m *metrics.Metrics, base context.Context) *snapshot {
	opts = opts.withDefaults()
	s := &snapshot{opts: opts, routes: route.NewTable(opts.Routes), ws: wsconn.NewUpgrader(opts.Conn),
		series: make(map[string]*routeSeries, len(opts.Routes)), base: base}
	for key := range opts.Routes {
		s.series[key] = newRouteSeries(m, base, key, opts.Kinds[key])
	}
	if opts.ConnectRate > 0 {
		s.connectLimiter = rate.NewLimiter(rate.Limit(opts.ConnectRate), burst(opts.ConnectRate, opts.ConnectBurst))
	}
	return s
}

// routeSeries returns the metrics of the route key: the snapshot's for one
// of its routes, else new ones (a route key the options did not list).
func (s *snapshot) routeSeries(m *metrics.Metrics, key string) *routeSeries {
	if rs, ok := s.series[key]; ok {
		return rs
	}
	return newRouteSeries(m, s.base, key, s.opts.Kinds[key])
}

// New returns a gateway delivering through hub.
func New(hub *Hub, opts Options) *Gateway {
	base, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		hub:    hub,
		log:    opts.withDefaults().Logger,
		base:   base,
		cancel: cancel,
		perIP:  make(map[string]int),
	}
	g.cur.Store(newSnapshot(opts, hub.metrics, base))
	return g
}

// Reload replaces the gateway's options while it runs. Every handshake and
// every message that starts after Reload returns uses opts, messages still
// waiting in a connection's inbox included; those already running finish
// with the options they started with. Open connections keep
// their ID, their socket and the connection limits (Conn) they were
// accepted with, and the MessageRate in force at their first message;
// routes, authorizer, origins, caps, timeouts and the access log apply to
// them from their next message. Options.Logger is
// fixed by New. Reload is safe to call concurrently with everything else;
// the caller stops what the previous routes' integrations hold once their
// invocations are done.
func (g *Gateway) Reload(opts Options) { g.cur.Store(newSnapshot(opts, g.hub.metrics, g.base)) }

func burst(r float64, b int) int {
	if b > 0 {
		return b
	}
	return max(int(r), 1)
}

// Authorizer decides whether a handshake may proceed; see package auth.
type Authorizer interface {
	Authorize(ctx context.Context, req *auth.ConnectRequest) (*auth.Identity, error)
}

// client is one connection served by this node.
type client struct {
	g        *Gateway
	info     *integration.Conn
	ws       *wsconn.Conn
	sourceIP string // its connection slot, released at the end

	limiter *rate.Limiter  // messages per second; made on the first message, nil when unlimited
	slots   chan struct{}  // one token per message waiting or running; made by the first message
	pending sync.WaitGroup // messages not yet handled

	mu      sync.Mutex // guards inbox and running
	inbox   []routed
	running bool
}

// ServeHTTP accepts a WebSocket connection and serves it until it closes:
// admission checks, the authorizer and $connect, then messages, then
// $disconnect.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	snap, sourceIP, ok := g.admit(w, r)
	if !ok {
		return
	}
	g.conns.Add(1)
	c := g.handshake(w, r, snap, sourceIP)
	if c == nil {
		g.release(sourceIP)
		g.conns.Done()
		return
	}
	// The handler returns once the connection is started, so that net/http
	// frees what it kept for the request (its read buffer among it); the
	// connection holds no goroutine while idle.
	g.serve(c)
}

// admit applies every check that needs no integration: the upgrade itself,
// draining, the origin allowlist, the connect rate and the connection caps.
// It answers refused requests, and reserves a connection slot for the others
// (release it). The configuration it read is the one the whole handshake
// uses.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request) (s *snapshot, sourceIP string, ok bool) {
	if !isUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "Upgrade Required: this is a WebSocket endpoint", http.StatusUpgradeRequired)
		return nil, "", false
	}
	// A handshake the upgrade would refuse must not cost an authorizer or
	// $connect call, nor leave a $connect without its $disconnect.
	if status, msg := checkHandshake(r); status != 0 {
		if status == http.StatusBadRequest && r.Header.Get("Sec-WebSocket-Version") != "13" {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		writeMessage(w, status, msg)
		return nil, "", false
	}
	m := g.hub.metrics
	s = g.cur.Load()
	if g.draining.Load() {
		m.Connects.WithLabelValues(metrics.ConnectDraining).Inc()
		http.Error(w, "Service Unavailable: shutting down", http.StatusServiceUnavailable)
		return nil, "", false
	}
	if !s.originAllowed(r) {
		m.Connects.WithLabelValues(metrics.ConnectForbidden).Inc()
		writeMessage(w, http.StatusForbidden, "Forbidden: origin not allowed")
		return nil, "", false
	}
	if s.connectLimiter != nil && !s.connectLimiter.Allow() {
		m.Connects.WithLabelValues(metrics.ConnectLimited).Inc()
		writeMessage(w, http.StatusTooManyRequests, "Too Many Requests")
		return nil, "", false
	}
	sourceIP = s.sourceIP(r)
	if status, msg := g.reserve(s, sourceIP); status != 0 {
		m.Connects.WithLabelValues(metrics.ConnectLimited).Inc()
		writeMessage(w, status, msg)
		return nil, "", false
	}
	return s, sourceIP, true
}

// handshake runs the authorizer and $connect and upgrades the connection;
// it returns nil when the handshake was refused (and answered).
func (g *Gateway) handshake(w http.ResponseWriter, r *http.Request, s *snapshot, sourceIP string) *client {
	m := g.hub.metrics
	now := time.Now()
	info := &integration.Conn{
		ID:          g.hub.newConnID(),
		ConnectedAt: now,
		SourceIP:    sourceIP,
		UserAgent:   r.UserAgent(),
		Stage:       s.opts.Stage,
		DomainName:  cmp.Or(s.opts.DomainName, r.Host),
		APIID:       s.opts.APIID,
	}
	connect, hasConnect := s.routes.Get(route.Connect)
	hasConnect = hasConnect && connect.Integration != nil
	if s.opts.Authorizer != nil || hasConnect {
		// Only the authorizer and $connect see the request's headers and query.
		info.Header, info.Query = connectHeaders(r), r.URL.Query()
		if len(info.Header.Values("X-Forwarded-For")) == 0 {
			info.Header.Set("X-Forwarded-For", info.SourceIP)
		}
	}

	subprotocol := s.subprotocol(r)
	if s.opts.Authorizer != nil {
		id, err := g.authorize(s, info)
		if err != nil {
			status := auth.Status(err)
			g.log.Info("handshake refused by the authorizer", "connectionId", info.ID, "sourceIp", info.SourceIP, "status", status, "err", err)
			m.Connects.WithLabelValues(authResult(status)).Inc()
			writeMessage(w, status, authMessage(status))
			return nil
		}
		info.Principal, info.Authorizer = id.Principal, id.Context
		info.User = id.Principal
		if id.Subprotocol != "" {
			subprotocol = id.Subprotocol
		}
	}
	if hasConnect {
		resp, err := g.invoke(s, s.routeSeries(m, route.Connect), connect, time.Now(), &integration.Request{
			RouteKey:  route.Connect,
			EventType: apigw.EventConnect,
			RequestID: apigw.NewID(),
			Time:      now,
			Conn:      info,
		})
		if err != nil {
			g.log.Warn("$connect integration failed", "connectionId", info.ID, "err", err)
			m.Connects.WithLabelValues(metrics.ConnectFailed).Inc()
			writeMessage(w, http.StatusBadGateway, "Bad Gateway")
			return nil
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			m.Connects.WithLabelValues(metrics.ConnectRejected).Inc()
			w.WriteHeader(resp.StatusCode)
			return nil
		}
		if p, ok := header(resp.Headers, "Sec-WebSocket-Protocol"); ok {
			subprotocol = p
		}
		if u, _ := header(resp.Headers, integration.UserHeader); u != "" { // empty: no user
			if err := checkUser(u); err != nil {
				g.log.Warn("$connect named a bad user", "connectionId", info.ID, "err", err)
				m.Connects.WithLabelValues(metrics.ConnectFailed).Inc()
				writeMessage(w, http.StatusBadGateway, "Bad Gateway")
				return nil
			}
			info.User = u
		}
	}

	if info.Header != nil { // an open connection does not keep them
		kept := *info
		kept.Header, kept.Query = nil, nil
		info = &kept
	}
	c := &client{g: g, info: info, sourceIP: sourceIP}
	// Registered before the 101 is written, so that the management API knows
	// the connection as soon as the client has its 101; a registry that
	// fails answers 500 instead.
	registered := false
	_, err := s.ws.Accept(w, r, wsconn.AcceptOptions{Subprotocol: subprotocol, BeforeOpen: func(ws *wsconn.Conn) error {
		c.ws = ws
		if err := g.hub.add(g.base, c); err != nil {
			g.log.Error("connection not registered", "connectionId", info.ID, "err", err)
			return err
		}
		registered = true
		return nil
	}})
	if err != nil {
		g.log.Debug("upgrade failed", "err", err)
		code, reason := wsconn.StatusInternalError, "Internal server error"
		if registered { // the 101 could not be written
			code, reason = wsconn.StatusAbnormal, ""
			if err := g.hub.remove(g.base, info.ID); err != nil {
				g.log.Error("connection not unregistered", "connectionId", info.ID, "err", err)
			}
		}
		if hasConnect { // a $connect that succeeded gets its $disconnect
			g.runDisconnect(s, info, code, reason)
		}
		return nil
	}
	return c
}

// serve starts c; its OnClose unregisters it and runs $disconnect.
func (g *Gateway) serve(c *client) {
	m, info, ws := g.hub.metrics, c.info, c.ws
	if g.draining.Load() { // Drain's closeAll may have run before add
		ws.Close(wsconn.StatusGoingAway, wsconn.ReasonGoingAway)
	}
	m.Connects.WithLabelValues(metrics.ConnectAccepted).Inc()
	m.ConnectionsOpen.Inc()
	g.log.Debug("connected", "connectionId", info.ID, "sourceIp", info.SourceIP)
	ws.Start(c)
}

// OnMessage runs or queues a message's route; see Gateway.receive.
func (c *client) OnMessage(m wsconn.Message) { c.g.receive(c, m) }

// OnClose runs when c has closed, on a goroutine of its own.
func (c *client) OnClose(closed wsconn.CloseInfo) {
	defer c.g.conns.Done()
	defer c.g.release(c.sourceIP)
	c.g.disconnected(c, closed)
}

// disconnected runs when c has closed: once every message is handled, it
// unregisters c and runs $disconnect.
func (g *Gateway) disconnected(c *client, closed wsconn.CloseInfo) {
	m, info := g.hub.metrics, c.info
	c.pending.Wait()
	if err := g.hub.remove(g.base, info.ID); err != nil {
		g.log.Error("connection not unregistered", "connectionId", info.ID, "err", err)
	}
	m.ConnectionsOpen.Dec()
	m.Disconnects.WithLabelValues(disconnectReason(closed)).Inc()
	g.log.Debug("disconnected", "connectionId", info.ID, "code", closed.Code, "reason", closed.Reason)
	g.runDisconnect(g.cur.Load(), info, closed.Code, closed.Reason)
}

// runDisconnect invokes the $disconnect route, if there is one, for a
// connection that ended with code and reason.
func (g *Gateway) runDisconnect(s *snapshot, info *integration.Conn, code wsconn.StatusCode, reason string) {
	rt, ok := s.routes.Get(route.Disconnect)
	if !ok {
		return
	}
	if _, err := g.invoke(s, s.routeSeries(g.hub.metrics, route.Disconnect), rt, time.Now(), &integration.Request{
		RouteKey:             route.Disconnect,
		EventType:            apigw.EventDisconnect,
		RequestID:            apigw.NewID(),
		Time:                 time.Now(),
		Conn:                 info,
		DisconnectStatusCode: int(code),
		DisconnectReason:     reason,
	}); err != nil {
		g.log.Warn("$disconnect integration failed", "connectionId", info.ID, "err", err)
	}
}

// connectHeaders are the upgrade request's headers as API Gateway passes
// them to $connect: with Host and the X-Forwarded-* headers it adds.
// Connection and Upgrade are kept for authorizers; integrations drop them.
func connectHeaders(r *http.Request) http.Header {
	h := make(http.Header, len(r.Header)+4)
	for k, vs := range r.Header {
		h[k] = append([]string(nil), vs...)
	}
	h["Host"] = []string{r.Host}
	proto, port := "http", "80"
	if r.TLS != nil {
		proto, port = "https", "443"
	}
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	if len(h.Values("X-Forwarded-Proto")) == 0 {
		h.Set("X-Forwarded-Proto", proto)
		h.Set("X-Forwarded-Port", port)
	}
	return h
}

// writeMessage answers a refused handshake as API Gateway does: {"message": "..."}.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"message": msg})
	_, _ = w.Write(b)
}

func authMessage(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	}
	return "Internal server error"
}

// authorize runs the authorizer on the handshake.
func (g *Gateway) authorize(s *snapshot, info *integration.Conn) (*auth.Identity, error) {
	ctx, cancel := context.WithTimeout(g.base, s.opts.IntegrationTimeout)
	defer cancel()
	id, err := s.opts.Authorizer.Authorize(ctx, &auth.ConnectRequest{
		ConnID: info.ID, SourceIP: info.SourceIP, UserAgent: info.UserAgent, Stage: info.Stage,
		APIID: info.APIID, DomainName: info.DomainName, RequestID: apigw.NewID(),
		Header: info.Header, Query: info.Query, Time: info.ConnectedAt,
	})
	if err == nil && id == nil {
		err = errors.New("gateway: authorizer returned no identity")
	}
	return id, err
}

// originAllowed applies the Origins allowlist.
func (s *snapshot) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(s.opts.Origins) == 0 || origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, p := range s.opts.Origins {
		for _, candidate := range []string{u.Scheme + "://" + u.Host, u.Host} {
			if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(candidate)); ok {
				return true
			}
		}
	}
	return false
}

// reserve counts a handshake against the connection caps; a non-zero status refuses it.
func (g *Gateway) reserve(s *snapshot, ip string) (int, string) {
	g.capMu.Lock()
	defer g.capMu.Unlock()
	if s.opts.MaxConnections > 0 && g.open >= s.opts.MaxConnections {
		return http.StatusServiceUnavailable, "Service Unavailable: connection limit reached"
	}
	if s.opts.MaxConnectionsPerIP > 0 && g.perIP[ip] >= s.opts.MaxConnectionsPerIP {
		return http.StatusTooManyRequests, "Too Many Requests: connection limit per address reached"
	}
	g.open++
	g.perIP[ip]++
	return 0, ""
}

func (g *Gateway) release(ip string) {
	g.capMu.Lock()
	defer g.capMu.Unlock()
	g.open--
	if g.perIP[ip]--; g.perIP[ip] <= 0 {
		delete(g.perIP, ip)
	}
}

// checkHandshake applies RFC 6455 §4.2.1 to an upgrade request; a non-zero
// status refuses it.
func checkHandshake(r *http.Request) (int, string) {
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, "Method Not Allowed: a WebSocket handshake is a GET"
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || v[0] != "13" {
		return http.StatusBadRequest, "Bad Request: Sec-WebSocket-Version must be 13"
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return http.StatusBadRequest, "Bad Request: exactly one Sec-WebSocket-Key is required"
	}
	if k, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(k) != 16 {
		return http.StatusBadRequest, "Bad Request: Sec-WebSocket-Key must be 16 bytes in base64"
	}
	return 0, ""
}

func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func header(h map[string]string, key string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// subprotocol picks the subprotocol to accept among the client's offers.
func (s *snapshot) subprotocol(r *http.Request) string {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, offered := range strings.Split(v, ",") {
			offered = strings.TrimSpace(offered)
			if offered == "" {
				continue
			}
			if len(s.opts.Subprotocols) == 0 {
				return offered
			}
			for _, p := range s.opts.Subprotocols {
				if p == offered {
					return offered
				}
			}
		}
	}
	return ""
}

// sourceIP is the peer's address, or, when the peer is a trusted proxy, the
// right-most X-Forwarded-For address that is not itself a trusted proxy.
func (s *snapshot) sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		addr, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing to its left
		}
		addr = addr.Unmap()
		if !s.trusted(addr) {
			return addr.String()
		}
		peer = addr
	}
	return peer.String()
}

func (s *snapshot) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// receive runs a message's route, or queues it. Messages of one connection
// through Ordered routes run one at a time, in order: an Inline route runs
// here, on the reader, when nothing of the connection waits; the others run
// on a goroutine that exists only while there is work. A message through a
// Concurrent route runs at once: on the reader when its route is Inline,
// else on a goroutine of its own. Other connections are never delayed.
// When InboxSize messages wait or run, the reader blocks here, which stops
// reading that client.
func (g *Gateway) receive(c *client, m wsconn.Message) {
	snap := g.cur.Load()
	if c.limiter == nil && snap.opts.MessageRate > 0 { // the reader's own field: an idle connection has none
		c.limiter = rate.NewLimiter(rate.Limit(snap.opts.MessageRate), burst(snap.opts.MessageRate, snap.opts.MessageBurst))
	}
	if c.limiter != nil && !c.limiter.Allow() {
		g.hub.metrics.Dropped.WithLabelValues(metrics.DropRateLimited).Inc()
		_ = g.hub.answer(c, true, wsconn.Text, apigw.ErrorFrame(apigw.MsgTooManyRequests, c.info.ID, apigw.NewID()), g.hub.out(noRoute))
		return
	}
	r := g.route(snap, m)
	concurrent := r.found && snap.ordering(r.route) == Concurrent
	if r.found && r.route.Inline {
		c.mu.Lock()
		overtakes := c.running && !concurrent
		c.mu.Unlock()
		if !overtakes {
			// Nothing of this connection waits, or nothing need be waited for.
			g.handle(c, r, true)
			return
		}
	}
	if c.slots == nil { // the reader's own field: an idle connection has none
		c.slots = make(chan struct{}, r.snap.opts.InboxSize)
	}
	select {
	case c.slots <- struct{}{}:
	default:
		// The reader waits for room: the answers it queued go out first.
		c.ws.Flush()
		c.slots <- struct{}{}
	}
	c.pending.Add(1)
	if concurrent {
		workers.Go(func() {
			g.handle(c, r, false)
			<-c.slots
			c.pending.Done()
		})
		return
	}
	c.mu.Lock()
	c.inbox = append(c.inbox, r)
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		workers.Go(func() { g.drainInbox(c) })
	}
}

// ordering is rt's ordering in s.
func (s *snapshot) ordering(rt Route) Ordering {
	if rt.Ordering == OrderingDefault {
		return s.opts.Ordering
	}
	return rt.Ordering
}

// drainInbox runs c's queued messages in order until none is left.
func (g *Gateway) drainInbox(c *client) {
	for {
		c.mu.Lock()
		if len(c.inbox) == 0 {
			c.running = false
			c.inbox = nil
			c.mu.Unlock()
			return
		}
		r := c.inbox[0]
		c.inbox[0] = routed{}
		c.inbox = c.inbox[1:]
		c.mu.Unlock()
		if s := g.cur.Load(); r.snap != s {
			// Reloaded while it waited: the routes it was selected in may
			// hold integrations that are being stopped.
			r = g.route(s, r.msg)
		}
		g.handle(c, r, false)
		<-c.slots
		c.pending.Done()
	}
}

// routed is a message and the route its body selected.
type routed struct {
	msg      wsconn.Message
	snap     *snapshot // the configuration that selected the route
	routeKey string
	route    Route
	found    bool
}

// route selects a message's route in s.
func (g *Gateway) route(s *snapshot, m wsconn.Message) routed {
	key, selected := "", false
	if m.Type != wsconn.Binary {
		key, selected = s.opts.Selection.Select(m.Data)
	}
	r := routed{msg: m, snap: s}
	r.routeKey, r.route, r.found = s.routes.Match(key, selected)
	return r
}

// handle runs one message's route and answers the caller as API Gateway
// would; onReader says it runs on the reader that read the message.
func (g *Gateway) handle(c *client, r routed, onReader bool) {
	m := r.msg
	requestID, messageID := apigw.NewIDPair()
	received := m.Received
	if received.IsZero() {
		received = time.Now()
	}
	req := &integration.Request{
		EventType: apigw.EventMessage,
		RequestID: requestID,
		MessageID: messageID,
		Time:      received,
		Conn:      c.info,
		Body:      m.Data,
		Binary:    m.Type == wsconn.Binary,
	}
	routeKey, rt := r.routeKey, r.route
	if !r.found {
		g.hub.metrics.MessagesIn.WithLabelValues(noRoute).Inc()
		_ = g.hub.answer(c, onReader, wsconn.Text, apigw.ErrorFrame(apigw.MsgForbidden, c.info.ID, req.RequestID), g.hub.out(noRoute))
		if t := r.snap.opts.Tail; t != nil {
			// No integration ran; the tail shows what the caller was told.
			t.Publish(tail.Record{
				Time: req.Time, ConnectionID: c.info.ID, RequestID: req.RequestID, EventType: req.EventType,
				Status: http.StatusForbidden, Error: apigw.MsgForbidden, Bytes: len(m.Data), Unmatched: true,
			})
		}
		return
	}
	series := r.snap.routeSeries(g.hub.metrics, routeKey)
	series.in().Inc()
	req.RouteKey = routeKey
	// The integration's latency counts from here: the read's clock reading
	// is earlier by the handling of the messages before this one.
	resp, err := g.invoke(r.snap, series, rt, time.Now(), req)
	if err != nil {
		_ = g.hub.answer(c, onReader, wsconn.Text, apigw.ErrorFrame(g.clientMessage(routeKey, c.info.ID, err), c.info.ID, req.RequestID), series.out())
		return
	}
	if rt.RouteResponse && len(resp.Body) > 0 {
		typ := messageType(resp.Body)
		if resp.Binary {
			typ = wsconn.Binary
		}
		_ = g.hub.answer(c, onReader, typ, resp.Body, series.out())
	}
}

// clientMessage turns an integration error into the message of the error
// frame the caller sees, logging what the caller is not told.
func (g *Gateway) clientMessage(routeKey, connID string, err error) string {
	var ce *integration.ClientError
	switch {
	case errors.As(err, &ce):
		return ce.Message
	case errors.Is(err, ErrIntegrationTimeout):
		g.log.Warn("integration timed out", "route", routeKey, "connectionId", connID)
		return apigw.MsgTimedOut
	default:
		g.log.Error("integration failed", "route", routeKey, "connectionId", connID, "err", err)
		return apigw.MsgInternalServerError
	}
}

// invoke runs one integration with the integration timeout; its latency
// counts from start. A nil response from a successful integration reads as
// 200 with no body.
func (g *Gateway) invoke(s *snapshot, series *routeSeries, rt Route, start time.Time, req *integration.Request) (*integration.Response, error) {
	timeout := rt.Timeout
	if timeout <= 0 {
		timeout = s.opts.IntegrationTimeout
	}
	ctx := series.source
	if !rt.Inline { // an inline route never waits: no timer for it
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	resp, err := rt.Integration.Invoke(ctx, req)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The gateway's own deadline, even if the integration ignored it.
		err = fmt.Errorf("%w after %v: %v", ErrIntegrationTimeout, timeout, err)
	}
	if err == nil {
		if resp == nil {
			resp = &integration.Response{StatusCode: http.StatusOK}
		}
		if resp.StatusCode == 0 {
			resp.StatusCode = http.StatusOK
		}
		err = integration.CheckStatus(resp.StatusCode)
	}
	g.observe(s, series, req, resp, err, start)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// observe records one invocation in metrics, the access log and the tail.
func (g *Gateway) observe(s *snapshot, series *routeSeries, req *integration.Request, resp *integration.Response, err error, start time.Time) {
	latency := time.Since(start)
	m := g.hub.metrics
	kind := series.kind
	series.duration().Observe(latency.Seconds())
	status := 0
	if err == nil {
		status = resp.StatusCode
	} else {
		m.IntegrationErrors.WithLabelValues(req.RouteKey, errorKind(err)).Inc()
	}
	if s.opts.AccessLog {
		g.accessLog(s.opts.AccessLogFormat, req, status, latency, err)
	}
	if s.opts.Tail != nil {
		rec := tail.Record{
			Time: start, ConnectionID: req.Conn.ID, RequestID: req.RequestID, RouteKey: req.RouteKey,
			EventType: req.EventType, Integration: kind, Latency: latency, Bytes: len(req.Body), Status: status,
		}
		if err != nil {
			rec.Error = err.Error()
		}
		s.opts.Tail.Publish(rec)
	}
}

// Stats are running totals since the gateway started, read from its metrics.
type Stats struct {
	Connections int   `json:"connections"`
	Connects    int64 `json:"connects"`
	Disconnects int64 `json:"disconnects"`
	MessagesIn  int64 `json:"messagesIn"`  // routed (or answered Forbidden); messages dropped by a rate limit excluded
	MessagesOut int64 `json:"messagesOut"` // queued to connections, route responses and error frames included
	// Errors are the route invocations that failed and the messages that
	// matched no route (answered Forbidden).
	Errors int64 `json:"errors"`
}

// Stats returns the running totals.
func (g *Gateway) Stats() Stats {
	m := g.hub.metrics
	return Stats{
		Connections: g.hub.Count(),
		Connects:    int64(metrics.Sum(m.Connects, metrics.ConnectAccepted)),
		Disconnects: int64(metrics.Sum(m.Disconnects)),
		MessagesIn:  int64(metrics.Sum(m.MessagesIn)),
		MessagesOut: int64(metrics.Sum(m.MessagesOut)),
		Errors:      int64(metrics.Sum(m.IntegrationErrors) + metrics.Sum(m.MessagesIn, noRoute)),
	}
}

// Hub returns the hub the gateway delivers through.
func (g *Gateway) Hub() *Hub { return g.hub }

// Drain stops accepting connections, closes every open one with 1001 Going
// Away, and waits until each has run $disconnect or ctx ends. Route
// invocations still running when ctx ends are cancelled.
func (g *Gateway) Drain(ctx context.Context) error {
	g.draining.Store(true)
	g.hub.closeAll(wsconn.StatusGoingAway, wsconn.ReasonGoingAway)
	done := make(chan struct{})
	go func() {
		g.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		g.cancel()
		return nil
	case <-ctx.Done():
		g.cancel()
		return ctx.Err()
	}
}

// Draining reports whether Drain was called.
func (g *Gateway) Draining() bool { return g.draining.Load() }

var _ io.Closer = (*Gateway)(nil)

// Close closes every connection (1001) and cancels every running route
// invocation. Call it after Drain.
func (g *Gateway) Close() error {
	g.hub.closeAll(wsconn.StatusGoingAway, wsconn.ReasonGoingAway)
	g.cancel()
	return nil
}
