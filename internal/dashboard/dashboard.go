// Package dashboard serves the operator dashboard and the demo chat page at
// /_/, from assets embedded in the binary, and the sign-in in front of them
// when the management API needs credentials (Login). The pages use the
// management API over HTTP like any client, through /_/api/ so that their
// session goes with each call; this package adds only read-only views the
// management API does not have: routes, totals, the rates of the last
// minutes, the cluster's nodes and the live invocation tail.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/consumer"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/rates"
	"github.com/switchboard-gateway/switchboard/internal/tail"
)

// RouteInfo describes one route for the dashboard.
type RouteInfo struct {
	RouteKey    string `json:"routeKey"`
	Integration string `json:"integration"` // kind, e.g. broadcast, lambda
	Target      string `json:"target,omitempty"`
	TwoWay      bool   `json:"twoWay"`
}

// Node is one gateway of a cluster as the dashboard shows it.
type Node struct {
	// ID names the node in the directory's records, and so in the
	// connection listing's "node"; Name is for people (a hostname).
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// StartedAt is when the node joined; LastSeen when it last renewed its lease.
	StartedAt time.Time `json:"startedAt"`
	LastSeen  time.Time `json:"lastSeen"`
	// Self marks the node that serves this dashboard.
	Self bool `json:"self,omitempty"`
}

// Cluster is the cluster as the node serving the dashboard sees it.
type Cluster struct {
	// Engine names what connects the nodes ("nats", "redis", "embedded
	// NATS"…); empty for a node alone, which the page shows no cluster for.
	Engine string `json:"engine"`
	// Node is this node's ID.
	Node string `json:"node,omitempty"`
	// EngineError is empty while this node reaches the engine and the
	// engine delivers to it; otherwise what is wrong.
	EngineError string `json:"engineError,omitempty"`
	// Nodes are the nodes whose lease is current, sorted by ID.
	Nodes []Node `json:"nodes"`
	// NodesError says why Nodes could not be read (the engine is down, say).
	NodesError string `json:"nodesError,omitempty"`
}

// Options configures the dashboard. Stats, Cluster and Tail may be nil.
type Options struct {
	// Stage is shown on the dashboard, which also lists the /{stage} URLs.
	Stage  string
	Routes []RouteInfo
	// Stats returns the gateway's running totals, from which the page
	// computes message rates. Nil serves zeros.
	Stats func() gateway.Stats
	// Cluster reports the cluster's nodes and this node's engine state,
	// within ctx (bounded by ClusterTimeout). Nil: a node alone.
	Cluster func(ctx context.Context) Cluster
	// Consumers reports the counts of the consumers that read events
	// from a bus. Nil: none.
	Consumers func() []consumer.Stats
	// ClusterTimeout bounds each call of Cluster. Zero or less means 5s.
	ClusterTimeout time.Duration
	// Tail streams route invocations to the page. Nil serves a stream
	// that carries only heartbeats.
	Tail *tail.Hub
	// Rates is the history the rates chart draws. Nil serves no samples.
	Rates *rates.Ring
	// API serves the management API (/@connections, /@topics/{topic},
	// /@broadcast). The page reaches it under /_/api/, so that its calls
	// carry the dashboard's session, which the management API itself does
	// not accept. Nil: those paths answer 404.
	API http.Handler
	// Heartbeat is how often an idle tail stream gets a comment line, so
	// that proxies and the browser keep it open. Zero or less means 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write of the tail stream; a client that
	// reads nothing for this long is dropped. Zero or less means 10s.
	WriteTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.ClusterTimeout <= 0 {
		o.ClusterTimeout = 5 * time.Second
	}
	return o
}

//go:embed assets
var assets embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes maps the extensions of the embedded files to their types;
// the table is ours so that the answer never depends on the host's MIME
// database.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// contentSecurityPolicy allows the pages nothing but their own origin: the
// assets are all embedded, and the chat page's WebSocket is same-origin.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// referrerPolicy sends no referrer to other origins. It is not
// "no-referrer", with which a browser sends "Origin: null" on the pages'
// form POSTs (sign-in, sign-out), which the Origin check then refuses.
const referrerPolicy = "same-origin"

