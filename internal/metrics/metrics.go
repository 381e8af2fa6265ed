// Package metrics defines Switchboard's Prometheus metrics and registers
// them; the packages that observe events call the methods here. It owns
// names, labels and buckets, nothing else.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Label values for why a handshake ended without a connection.
const (
	ConnectAccepted     = "accepted"
	ConnectUnauthorized = "unauthorized" // 401 from the authorizer
	ConnectForbidden    = "forbidden"    // 403: authorizer or origin
	ConnectRejected     = "rejected"     // $connect answered non-2xx
	ConnectFailed       = "failed"       // $connect or the authorizer broke
	ConnectLimited      = "limited"      // connection caps or connect rate
	ConnectDraining     = "draining"
)

// Label values for why a message was dropped instead of delivered.
const (
	DropQueueFull   = "queue_full"   // the receiver's send queue overflowed
	DropRateLimited = "rate_limited" // the sender exceeded its message rate
)

// AuthRefusal is why a management request (the management API, the
// dashboard, /metrics) was refused before its handler ran: the reason
// label of switchboard_management_auth_failures_total.
type AuthRefusal string

// Why a management request was refused.
const (
	AuthMissing         AuthRefusal = "missing"          // no Authorization and no presigned query
	AuthUnknownKey      AuthRefusal = "unknown_key"      // access key ID or bearer token not configured
	AuthBadSignature    AuthRefusal = "bad_signature"    // the signature or the body's hash does not match
	AuthStale           AuthRefusal = "stale"            // X-Amz-Date outside the skew window, or a presigned URL expired
	AuthMalformed       AuthRefusal = "malformed"        // unparsable signature, date, scope or payload hash
	AuthUnsignedPayload AuthRefusal = "unsigned_payload" // X-Amz-Content-Sha256: UNSIGNED-PAYLOAD
	AuthTooLarge        AuthRefusal = "too_large"        // a body too large to hash
	AuthBodyTimeout     AuthRefusal = "body_timeout"     // the body did not arrive in time
	AuthCrossOrigin     AuthRefusal = "cross_origin"     // without credentials: a browser page of another origin
	AuthHost            AuthRefusal = "host"             // without credentials: a Host that is not loopback or allowed
	AuthLoginFailed     AuthRefusal = "login_failed"     // the dashboard's sign-in: credentials not configured
	AuthLoginRate       AuthRefusal = "login_rate"       // the dashboard's sign-in: too many attempts from one address
)

// Metrics holds every collector. Create it with New; the zero value is not usable.
type Metrics struct {
	ConnectionsOpen     prometheus.Gauge
	Connects            *prometheus.CounterVec // result
	Disconnects         *prometheus.CounterVec // reason
	MessagesIn          *prometheus.CounterVec // route
	MessagesOut         *prometheus.CounterVec // source: the route key whose integration sent it, or (management)
	Dropped             *prometheus.CounterVec // reason
	IntegrationDuration *prometheus.HistogramVec
	IntegrationErrors   *prometheus.CounterVec // route, kind
	ManagementRequests  *prometheus.CounterVec // operation, status
	ManagementRefused   *prometheus.CounterVec // reason: an AuthRefusal
}

// New creates the collectors and registers them, with the Go runtime and
// process collectors, on reg. A nil reg registers nothing (for tests and
// embedders that do not export metrics).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnectionsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_connections_open", Help: "WebSocket connections open on this node.",
		}),
		Connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_connects_total", Help: "WebSocket handshakes, by result.",
		}, []string{"result"}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_disconnects_total", Help: "Closed connections, by reason.",
		}, []string{"reason"}),
		MessagesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messages_in_total", Help: "Messages received from clients, by route key.",
		}, []string{"route"}),
		MessagesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messages_out_total", Help: "Messages queued to clients (posts, broadcasts, publishes, route responses, error frames), by the route that sent them or (management).",
		}, []string{"source"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messages_dropped_total", Help: "Messages dropped, by reason; a queue_full drop also closes the slow consumer.",
		}, []string{"reason"}),
		IntegrationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_integration_duration_seconds",
			Help:    "Route invocation latency, by route key and integration type.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 29},
		}, []string{"route", "integration"}),
		IntegrationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_integration_errors_total", Help: "Failed route invocations, by route key and kind (error, timeout, client).",
		}, []string{"route", "kind"}),
		ManagementRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_management_requests_total", Help: "Management API calls, by operation and HTTP status.",
		}, []string{"operation", "status"}),
		ManagementRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_management_auth_failures_total", Help: "Management requests refused before their handler ran, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.ConnectionsOpen, m.Connects, m.Disconnects, m.MessagesIn, m.MessagesOut,
			m.Dropped, m.IntegrationDuration, m.IntegrationErrors, m.ManagementRequests, m.ManagementRefused,
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// AuthRefused counts a refused management request.
func (m *Metrics) AuthRefused(reason AuthRefusal) {
	m.ManagementRefused.WithLabelValues(string(reason)).Inc()
}

