package loadgen_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/loadgen"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// peer is bench/peer-centrifuge, built and started by startPeer.
type peer struct {
	WS   string // ws://127.0.0.1:PORT/connection/websocket
	HTTP string // http://127.0.0.1:PORT
	PID  int
}

var bannerRE = regexp.MustCompile(`ws://(127\.0\.0\.1:[0-9]+)(/[^\s]*)`)

// startPeer builds bench/peer-centrifuge (a module of its own) with the go
// command and starts it on a free loopback port; it is stopped when t ends.
func startPeer(t *testing.T) peer {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build bench/peer-centrifuge")
	}
	bin := filepath.Join(t.TempDir(), "peer-centrifuge")
	build := exec.Command(goCmd, "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "bench", "peer-centrifuge")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bench/peer-centrifuge: %v\n%s", err, out)
	}
	var out testutil.Buffer
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start peer: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("peer exited with %v; output:\n%s", err, out.String())
		}
	})
	var m []string
	testutil.Eventually(t, 30*time.Second, func() bool {
		m = bannerRE.FindStringSubmatch(out.String())
		return m != nil
	}, "peer banner; output so far: %s", &out)
	return peer{WS: m[0], HTTP: "http://" + m[1], PID: cmd.Process.Pid}
}

// TestCentrifugeProtocol runs the workloads that speak the centrifuge
// protocol against the real peer server.
func TestCentrifugeProtocol(t *testing.T) {
	t.Parallel()
	p := startPeer(t)
	pid := strconv.Itoa(p.PID)

	t.Run("conns", func(t *testing.T) {
		r := mustBench(t, "conns", "--protocol", "centrifuge", "--url", p.WS, "-n", "20", "--concurrency", "5",
			"--hold", "0s", "--pid", pid, "--gc-url", p.HTTP+"/debug/pprof/heap?gc=1", "--metrics-url", p.HTTP+"/debug/vars")
		if r.Opened != 20 || r.Failed != 0 || r.ClosedEarly != 0 {
			t.Errorf("opened=%d failed=%d closed_early=%d, want 20 opened", r.Opened, r.Failed, r.ClosedEarly)
		}
		if r.RSSHeld <= 0 || r.RSSAfterGC <= 0 || r.GoroutinesHeld <= 0 || r.GoroutinesPerConn == nil {
			t.Errorf("rss held=%d gc=%d goroutines held=%d per conn=%v, want all measured",
				r.RSSHeld, r.RSSAfterGC, r.GoroutinesHeld, deref(r.GoroutinesPerConn))
		}
		if r.ServerCPUPerConn == nil {
			t.Errorf("server_cpu_us_per_conn left out, want it with --pid")
		}
		r.Dial.check(t, "dial_latency_ms", 20)
	})

	t.Run("echo", func(t *testing.T) {
		for _, window := range []string{"1", "8"} {
			r := mustBench(t, "echo", "--protocol", "centrifuge", "--url", p.WS, "-c", "3", "-m", "40", "-s", "64",
				"--window", window, "--pid", pid)
			if r.Sent != 120 || r.Received != 120 || r.Unexpected != 0 || r.Lost != 0 {
				t.Errorf("window %s: sent=%d received=%d unexpected=%d lost=%d, want 120 answered",
					window, r.Sent, r.Received, r.Unexpected, r.Lost)
			}
			if !strings.Contains(r.Route, `"rpc":{"method":"echo"`) {
				t.Errorf("route = %q, want the rpc command", r.Route)
			}
			r.Latency.check(t, "latency_ms", 120)
		}
	})

	for _, via := range []string{"ws", "mgmt"} {
		t.Run("fanout via "+via, func(t *testing.T) {
			r := mustBench(t, "fanout", "--protocol", "centrifuge", "--url", p.WS, "--mgmt-url", p.HTTP, "--via", via,
				"--subscribers", "4", "--messages", "25", "--size", "80", "--settle", "2s", "--pid", pid)
			if r.Subscribed != 4 || r.Published != 25 || r.Deliveries != 100 || r.Lost != 0 || r.Duplicated != 0 || r.Incomplete != 0 {
				t.Errorf("subscribed=%d published=%d deliveries=%d lost=%d duplicated=%d incomplete=%d, want 4×25 delivered once",
					r.Subscribed, r.Published, r.Deliveries, r.Lost, r.Duplicated, r.Incomplete)
			}
			if r.Topic != "bench" {
				t.Errorf("topic = %q, want the default channel bench", r.Topic)
			}
			r.Latency.check(t, "latency_ms", 100)
		})
	}

	// The peer refuses a channel name over 255 bytes: each subscriber's
	// error reply is a failure, and nobody is ready to publish to.
	t.Run("subscribe refused", func(t *testing.T) {
		r, err := bench(t, "fanout", "--protocol", "centrifuge", "--url", p.WS, "--subscribers", "3",
			"--messages", "5", "--topic", strings.Repeat("c", 300))
		if err == nil {
			t.Fatalf("err = nil, want the refused subscriptions")
		}
		if r.Subscribed != 0 || r.Published != 0 || r.Errors != 3 || !strings.Contains(r.FirstError, "centrifuge error") {
			t.Errorf("subscribed=%d published=%d errors=%d first=%q, want 3 centrifuge errors and none subscribed",
				r.Subscribed, r.Published, r.Errors, r.FirstError)
		}
	})

	// The API Gateway contract against the peer: its frames are not
	// commands, and the server closes the connection.
	t.Run("wrong protocol", func(t *testing.T) {
		_, err := bench(t, "echo", "--url", p.WS, "-c", "1", "-m", "3", "--duration", "10s")
		if err == nil {
			t.Errorf("echo in the API Gateway contract against the peer: err = nil, want a failure")
		}
	})
}

