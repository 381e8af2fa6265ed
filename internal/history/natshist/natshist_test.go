package natshist_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/histtest"
	"github.com/switchboard-gateway/switchboard/internal/history/natshist"
	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// engines are a real nats-server process (Debian's, older than the
// module) and the server embedded from the module.
var engines = map[string]func(t *testing.T) string{
	"process": func(t *testing.T) string { return testutil.StartNATS(t).URL },
	"embedded": func(t *testing.T) string {
		s, err := natsembed.Start(natsembed.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s.ClientURL()
	},
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newStore(t *testing.T, js jetstream.JetStream, o natshist.Options) *natshist.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := natshist.New(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the store suite on each engine: n stores are n
// nodes, each with a connection of its own; each subtest is isolated by
// its own prefix.
func TestConformance(t *testing.T) {
	t.Parallel()
	for name, start := range engines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := start(t)
			var seq atomic.Int64
			histtest.Run(t, func(t *testing.T, rules []history.Rule, n int) []history.Store {
				prefix := fmt.Sprintf("conf%d", seq.Add(1))
				var out []history.Store
				for range n {
					out = append(out, newStore(t, connect(t, url), natshist.Options{Rules: rules, Prefix: prefix}))
				}
				return out
			})
		})
	}
}
