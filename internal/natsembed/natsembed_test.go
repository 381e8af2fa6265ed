package natsembed_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/registry"
	"github.com/switchboard-gateway/switchboard/internal/registry/natsreg"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func start(t *testing.T, o natsembed.Options) *natsembed.Server {
	t.Helper()
	s, err := natsembed.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// cluster starts three routed servers, each given the same list of
// routes, its own included, as gateways of one cluster would be.
func cluster(t *testing.T) []*natsembed.Server {
	t.Helper()
	var listen, routes []string
	for range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		listen = append(listen, addr)
		routes = append(routes, "nats-route://"+addr)
	}
	var all []*natsembed.Server
	for i := range 3 {
		all = append(all, start(t, natsembed.Options{Name: fmt.Sprintf("s%d", i), ClusterListen: listen[i], Routes: routes}))
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		for _, s := range all {
			if s.Routes() < 2 {
				return false
			}
		}
		return true
	}, "servers did not form a full mesh of routes")
	return all
}

func TestStandaloneStoreRemoved(t *testing.T) {
	t.Parallel()
	s, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, s.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	dir := s.StoreDir()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store dir: %v", err)
	}
	nc.Close()
	s.Close()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary store dir after Close: %v, want it removed", err)
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]natsembed.Options{
		"listen":         {Listen: "nohostport"},
		"port":           {Listen: "127.0.0.1:99999"},
		"cluster listen": {ClusterListen: "x", Routes: []string{"nats-route://127.0.0.1:1"}},
		"no routes":      {ClusterListen: "127.0.0.1:0"},
		"route":          {Routes: []string{"::not a url"}},
		"two kinds":      {User: "u", Password: "p", Token: "t"},
	} {
		if s, err := natsembed.Start(o); err == nil {
			s.Close()
			t.Errorf("%s: Start(%+v) = nil error", name, o)
		}
	}
}

// TestPortTaken: a server that cannot bind its client or its route port
// fails at once with the listener's error, not at the end of its ready
// timeout with no reason.
func TestPortTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for name, o := range map[string]natsembed.Options{
		"client": {Listen: addr},
		"route":  {Name: "s0", ClusterListen: addr, Routes: []string{"nats-route://" + addr}},
	} {
		o.ReadyTimeout = time.Minute // longer than a start takes; the error must not be its end
		s, err := natsembed.Start(o)
		if err == nil {
			s.Close()
			t.Fatalf("%s: Start with %s taken = nil error", name, addr)
		}
		if !errors.Is(err, natsembed.ErrNotReady) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("%s: Start with %s taken = %v, want ErrNotReady saying the address is in use", name, addr, err)
		}
	}
}

// TestServerLogsReachTheLogger: the server's errors, such as a route it
// cannot reach, are passed to Options.Logger.
func TestServerLogsReachTheLogger(t *testing.T) {
	t.Parallel()
	var out testutil.Buffer
	self := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	absent := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) // reserved: nothing listens there
	start(t, natsembed.Options{
		Name: "s0", ClusterListen: self,
		Routes: []string{"nats-route://" + self, "nats-route://" + absent},
		Logger: slog.New(slog.NewTextHandler(&out, nil)),
	})
	testutil.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(out.String(), "Error trying to connect to route") && strings.Contains(out.String(), absent)
	}, "the unreachable route logged; log:\n%s", &out)
	if !strings.Contains(out.String(), "level=ERROR") {
		t.Errorf("the route's error not logged as an error:\n%s", out.String())
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		o    natsembed.Options
		good nats.Option
	}{
		"user":  {natsembed.Options{User: "gw", Password: "pw"}, nats.UserInfo("gw", "pw")},
		"token": {natsembed.Options{Token: "tok"}, nats.Token("tok")},
	} {
		s := start(t, tc.o)
		if nc, err := nats.Connect(s.ClientURL()); err == nil {
			nc.Close()
			t.Errorf("%s: connected without credentials", name)
		}
		connect(t, s.ClientURL(), tc.good)
	}
}

