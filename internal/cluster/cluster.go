// Package cluster owns a gateway node's membership in a cluster. From a
// URL it connects the engine (an external NATS, a NATS server embedded in
// the process, or one Redis server), builds the registry.Directory and the
// bus.Bus the hub runs on, and for the node's life renews its lease, sweeps
// the records of nodes whose lease lapsed, watches the engine's health
// (a subscription that silently stopped delivering counts as cut off, not
// only a dead connection), adds this node's records again when the
// directory lost them, and leaves the cluster at once on a drain.
//
// A node alone has no Cluster: nothing here runs, and the hub keeps its
// in-memory directory.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/bus"
	"github.com/switchboard-gateway/switchboard/internal/bus/natsbus"
	"github.com/switchboard-gateway/switchboard/internal/bus/redisbus"
	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/natshist"
	"github.com/switchboard-gateway/switchboard/internal/history/redishist"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/natsqueue"
	"github.com/switchboard-gateway/switchboard/internal/queue/redisqueue"
	"github.com/switchboard-gateway/switchboard/internal/redisurl"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/natsreg"
	"github.com/switchboard-gateway/switchboard/internal/registry/redisreg"
)

// Engines, as Status.Engine names them.
const (
	EngineNATS     = "nats"
	EngineEmbedded = "embedded"
	EngineRedis    = "redis"
)

// States of the node's link to the engine, as Status.State names them.
const (
	StateOK       = "ok"       // the lease is renewed and the bus delivers
	StateDegraded = "degraded" // cut off: a renewal or the bus's health check failed
)

// Defaults of Options.
const (
	// DefaultTTL is a lease's length: how long a dead node's connections
	// stay known.
	DefaultTTL = 15 * time.Second
	// DefaultGrace is how long a node may be cut off before it reports
	// unhealthy: shorter than DefaultTTL, so that a load balancer stops
	// sending clients to a node cut off from the others before they
	// declare its connections gone; and two renewal periods (TTL/3 each),
	// so that one lost renewal or an engine restarting quickly does not
	// turn a node unhealthy.
	DefaultGrace = 10 * time.Second
	// DefaultCallTimeout bounds each call to the engine made by the
	// cluster itself (renewals, sweeps, health checks). The hub's calls
	// have their own bound, gateway.DefaultCallTimeout.
	DefaultCallTimeout = 5 * time.Second
	// DefaultHealthInterval is how often the bus's health is checked.
	DefaultHealthInterval = time.Second
	// DefaultJoinTimeout bounds Start: connecting, creating the directory
	// and the history's streams (which, on embedded NATS with peers, wait
	// for a quorum of them: peers started one after another, or replicated
	// streams slow to form on a loaded machine), and the first lease.
	DefaultJoinTimeout = 2 * time.Minute
)

// Options configure a node's membership. URL is required; the zero value
// of every other field works.
type Options struct {
	// URL is the engine: nats://host:port[,host:port] (tls:// for TLS),
	// redis://[user:password@]host:port[/db] (rediss:// for TLS), or
	// "embedded" for a NATS server inside the process (see Embedded).
	URL string
	// Node names this node, unique per process. Empty means the host name,
	// "-" and a random suffix.
	Node string
	// TTL is the node's lease, renewed every TTL/3. Zero means DefaultTTL.
	TTL time.Duration
	// Grace is how long the node may be cut off from the engine before
	// Healthy reports false. Zero means DefaultGrace; negative: never.
	Grace time.Duration
	// CallTimeout bounds each call the cluster makes to the engine. Zero
	// means DefaultCallTimeout.
	CallTimeout time.Duration
	// HealthInterval is how often the bus's health is checked. Zero means
	// DefaultHealthInterval.
	HealthInterval time.Duration
	// JoinTimeout bounds Start. Zero means DefaultJoinTimeout.
	JoinTimeout time.Duration

	// Credentials where the URL has none: NATS takes User and Password,
	// Token or CredsFile (one kind); Redis takes User and Password.
	User, Password, Token, CredsFile string
	// CAFile, when set, is the CA that signs the engine's certificate;
	// CertFile and KeyFile, this node's client certificate.
	CAFile, CertFile, KeyFile string

	// Embedded configures the NATS server run when URL is "embedded".
	Embedded Embedded

	// History, when set, keeps the history of the topics its rules match in
	// the engine, shared by every node (see History): in JetStream
	// (natshist) or in Redis (redishist).
	History []history.Rule
	// QueueLeft is told of each message that leaves one of the cluster's
	// queues without being deleted, as queue stores tell it (for metrics).
	// Nil: no one is told.
	QueueLeft func(queue, reason string)

	// Logger receives the cluster's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts the cluster's events. Nil counts nowhere.
	Metrics *metrics.Cluster
}

