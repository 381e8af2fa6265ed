// Command backend is the HTTP backend of the http integration example: it
// receives API Gateway WebSocket proxy events by POST and answers with
// Lambda proxy responses.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// names holds each open connection's name, given at $connect.
type names struct {
	mu sync.Mutex
	m  map[string]string
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	n := &names{m: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /connect", handle(n.connect))
	mux.HandleFunc("POST /disconnect", handle(n.disconnect))
	mux.HandleFunc("POST /greet", handle(n.greet))
	mux.HandleFunc("POST /default", handle(n.fallback))
	fmt.Printf("backend listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// handle decodes the event, runs f and writes its response as JSON.
func handle(f func(events.APIGatewayWebsocketProxyRequest) events.APIGatewayProxyResponse) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var ev events.APIGatewayWebsocketProxyRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&ev); err != nil {
			http.Error(w, "not a WebSocket proxy event: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f(ev))
	}
}

// connect admits clients that give a name: ws://HOST?name=Ada.
func (n *names) connect(ev events.APIGatewayWebsocketProxyRequest) events.APIGatewayProxyResponse {
	name := ev.QueryStringParameters["name"]
	if name == "" {
		return events.APIGatewayProxyResponse{StatusCode: http.StatusUnauthorized, Body: "a name is required: ?name=..."}
	}
	n.mu.Lock()
	n.m[ev.RequestContext.ConnectionID] = name
	n.mu.Unlock()
	fmt.Printf("connected %s as %s\n", ev.RequestContext.ConnectionID, name)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}
}

func (n *names) disconnect(ev events.APIGatewayWebsocketProxyRequest) events.APIGatewayProxyResponse {
	id := ev.RequestContext.ConnectionID
	n.mu.Lock()
	name := n.m[id]
	delete(n.m, id)
	n.mu.Unlock()
	fmt.Printf("disconnected %s (%s), close code %d\n", id, name, ev.RequestContext.DisconnectStatusCode)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}
}

// greet answers {"action":"greet"} with the name given at $connect.
func (n *names) greet(ev events.APIGatewayWebsocketProxyRequest) events.APIGatewayProxyResponse {
	n.mu.Lock()
	name := n.m[ev.RequestContext.ConnectionID]
	n.mu.Unlock()
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: "Hello, " + name + "!"}
}

// fallback answers every message no other route takes.
func (n *names) fallback(ev events.APIGatewayWebsocketProxyRequest) events.APIGatewayProxyResponse {
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: "no route for " + ev.Body}
}
