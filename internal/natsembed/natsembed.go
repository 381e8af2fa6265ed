// Package natsembed runs a NATS server (the nats-server Go module) inside
// the gateway process, with JetStream on for the connection directory, and
// joins it to the embedded servers of peer gateways over NATS routes, so a
// cluster of gateways needs no other program. It owns the server's
// lifetime and, when it chose it, its JetStream store directory.
package natsembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// MaxPayload is the largest message the server takes: room for a queue's
// largest message (1 MiB, as SQS's) in its envelope, where NATS's default
// is 1 MB.
const MaxPayload = 4 << 20

// ErrStoreInUse is returned when another server, of this process or
// another, holds the store directory.
var ErrStoreInUse = errors.New("natsembed: the store directory is in use by another server")

// ErrNotReady is returned when the server did not accept client connections
// within Options.ReadyTimeout, or reported a fatal error while starting
// (a port it could not bind, a store JetStream could not open), which
// follows.
var ErrNotReady = errors.New("natsembed: server not ready")

// Options configure an embedded server. The zero value runs a single
// server on a random loopback client port with JetStream in a temporary
// directory and no routes.
type Options struct {
	// Listen is the client address, host:port. Default "127.0.0.1:0"
	// (a random port; read it back with Server.ClientURL).
	Listen string
	// Name is the server's name, unique in a cluster (JetStream requires
	// it). Default: a name the server generates.
	Name string
	// ClusterName names the cluster of routed servers; all peers must use
	// the same. Default "switchboard".
	ClusterName string
	// ClusterListen is the route address peers connect to, host:port.
	// Empty: the server runs alone. JetStream in a cluster needs Routes
	// too, so give every server the same list and a fixed port here.
	ClusterListen string
	// Routes are the peers' route URLs (nats-route://host:port); the
	// server's own address may be in the list (it is skipped), so every
	// gateway can be given the same list. Once one peer is reached,
	// servers tell each other of the rest.
	Routes []string
	// StoreDir is where JetStream keeps its streams. Empty: a new
	// temporary directory, removed by Close.
	StoreDir string
	// Clients must present these credentials, and routes between peers
	// too: User and Password, or Token (not both). Empty: no
	// authentication, so keep Listen on loopback or a private network.
	User, Password, Token string
	// InProcess makes a server that accepts no network clients: only
	// connections made with Server.Connect, inside the process, reach it.
	// Listen is ignored, and a cluster needs a network, so ClusterListen
	// and Routes must be empty.
	InProcess bool
	// ReadyTimeout bounds the wait for the server to accept clients.
	// Default 10s.
	ReadyTimeout time.Duration
	// Logger receives the server's warnings and errors (a route it cannot
	// reach, a store it cannot write); its notices, debug and trace lines
	// are dropped. Nil drops them all.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.ClusterName == "" {
		o.ClusterName = "switchboard"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	return o
}

// Server is a running embedded NATS server. Close it when done.
type Server struct {
	ns        *server.Server
	inProcess bool
	storeDir  string
	lock      *os.File // the store directory's lock, when the caller chose it
	tempDir   string   // removed on Close; empty when the caller chose StoreDir
}