func loadAsset(name string) asset {
	body, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic("dashboard: missing embedded asset " + name) // a build error, not a runtime one
	}
	ct, ok := contentTypes[path.Ext(name)]
	if !ok {
		panic("dashboard: no content type for " + name)
	}
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// ServeHTTP serves the asset with revalidation: every load asks the server,
// which answers 304 while the binary is unchanged.
func (a asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if a.contentType == contentTypes[".html"] {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", referrerPolicy)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// New returns the handler for everything under /_/, and for /_ itself,
// which redirects to /_/:
//
//	GET /_/             the dashboard
//	GET /_/chat         the demo chat page
//	GET /_/api/routes   {"stage": ..., "routes": [RouteInfo...]}
//	GET /_/api/stats    gateway.Stats
//	GET /_/api/cluster  Cluster (engine "" and no nodes for a node alone)
//	GET /_/api/tail     text/event-stream of tail.Record, recent ones first
//	GET /_/api/rates    {"intervalMs": ..., "samples": [rates.Sample...]}, oldest first
//	GET /_/api/consumers {"consumers": [consumer.Stats...]}
//
// and the management API's calls the page makes, forwarded to Options.API
// with the path it has there:
//
//	GET    /_/api/connections          GET    /@connections
//	GET    /_/api/connections/{id}     GET    /@connections/{id}
//	POST   /_/api/connections/{id}     POST   /@connections/{id}
//	DELETE /_/api/connections/{id}     DELETE /@connections/{id}
//	POST   /_/api/topics/{topic}       POST   /@topics/{topic}
//	POST   /_/api/broadcast            POST   /@broadcast
//	GET    /_/api/users                GET    /@users
//	GET    /_/api/queues               GET    /@queues
//	GET    /_/api/queues/{name}        GET    /@queues/{name}
//	POST   /_/api/queues/{name}/redrive POST  /@queues/{name}/redrive
//
// Anything else under /_/ is 404: a JSON {"message"} under /_/api/, a
// page that links to the dashboard elsewhere. The handler is safe for concurrent use;
// each tail stream ends when its client leaves.
func New(opts Options) http.Handler {
	d := &dashboard{opts: opts.withDefaults()}
	mux := http.NewServeMux()
	mux.Handle("GET /_/{$}", loadAsset("index.html"))
	mux.Handle("GET /_/chat", loadAsset("chat.html"))
	for _, name := range []string{"dashboard.js", "chat.js", "style.css"} {
		mux.Handle("GET /_/"+name, loadAsset(name))
	}
	mux.HandleFunc("GET /_/api/routes", d.routes)
	mux.HandleFunc("GET /_/api/stats", d.stats)
	mux.HandleFunc("GET /_/api/cluster", d.cluster)
	mux.HandleFunc("GET /_/api/tail", d.tail)
	mux.HandleFunc("GET /_/api/rates", d.rates)
	mux.HandleFunc("GET /_/api/consumers", d.consumers)
	for _, p := range []string{"GET /_/api/connections", "GET /_/api/connections/{id}", "POST /_/api/connections/{id}",
		"DELETE /_/api/connections/{id}", "POST /_/api/topics/{topic}", "POST /_/api/broadcast", "GET /_/api/users",
		"GET /_/api/queues", "GET /_/api/queues/{name}", "POST /_/api/queues/{name}/redrive"} {
		mux.HandleFunc(p, d.forward)
	}
	mux.HandleFunc("GET /_", func(w http.ResponseWriter, r *http.Request) {
		target := "/_/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	})
	mux.HandleFunc("/_/api", apiNotFound)
	mux.HandleFunc("/_/api/", apiNotFound)
	mux.Handle("/_/", notFoundPage)
	return mux
}

// apiNotFound answers a dashboard API that does not exist.
func apiNotFound(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeJSONStatus(w, http.StatusNotFound, struct {
		Message string `json:"message"`
	}{"no dashboard API at " + r.Method + " " + r.URL.Path})
}

// notFoundPage answers a dashboard path that does not exist with a page
// that links to the dashboard, under the same headers as its pages.
var notFoundPage = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", contentTypes[".html"])
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Referrer-Policy", referrerPolicy)
	w.WriteHeader(http.StatusNotFound)
	_, _ = io.WriteString(w, notFoundHTML)
})

const notFoundHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found · Switchboard</title>
<link rel="stylesheet" href="/_/style.css"></head>
<body><main><h1>Not found</h1><p>There is no such page. The dashboard is at <a href="/_/">/_/</a>.</p></main></body></html>
`

type dashboard struct {
	opts Options
}

type routesResponse struct {
	Stage  string      `json:"stage"`
	Routes []RouteInfo `json:"routes"`
}

func (d *dashboard) routes(w http.ResponseWriter, _ *http.Request) {
	routes := d.opts.Routes
	if routes == nil {
		routes = []RouteInfo{}
	}
	writeJSON(w, routesResponse{Stage: d.opts.Stage, Routes: routes})
}

func (d *dashboard) stats(w http.ResponseWriter, _ *http.Request) {
	var s gateway.Stats
	if d.opts.Stats != nil {
		s = d.opts.Stats()
	}
	writeJSON(w, s)
}

func (d *dashboard) cluster(w http.ResponseWriter, r *http.Request) {
	c := Cluster{}
	if d.opts.Cluster != nil {
		ctx, cancel := context.WithTimeout(r.Context(), d.opts.ClusterTimeout)
		c = d.opts.Cluster(ctx)
		cancel()
	}
	if c.Nodes == nil {
		c.Nodes = []Node{}
	}
	writeJSON(w, c)
}

// consumersResponse is the body of /_/api/consumers.
type consumersResponse struct {
	Consumers []consumer.Stats `json:"consumers"`
}

func (d *dashboard) consumers(w http.ResponseWriter, _ *http.Request) {
	cs := []consumer.Stats{}
	if d.opts.Consumers != nil {
		cs = append(cs, d.opts.Consumers()...)
	}
	writeJSON(w, consumersResponse{Consumers: cs})
}

// ratesResponse is the body of /_/api/rates.
type ratesResponse struct {
	IntervalMs int64          `json:"intervalMs"`
	Samples    []rates.Sample `json:"samples"`
}

func (d *dashboard) rates(w http.ResponseWriter, _ *http.Request) {
	resp := ratesResponse{IntervalMs: time.Second.Milliseconds(), Samples: []rates.Sample{}}
	if r := d.opts.Rates; r != nil {
		resp.IntervalMs = r.Interval().Milliseconds()
		resp.Samples = append(resp.Samples, r.Samples()...)
	}
	writeJSON(w, resp)
}

// forward hands a management call of the page to the management API, with
// /_/api/x rewritten to /@x; the escaped form is kept, so that an ID with
// "/" (sent as %2F) stays one path segment.
func (d *dashboard) forward(w http.ResponseWriter, r *http.Request) {
	if d.opts.API == nil {
		http.NotFound(w, r)
		return
	}
	escaped := "/@" + strings.TrimPrefix(r.URL.EscapedPath(), "/_/api/")
	p, err := url.PathUnescape(escaped)
	if err != nil {
		http.Error(w, "bad path", http.StatusBadRequest) // unreachable: the mux matched it unescaped
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = p, escaped
	r2.RequestURI = r2.URL.RequestURI()
	d.opts.API.ServeHTTP(w, r2)
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // only a client gone away makes this fail
}

// tail streams invocation records as Server-Sent Events: first the ones the
// hub kept, then live ones. Each record is an unnamed event whose data is
// the record's JSON; when this subscriber fell behind and lost records, an
// event named "dropped" carries {"dropped": N}. A comment line goes out
// every Heartbeat. It returns when the client leaves or a write fails.
func (d *dashboard) tail(w http.ResponseWriter, r *http.Request) {
	// Subscribe before reading the kept records so that none falls between
	// the two; the few that are in both are sent once.
	hub := d.opts.Tail
	var (
		sub    *tail.Sub
		live   <-chan tail.Record // nil without a hub: only heartbeats
		recent []tail.Record
	)
	if hub != nil {
		sub = hub.Subscribe()
		defer hub.Unsubscribe(sub)
		live = sub.C
		recent = hub.Recent()
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }() // leave no deadline on a kept-alive connection
	s := &sse{w: w, rc: rc, timeout: d.opts.WriteTimeout}
	s.printf("retry: 2000\n\n")
	sent := make(map[tail.Record]bool, len(recent))
	for _, rec := range recent {
		sent[rec] = true
		s.record(rec)
	}
	if !s.flush() {
		return
	}

	heartbeat := time.NewTicker(d.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			s.printf(": heartbeat\n\n")
		case rec, ok := <-live:
			if !ok {
				return
			}
			// Send what is waiting, up to a batch, then flush once.
			for n := 1; ; n++ {
				if sent[rec] {
					delete(sent, rec)
				} else {
					sent = nil // past the overlap: every later record is new
					s.record(rec)
				}
				if n == maxBatch {
					break
				}
				select {
				case rec, ok = <-live:
				default:
					ok = false
				}
				if !ok {
					break // a closed channel ends the stream at the next select
				}
			}
		}
		if sub != nil {
			if n := hub.Dropped(sub); n > 0 {
				s.printf("event: dropped\ndata: {\"dropped\":%d}\n\n", n)
			}
		}
		if !s.flush() {
			return
		}
	}
}

// maxBatch is how many records the tail stream writes between flushes.
const maxBatch = 64

// sse writes events to one stream; the first failed write ends it.
type sse struct {
	w       io.Writer
	rc      *http.ResponseController
	timeout time.Duration
	err     error
}

func (s *sse) printf(format string, args ...any) {
	if s.err != nil {
		return
	}
	// Each write gets its own deadline, which also lifts the server's
	// WriteTimeout from this long-lived response. Recorders without
	// deadlines are fine.
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, s.err = fmt.Fprintf(s.w, format, args...)
}

func (s *sse) record(rec tail.Record) {
	data, err := json.Marshal(rec)
	if err != nil {
		return // a Record always marshals
	}
	s.printf("data: %s\n\n", data)
}

// flush sends what was written and reports whether the stream is still good.
func (s *sse) flush() bool {
	if s.err != nil {
		return false
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	s.err = s.rc.Flush()
	return s.err == nil
}
