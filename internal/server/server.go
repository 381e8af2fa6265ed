// Package server assembles a running gateway from a config.Config: the
// registry, hub, route table, gateway and management API behind one
// http.Handler, and the readiness, drain and reload that `switchboard serve`
// drives.
package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-gateway/switchboard/internal/cluster"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/consumer"
	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/memhist"
	"github.com/switchboard-gateway/switchboard/internal/httpevent"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/mgmtapi"
	"github.com/switchboard-gateway/switchboard/internal/queue/memqueue"
	"github.com/switchboard-gateway/switchboard/internal/rates"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/route"
	"github.com/switchboard-gateway/switchboard/internal/tail"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// Server is a configured gateway and its HTTP surface.
type Server struct {
	cfg   *config.Config // the configuration in force; written by Reload only
	opts  Options
	log   *slog.Logger
	gw    *gateway.Gateway
	mux   *http.ServeMux // WebSocket upgrades, and management unless it has its own listener
	mgmt  *http.ServeMux // management API and dashboard, for management.listen
	ready atomic.Bool

	guarded    atomic.Pointer[managed] // management API, dashboard, metrics behind the credentials; swapped by Reload
	built      *builder                // what the configuration in force holds: functions, integrations
	reloadMu   sync.Mutex              // one Reload at a time
	retiring   sync.WaitGroup          // functions a Reload replaced, finishing their invocations
	metrics    *metrics.Metrics
	metricsReg *prometheus.Registry
	tail       *tail.Hub                        // recent route invocations, for the dashboard
	async      sync.WaitGroup                   // Event invocations of the Lambda Invoke API
	httpRoutes atomic.Pointer[httpevent.Router] // the project's HTTP routes; swapped by Reload
	stage      string                           // the stage the listener was built with (restart-only)
	cluster    *cluster.Cluster                 // nil for a node alone
	rates      *rates.Ring                      // the dashboard's chart: recent rates, sampled by a goroutine
	stopRates  context.CancelFunc               // ends the sampling; Close calls it and waits for ratesDone
	ratesDone  chan struct{}
	events     *metrics.Events      // the event rules' metrics
	consumers  []*consumer.Consumer // read events from a bus into topics; restart-only
	queues     queueStore           // the queues, kept across reloads
	qmetrics   *metrics.Queues      // the queues' metrics
	draining   context.Context      // done once Drain starts: ends the SQS API's long polls
	drain      context.CancelFunc   // ends draining
	mgmtOnMain bool                 // the main listener serves the management surface
}

// Options are what New needs besides the config.
type Options struct {
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Addr is the address the listener got (host:port), used to tell
	// functions the management API's URL. Empty means cfg.Listen.
	Addr string
	// FunctionOutput receives hosted functions' output, each line prefixed
	// with the function's name. Nil means os.Stderr.
	FunctionOutput io.Writer
	// CAFile and CABundle, when set, are the local CA certificate that
	// signs the listener's TLS leaf, and a bundle of the system roots and
	// that CA: hosted functions trust it through NODE_EXTRA_CA_CERTS (the
	// CA), AWS_CA_BUNDLE and SSL_CERT_FILE (the bundle, as both replace the
	// roots of clients that read them), unless their environment sets them.
	// The banner then shows the wss:// and https:// URLs too.
	CAFile, CABundle string
	// Handlers are routes served by integrations given in code (the public
	// switchboard package's Go handlers), by route key, beside cfg.Routes:
	// a key in both is refused. Each is of kind "go"; it runs on the
	// connection's reader only when it declares so (integration.Inliner),
	// and the body of its response goes back to the caller. A Reload keeps them.
	Handlers map[string]integration.Integration
}

// KindGo is the integration kind of Options.Handlers, in the route table
// shown by the banner and the dashboard, and in metrics.
const KindGo = "go"

