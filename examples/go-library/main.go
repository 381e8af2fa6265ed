// Command go-library is a chat gateway written with the switchboard Go
// package: its routes are Go functions beside a built-in one, it pushes to
// topics from Go, and it drains its clients on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchboard-gateway/switchboard"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:3001", "address to listen on")
	cluster := flag.String("cluster", "", "join a cluster: nats://host:port, redis://host:port or embedded")
	node := flag.String("node", "", "this node's name in the cluster")
	flag.Parse()
	if err := run(*listen, *cluster, *node); err != nil {
		log.Fatal(err)
	}
}

func run(listen, cluster, node string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c := &chat{}
	gw, err := switchboard.New(switchboard.Options{
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Cluster: switchboard.Cluster{URL: cluster, Node: node},
		Routes: map[string]switchboard.Route{
			"$connect":    {Handler: c.connect, Inline: true}, // it never waits
			"$disconnect": {Handler: c.disconnect},
			"join":        {Handler: c.join},
			"say":         {Handler: c.say},
			"$default":    {Handler: c.unknown, Inline: true},
			"sendMessage": {Builtin: switchboard.BuiltinBroadcast}, // {"action":"sendMessage","data":"..."} to everyone
		},
	})
	if err != nil {
		return err
	}
	c.gw = gw
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		_ = gw.Close()
		return err
	}
	fmt.Printf("listening on ws://%s\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()

	select {
	case err := <-served:
		_ = gw.Close()
		return err
	case <-ctx.Done():
	}
	// Clients are closed with 1001 and $disconnect runs for each before
	// Shutdown returns.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Println("stopped")
	return nil
}

// chat holds the routes' handlers; they reach the gateway through it.
type chat struct {
	gw *switchboard.Gateway
}

// message is what clients send: {"action":"say","room":"lobby","text":"hi"}.
type message struct {
	Room string `json:"room"`
	Text string `json:"text"`
}

// connect admits clients that give a name (ws://HOST?name=Ada), which
// becomes the connection's user.
func (c *chat) connect(_ context.Context, req *switchboard.Request) (*switchboard.Response, error) {
	name := req.Conn.Query.Get("name")
	if name == "" {
		return &switchboard.Response{StatusCode: http.StatusUnauthorized}, nil
	}
	return &switchboard.Response{Headers: map[string]string{"X-Switchboard-User": name}}, nil
}

// join subscribes the caller to a room.
func (c *chat) join(ctx context.Context, req *switchboard.Request) (*switchboard.Response, error) {
	m, err := decode(req)
	if err != nil {
		return nil, err
	}
	if err := c.gw.Subscribe(ctx, req.Conn.ID, "room."+m.Room); err != nil {
		return nil, err
	}
	return &switchboard.Response{Body: []byte("joined " + m.Room)}, nil
}

// say publishes "name: text" to a room's members.
func (c *chat) say(ctx context.Context, req *switchboard.Request) (*switchboard.Response, error) {
	m, err := decode(req)
	if err != nil {
		return nil, err
	}
	_, err = c.gw.Publish(ctx, "room."+m.Room, []byte(req.Conn.User+": "+m.Text))
	return nil, err
}

// unknown answers a message no route takes.
func (c *chat) unknown(_ context.Context, req *switchboard.Request) (*switchboard.Response, error) {
	return nil, &switchboard.ClientError{Message: "unknown action; try join, say or sendMessage"}
}

// disconnect logs who left, and why.
func (c *chat) disconnect(_ context.Context, req *switchboard.Request) (*switchboard.Response, error) {
	fmt.Printf("%s left (%d)\n", req.Conn.User, req.DisconnectStatusCode)
	return nil, nil
}

// decode reads a message that names a room.
func decode(req *switchboard.Request) (message, error) {
	var m message
	if err := json.Unmarshal(req.Body, &m); err != nil || m.Room == "" {
		return m, &switchboard.ClientError{Message: `expected {"room": "...", ...}`}
	}
	return m, nil
}