// Embedded configures a NATS server inside the process.
type Embedded struct {
	// Listen is the client address. Empty means 127.0.0.1:0.
	Listen string
	// Cluster is the route address peers connect to; empty runs alone.
	Cluster string
	// Peers are every node's route address, host:port (this one's skipped).
	Peers []string
	// StoreDir keeps JetStream's data; empty means a temporary directory
	// removed by Close.
	StoreDir string
}

func (o Options) withDefaults() Options {
	if o.Node == "" {
		o.Node = DefaultNode()
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.JoinTimeout <= 0 {
		o.JoinTimeout = DefaultJoinTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewCluster(nil)
	}
	return o
}

// streamTimeout bounds one attempt to make the history's streams.
const streamTimeout = 15 * time.Second

// DefaultNode is a node name unique per process: the host name, "-" and
// six random hex digits.
func DefaultNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return host + "-" + hex.EncodeToString(b[:])
}

// Holder is what the cluster needs of the node's hub: the records of the
// connections it holds, to add them again when the directory lost them.
type Holder interface {
	// LocalRecords returns the directory records of this node's connections.
	LocalRecords() []registry.Record
	// Holds reports whether this node still holds connID.
	Holds(connID string) bool
}

// Status is the node's view of the cluster, for /healthz.
type Status struct {
	Node   string `json:"node"`
	Engine string `json:"engine"`
	State  string `json:"state"`
	// Nodes is how many nodes hold a live lease, as last read.
	Nodes int `json:"nodes"`
}

// Cluster is a node's membership. Start it, give Directory and Bus to the
// hub, then Run; Leave on a drain, Close at the end.
type Cluster struct {
	opts   Options
	engine string
	log    *slog.Logger
	m      *metrics.Cluster

	raw    bus.Bus       // the engine's bus, with its health check
	hist   history.Store // nil when no topic keeps history
	queues queue.Store   // the queues, in the engine
	bus    *countingBus
	dir    *countingDirectory
	leaser registry.Leaser
	sweep  func(ctx context.Context) (int, error) // nil when the directory sweeps by itself
	closeE []func() error                         // what Start opened, closed in reverse order
	nc     *nats.Conn                             // the engine's connection: NATS and embedded
	repl   int                                    // servers holding each JetStream stream and bucket: NATS and embedded
	rdb    *redis.Client                          // the engine's connection: Redis

	started time.Time
	stop    context.CancelFunc
	wg      sync.WaitGroup
	closed  sync.Once

	mu        sync.Mutex
	state     string
	cutSince  time.Time // when the current cut-off began; zero when ok
	leaseOK   bool      // the last renewal succeeded
	busOK     bool      // the last health check succeeded
	nodes     int
	left      bool // Leave ran: renewals stop
	healthErr error
}

// Start connects the engine as o says, creates the directory and bus, and
// takes the node's first lease. It fails with a clear error for a URL it
// cannot use (unknown scheme, Redis Cluster or Sentinel) or an engine it
// cannot reach within JoinTimeout. ctx bounds it too.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	o = o.withDefaults()
	c := &Cluster{opts: o, log: o.Logger.With("node", o.Node), m: o.Metrics, started: time.Now(),
		state: StateOK, leaseOK: true, busOK: true}
	ctx, cancel := context.WithTimeout(ctx, o.JoinTimeout)
	defer cancel()
	var err error
	switch u := strings.TrimSpace(o.URL); {
	case u == "":
		err = errors.New("cluster: no engine URL")
	case u == EngineEmbedded:
		c.engine = EngineEmbedded
		err = c.startEmbedded(ctx)
	case hasScheme(u, "nats", "tls"):
		c.engine = EngineNATS
		err = c.startNATS(ctx, u, false)
	default:
		c.engine = EngineRedis
		err = c.startRedis(ctx, u)
	}
	if err != nil {
		_ = c.closeAll()
		return nil, err
	}
	if _, err := c.renewRound(ctx); err != nil {
		_ = c.closeAll()
		return nil, fmt.Errorf("cluster: first lease of %s: %w", o.Node, err)
	}
	c.m.EngineUp.Set(1)
	return c, nil
}