// New builds a server from a validated config. Close releases what its
// integrations hold.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Addr == "" {
		opts.Addr = cfg.Listen
	}
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger, mux: http.NewServeMux(), stage: cfg.Stage}
	host, _ := os.Hostname()
	s.metricsReg = prometheus.NewRegistry()
	s.metrics = metrics.New(s.metricsReg)
	s.events = metrics.NewEvents(s.metricsReg)
	s.qmetrics = metrics.NewQueues(s.metricsReg, s.queueCounts)
	s.draining, s.drain = context.WithCancel(context.Background())
	s.mgmtOnMain = cfg.Management.Listen == ""
	var hist gateway.History
	if cfg.Cluster.URL == "" { // a cluster keeps it in its engine
		var err error
		if hist, err = newHistory(cfg); err != nil {
			return nil, err
		}
	}
	hub, err := gateway.StartHub(context.Background(), gateway.HubOptions{Directory: memreg.New(), Node: host,
		Metrics: s.metrics, Announce: announcer(cfg.Presence), History: hist})
	if err != nil {
		return nil, err
	}
	if cfg.Cluster.URL != "" {
		if hub, err = s.joinCluster(cfg); err != nil {
			return nil, err
		}
		s.queues = newQueueStore(cfg, s.cluster, s.qmetrics.Leave, s.log)
	} else {
		s.queues = newQueueStore(cfg, nil, s.qmetrics.Leave, s.log)
	}
	s.tail = tail.New(200, 64)
	b, gopts, err := s.build(cfg, hub, nil)
	if err != nil {
		s.closeCluster()
		return nil, err
	}
	s.built = b
	if err := s.startQueues(b); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.httpRoutes.Store(b.router)
	s.gw = gateway.New(hub, gopts)
	if err := s.startConsumers(cfg, hub); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.rates = rates.New(func() rates.Totals {
		st := s.gw.Stats()
		return rates.Totals{Connections: st.Connections, In: st.MessagesIn, Out: st.MessagesOut, Errors: st.Errors}
	}, rates.Options{})
	guarded, err := s.management(b)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.guarded.Store(guarded)
	s.mgmt = http.NewServeMux()
	s.mgmt.HandleFunc("GET /healthz", s.healthz)
	s.mount(s.mgmt, guarded)

	s.mux.HandleFunc("GET /healthz", s.healthz)
	if cfg.Management.Listen == "" {
		s.mount(s.mux, guarded)
	} else {
		// The management API has a listener of its own: here, any other
		// path is unknown, answered as API Gateway answers one.
		s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.guarded.Load().notFound.ServeHTTP(w, r) })
	}
	s.mux.Handle("/{$}", s.gw)
	s.mux.Handle("/"+cfg.Stage, s.gw)
	s.mux.Handle("/"+cfg.Stage+"/{$}", s.gw)
	ctx, cancel := context.WithCancel(context.Background())
	s.stopRates, s.ratesDone = cancel, make(chan struct{})
	go func() {
		defer close(s.ratesDone)
		s.rates.Run(ctx)
	}()
	return s, nil
}

// joinCluster connects the engine of cfg.Cluster and returns a hub on its
// directory and bus; the cluster's background work runs from then on.
func (s *Server) joinCluster(cfg *config.Config) (*gateway.Hub, error) {
	cc := cfg.Cluster
	o := cluster.Options{
		URL:         cc.URL,
		Node:        cc.Node,
		TTL:         componentDuration(cc.TTL),
		Grace:       componentDuration(cc.Grace),
		CallTimeout: componentDuration(cc.CallTimeout),
		User:        cc.User, Password: cc.Password, Token: cc.Token, CredsFile: cc.CredsFile,
		CAFile: cc.TLS.CAFile, CertFile: cc.TLS.CertFile, KeyFile: cc.TLS.KeyFile,
		Embedded: cluster.Embedded{Listen: cc.Embedded.Listen, Cluster: cc.Embedded.Cluster,
			Peers: cc.Embedded.Peers, StoreDir: cc.Embedded.StoreDir},
		Logger:  s.log,
		Metrics: metrics.NewCluster(s.metricsReg),
		History: historyRules(cfg),
		// The queues' metrics are registered before the cluster starts.
		QueueLeft: s.qmetrics.Leave,
	}
	// A named node keeps its JetStream store in the data directory across
	// restarts; an unnamed one gets a new name, and a temporary store, each time.
	if o.Embedded.StoreDir == "" && cc.Node != "" && cfg.TLS.DataDir != "" {
		o.Embedded.StoreDir = filepath.Join(cfg.TLS.DataDir, "nats", cc.Node)
	}
	for _, f := range []*string{&o.CredsFile, &o.CAFile, &o.CertFile, &o.KeyFile, &o.Embedded.StoreDir} {
		if *f != "" && !filepath.IsAbs(*f) && cfg.Dir != "" {
			*f = filepath.Join(cfg.Dir, *f)
		}
	}
	c, err := cluster.Start(context.Background(), o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(o.CallTimeout, gateway.DefaultCallTimeout))
	defer cancel()
	ho := gateway.HubOptions{Directory: c.Directory(), Bus: c.Bus(), Node: c.Node(),
		Metrics: s.metrics, CallTimeout: o.CallTimeout, Announce: announcer(cfg.Presence)}
	if h := c.History(); h != nil {
		ho.History = h
	}
	hub, err := gateway.StartHub(ctx, ho)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.Run(hub)
	s.cluster = c
	return hub, nil
}

