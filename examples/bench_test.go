package examples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// builtinNsPerOp is the built-in round trip measured earlier in the same run,
// the baseline the other integration types are reported against.
var builtinNsPerOp float64

// BenchmarkRouteInvocation measures one request/response round trip over a
// WebSocket through a two-way route, per integration type. Every type but the
// built-in reports its cost as a ratio to the built-in ("x-builtin") from the
// same run, since absolute times on a shared machine are noise.
func BenchmarkRouteInvocation(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Body string `json:"body"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": 200, "body": ev.Body})
	}))
	defer backend.Close()
	srv := servertest.StartYAML(b, fmt.Sprintf(`
functions:
  chat: {command: [%q], maxProcesses: 1}
routes:
  builtinEcho: {integration: {type: echo}}
  httpEcho:    {integration: {type: http, url: %q}, routeResponse: true}
  echo:        {integration: {type: lambda, function: chat}, routeResponse: true}
`, goFunction(b), backend.URL))
	c := testutil.Dial(b, srv.WS, nil)
	for _, tc := range []struct{ name, route string }{{"builtin", "builtinEcho"}, {"http", "httpEcho"}, {"lambda", "echo"}} {
		b.Run(tc.name, func(b *testing.B) {
			msg := []byte(fmt.Sprintf(`{"action":%q}`, tc.route))
			roundTrip(b, c, msg) // warm: start the function's process
			start := time.Now()
			for b.Loop() {
				roundTrip(b, c, msg)
			}
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
			if tc.name == "builtin" {
				builtinNsPerOp = ns
			} else if builtinNsPerOp > 0 {
				b.ReportMetric(ns/builtinNsPerOp, "x-builtin")
			}
		})
	}
}

func roundTrip(b *testing.B, c *websocket.Conn, msg []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		b.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != string(msg) {
		b.Fatalf("round trip: %q, %v", got, err)
	}
}