func hasScheme(u string, schemes ...string) bool {
	scheme, _, ok := strings.Cut(u, "://")
	if !ok {
		return false
	}
	for _, s := range schemes {
		if strings.EqualFold(scheme, s) {
			return true
		}
	}
	return false
}

// tlsConfig builds the TLS configuration of CAFile, CertFile and KeyFile;
// nil when none is set.
func (o Options) tlsConfig() (*tls.Config, error) {
	if o.CAFile == "" && o.CertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: tls.caFile: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster: tls.caFile %s: no PEM certificate", o.CAFile)
		}
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// startEmbedded starts the NATS server inside the process, then connects
// to it as to an external one.
func (c *Cluster) startEmbedded(ctx context.Context) error {
	e := c.opts.Embedded
	var routes []string
	for _, p := range e.Peers {
		routes = append(routes, "nats-route://"+p)
	}
	ns, err := natsembed.Start(natsembed.Options{
		Listen:        e.Listen,
		Name:          c.opts.Node,
		ClusterListen: e.Cluster,
		Routes:        routes,
		StoreDir:      e.StoreDir,
		User:          c.opts.User,
		Password:      c.opts.Password,
		Token:         c.opts.Token,
		Logger:        c.log,
	})
	if err != nil {
		return fmt.Errorf("cluster: embedded NATS: %w", err)
	}
	c.closeE = append(c.closeE, func() error { ns.Close(); return nil })
	// A directory replicated on three servers survives losing one.
	return c.startNATS(ctx, ns.ClientURL(), len(e.Peers) >= 3)
}

// startNATS connects to NATS: the bus on core NATS, the directory on
// JetStream KV (which sweeps lapsed nodes' records itself).
func (c *Cluster) startNATS(ctx context.Context, u string, replicated bool) error {
	tc, err := c.opts.tlsConfig()
	if err != nil {
		return err
	}
	co := natsbus.ConnectOptions{Name: "switchboard " + c.opts.Node, User: c.opts.User, Password: c.opts.Password,
		Token: c.opts.Token, CredsFile: c.opts.CredsFile, TLS: tc, ConnectTimeout: c.opts.CallTimeout}
	nc, err := natsbus.Connect(u, co)
	if err != nil {
		return fmt.Errorf("cluster: %s: %w", redact(u), err)
	}
	c.closeE = append(c.closeE, func() error { nc.Close(); return nil })
	c.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	ro := natsreg.Options{SweepInterval: c.opts.TTL, Timeout: c.opts.CallTimeout, MaxTTL: max(time.Minute, c.opts.TTL)}
	if replicated {
		ro.Replicas = 3
	}
	c.repl = max(ro.Replicas, 1)
	// On a cluster of embedded servers the first bucket waits for a
	// JetStream quorum, that is for peers still starting: try again
	// until ctx ends.
	var dir *natsreg.Directory
	for {
		tctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		dir, err = natsreg.New(tctx, js, ro)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: directory on JetStream: %w", err)
		case <-time.After(250 * time.Millisecond): // retry pacing
		}
	}
	c.closeE = append(c.closeE, dir.Close)
	if len(c.opts.History) > 0 {
		for _, r := range c.opts.History {
			if err := r.Validate(); err != nil {
				return fmt.Errorf("cluster: %w", err)
			}
		}
		ho := natshist.Options{Rules: c.opts.History, Replicas: ro.Replicas, Logger: c.log}
		var st *natshist.Store
		for {
			// Like the directory's buckets, the streams wait for a quorum;
			// a replicated stream can take longer than a call to appear.
			tctx, cancel := context.WithTimeout(ctx, max(c.opts.CallTimeout, streamTimeout))
			st, err = natshist.New(tctx, js, ho)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("cluster: topic history on JetStream: %w", err)
			case <-time.After(250 * time.Millisecond): // retry pacing
			}
		}
		c.hist = st
		c.closeE = append(c.closeE, st.Close)
	}
	qs, err := natsqueue.New(ctx, js, natsqueue.Options{Replicas: ro.Replicas, CallTimeout: c.opts.CallTimeout, Left: c.opts.QueueLeft, Logger: c.log})
	if err != nil {
		return fmt.Errorf("cluster: queues on JetStream: %w", err)
	}
	c.queues = qs
	c.closeE = append(c.closeE, qs.Close)
	b := natsbus.New(nc, natsbus.Options{Timeout: c.opts.CallTimeout})
	c.m.RegisterMissed(b.Missed)
	c.setEngine(b, dir, dir, nil)
	return nil
}

