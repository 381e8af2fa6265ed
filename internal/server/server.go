// Package server assembles a running gateway from a config.Config: the
// registry, hub, route table, gateway and management API behind one
// http.Handler, and the readiness and drain that `switchboard serve` drives.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
	"github.com/switchboard-gateway/switchboard/internal/mgmtapi"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
	"github.com/switchboard-gateway/switchboard/internal/route"
	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

// Server is a configured gateway and its HTTP surface.
type Server struct {
	cfg   *config.Config
	gw    *gateway.Gateway
	api   *mgmtapi.API
	mux   *http.ServeMux
	ready atomic.Bool
}

// New builds a server from a validated config.
func New(cfg *config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	sel, err := route.Parse(cfg.RouteSelectionExpression)
	if err != nil {
		return nil, err
	}
	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		prefix, err := config.ParsePrefix(p)
		if err != nil {
			return nil, err
		}
		proxies = append(proxies, prefix)
	}
	host, _ := os.Hostname()
	hub := gateway.NewHub(memreg.New(), host)
	routes := make(map[string]gateway.Route, len(cfg.Routes))
	for key, rc := range cfg.Routes {
		in, err := builtin.New(rc.Integration.Type, hub, builtin.Options{MockResponse: rc.Integration.Response})
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", key, err)
		}
		routes[key] = gateway.Route{Integration: in, RouteResponse: rc.TwoWay()}
	}
	l := cfg.Limits
	gw := gateway.New(hub, gateway.Options{
		Stage:     cfg.Stage,
		Selection: sel,
		Routes:    routes,
		Conn: wsconn.Options{
			ReadLimit:         int64(l.MaxMessageBytes),
			SendQueueMessages: l.SendQueueMessages,
			SendQueueBytes:    int(l.SendQueueBytes),
			PingInterval:      time.Duration(l.PingInterval),
			IdleTimeout:       time.Duration(l.IdleTimeout),
			MaxLifetime:       time.Duration(l.MaxLifetime),
		},
		Subprotocols:       cfg.Subprotocols,
		TrustedProxies:     proxies,
		IntegrationTimeout: time.Duration(cfg.IntegrationTimeout),
		Logger:             log,
	})
	api := mgmtapi.New(hub, mgmtapi.Options{Stage: cfg.Stage, MaxPostBytes: int64(l.MaxPostBytes), Logger: log})

	s := &Server{cfg: cfg, gw: gw, api: api, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	for _, p := range api.Patterns() {
		s.mux.Handle(p, api)
	}
	s.mux.Handle("/{$}", gw)
	s.mux.Handle("/"+cfg.Stage, gw)
	s.mux.Handle("/"+cfg.Stage+"/{$}", gw)
	return s, nil
}

// Handler returns the HTTP handler: WebSocket upgrades at / and /{stage},
// the management API, and /healthz.
func (s *Server) Handler() http.Handler { return s.mux }

// Gateway returns the gateway, for tests and the drain.
func (s *Server) Gateway() *gateway.Gateway { return s.gw }

// SetReady marks the server ready (or not) for /healthz.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() || s.gw.Draining() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"status\":\"ok\",\"connections\":%d}\n", s.gw.Hub().Count())
}

// Drain closes every connection with 1001 and waits for their $disconnect.
func (s *Server) Drain(ctx context.Context) error {
	s.ready.Store(false)
	return s.gw.Drain(ctx)
}

// Banner describes the running server for the start-up output.
func (s *Server) Banner(addr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Switchboard listening (config: %s)\n", s.cfg.Source)
	fmt.Fprintf(&b, "  WebSocket:      ws://%s  (also ws://%s/%s)\n", addr, addr, s.cfg.Stage)
	fmt.Fprintf(&b, "  Management API: http://%s/@connections  (also http://%s/%s/@connections)\n", addr, addr, s.cfg.Stage)
	fmt.Fprintf(&b, "  Health:         http://%s/healthz\n", addr)
	fmt.Fprintf(&b, "  Route selection: %s\n", s.cfg.RouteSelectionExpression)
	fmt.Fprintf(&b, "  Routes:\n")
	keys := make([]string, 0, len(s.cfg.Routes))
	for k := range s.cfg.Routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := s.cfg.Routes[k]
		way := ""
		if r.TwoWay() {
			way = "  (two-way)"
		}
		fmt.Fprintf(&b, "    %-16s -> %s%s\n", k, r.Integration.Type, way)
	}
	if _, ok := s.cfg.Routes[route.Default]; !ok {
		fmt.Fprintf(&b, "    (no $default: unmatched messages get {\"message\": \"Forbidden\", ...})\n")
	}
	return b.String()
}
