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
	"github.com/switchboard-gateway/switchboard/internal/heapfloor"
	"github.com/switchboard-gateway/switchboard/internal/loadgen"
	"github.com/switchboard-gateway/switchboard/internal/server"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exit prints err, if any, as one line on stderr and returns the exit
// status that tells its kind (see cli.ExitStatuses).
func exit(err error, stderr io.Writer) int {
	var r *reported
	if errors.As(err, &r) {
		return r.code
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "switchboard:", err)
	}
	return cli.ExitCode(err)
}

// help is the help text of `switchboard` itself.
var help = &cli.Help{
	Usage: []string{"switchboard <command> [flags]"},
	Text: `A real-time WebSocket gateway, wire-compatible with API Gateway WebSocket APIs.

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
  queues list|show|redrive [QUEUE]   list the queues, show a dead-letter queue, redrive it
  bench WORKLOAD           load-test a gateway: conns, echo, fanout, mgmt or start (loopback unless --allow-remote)
  ca [--pem]               the local CA behind wss:// and https://: its file and how to trust it
  config validate|defaults check a config file, or print every key at its default
  version                  print the version and the build's VCS revision

Run 'switchboard <command> --help' for a command's flags and examples.`,
	Examples: []string{
		`switchboard serve --listen 127.0.0.1:3001`,
		`switchboard connect ws://127.0.0.1:3001 --execute '{"action":"sendMessage","data":"hi"}' --wait 1s`,
		`switchboard list`,
	},
}

// serveHelp is the help text of `switchboard serve`.
var serveHelp = &cli.Help{
	Usage: []string{"switchboard serve [flags]"},
	Text: `Runs the gateway: WebSocket clients at ws://HOST:PORT and ws://HOST:PORT/STAGE,
the management API (@connections), the dashboard (/_/), /healthz and
/metrics on the same port. With neither --config nor --project it runs the
project in the current folder (serverless.yml, template.yaml), else the
built-in defaults: a chat and topic gateway on 127.0.0.1:3001. Flags win
over the environment, which wins over the file. SIGINT or SIGTERM drain the
connections (close 1001) and stop; SIGHUP reads the configuration again.`,
	Examples: []string{
		`switchboard serve`,
		`switchboard serve --listen 127.0.0.1:3001 --stage prod --log-format json`,
		`switchboard serve --listen 127.0.0.1:3001 --log-level debug --pprof`,
	},
}

// versionHelp is the help text of `switchboard version`.
var versionHelp = &cli.Help{
	Usage:    []string{"switchboard version"},
	Text:     "Prints the version, and the VCS revision, time and Go version the binary was built from.",
	Examples: []string{"switchboard version"},
}

// commands are the commands run knows, for "did you mean".
var commands = []string{"serve", "connect", "post", "get", "delete", "publish", "broadcast", "list", "users", "user", "presence", "queues", "bench", "ca", "config", "version", "help"}

// run is main without the process: testable with its own args, env and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("no command given (run 'switchboard --help' for the commands)")
	}
	if err := command(ctx, args, getenv, stdout, stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		return commandError(args, err)
	} else if err != nil {
		return err
	}
	return nil
}

// unknownCommand is a command line whose command does not exist.
type unknownCommand string

func (u unknownCommand) Error() string {
	if s := suggestion(string(u), commands); s != "" {
		return fmt.Sprintf("unknown command %q%s", string(u), s)
	}
	return fmt.Sprintf("unknown command %q (run 'switchboard --help' for the commands)", string(u))
}

// commandError names the command in err, unless err names it already.
func commandError(args []string, err error) error {
	var u unknownCommand
	if errors.As(err, &u) {
		return &cli.UsageError{Err: err}
	}
	name := args[0]
	if strings.HasPrefix(err.Error(), name+":") || strings.HasPrefix(err.Error(), name+" ") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// command runs the command args name.
func command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "connect":
		return cli.Connect(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
	case "post", "get", "delete", "publish", "broadcast", "list", "users", "user", "presence", "queues":
		return cli.Manage(ctx, args[0], args[1:], getenv, stdout, stderr)
	case "bench":
		return loadgen.Main(ctx, args[1:], getenv, stdout, stderr)
	case "ca":
		return caCommand(args[1:], getenv, stdout, stderr)
	case "config":
		return configCommand(args[1:], getenv, stdout, stderr)
	case "version", "-v", "--version":
		if cli.WantsHelp(args[1:]) {
			versionHelp.Write(stdout, nil)
			return flag.ErrHelp
		}
		printVersion(stdout)
		return nil
	case "help", "-h", "--help":
		if len(args) > 1 && args[0] == "help" { // help COMMAND
			return command(ctx, []string{args[1], "--help"}, getenv, stdout, stderr)
		}
		help.Write(stdout, nil)
		return nil
	}
	return unknownCommand(args[0])
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
	fs := cli.NewFlagSet("serve")
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
	ordering := fs.String("ordering", "", "how one connection's messages run through routes that set none: ordered or concurrent (env SWITCHBOARD_ORDERING; config ordering; default ordered)")
	logLevel := fs.String("log-level", getenv("SWITCHBOARD_LOG_LEVEL"), "debug, info, warn or error (env SWITCHBOARD_LOG_LEVEL; default info)")
	if err := cli.ParseFlags(fs, args, serveHelp, stdout); err != nil {
		return err
	}
	// As sam does, --parameter-overrides takes every Key=Value that follows.
	for fs.NArg() > 0 && len(paramArgs) > 0 && strings.Contains(fs.Arg(0), "=") && !strings.HasPrefix(fs.Arg(0), "-") {
		paramArgs = append(paramArgs, fs.Arg(0))
		if err := cli.ParseFlags(fs, fs.Args()[1:], serveHelp, stdout); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return cli.Usagef("serve: unexpected argument %q", fs.Arg(0))
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
			return cli.Usagef("serve: --log-level: %w", err)
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
		return cli.Usagef("serve: use either --config or --project, not both")
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
		ClusterListen: *clusterListen, ClusterPeers: *clusterPeers, Ordering: *ordering}
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
	if cfg.HeapFloor > 0 {
		heapfloor.Set(int64(cfg.HeapFloor))
		defer heapfloor.Set(0)
		if cfg.HeapFloorTouched() {
			heapfloor.Touch(int64(cfg.HeapFloor))
		}
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

// logAttr shapes every field of a log line: a duration is a whole number of
// milliseconds, its key ending in "Ms" (as API Gateway's $context latencies
// are in milliseconds: integrationLatency), and a field with nothing to say,
// an empty string or a nil error, is left out.
func logAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
		return a
	}
	switch a.Value.Kind() {
	case slog.KindDuration:
		key := a.Key
		if !strings.HasSuffix(key, "Ms") && !strings.HasSuffix(key, "Latency") {
			key += "Ms"
		}
		return slog.Int64(key, a.Value.Duration().Milliseconds())
	case slog.KindString:
		if a.Value.String() == "" {
			return slog.Attr{}
		}
	case slog.KindAny:
		if a.Value.Any() == nil {
			return slog.Attr{}
		}
	}
	return a
}

// newLogger logs as text on a terminal and as JSON lines otherwise (for log
// collectors), unless format says which.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: logAttr}
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
	return nil, cli.Usagef("serve: --log-format %q: want text, json or auto", format)
}
