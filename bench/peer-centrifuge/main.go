// Command peer-centrifuge is the benchmark suite's peer: a real-time server
// built the way its library's users build one, on
// github.com/centrifugal/centrifuge (the core of Centrifugo), measured in the
// same run as the ceiling and the gateway with the same load generator
// (`switchboard bench --protocol centrifuge`) speaking the library's own
// client protocol, JSON over WebSocket.
//
// It accepts every client anonymously and serves:
//
//	/connection/websocket            the client protocol: connect; subscribe to and
//	                                 publish in any channel; rpc "echo" answers its data
//	POST /api/publish                {"channel":C,"data":D}: D published in C; {}
//	GET /debug/vars                  expvar, with "goroutines"
//	/debug/pprof/                    net/http/pprof; GET /debug/pprof/heap?gc=1 forces a GC
//
// Like the other servers of the suite it sends no pings, holds a large
// queue per client, and keeps no history or presence. It has a module of its
// own so that the library's dependencies stay out of the gateway's.
//
//	go run . --listen 127.0.0.1:0
//
// prints "peer-centrifuge listening on ws://ADDR/connection/websocket" and
// serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
)

const (
	wsPath          = "/connection/websocket"
	maxBodyBytes    = 1 << 20
	shutdownTimeout = 5 * time.Second
)

func init() {
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "peer-centrifuge:", err)
		}
		os.Exit(2)
	}
}

// run is main without the process: it serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("peer-centrifuge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	queue := fs.Int("queue", 256<<20, "bytes one client may have waiting to be written; more disconnects it")
	writeTimeout := fs.Duration("write-timeout", 10*time.Second, "how long one write to a client may take; longer disconnects it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *queue <= 0 {
		return fmt.Errorf("--queue %d: want more than 0", *queue)
	}
	if *writeTimeout <= 0 {
		return fmt.Errorf("--write-timeout %s: want more than 0", *writeTimeout)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	node, err := newNode(*queue, stderr)
	if err == nil {
		err = node.Run()
	}
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("run node: %w", err)
	}
	hs := &http.Server{Handler: handler(node, *writeTimeout), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "peer-centrifuge listening on ws://%s%s\n", ln.Addr(), wsPath)
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	_ = hs.Close() // the listener and plain HTTP connections
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = node.Shutdown(sctx) // the WebSocket clients: http.Server does not track them
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// newNode returns a node that lets every client in, anonymously, with a
// queue of queue bytes, to subscribe to and publish in any channel and to
// call the "echo" RPC; its errors are logged to stderr.
func newNode(queue int, stderr io.Writer) (*centrifuge.Node, error) {
	node, err := centrifuge.New(centrifuge.Config{
		LogLevel: centrifuge.LogLevelError,
		LogHandler: func(e centrifuge.LogEntry) {
			fmt.Fprintf(stderr, "peer-centrifuge: %s %v\n", e.Message, e.Fields)
		},
		ClientQueueMaxSize: queue,
	})
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
		c.OnPublish(func(_ centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{}, nil)
		})
		c.OnRPC(func(e centrifuge.RPCEvent, cb centrifuge.RPCCallback) {
			if e.Method != "echo" {
				cb(centrifuge.RPCReply{}, centrifuge.ErrorMethodNotFound)
				return
			}
			cb(centrifuge.RPCReply{Data: e.Data}, nil)
		})
	})
	return node, nil
}

func handler(node *centrifuge.Node, writeTimeout time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(wsPath, centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		WriteTimeout: writeTimeout,
		// No pings, as the suite's other servers send none.
		PingPongConfig: centrifuge.PingPongConfig{PingInterval: -1, PongTimeout: -1},
	}))
	mux.Handle("POST /api/publish", publishHandler(node))
	mux.Handle("GET /debug/vars", expvar.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// publishHandler is the server API's publish: {"channel":C,"data":D}
// publishes D, any JSON value, in C.
func publishHandler(node *centrifuge.Node) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err := dec.Decode(&req); err != nil {
			http.Error(w, `{"error":{"code":107,"message":"bad request: `+jsonText(err.Error())+`"}}`, http.StatusBadRequest)
			return
		}
		if req.Channel == "" || len(req.Data) == 0 {
			http.Error(w, `{"error":{"code":107,"message":"bad request: channel and data are required"}}`, http.StatusBadRequest)
			return
		}
		if _, err := node.Publish(req.Channel, req.Data); err != nil {
			http.Error(w, `{"error":{"code":100,"message":"`+jsonText(err.Error())+`"}}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}\n")
	})
}

// jsonText returns s escaped for the inside of a JSON string.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