// TestClusterOfThree: a core NATS message and a KV write cross the routes
// of three embedded servers.
func TestClusterOfThree(t *testing.T) {
	t.Parallel()
	srv := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sub := connect(t, srv[2].ClientURL())
	got := make(chan string, 1)
	if _, err := sub.Subscribe("hello", func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := sub.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, srv[0].ClientURL())
	testutil.Eventually(t, 10*time.Second, func() bool {
		if err := pub.Publish("hello", []byte("across")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			return m == "across"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, "a message published on s0 did not reach a subscriber on s2")

	// The directory on s0's client, read through s1's.
	open := func(s *natsembed.Server) *natsreg.Directory {
		js, err := jetstream.New(connect(t, s.ClientURL()))
		if err != nil {
			t.Fatal(err)
		}
		var d *natsreg.Directory
		// JetStream's meta leader is elected once the routes are up.
		var last error
		testutil.Eventually(t, 20*time.Second, func() bool {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			d, last = natsreg.New(actx, js, natsreg.Options{})
			if last != nil {
				t.Logf("directory on %s: %v", s.Name(), last)
			}
			return last == nil
		}, "directory on %s", s.Name())
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	d0, d1 := open(srv[0]), open(srv[1])
	if err := d0.KeepAlive(ctx, registry.Node{ID: "n0"}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d0.Add(ctx, registry.Record{ConnID: "c1", Node: "n0"}); err != nil {
		t.Fatal(err)
	}
	rec, err := d1.Lookup(ctx, "c1")
	if err != nil || rec.Node != "n0" {
		t.Fatalf("Lookup through s1 = %+v, %v", rec, err)
	}
}

// TestReplicatedDirectorySurvivesAServer: with Replicas 3 the directory
// keeps its records when one of the three servers goes away, whichever
// one led the streams.
func TestReplicatedDirectorySurvivesAServer(t *testing.T) {
	t.Parallel()
	srv := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	openOn := func(s *natsembed.Server) *natsreg.Directory {
		js, err := jetstream.New(connect(t, s.ClientURL()))
		if err != nil {
			t.Fatal(err)
		}
		var d *natsreg.Directory
		testutil.Eventually(t, 30*time.Second, func() bool {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			d, err = natsreg.New(actx, js, natsreg.Options{Replicas: 3})
			return err == nil
		}, "replicated directory on %s", s.Name())
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	d0 := openOn(srv[0])
	if err := d0.KeepAlive(ctx, registry.Node{ID: "n"}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d0.Add(ctx, registry.Record{ConnID: "c1", Node: "n"}); err != nil {
		t.Fatal(err)
	}
	d2 := openOn(srv[2])
	srv[0].Close()
	testutil.Eventually(t, 30*time.Second, func() bool {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		rec, err := d2.Lookup(actx, "c1")
		return err == nil && rec.Node == "n"
	}, "record not readable after losing a server")
}

// An in-process server keeps its streams in StoreDir across a restart,
// accepts no network client, and holds its store: a second server given
// the same one is refused.
func TestInProcessKeepsItsStore(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func() (*natsembed.Server, jetstream.JetStream) {
		s := start(t, natsembed.Options{InProcess: true, StoreDir: dir})
		nc, err := s.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return s, js
	}
	s, js := open()
	if _, err := nats.Connect(s.ClientURL(), nats.Timeout(time.Second)); err == nil {
		t.Fatalf("a network client reached the in-process server at %s", s.ClientURL())
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "kept", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, js = open()
	kv, err = js.KeyValue(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "k")
	if err != nil || string(e.Value()) != "v" {
		t.Fatalf("after a restart: %v, %v", e, err)
	}
	if _, err := natsembed.Start(natsembed.Options{InProcess: true, StoreDir: dir}); !errors.Is(err, natsembed.ErrStoreInUse) {
		t.Fatalf("a second server on the same store = %v, want ErrStoreInUse", err)
	}
	if _, err := natsembed.Start(natsembed.Options{InProcess: true, Routes: []string{"nats-route://127.0.0.1:1"}}); err == nil {
		t.Fatal("an in-process server joined a cluster")
	}
}