// Start starts a server and returns once it accepts client connections.
func Start(opts Options) (*Server, error) {
	o := opts.withDefaults()
	if o.Token != "" && (o.User != "" || o.Password != "") {
		return nil, errors.New("natsembed: set User/Password or Token, not both")
	}
	host, port, err := splitAddr(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("natsembed: listen %q: %w", o.Listen, err)
	}
	so := &server.Options{
		ServerName:    o.Name,
		Host:          host,
		Port:          port,
		JetStream:     true,
		MaxPayload:    MaxPayload,
		NoLog:         true,
		NoSigs:        true,
		Username:      o.User,
		Password:      o.Password,
		Authorization: o.Token,
	}
	if o.InProcess && (o.ClusterListen != "" || len(o.Routes) > 0) {
		return nil, errors.New("natsembed: an in-process server cannot join a cluster")
	}
	so.DontListen = o.InProcess
	if o.ClusterListen != "" && len(o.Routes) == 0 {
		return nil, errors.New("natsembed: a cluster listen address needs Routes (JetStream in a cluster requires them; list every peer, this server included)")
	}
	if o.ClusterListen != "" || len(o.Routes) > 0 {
		if o.ClusterListen == "" {
			o.ClusterListen = "127.0.0.1:0"
		}
		ch, cp, err := splitAddr(o.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("natsembed: cluster listen %q: %w", o.ClusterListen, err)
		}
		so.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: ch, Port: cp}
		if o.User != "" {
			so.Cluster.Username, so.Cluster.Password = o.User, o.Password
		} else if o.Token != "" {
			so.Cluster.Username, so.Cluster.Password = "route", o.Token
		}
		for _, r := range o.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("natsembed: route %q: want nats-route://host:port", r)
			}
			if u.User == nil && so.Cluster.Username != "" {
				u.User = url.UserPassword(so.Cluster.Username, so.Cluster.Password)
			}
			so.Routes = append(so.Routes, u)
		}
	}
	s := &Server{}
	so.StoreDir = o.StoreDir
	if so.StoreDir != "" {
		lock, err := lockStore(so.StoreDir)
		if err != nil {
			return nil, fmt.Errorf("natsembed: store dir: %w", err)
		}
		s.lock = lock
	}
	if so.StoreDir == "" {
		dir, err := os.MkdirTemp("", "switchboard-nats-")
		if err != nil {
			return nil, fmt.Errorf("natsembed: store dir: %w", err)
		}
		so.StoreDir, s.tempDir = dir, dir
	}
	ns, err := server.NewServer(so)
	if err != nil {
		s.unlock()
		s.removeTemp()
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	s.ns, s.storeDir, s.inProcess = ns, so.StoreDir, o.InProcess
	logs := &serverLog{log: o.Logger}
	ns.SetLoggerV2(logs, false, false, false)
	ns.Start()
	for deadline := time.Now().Add(o.ReadyTimeout); ; {
		if ns.ReadyForConnections(50 * time.Millisecond) {
			return s, nil
		}
		if msg := logs.first(); msg != "" {
			s.Close()
			return nil, fmt.Errorf("%w: %s", ErrNotReady, msg)
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("%w within %v", ErrNotReady, o.ReadyTimeout)
		}
	}
}

// serverLog is the server's logger. It passes warnings and errors to log,
// and keeps the first fatal error, such as a port the server cannot bind:
// nats-server hands that to its logger and goes on without the listener,
// so Start would otherwise wait out its whole timeout and not say why.
type serverLog struct {
	log *slog.Logger // nil: nothing is passed on

	mu  sync.Mutex
	msg string
}

func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.msg == "" {
		l.msg = msg
	}
	l.mu.Unlock()
	l.pass(slog.LevelError, msg)
}

func (l *serverLog) first() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}

func (l *serverLog) Errorf(format string, v ...any) {
	l.pass(slog.LevelError, fmt.Sprintf(format, v...))
}

func (l *serverLog) Warnf(format string, v ...any) {
	l.pass(slog.LevelWarn, fmt.Sprintf(format, v...))
}

func (l *serverLog) pass(level slog.Level, msg string) {
	if l.log != nil {
		l.log.Log(context.Background(), level, "nats: "+msg)
	}
}

func (*serverLog) Noticef(string, ...any) {}
func (*serverLog) Debugf(string, ...any)  {}
func (*serverLog) Tracef(string, ...any)  {}

// splitAddr parses host:port; port 0 means a random port.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Connect opens a client connection to the server: inside the process
// for an InProcess server, else to ClientURL.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	if s.inProcess {
		opts = append(opts, nats.InProcessServer(s.ns))
	}
	return nats.Connect(s.ClientURL(), opts...)
}

// ClientURL is the URL clients connect to (nats://host:port).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterURL is the URL peers route to (nats-route://host:port), or empty
// when the server accepts no routes.
func (s *Server) ClusterURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats-route://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// StoreDir is the JetStream store directory.
func (s *Server) StoreDir() string { return s.storeDir }

// Routes reports how many peers this server is routed to now.
func (s *Server) Routes() int { return s.ns.NumRoutes() }

// Name is the server's name in the cluster.
func (s *Server) Name() string { return s.ns.Name() }

// Close shuts the server down, waits for it, and removes the store
// directory when Start created it.
func (s *Server) Close() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
	s.unlock()
	s.removeTemp()
}

func (s *Server) unlock() {
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
}

func (s *Server) removeTemp() {
	if s.tempDir != "" && strings.Contains(s.tempDir, "switchboard-nats-") {
		_ = os.RemoveAll(s.tempDir)
	}
}