// startRedis connects to one Redis server, refusing Cluster and Sentinel:
// the bus on pub/sub, the directory on keys, swept by this node's janitor.
func (c *Cluster) startRedis(ctx context.Context, u string) error {
	ro, err := redisurl.Parse(u)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if ro.Username == "" && ro.Password == "" {
		ro.Username, ro.Password = c.opts.User, c.opts.Password
	}
	tc, err := c.opts.tlsConfig()
	if err != nil {
		return err
	}
	if tc != nil {
		if ro.TLSConfig != nil {
			tc.ServerName = ro.TLSConfig.ServerName
		}
		ro.TLSConfig = tc
	}
	ro.DialTimeout = c.opts.CallTimeout
	rdb := redis.NewClient(ro)
	c.closeE = append(c.closeE, rdb.Close)
	c.rdb = rdb
	cctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	defer cancel()
	if err := redisurl.CheckServer(cctx, rdb); err != nil {
		return fmt.Errorf("cluster: %s: %w", redact(u), err)
	}
	if len(c.opts.History) > 0 {
		st, err := redishist.New(rdb, redishist.Options{Rules: c.opts.History, Logger: c.log})
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		c.hist = st
		c.closeE = append(c.closeE, st.Close)
	}
	qs, err := redisqueue.New(rdb, redisqueue.Options{Left: c.opts.QueueLeft, Logger: c.log})
	if err != nil {
		return fmt.Errorf("cluster: queues in Redis: %w", err)
	}
	c.queues = qs
	c.closeE = append(c.closeE, qs.Close)
	dir := redisreg.New(rdb, redisreg.Options{})
	b := redisbus.New(rdb, redisbus.Options{CallTimeout: c.opts.CallTimeout, HealthInterval: c.opts.HealthInterval})
	c.setEngine(b, dir, dir, dir.Sweep)
	return nil
}

func (c *Cluster) setEngine(b bus.Bus, d registry.Directory, l registry.Leaser, sweep func(context.Context) (int, error)) {
	c.raw, c.leaser, c.sweep = b, l, sweep
	c.bus = &countingBus{Bus: b, m: c.m, log: c.log}
	c.dir = &countingDirectory{Directory: d, m: c.m}
}

// redact hides a URL's password, for errors and logs.
func redact(raw string) string {
	var out []string
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(part)
		if err != nil {
			if strings.Contains(part, "@") {
				part = "…"
			}
			out = append(out, part)
			continue
		}
		out = append(out, u.Redacted())
	}
	return strings.Join(out, ",")
}

// Redacted is the engine URL with its password hidden, for the banner.
func (c *Cluster) Redacted() string {
	if c.engine == EngineEmbedded {
		return EngineEmbedded
	}
	return redact(c.opts.URL)
}

// Node is this node's name.
func (c *Cluster) Node() string { return c.opts.Node }

// Engine names the engine: EngineNATS, EngineEmbedded or EngineRedis.
func (c *Cluster) Engine() string { return c.engine }

// TTL is the node's lease.
func (c *Cluster) TTL() time.Duration { return c.opts.TTL }

// Directory is the cluster's directory, for gateway.HubOptions.
func (c *Cluster) Directory() registry.Directory { return c.dir }