// Sum adds up every sample of a counter or gauge collector, across its
// labels: the totals the dashboard shows are read from the metrics rather
// than counted twice.
func Sum(c prometheus.Collector, labelValue ...string) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var total float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || !hasLabelValues(&d, labelValue) {
			continue
		}
		switch {
		case d.Counter != nil:
			total += d.Counter.GetValue()
		case d.Gauge != nil:
			total += d.Gauge.GetValue()
		}
	}
	return total
}

// hasLabelValues reports whether every wanted value is one of m's label values.
func hasLabelValues(m *dto.Metric, want []string) bool {
	for _, w := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetValue() == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Cluster holds the collectors of a node on a cluster; a node alone
// registers none of them.
type Cluster struct {
	EngineUp      prometheus.Gauge       // 1 while the engine is reachable and delivering
	CallFailures  *prometheus.CounterVec // op: directory and bus calls that failed to reach the engine or the holder
	Undelivered   *prometheus.CounterVec // op: publish or broadcast the bus did not take for the other nodes
	LeaseFailures prometheus.Counter     // lease renewals that failed
	Nodes         prometheus.Gauge       // nodes with a live lease, as last read

	reg prometheus.Registerer
}

// Label values of Cluster.Undelivered.
const (
	UndeliveredPublish   = "publish"
	UndeliveredBroadcast = "broadcast"
)

// NewCluster creates the cluster collectors and registers them on reg (nil
// registers nothing).
func NewCluster(reg prometheus.Registerer) *Cluster {
	c := &Cluster{
		EngineUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_cluster_engine_up", Help: "1 while the cluster engine is reachable and delivers to this node, else 0.",
		}),
		CallFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_cluster_call_failures_total", Help: "Directory and bus calls that failed to reach the engine or the holding node, by operation.",
		}, []string{"op"}),
		Undelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_cluster_undelivered_total", Help: "Publishes and broadcasts the bus did not take for the other nodes (each also an error to its caller), by operation.",
		}, []string{"op"}),
		LeaseFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_cluster_lease_renewals_failed_total", Help: "Renewals of this node's lease that failed.",
		}),
		Nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_cluster_nodes", Help: "Nodes of the cluster with a live lease, as last read.",
		}),
		reg: reg,
	}
	if reg != nil {
		reg.MustRegister(c.EngineUp, c.CallFailures, c.Undelivered, c.LeaseFailures, c.Nodes)
	}
	return c
}

// RegisterMissed registers switchboard_cluster_missed_total, read from
// missed: deliveries from other nodes that reached this node's bus but were
// dropped (an engine whose bus counts them).
func (c *Cluster) RegisterMissed(missed func() uint64) {
	if c.reg == nil {
		return
	}
	c.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchboard_cluster_missed_total", Help: "Publishes and broadcasts from other nodes this node's bus dropped before delivering them.",
	}, func() float64 { return float64(missed()) }))
}

// Events holds the EventBridge entrance's and the event rules' collectors.
// A nil *Events counts nothing.
type Events struct {
	Accepted  *prometheus.CounterVec // bus
	Refused   *prometheus.CounterVec // code: the entry's ErrorCode
	Matched   *prometheus.CounterVec // rule
	Delivered *prometheus.CounterVec // rule, target, kind
	Retries   *prometheus.CounterVec // rule, target, kind
	Failures  *prometheus.CounterVec // rule, target, kind, reason
}

// NewEvents registers the event collectors on reg.
func NewEvents(reg prometheus.Registerer) *Events {
	e := &Events{
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_accepted_total", Help: "PutEvents entries accepted, by event bus.",
		}, []string{"bus"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_refused_total", Help: "PutEvents entries refused, by error code.",
		}, []string{"code"}),
		Matched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_matched_total", Help: "Events matched by a rule, by rule.",
		}, []string{"rule"}),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_event_deliveries_total", Help: "Events delivered to a rule's target, by rule, target and kind.",
		}, []string{"rule", "target", "kind"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_event_retries_total", Help: "Deliveries to a rule's target retried, by rule, target and kind.",
		}, []string{"rule", "target", "kind"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_event_delivery_failures_total", Help: "Events given up on, by rule, target, kind and reason (permanent, attempts, age, stopped).",
		}, []string{"rule", "target", "kind", "reason"}),
	}
	reg.MustRegister(e.Accepted, e.Refused, e.Matched, e.Delivered, e.Retries, e.Failures)
	return e
}

// Accept counts an accepted entry.
func (e *Events) Accept(bus string) {
	if e != nil {
		e.Accepted.WithLabelValues(bus).Inc()
	}
}

// Refuse counts a refused entry.
func (e *Events) Refuse(code string) {
	if e != nil {
		e.Refused.WithLabelValues(code).Inc()
	}
}

// Match counts an event a rule matched.
func (e *Events) Match(rule string) {
	if e != nil {
		e.Matched.WithLabelValues(rule).Inc()
	}
}