// A centrifuge frame holds one message per line; the API Gateway contract's
// frame is one message whatever it holds.
func TestCentrifugeFrames(t *testing.T) {
	t.Parallel()
	frame := []byte("{\"id\":3,\"rpc\":{\"data\":\"a\"}}\n{}\n\n{\"push\":{\"channel\":\"c\",\"pub\":{\"data\":\"b\"}}}\n")
	var got []string
	loadgen.EachMessageForTest(loadgen.ProtoCentrifugeForTest, frame, func(m []byte) { got = append(got, string(m)) })
	want := []string{`{"id":3,"rpc":{"data":"a"}}`, `{}`, `{"push":{"channel":"c","pub":{"data":"b"}}}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages = %q, want %q", got, want)
	}
	got = nil
	loadgen.EachMessageForTest("apigw", frame, func(m []byte) { got = append(got, string(m)) })
	if len(got) != 1 || got[0] != string(frame) {
		t.Errorf("apigw messages = %q, want the frame", got)
	}
	if !loadgen.IsCfPingForTest([]byte("{}")) || loadgen.IsCfPingForTest([]byte(`{"id":1}`)) {
		t.Errorf("isCfPing: want {} alone to be a ping")
	}

	id, err := loadgen.ParseCfReplyForTest([]byte(`{"id":7,"error":{"code":103,"message":"permission denied"}}`))
	var ce *loadgen.CentrifugeError
	if id != 7 || !errors.As(err, &ce) || ce.Code != 103 || ce.Message != "permission denied" {
		t.Errorf("parse error reply = %d, %v; want 7 and code 103", id, err)
	}
	if id, err := loadgen.ParseCfReplyForTest([]byte(`{"id":2,"subscribe":{}}`)); id != 2 || err != nil {
		t.Errorf("parse subscribe reply = %d, %v; want 2, nil", id, err)
	}
	if _, err := loadgen.ParseCfReplyForTest([]byte(`{"id":`)); err == nil {
		t.Errorf("parse a cut reply: err = nil, want an error")
	}
}