// newHistory returns the store of cfg.History, or nil when no topic keeps
// history (a nil gateway.History, not a nil *memhist.Store).
func newHistory(cfg *config.Config) (gateway.History, error) {
	if len(cfg.History) == 0 {
		return nil, nil
	}
	st, err := memhist.New(memhist.Options{Rules: historyRules(cfg)})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return st, nil
}

// historyRules are cfg.History's rules, for a store.
func historyRules(cfg *config.Config) []history.Rule {
	var rules []history.Rule
	for _, r := range cfg.History {
		rules = append(rules, history.Rule{Topics: r.Topics, Size: r.Size, TTL: componentDuration(r.TTL)})
	}
	return rules
}

// componentDuration passes a config duration to a component: absent stays
// zero (the component's default), "off" stays negative.
func componentDuration(d config.Duration) time.Duration { return time.Duration(d) }

// closeCluster leaves the bus and closes the engine, if any.
func (s *Server) closeCluster() error {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.Close()
}

// build makes the routes, functions, integrations and authorizer cfg names,
// and the gateway options that hold them. It reuses prev's hosted functions
// whose configuration did not change (see builder.function); on error it
// releases what it made.
func (s *Server) build(cfg *config.Config, hub *gateway.Hub, prev *builder) (*builder, gateway.Options, error) {
	sel, err := route.Parse(cfg.RouteSelectionExpression)
	if err != nil {
		return nil, gateway.Options{}, err
	}
	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		prefix, err := config.ParsePrefix(p)
		if err != nil {
			return nil, gateway.Options{}, err
		}
		proxies = append(proxies, prefix)
	}
	opts := s.opts
	b := &builder{cfg: cfg, opts: opts, hub: hub, prev: prev, functions: map[string]*lambdahost.Function{},
		fnOpts: map[string]lambdahost.Options{}, endpoint: "http://" + opts.Addr + "/" + cfg.Stage}
	routes := make(map[string]gateway.Route, len(cfg.Routes))
	for key, rc := range cfg.Routes {
		rt, err := b.route(rc)
		if err != nil {
			_ = b.discard()
			return nil, gateway.Options{}, fmt.Errorf("route %q: %w", key, err)
		}
		routes[key] = rt
	}
	for key, in := range opts.Handlers {
		err := config.CheckRouteKey(key)
		if _, dup := cfg.Routes[key]; dup {
			err = errors.New("given both in the configuration and in code")
		}
		if err != nil {
			_ = b.discard()
			return nil, gateway.Options{}, fmt.Errorf("route %q: %w", key, err)
		}
		routes[key] = gateway.Route{Integration: in, RouteResponse: true, Inline: integration.Inline(in)}
	}
	// Every function can be invoked through the Lambda Invoke API, so every
	// one is prepared, also those that no route names.
	for _, name := range slices.Sorted(maps.Keys(cfg.Functions)) {
		if _, err := b.function(name); err != nil {
			_ = b.discard()
			return nil, gateway.Options{}, err
		}
	}
	authz, err := b.authorizer(context.Background())
	if err != nil {
		_ = b.discard()
		return nil, gateway.Options{}, err
	}
	if b.router, err = b.httpRouter(); err != nil {
		_ = b.discard()
		return nil, gateway.Options{}, err
	}
	if b.events, err = b.eventRouter(s); err != nil {
		_ = b.discard()
		return nil, gateway.Options{}, err
	}
	if cfg.Warm {
		if err := b.warm(opts.Logger); err != nil {
			_ = b.discard()
			return nil, gateway.Options{}, err
		}
	}
	if err := b.checkQueues(s); err != nil {
		_ = b.discard()
		return nil, gateway.Options{}, err
	}
	// Limits go to the components as they are: absent ones are zero, which
	// each component reads as its default, and Unlimited is negative, which
	// each reads as disabled.
	l := cfg.Limits
	return b, gateway.Options{
		Tail:      s.tail,
		Kinds:     b.kinds(),
		Stage:     cfg.Stage,
		Selection: sel,
		Routes:    routes,
		Conn: wsconn.Options{
			ReadLimit:         int64(l.MaxMessageBytes),
			SendQueueMessages: int(l.SendQueueMessages),
			SendQueueBytes:    int(l.SendQueueBytes),
			PingInterval:      time.Duration(l.PingInterval),
			PongTimeout:       time.Duration(l.PongTimeout),
			IdleTimeout:       time.Duration(l.IdleTimeout),
			MaxLifetime:       time.Duration(l.MaxLifetime),
			PingRate:          float64(l.PingRate),
			FrameTimeout:      time.Duration(l.FrameTimeout),
			MaxFragments:      int(l.MaxFragments),
		},
		Subprotocols:        cfg.Subprotocols,
		Authorizer:          authz,
		Origins:             cfg.Origins,
		MaxConnections:      int(l.MaxConnections),
		MaxConnectionsPerIP: int(l.MaxConnectionsPerIP),
		ConnectRate:         float64(l.ConnectRate),
		ConnectBurst:        l.ConnectBurst,
		MessageRate:         float64(l.MessageRate),
		MessageBurst:        l.MessageBurst,
		TrustedProxies:      proxies,
		IntegrationTimeout:  time.Duration(cfg.IntegrationTimeout),
		Ordering:            ordering(cfg.Ordering),
		InboxSize:           int(cfg.MaxMessagesInFlight),
		Logger:              opts.Logger,
		AccessLog:           cfg.Logging.AccessLogOn(),
		AccessLogFormat:     cfg.Logging.AccessLogFormat,
	}, nil
}