// Deliver counts a delivery.
func (e *Events) Deliver(rule, target, kind string) {
	if e != nil {
		e.Delivered.WithLabelValues(rule, target, kind).Inc()
	}
}

// Retry counts a retry.
func (e *Events) Retry(rule, target, kind string) {
	if e != nil {
		e.Retries.WithLabelValues(rule, target, kind).Inc()
	}
}

// Fail counts an event given up on.
func (e *Events) Fail(rule, target, kind, reason string) {
	if e != nil {
		e.Failures.WithLabelValues(rule, target, kind, reason).Inc()
	}
}

// Consumers holds the collectors of the consumers that read events from a
// bus. A nil *Consumers counts nothing.
type Consumers struct {
	Consumed     *prometheus.CounterVec // consumer: events published to their topic
	Duplicates   *prometheus.CounterVec // consumer: redeliveries not published again (idempotency key)
	Redeliveries *prometheus.CounterVec // consumer: deliveries of an event after its first
	Retries      *prometheus.CounterVec // consumer: failed deliveries handed back to be retried
	DeadLetters  *prometheus.CounterVec // consumer, reason: events sent to the dead letters
	Lag          *prometheus.GaugeVec   // consumer: events not yet acknowledged
}

// NewConsumers registers the consumer collectors on reg.
func NewConsumers(reg prometheus.Registerer) *Consumers {
	c := &Consumers{
		Consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_consumer_events_total", Help: "Events a consumer published to their topic, by consumer.",
		}, []string{"consumer"}),
		Duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_consumer_duplicates_total", Help: "Redelivered events a consumer acknowledged without publishing them again, by consumer.",
		}, []string{"consumer"}),
		Redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_consumer_redeliveries_total", Help: "Deliveries of an event after its first, by consumer.",
		}, []string{"consumer"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_consumer_retries_total", Help: "Failed deliveries handed back to be retried, by consumer.",
		}, []string{"consumer"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_consumer_dead_letters_total", Help: "Events sent to the dead letters, by consumer and reason (mapping, attempts).",
		}, []string{"consumer", "reason"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_consumer_lag", Help: "Events of a consumer's source not yet acknowledged (not yet delivered, or pending), as last read, by consumer.",
		}, []string{"consumer"}),
	}
	if reg != nil {
		reg.MustRegister(c.Consumed, c.Duplicates, c.Redeliveries, c.Retries, c.DeadLetters, c.Lag)
	}
	return c
}

// ConsumerCounters are one consumer's collectors, their labels resolved
// once: counting an event looks no label up. A nil *ConsumerCounters
// counts nothing. Safe for concurrent use.
type ConsumerCounters struct {
	consumed, duplicates, redeliveries, retries prometheus.Counter
	deadLetters                                 *prometheus.CounterVec
	dead                                        map[string]prometheus.Counter // by reason; read only
	lag                                         prometheus.Gauge
}

// For resolves consumer's collectors, and those of its dead letters for
// each of reasons; nil when c is nil.
func (c *Consumers) For(consumer string, reasons ...string) *ConsumerCounters {
	if c == nil {
		return nil
	}
	cc := &ConsumerCounters{
		consumed:     c.Consumed.WithLabelValues(consumer),
		duplicates:   c.Duplicates.WithLabelValues(consumer),
		redeliveries: c.Redeliveries.WithLabelValues(consumer),
		retries:      c.Retries.WithLabelValues(consumer),
		deadLetters:  c.DeadLetters.MustCurryWith(prometheus.Labels{"consumer": consumer}),
		dead:         make(map[string]prometheus.Counter, len(reasons)),
		lag:          c.Lag.WithLabelValues(consumer),
	}
	for _, r := range reasons {
		cc.dead[r] = cc.deadLetters.WithLabelValues(r)
	}
	return cc
}

// Consume counts an event published.
func (c *ConsumerCounters) Consume() {
	if c != nil {
		c.consumed.Inc()
	}
}

// Duplicate counts a redelivery not published again.
func (c *ConsumerCounters) Duplicate() {
	if c != nil {
		c.duplicates.Inc()
	}
}

// Redeliver counts a delivery after the first.
func (c *ConsumerCounters) Redeliver() {
	if c != nil {
		c.redeliveries.Inc()
	}
}

// Retry counts a failed delivery handed back.
func (c *ConsumerCounters) Retry() {
	if c != nil {
		c.retries.Inc()
	}
}

// DeadLetter counts an event sent to the dead letters; a reason not given
// to For is looked up.
func (c *ConsumerCounters) DeadLetter(reason string) {
	if c == nil {
		return
	}
	if m, ok := c.dead[reason]; ok {
		m.Inc()
		return
	}
	c.deadLetters.WithLabelValues(reason).Inc()
}

// SetLag records the consumer's lag.
func (c *ConsumerCounters) SetLag(n int64) {
	if c != nil {
		c.lag.Set(float64(n))
	}
}
