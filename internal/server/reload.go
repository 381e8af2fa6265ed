package server

import (
	"fmt"
	"reflect"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

// Reload applies cfg, the configuration read again, while the server runs
// (`switchboard serve` calls it on SIGHUP). Open connections stay open and
// keep their ID. What changes at once: the route selection expression and
// the routes, their integrations and hosted functions, the $connect
// authorizer, origins, subprotocols, trusted proxies, caps and rates, the
// integration timeout, the access log, the management API's credentials
// and limits, and the dashboard. The connection limits (message size,
// queues, pings, idle and lifetime limits, message rate) apply to
// connections accepted afterwards. A hosted function whose settings did not
// change keeps its warm processes; one replaced or removed finishes the
// invocations it has in flight, then stops.
//
// What the listeners were built with keeps its running value, and each such
// setting that differs is logged: listen, stage, tls, management.listen,
// limits.handshakeTimeout, limits.maxHeaderBytes, consumers, and cluster
// (the node keeps its engine, name and lease until restarted).
//
// When cfg cannot be built (a function that cannot be prepared, an
// authorizer whose keys cannot be read, a management API it would expose),
// Reload returns the error and the configuration in force stays as it was.
// Reload is safe for concurrent use with serving; calls are serialised.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.cfg
	next := *cfg
	pinned := restartOnly(old, &next)

	b, gopts, err := s.build(&next, s.gw.Hub(), s.built)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.cfg = &next
	if err := s.CheckExposure(s.opts.Addr); err != nil {
		s.cfg = old
		_ = b.discard()
		return fmt.Errorf("reload: %w", err)
	}
	h, err := s.management(b)
	if err != nil {
		s.cfg = old
		_ = b.discard()
		return fmt.Errorf("reload: %w", err)
	}
	s.gw.Reload(gopts)
	if len(h.api) != len(s.guarded.Load().api) {
		// The API's routes depend on the stage, which a Reload keeps.
		s.cfg = old
		_ = b.discard()
		return fmt.Errorf("reload: the management API's routes changed")
	}
	s.guarded.Store(h)
	s.httpRoutes.Store(b.router)
	prev := s.built
	s.built = b
	if err := s.startQueues(b); err != nil {
		s.log.Error("reload: the queues kept their previous declarations", "err", err)
	}
	prev.retire(b, &s.retiring, s.log)

	for _, name := range pinned {
		s.log.Warn("reload: this setting changes only with a restart; the running value is kept", "setting", name)
	}
	s.log.Info("configuration reloaded", "config", next.Source, "routes", len(next.Routes), "functions", len(next.Functions))
	return nil
}

// restartOnly gives next the running value of every setting the listeners
// were built with, and names those that differed.
func restartOnly(running, next *config.Config) []string {
	var changed []string
	keep := func(name string, differs bool) {
		if differs {
			changed = append(changed, name)
		}
	}
	keep("listen", running.Listen != next.Listen)
	keep("stage", running.Stage != next.Stage)
	keep("tls", running.TLS != next.TLS)
	keep("management.listen", running.Management.Listen != next.Management.Listen)
	keep("limits.handshakeTimeout", running.Limits.HandshakeTimeout != next.Limits.HandshakeTimeout)
	keep("limits.maxHeaderBytes", running.Limits.MaxHeaderBytes != next.Limits.MaxHeaderBytes)
	keep("cluster", !reflect.DeepEqual(running.Cluster, next.Cluster))
	next.Cluster = running.Cluster
	keep("dataDir", running.DataDir != next.DataDir)
	next.DataDir = running.DataDir
	keep("presence", !reflect.DeepEqual(running.Presence, next.Presence))
	keep("consumers", !reflect.DeepEqual(running.Consumers, next.Consumers))
	next.Consumers = running.Consumers
	next.Presence = running.Presence
	next.Listen, next.Stage, next.TLS = running.Listen, running.Stage, running.TLS
	next.Management.Listen = running.Management.Listen
	next.Limits.HandshakeTimeout, next.Limits.MaxHeaderBytes = running.Limits.HandshakeTimeout, running.Limits.MaxHeaderBytes
	return changed
}
