package switchboard_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard"
)

// A gateway whose route "greet" is a Go function, served on a random
// loopback port, and a client that calls it.
func Example() {
	gw, err := switchboard.New(switchboard.Options{
		Logger: slog.New(slog.DiscardHandler),
		Routes: map[string]switchboard.Route{
			"greet": {Handler: func(ctx context.Context, req *switchboard.Request) (*switchboard.Response, error) {
				return &switchboard.Response{Body: []byte("Hello from " + req.RouteKey)}, nil
			}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go gw.Serve(ln)
	defer gw.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"greet"}`)); err != nil {
		log.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(msg))
	// Output: Hello from greet
}

// serve serves gw on a random loopback port and returns its ws:// URL.
func serve(gw *switchboard.Gateway) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go gw.Serve(ln)
	return "ws://" + ln.Addr().String()
}

// dial connects a client to url; it reads and writes within 5s, and is
// closed by cancel.
func dial(url string) (c *websocket.Conn, ctx context.Context, cancel func()) {
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	return c, ctx, func() { _ = c.CloseNow(); stop() }
}

// A chat room: handlers that reach the gateway through their receiver, as
// an http.Handler reaches its server's state. "join" subscribes the caller
// to the room from Go; "say" publishes to it.
type chat struct {
	gw *switchboard.Gateway
}

func (ch *chat) join(ctx context.Context, req *switchboard.Request) (*switchboard.Response, error) {
	if err := ch.gw.Subscribe(ctx, req.Conn.ID, "room"); err != nil {
		return nil, err
	}
	return &switchboard.Response{Body: []byte("joined")}, nil
}

func (ch *chat) say(ctx context.Context, req *switchboard.Request) (*switchboard.Response, error) {
	_, err := ch.gw.Publish(ctx, "room", req.Body)
	return nil, err
}

func ExampleGateway_Publish() {
	ch := &chat{}
	gw, err := switchboard.New(switchboard.Options{
		Logger:                   slog.New(slog.DiscardHandler),
		RouteSelectionExpression: "$request.body.type",
		Routes: map[string]switchboard.Route{
			"join": {Handler: ch.join},
			"say":  {Handler: ch.say},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ch.gw = gw
	defer gw.Shutdown(context.Background())
	url := serve(gw)

	c, ctx, cancel := dial(url)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"join"}`))
	_, joined, _ := c.Read(ctx)
	fmt.Println(string(joined))
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"say","text":"hi all"}`))
	_, said, _ := c.Read(ctx)
	fmt.Println(string(said))

	n, err := gw.Publish(ctx, "room", []byte("from the server"))
	fmt.Println(n, err)
	_, msg, _ := c.Read(ctx)
	fmt.Println(string(msg))
	// Output:
	// joined
	// {"type":"say","text":"hi all"}
	// 1 <nil>
	// from the server
}

func ExampleGateway_Send() {
	ids := make(chan string, 1)
	gw, err := switchboard.New(switchboard.Options{
		Logger: slog.New(slog.DiscardHandler),
		Routes: map[string]switchboard.Route{
			"$connect": {Handler: func(_ context.Context, req *switchboard.Request) (*switchboard.Response, error) {
				ids <- req.Conn.ID
				return nil, nil // a nil Response accepts the connection
			}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Shutdown(context.Background())
	c, ctx, cancel := dial(serve(gw))
	defer cancel()
	id := <-ids

	if err := gw.Send(ctx, id, []byte("welcome")); err != nil {
		log.Fatal(err)
	}
	_, msg, _ := c.Read(ctx)
	fmt.Println(string(msg))

	err = gw.Send(ctx, "AAAAAAAAAAAAAAA=", []byte("anyone?")) // no such connection
	fmt.Println(errors.Is(err, switchboard.ErrGone))
	// Output:
	// welcome
	// true
}

func ExampleGateway_Shutdown() {
	codes := make(chan int, 1)
	gw, err := switchboard.New(switchboard.Options{
		Logger: slog.New(slog.DiscardHandler),
		Routes: map[string]switchboard.Route{
			"$disconnect": {Handler: func(_ context.Context, req *switchboard.Request) (*switchboard.Response, error) {
				codes <- req.DisconnectStatusCode
				return nil, nil
			}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	c, ctx, cancel := dial(serve(gw))
	defer cancel()
	closed := make(chan error, 1)
	go func() { // a client reads all the time
		_, _, err := c.Read(ctx)
		closed <- err
	}()

	// Every client is closed with 1001 and its $disconnect has run when
	// Shutdown returns, or the context ends.
	sctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if err := gw.Shutdown(sctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("$disconnect ran with", <-codes)
	fmt.Println("the client saw", websocket.CloseStatus(<-closed))
	// Output:
	// $disconnect ran with 1001
	// the client saw StatusGoingAway
}

// Handler serves the gateway on a server of the program's own, beside its
// other paths. Shutdown drains the gateway's connections, which the
// server's own Shutdown does not track.
func ExampleGateway_Handler() {
	gw, err := switchboard.New(switchboard.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "v1") })
	mux.Handle("/", gw.Handler()) // WebSocket clients at / and /dev, /@connections, /healthz
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = gw.Shutdown(ctx) // first the gateway's connections, with 1001
	_ = srv.Shutdown(ctx)
	// Output: 200 OK
}

// A gateway that is one node of a cluster: with two or more such programs
// on one NATS server (or Redis, or each with an embedded NATS server and
// each other's route addresses as Peers), each one's Send, Publish,
// Broadcast and Disconnect reach the connections of all.
func ExampleOptions_cluster() {
	gw, err := switchboard.New(switchboard.Options{
		Addr: "127.0.0.1:3001",
		Cluster: switchboard.Cluster{
			URL:  "nats://127.0.0.1:4222",
			Node: "gateway-1",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Shutdown(context.Background())
	log.Fatal(gw.ListenAndServe())
}