// NATS is the engine's connection when the engine is NATS or embedded,
// else nil: other components may share it (JetStream streams, key-value
// buckets) until Close, which closes it.
func (c *Cluster) NATS() *nats.Conn { return c.nc }

// Replicas is how many servers hold each JetStream stream and key-value
// bucket the cluster creates, when the engine is NATS or embedded (else 0):
// other components that create some on NATS() replicate them alike.
func (c *Cluster) Replicas() int { return c.repl }

// Redis is the engine's connection when the engine is Redis, else nil:
// other components may share it until Close, which closes it.
func (c *Cluster) Redis() *redis.Client { return c.rdb }

// Bus is the cluster's bus, for gateway.HubOptions; the hub joins it.
func (c *Cluster) Bus() bus.Bus { return c.bus }

// History is the topic history the nodes share in the engine, for
// gateway.HubOptions; nil when Options.History is empty.
func (c *Cluster) History() history.Store { return c.hist }

// Queues is the store of the cluster's queues, in its engine: every node
// serves the same queues, and a message outlives the node that took it
// (natsqueue on JetStream, redisqueue in Redis).
func (c *Cluster) Queues() queue.Store { return c.queues }

// Run starts the node's background work, until Close: lease renewal every
// TTL/3, the bus's health check every HealthInterval, the sweep of lapsed
// nodes' records every TTL (on engines whose directory does not sweep by
// itself), and adding h's records again when the directory lost them (a
// lease that lapsed, an engine that restarted empty). Call it once, after
// the hub joined the bus.
func (c *Cluster) Run(h Holder) {
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.leaseLoop(ctx, h) }()
	go func() { defer c.wg.Done(); c.healthLoop(ctx) }()
	if c.sweep != nil {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.janitor(ctx) }()
	}
}

// renewRound reads the live nodes, then renews this node's lease; it reports
// whether the lease had lapsed (this node was not among the live ones).
func (c *Cluster) renewRound(ctx context.Context) (lapsed bool, err error) {
	nctx, cancel := context.WithTimeout(ctx, c.leaseCallTimeout())
	nodes, err := c.leaser.Nodes(nctx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("read the nodes: %w", err)
	}
	found := false
	for _, n := range nodes {
		found = found || n.ID == c.opts.Node
	}
	if err := c.renew(ctx); err != nil {
		return false, err
	}
	count := len(nodes)
	if !found {
		count++
	}
	c.mu.Lock()
	c.nodes = count
	c.mu.Unlock()
	c.m.Nodes.Set(float64(count))
	return !found, nil
}

// leaseCallTimeout bounds each call of a renewal: CallTimeout, but no
// more than half the TTL, so that a call lost with the engine's connection
// fails (a renewal period and this bound after the last good one) before
// the lease lapses, and the node knows it may have.
func (c *Cluster) leaseCallTimeout() time.Duration {
	return min(c.opts.CallTimeout, c.opts.TTL/2)
}

// renew takes or renews the lease, under leaseCallTimeout.
func (c *Cluster) renew(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, c.leaseCallTimeout())
	defer cancel()
	node := registry.Node{ID: c.opts.Node, Name: c.opts.Node, StartedAt: c.started, LastSeen: time.Now()}
	return c.leaser.KeepAlive(rctx, node, c.opts.TTL)
}

func (c *Cluster) leaseLoop(ctx context.Context, h Holder) {
	t := time.NewTicker(c.opts.TTL / 3)
	defer t.Stop()
	failed := false
	// renewed is when the last successful round began (Start's, at first):
	// its put came later, so a round ending TTL or more after it may have
	// left the lease lapsed for a moment, long enough for another node's
	// sweep to delete this node's records, though it saw itself live.
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		left := c.left
		c.mu.Unlock()
		if left {
			return
		}
		began := time.Now()
		lapsed, err := c.renewRound(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.m.LeaseFailures.Inc()
			if !failed {
				c.log.Warn("cluster: lease not renewed; local traffic goes on", "err", err)
			}
			failed = true
			c.setLease(false, err)
			continue
		}
		c.setLease(true, nil)
		lapsed = lapsed || time.Since(renewed) >= c.opts.TTL
		renewed = began
		if lapsed || failed {
			n, err := c.readd(ctx, h)
			if err != nil {
				c.log.Warn("cluster: records not added again; next renewal tries again", "err", err)
				continue // failed stays set: try again next round
			}
			c.log.Info("cluster: back in touch with the engine; this node's records added again", "records", n, "lapsed", lapsed)
		}
		failed = false
	}
}