// managed is the management surface in force: the guard, the rest of the
// surface behind it (metrics, profiling, the dashboard), and the management
// API's routes, each in the order Register adds them.
type managed struct {
	guard    *guard
	api      apiRoutes
	notFound http.Handler // AWS-shaped 404 or 403 for a path nothing serves
}

// apiRoute is one pattern of the management API and its handler.
type apiRoute struct {
	pattern string
	handler http.Handler
}

// apiRoutes records the management API's routes, as a mgmtapi.Mux.
type apiRoutes []apiRoute

func (rs *apiRoutes) Handle(pattern string, h http.Handler) { *rs = append(*rs, apiRoute{pattern, h}) }

// mount puts the management surface on mux: the API's routes on mux
// itself, so that a request's path is matched once (each route then runs
// the guard and the API of the configuration in force: the patterns depend
// on the stage alone, which a Reload keeps), and the rest behind "/".
func (s *Server) mount(mux *http.ServeMux, m *managed) {
	for i, rt := range m.api {
		mux.Handle(rt.pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := s.guarded.Load()
			g.guard.serve(w, r, g.api[i].handler)
		}))
	}
	mux.HandleFunc("/", s.serveManagement)
}

// management builds the management API, metrics, profiling and dashboard
// of s.cfg behind the management guard: one surface, shared by the main
// listener and management.listen, that Reload replaces whole.
func (s *Server) management(b *builder) (*managed, error) {
	cfg := s.cfg
	api := mgmtapi.New(s.gw.Hub(), mgmtapi.Options{Stage: cfg.Stage, MaxPostBytes: int64(cfg.Limits.MaxPostBytes),
		MaxRecipients: int(cfg.Limits.MaxRecipients), Logger: s.log, Metrics: s.metrics})
	mgmt := http.NewServeMux()
	var recorded apiRoutes
	api.Register(&recorded)
	queues := b.sqsAPI(s)
	queues.RegisterAdmin(&recorded, cfg.Stage)
	b.invokeAPI(&s.async).Register(mgmt)
	mgmt.Handle("/{$}", awsJSON(b.eventsAPI(s), queues))
	mgmt.Handle("GET /metrics", promhttp.HandlerFor(s.metricsReg, promhttp.HandlerOpts{}))
	if cfg.Pprof {
		mgmt.HandleFunc("/debug/pprof/", pprof.Index)
		mgmt.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mgmt.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mgmt.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mgmt.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	apiMux := http.NewServeMux() // the API alone, for the dashboard's calls under /_/api/
	for _, rt := range recorded {
		apiMux.Handle(rt.pattern, rt.handler)
	}
	dopts := dashboard.Options{Stage: cfg.Stage, Routes: b.routeInfos(), Stats: s.gw.Stats, Tail: s.tail,
		Rates: s.rates, API: apiMux, Consumers: s.consumerStats}
	if s.cluster != nil {
		dopts.Cluster = s.clusterView
	}
	mgmt.Handle("/_/", dashboard.New(dopts))
	mgmt.Handle("/", api.NotFound())
	g, err := s.protect(mgmt, s.metrics)
	if err != nil {
		return nil, err
	}
	return &managed{guard: g, api: recorded, notFound: api.NotFound()}, nil
}

// clusterView is the cluster as the dashboard shows it: the nodes whose
// lease is current, read within ctx, and this node's engine state.
func (s *Server) clusterView(ctx context.Context) dashboard.Cluster {
	c := s.cluster
	v := dashboard.Cluster{Engine: c.Engine(), Node: c.Node()}
	if err := c.Problem(); err != nil {
		v.EngineError = err.Error()
	} else if st := c.Status(); st.State != cluster.StateOK {
		v.EngineError = st.State
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		v.NodesError = err.Error()
	}
	for _, n := range nodes {
		v.Nodes = append(v.Nodes, dashboard.Node{ID: n.ID, Name: n.Name, StartedAt: n.StartedAt, LastSeen: n.LastSeen, Self: n.ID == c.Node()})
	}
	return v
}

// serveManagement serves a request that is not one of the API's routes
// (metrics, profiling, the dashboard, an unknown path) with the guard and
// surface in force.
func (s *Server) serveManagement(w http.ResponseWriter, r *http.Request) {
	s.guarded.Load().guard.ServeHTTP(w, r)
}

// Close stops hosted functions and releases integrations. Call it after Drain.
func (s *Server) Close() error {
	s.drain() // long polls end
	// The consumers stop first: the event each has in progress is published
	// through the hub, or left to be delivered again.
	errs := []error{s.closeConsumers()}
	if s.stopRates != nil {
		s.stopRates()
		<-s.ratesDone
	}
	if s.gw != nil {
		errs = append(errs, s.gw.Close())
	}
	s.reloadMu.Lock()
	errs = append(errs, s.built.close())
	s.reloadMu.Unlock()
	s.retiring.Wait()
	s.async.Wait() // bounded: the functions are closed
	if s.queues != nil {
		errs = append(errs, s.queues.Close())
	}
	errs = append(errs, s.closeCluster())
	return errors.Join(errs...)
}

// Handler returns the HTTP handler: WebSocket upgrades at / and /{stage},
// the management API, /healthz, and the project's HTTP routes.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// serveHTTP sends a request to the project's HTTP routes when one has its
// path, unless it is a WebSocket upgrade or a path of the gateway's own
// (the management API, the Lambda Invoke API, the dashboard, /healthz,
// /metrics), which no HTTP route hides.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.mgmtOnMain && awsJSONTarget(r) {
		s.serveManagement(w, r) // PutEvents and SQS, behind the management guard
		return
	}
	if rt := s.httpRoutes.Load(); rt != nil && r.Header.Get("Upgrade") == "" && !s.ownPath(r.URL.Path) && rt.Handles(r) {
		rt.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// ownPath reports whether path belongs to the gateway itself.
func (s *Server) ownPath(path string) bool {
	if path == "/healthz" || path == "/metrics" {
		return true
	}
	for _, p := range []string{"/_/", "/debug/", lambdaAPIPrefix, "/@"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	rest, ok := strings.CutPrefix(path, "/"+s.stage+"/")
	return ok && strings.HasPrefix(rest, "@")
}

// ManagementHandler serves the management API and the dashboard alone, for
// a listener of their own (management.listen).
func (s *Server) ManagementHandler() http.Handler { return s.mgmt }

// Gateway returns the gateway, for tests and the drain.
func (s *Server) Gateway() *gateway.Gateway { return s.gw }

// QueueWaitersForTest reports how many receives wait in a long poll on
// the queues; -1 when they are not in the node's memory.
func (s *Server) QueueWaitersForTest() int {
	if u, ok := s.queues.(unclosed); ok {
		if m, ok := u.Store.(*memqueue.Store); ok {
			return m.WaitersForTest()
		}
	}
	return -1
}

// SetReady marks the server ready (or not) for /healthz.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// health is the /healthz body.
type health struct {
	Status      string          `json:"status"`
	Connections int             `json:"connections"`
	Cluster     *cluster.Status `json:"cluster,omitempty"`
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() || s.gw.Draining() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if s.cluster == nil {
		fmt.Fprintf(w, "{\"status\":\"ok\",\"connections\":%d}\n", s.gw.Hub().Count())
		return
	}
	st := s.cluster.Status()
	h := health{Status: "ok", Connections: s.gw.Hub().Count(), Cluster: &st}
	if !s.cluster.Healthy() {
		// Cut off from the others longer than cluster.grace: local
		// traffic still works, but a load balancer should send new
		// clients elsewhere.
		h.Status = "cut off"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

// Drain closes every connection with 1001 and waits for their $disconnect;
// on a cluster, the node then leaves: its records go at once.
func (s *Server) Drain(ctx context.Context) error {
	s.ready.Store(false)
	s.drain()
	err := s.gw.Drain(ctx)
	if s.cluster != nil {
		err = errors.Join(err, s.cluster.Leave(ctx))
	}
	return err
}

// maxNetworkAddrs bounds the machine's addresses the banner lists.
const maxNetworkAddrs = 4

// clientAddrs returns addr, a listener's address, as a client can dial
// it: a listener on every interface is at 127.0.0.1 when it was asked for
// 0.0.0.0 (or no host), at [::1] when asked for [::] (configured, as net
// reports a dual-stack listener as [::] either way), and network lists the
// machine's other addresses (IPv4 for 0.0.0.0, IPv4 then IPv6 for [::]; not
// loopback, not link-local, at most maxNetworkAddrs) with the port. Any
// other addr is returned as it is.
func clientAddrs(addr, configured string) (local string, network []string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsUnspecified() {
		return addr, nil
	}
	if h, _, err := net.SplitHostPort(configured); err == nil && (h == "" || h == "0.0.0.0") {
		ip = netip.IPv4Unspecified()
	}
	local = net.JoinHostPort("127.0.0.1", port)
	if ip.Is6() {
		local = net.JoinHostPort("::1", port)
	}
	ifaddrs, _ := net.InterfaceAddrs() // none listed: loopback alone
	var v4, v6 []string
	for _, a := range ifaddrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		p, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		p = p.Unmap()
		switch {
		case p.IsLoopback(), p.IsLinkLocalUnicast(), p.IsUnspecified():
		case p.Is4():
			v4 = append(v4, net.JoinHostPort(p.String(), port))
		case ip.Is6():
			v6 = append(v6, net.JoinHostPort(p.String(), port))
		}
	}
	network = append(v4, v6...)
	if len(network) > maxNetworkAddrs {
		network = network[:maxNetworkAddrs]
	}
	return local, network
}

// Banner describes the running server for the start-up output: addr is the
// main listener's address, mgmtAddr the management API's (the same unless it
// has its own listener).
func (s *Server) Banner(addr, mgmtAddr string, secure bool) string {
	ws, web := "ws", "http"
	if secure {
		ws, web = "wss", "https"
	}
	// A listener on every interface is shown at an address a client can
	// use: loopback, and the machine's own addresses on a line of their own.
	addr, network := clientAddrs(addr, s.cfg.Listen)
	mgmtAddr, _ = clientAddrs(mgmtAddr, cmp.Or(s.cfg.Management.Listen, s.cfg.Listen))
	var b strings.Builder
	fmt.Fprintf(&b, "Switchboard listening (config: %s)\n", s.cfg.Source)
	fmt.Fprintf(&b, "  WebSocket:      %s://%s  (also %s://%s/%s)\n", ws, addr, ws, addr, s.cfg.Stage)
	if len(network) > 0 {
		fmt.Fprintf(&b, "  Network:        %s://%s\n", ws, strings.Join(network, "  "+ws+"://"))
	}
	if s.cfg.Management.Protected() {
		// Only URLs a browser can open: the others answer 403 without a
		// signature or a bearer token, so they are named, not linked.
		fmt.Fprintf(&b, "  Dashboard:      %s://%s/_/  (sign in with a management token or access key; demo chat: %s://%s/_/chat)\n", web, mgmtAddr, web, mgmtAddr)
		fmt.Fprintf(&b, "  Management API: /@connections, /@topics, /@broadcast (also under /%s) on %s, with SigV4 or a bearer token\n", s.cfg.Stage, mgmtAddr)
		fmt.Fprintf(&b, "  Health:         %s://%s/healthz   Metrics: /metrics, with credentials\n", web, addr)
	} else {
		fmt.Fprintf(&b, "  Management API: %s://%s/@connections  (also %s://%s/%s/@connections)\n", web, mgmtAddr, web, mgmtAddr, s.cfg.Stage)
		fmt.Fprintf(&b, "  Dashboard:      %s://%s/_/  (demo chat: %s://%s/_/chat)\n", web, mgmtAddr, web, mgmtAddr)
		fmt.Fprintf(&b, "  Health:         %s://%s/healthz   Metrics: %s://%s/metrics\n", web, addr, web, mgmtAddr)
	}
	if s.cluster != nil {
		fmt.Fprintf(&b, "  Cluster:        %s as node %s (ttl %v)\n", s.cluster.Redacted(), s.cluster.Node(), s.cluster.TTL())
	}
	for _, c := range s.consumers {
		st := c.Stats()
		fmt.Fprintf(&b, "  Consumer:       %s reads %s %s\n", st.Name, st.Kind, st.Source)
	}
	if !secure && s.opts.CAFile != "" {
		fmt.Fprintf(&b, "  Secure, same port: wss://%s  https://%s  (local CA %s; see 'switchboard ca')\n", addr, addr, s.opts.CAFile)
	}
	if s.cfg.Pprof && s.cfg.Management.Protected() {
		fmt.Fprintf(&b, "  Profiling:      /debug/pprof/, with credentials\n")
	} else if s.cfg.Pprof {
		fmt.Fprintf(&b, "  Profiling:      %s://%s/debug/pprof/\n", web, mgmtAddr)
	}
	if s.cfg.Management.Protected() {
		fmt.Fprintf(&b, "  Management auth: SigV4 (%d access keys), bearer tokens (%d)\n", len(s.cfg.Management.AccessKeys), len(s.cfg.Management.Tokens))
	} else {
		fmt.Fprintf(&b, "  Management auth: none (loopback only)\n")
	}
	if a := s.cfg.Routes["$connect"].Authorizer; a != "" {
		fmt.Fprintf(&b, "  $connect authorizer: %s (%s)\n", a, s.cfg.Authorizers[a].Type)
	}
	fmt.Fprintf(&b, "  Route selection: %s\n", s.cfg.RouteSelectionExpression)
	fmt.Fprintf(&b, "  Routes:\n")
	keys := make([]string, 0, len(s.cfg.Routes)+len(s.opts.Handlers))
	for k := range s.cfg.Routes {
		keys = append(keys, k)
	}
	for k := range s.opts.Handlers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r, ok := s.cfg.Routes[k]
		if !ok {
			fmt.Fprintf(&b, "    %-16s -> %s  (two-way)\n", k, KindGo)
			continue
		}
		way := ""
		if r.TwoWay() {
			way = "  (two-way)"
		}
		fmt.Fprintf(&b, "    %-16s -> %s%s\n", k, strings.TrimSpace(r.Integration.Type+" "+target(r.Integration)), way)
	}
	if len(s.cfg.HTTPRoutes) > 0 {
		fmt.Fprintf(&b, "  HTTP routes:\n")
		for _, hr := range s.cfg.HTTPRoutes {
			fmt.Fprintf(&b, "    %-7s %s%s -> %s  (%s)\n", hr.Method, web+"://"+addr, httpMount(hr, s.cfg.Stage), hr.Function, map[int]string{1: "REST, payload 1.0", 2: "HTTP API, payload 2.0"}[hr.Version])
		}
	}
	for _, w := range s.cfg.Warnings {
		fmt.Fprintf(&b, "  Warning: %s\n", w)
	}
	if _, ok := s.cfg.Routes[route.Default]; !ok && s.opts.Handlers[route.Default] == nil {
		fmt.Fprintf(&b, "    (no $default: unmatched messages get {\"message\": \"Forbidden\", ...})\n")
	}
	return b.String()
}

// announcer is the hub's Announce for p: nil when p announces no topic.
func announcer(p config.Presence) func(topic string) bool {
	if len(p.Announce) == 0 {
		return nil
	}
	return p.Announces
}
