// Command switchboard is a real-time WebSocket gateway compatible with API
// Gateway WebSocket APIs. `switchboard serve` runs it; see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/loadgen"
	"github.com/switchboard-gateway/switchboard/internal/server"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "switchboard:", err)
		}
		os.Exit(2)
	}
}

const usage = `Usage: switchboard <command> [flags]

Commands:
  serve                    run the gateway
  connect URL              an interactive WebSocket client
  post ID DATA             send DATA to a connection (PostToConnection)
  get ID                   describe a connection (GetConnection)
  delete ID                close a connection (DeleteConnection)
  publish TOPIC DATA       send DATA to a topic's subscribers
  broadcast DATA           send DATA to every connection
  list [--all]             list connections
  users                    list the users online
  user send|list|disconnect USER [DATA]   reach every connection of a user
  presence TOPIC           list a topic's subscribers
  bench conns|echo|fanout|mgmt   load-test a gateway (loopback unless --allow-remote)
  ca [--pem]               the local CA behind wss:// and https://: its file and how to trust it
  version                  print the version

Run 'switchboard <command> -h' for a command's flags.
`

// run is main without the process: testable with its own args, env and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "connect":
		return cli.Connect(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
	case "post", "get", "delete", "publish", "broadcast", "list", "users", "user", "presence":
		return cli.Manage(ctx, args[0], args[1:], getenv, stdout, stderr)
	case "bench":
		return loadgen.Main(ctx, args[1:], getenv, stdout, stderr)
	case "ca":
		return caCommand(args[1:], getenv, stdout, stderr)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, "switchboard", versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// firstOf returns the first non-empty value.
func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "address to listen on (env SWITCHBOARD_LISTEN; default "+config.DefaultListen+")")
	cfgPath := fs.String("config", getenv("SWITCHBOARD_CONFIG"), "YAML config file (env SWITCHBOARD_CONFIG; optional)")
	project := fs.String("project", firstOf(getenv("SWITCHBOARD_PROJECT"), getenv("SWITCHBOARD_SERVERLESS")), "a project to run: serverless.yml (.yaml, .json, .ts, .js) or a SAM/CloudFormation template (env SWITCHBOARD_PROJECT); default: the one in the current folder")
	fs.StringVar(project, "serverless", *project, "the same as --project")
	var paramArgs []string
	fs.Func("parameter-overrides", "a template's parameters: 'Key=Value Key2=Value2' (env SWITCHBOARD_PARAMETER_OVERRIDES)", func(s string) error {
		paramArgs = append(paramArgs, s)
		return nil
	})
	stage := fs.String("stage", "", "stage name (env SWITCHBOARD_STAGE; default "+config.DefaultStage+")")
	insecureMgmt := fs.Bool("insecure-management", false, "serve the management API and dashboard without credentials on a non-loopback address (dangerous)")
	logFormat := fs.String("log-format", getenv("SWITCHBOARD_LOG_FORMAT"), "text, json or auto: text on a terminal, JSON otherwise (env SWITCHBOARD_LOG_FORMAT)")
	pprofFlag := fs.Bool("pprof", false, "serve /debug/pprof/ beside the management API")
	warm := fs.Bool("warm", false, "start every function before serving, so that the first message pays no cold start (config warm)")
	cluster := fs.String("cluster", "", "join a cluster: nats://host:port[,host:port], redis://host:port, or embedded (env SWITCHBOARD_CLUSTER; config cluster.url)")
	node := fs.String("node", "", "this node's name in the cluster (env SWITCHBOARD_NODE; default: host name and a random suffix)")
	clusterListen := fs.String("cluster-listen", "", "with --cluster embedded: the route address host:port peers connect to (env SWITCHBOARD_CLUSTER_LISTEN)")
	clusterPeers := fs.String("cluster-peers", "", "with --cluster embedded: every node's route address, host:port,host:port (env SWITCHBOARD_CLUSTER_PEERS)")
	logLevel := fs.String("log-level", getenv("SWITCHBOARD_LOG_LEVEL"), "debug, info, warn or error (env SWITCHBOARD_LOG_LEVEL; default info)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// As sam does, --parameter-overrides takes every Key=Value that follows.
	for fs.NArg() > 0 && len(paramArgs) > 0 && strings.Contains(fs.Arg(0), "=") && !strings.HasPrefix(fs.Arg(0), "-") {
		paramArgs = append(paramArgs, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if len(paramArgs) == 0 && getenv("SWITCHBOARD_PARAMETER_OVERRIDES") != "" {
		paramArgs = []string{getenv("SWITCHBOARD_PARAMETER_OVERRIDES")}
	}
	params, err := config.ParseParameterOverrides(paramArgs...)
	if err != nil {
		return fmt.Errorf("serve: --parameter-overrides: %w", err)
	}
	var level slog.Level
	if *logLevel != "" {
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("serve: -log-level: %w", err)
		}
	}
	log, err := newLogger(stderr, *logFormat, level)
	if err != nil {
		return err
	}

	// SIGHUP reloads the configuration; one that does not load or build is
	// logged and the running one stays. Caught from here on, so that a
	// SIGHUP during start-up is a reload once serving, not an exit.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if *project != "" && *cfgPath != "" {
		return errors.New("serve: use either --config or --project, not both")
	}
	if *cfgPath != "" {
		if kind := config.DetectKind(*cfgPath); kind != config.KindConfig {
			return fmt.Errorf("serve: %s is %s: run it with --project %s", *cfgPath, kind, *cfgPath)
		}
	}
	if *project == "" && *cfgPath == "" {
		// With neither, the project in the current folder, if any, runs.
		if *project, err = config.FindProject("."); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	if len(params) > 0 && (*project == "" || config.DetectKind(*project) != config.KindTemplate) {
		return errors.New("serve: --parameter-overrides applies to a SAM/CloudFormation template only")
	}
	// load reads the configuration from the same file, environment and
	// flags at start-up and on every SIGHUP.
	flags := config.Overrides{Listen: *listen, Stage: *stage, Parameters: params, Cluster: *cluster, Node: *node,
		ClusterListen: *clusterListen, ClusterPeers: *clusterPeers}
	load := func() (*config.Config, error) {
		var cfg *config.Config
		var err error
		if *project != "" {
			cfg, err = config.LoadProject(*project, getenv, flags)
		} else {
			cfg, err = config.Load(*cfgPath, getenv, flags)
		}
		if err != nil {
			return nil, err
		}
		if *insecureMgmt {
			cfg.Management.AllowUnauthenticated = true
		}
		if *pprofFlag {
			cfg.Pprof = true
		}
		if *warm {
			cfg.Warm = true
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var caFile, caBundle string
	if cfg.TLS.CertFile == "" && !cfg.TLS.Disable && cfg.TLS.DataDir == "" {
		log.Warn("no data directory for the local CA (set SWITCHBOARD_DATA_DIR or HOME): serving plain ws:// and http:// only")
	} else if cfg.TLS.CertFile == "" && !cfg.TLS.Disable {
		// The wait for a connection's first byte is part of its handshake.
		mux, ca, err := localTLS(ln, cfg.TLS.DataDir, server.HandshakeTimeout(cfg.Limits))
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("serve: %w (set tls.disable to serve plain ws:// only)", err)
		}
		ln, caFile, caBundle = mux, ca.CertFile(), ca.BundleFile()
	}
	var lns []net.Listener
	lns = append(lns, ln)
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	mgmtAddr := ln.Addr().String()
	if cfg.Management.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Management.Listen)
		if err != nil {
			return fmt.Errorf("serve: management listener: %w", err)
		}
		lns = append(lns, mln)
		mgmtAddr = mln.Addr().String()
	}
	srv, err := server.New(cfg, server.Options{Logger: log, Addr: mgmtAddr, FunctionOutput: stderr, CAFile: caFile, CABundle: caBundle})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.CheckExposure(mgmtAddr); err != nil {
		return err
	}

	servers := []*http.Server{{Handler: srv.Handler()}}
	if len(lns) == 2 {
		servers = append(servers, &http.Server{Handler: srv.ManagementHandler()})
	}
	errc := make(chan error, len(servers))
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile // cfg changes on SIGHUP; TLS needs a restart
	for i, hs := range servers {
		srv.ConfigureHTTP(hs)
		hs.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
		go func() {
			if certFile != "" {
				errc <- hs.ServeTLS(lns[i], certFile, keyFile)
			} else {
				errc <- hs.Serve(lns[i])
			}
		}()
	}
	srv.SetReady(true)
	fmt.Fprint(stdout, srv.Banner(ln.Addr().String(), mgmtAddr, cfg.TLS.CertFile != ""))

	for serving := true; serving; {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			log.Info("SIGHUP: reloading the configuration", "config", cfg.Source)
			next, err := load()
			if err == nil {
				err = srv.Reload(next)
			}
			if err != nil {
				log.Error("configuration not reloaded; the running one stays", "err", err)
				continue
			}
			cfg = next
		case <-ctx.Done():
			serving = false
		}
	}
	log.Info("shutting down: draining connections", "timeout", time.Duration(cfg.ShutdownTimeout))
	dctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	// Close every client with 1001 and run $disconnect while the listeners
	// still accept: /healthz and upgrades answer 503 until the drain ends,
	// and backends can still call the management API. Then stop accepting.
	drainErr := srv.Drain(dctx)
	if drainErr != nil {
		log.Warn("drain did not finish in time; remaining connections dropped", "err", drainErr)
		for _, hs := range servers {
			_ = hs.Close()
		}
	} else {
		for _, hs := range servers {
			// Requests in flight (management calls) may finish within the timeout.
			if err := hs.Shutdown(dctx); errors.Is(err, context.DeadlineExceeded) {
				_ = hs.Close()
			} else if err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
		}
	}
	log.Info("stopped")
	return nil
}

// newLogger logs as text on a terminal and as JSON lines otherwise (for log
// collectors), unless format says which.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", "auto":
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return slog.New(slog.NewTextHandler(w, opts)), nil
			}
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("serve: -log-format %q: want text, json or auto", format)
}