// readd adds h's records again, each under CallTimeout, then removes the
// record of any connection that closed meanwhile.
func (c *Cluster) readd(ctx context.Context, h Holder) (int, error) {
	recs := h.LocalRecords()
	for _, rec := range recs {
		actx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		err := c.dir.Directory.Add(actx, rec)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("add %s again: %w", rec.ConnID, err)
		}
		if !h.Holds(rec.ConnID) { // closed since listed: its removal may have run before the add
			rctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
			err := c.dir.Directory.Remove(rctx, rec.ConnID)
			cancel()
			if err != nil {
				return 0, fmt.Errorf("remove %s: %w", rec.ConnID, err)
			}
		}
	}
	return len(recs), nil
}

func (c *Cluster) healthLoop(ctx context.Context) {
	hc, ok := c.raw.(bus.Healther)
	if !ok {
		return
	}
	every(ctx, c.opts.HealthInterval, func() {
		hctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		err := hc.Health(hctx)
		cancel()
		if ctx.Err() == nil {
			c.setBus(err)
		}
	})
}

func (c *Cluster) janitor(ctx context.Context) {
	every(ctx, c.opts.TTL, func() {
		sctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		_, err := c.sweep(sctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Debug("cluster: sweep of lapsed nodes failed; the next one tries again", "err", err)
		}
	})
}

// every calls f each period until ctx ends.
func every(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func (c *Cluster) setLease(ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaseOK = ok
	if err != nil {
		c.healthErr = err
	}
	c.updateLocked()
}

func (c *Cluster) setBus(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.busOK
	c.busOK = err == nil
	if err != nil {
		c.healthErr = err
		if was {
			c.log.Warn("cluster: the bus does not deliver; local traffic goes on", "err", err)
		}
	}
	c.updateLocked()
}

func (c *Cluster) updateLocked() {
	ok := c.leaseOK && c.busOK
	switch {
	case ok && c.state != StateOK:
		c.log.Info("cluster: engine reachable again", "cutOff", time.Since(c.cutSince))
		c.state, c.cutSince, c.healthErr = StateOK, time.Time{}, nil
	case !ok && c.state == StateOK:
		c.state, c.cutSince = StateDegraded, time.Now()
	}
	if ok {
		c.m.EngineUp.Set(1)
	} else {
		c.m.EngineUp.Set(0)
	}
}

// Status reports the node's view of the cluster.
func (c *Cluster) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{Node: c.opts.Node, Engine: c.engine, State: c.state, Nodes: c.nodes}
}

// Healthy reports false once the node has been cut off from the engine
// for longer than Grace; local traffic keeps working meanwhile.
func (c *Cluster) Healthy() bool {
	if c.opts.Grace < 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == StateOK || time.Since(c.cutSince) <= c.opts.Grace
}

// Leave ends the node's lease and removes its records at once, for a
// drain: the other nodes answer 410 for its connections from then on.
// Renewals stop. ctx bounds it, and CallTimeout too.
func (c *Cluster) Leave(ctx context.Context) error {
	c.mu.Lock()
	c.left = true
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	defer cancel()
	if err := c.leaser.Leave(ctx, c.opts.Node); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

// Close stops the background work, leaves the bus, and closes the
// directory, the engine's connection and the embedded server, in that
// order. Call it after the hub is done.
func (c *Cluster) Close() error {
	var err error
	c.closed.Do(func() {
		if c.stop != nil {
			c.stop()
		}
		c.wg.Wait()
		err = c.closeAll()
	})
	return err
}

func (c *Cluster) closeAll() error {
	var errs []error
	if c.raw != nil {
		errs = append(errs, c.raw.Close())
	}
	for i := len(c.closeE) - 1; i >= 0; i-- {
		errs = append(errs, c.closeE[i]())
	}
	c.closeE = nil
	return errors.Join(errs...)
}
