package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
	"github.com/switchboard-gateway/switchboard/internal/mgmtapi"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// A limit's effect, read from the running server: the value the component
// applies (negative: disabled) or, where the component keeps it to itself,
// a behaviour that only a disabled limit allows.
type limitCheck struct {
	// extra is more YAML under limits: for the check to be possible.
	extra string
	// value returns the effective value; nil when disabled is checked by behaviour.
	value func(r *servertest.Running, hs *http.Server) float64
	// def is the effective value when the key is absent.
	def float64
	// disabled checks, with the limit off, what the default forbids.
	disabled func(t *testing.T, r *servertest.Running)
}

func connOpt(f func(o reflect.Value) float64) func(*servertest.Running, *http.Server) float64 {
	return func(r *servertest.Running, _ *http.Server) float64 {
		return f(reflect.ValueOf(r.Gateway().OptionsForTest().Conn))
	}
}

func gwOpt(f func(o reflect.Value) float64) func(*servertest.Running, *http.Server) float64 {
	return func(r *servertest.Running, _ *http.Server) float64 {
		return f(reflect.ValueOf(r.Gateway().OptionsForTest()))
	}
}

func field(name string) func(reflect.Value) float64 {
	return func(v reflect.Value) float64 {
		f := v.FieldByName(name)
		if f.CanFloat() {
			return f.Float()
		}
		return float64(f.Int())
	}
}

// limitChecks has a row for every key of config.Limits that is a limit.
var limitChecks = map[string]limitCheck{
	"maxMessageBytes":     {value: connOpt(field("ReadLimit")), def: 128 << 10},
	"idleTimeout":         {value: connOpt(field("IdleTimeout")), def: float64(10 * time.Minute)},
	"maxLifetime":         {value: connOpt(field("MaxLifetime")), def: float64(2 * time.Hour)},
	"pingInterval":        {value: connOpt(field("PingInterval")), def: float64(30 * time.Second)},
	"pongTimeout":         {value: connOpt(field("PongTimeout")), def: float64(10 * time.Second)},
	"sendQueueMessages":   {value: connOpt(field("SendQueueMessages")), def: 1024},
	"sendQueueBytes":      {value: connOpt(field("SendQueueBytes")), def: 16 << 20},
	"pingRate":            {value: connOpt(field("PingRate")), def: 10},
	"frameTimeout":        {value: connOpt(field("FrameTimeout")), def: float64(30 * time.Second)},
	"maxFragments":        {value: connOpt(field("MaxFragments")), def: 1024},
	"maxConnections":      {value: gwOpt(field("MaxConnections")), def: 0},
	"maxConnectionsPerIp": {value: gwOpt(field("MaxConnectionsPerIP")), def: 0},
	"connectRate":         {value: gwOpt(field("ConnectRate")), def: 0},
	"messageRate":         {value: gwOpt(field("MessageRate")), def: 100},
	"handshakeTimeout": {
		value: func(_ *servertest.Running, hs *http.Server) float64 { return float64(hs.ReadHeaderTimeout) },
		def:   float64(10 * time.Second),
	},
	"maxHeaderBytes": {
		// net/http has no "no cap": disabled is a cap no header reaches.
		value: func(_ *servertest.Running, hs *http.Server) float64 {
			if hs.MaxHeaderBytes >= 1<<30 {
				return config.Unlimited
			}
			return float64(hs.MaxHeaderBytes)
		},
		def: 16 << 10,
	},
	"maxPostBytes": {disabled: func(t *testing.T, r *servertest.Running) {
		resp, body := post(t, r.Management+"/@broadcast", strings.Repeat("x", 200<<10))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("POST /@broadcast of 200 KiB = %d %s, want 200", resp.StatusCode, body)
		}
	}},
	"maxRecipients": {disabled: func(t *testing.T, r *servertest.Running) {
		ids := make([]string, 1500)
		for i := range ids {
			ids[i] = fmt.Sprintf("AAAAAAAAAAAAA%03d", i)
		}
		body, _ := json.Marshal(map[string]any{"connectionIds": ids, "data": "hi"})
		resp, out := post(t, r.Management+"/@connections", string(body))
		if resp.StatusCode != http.StatusOK || !strings.Contains(out, `"delivered":0`) {
			t.Errorf("POST /@connections to 1500 IDs = %d %s, want 200, none delivered", resp.StatusCode, out)
		}
	}},
	"maxTopicBytes": {disabled: func(t *testing.T, r *servertest.Running) {
		topic := strings.Repeat("t", 2000)
		c := testutil.Dial(t, r.WS, nil)
		testutil.Write(t, c, `{"action":"subscribe","topic":"`+topic+`"}`)
		wantRecipients(t, r, topic, 1)
	}},
	"maxSubscriptions": {extra: "messageRate: unlimited", disabled: func(t *testing.T, r *servertest.Running) {
		c := testutil.Dial(t, r.WS, nil)
		for i := range 300 {
			testutil.Write(t, c, fmt.Sprintf(`{"action":"subscribe","topic":"t%d"}`, i))
		}
		wantRecipients(t, r, "t299", 1)
	}},
}

// wantRecipients waits until a publish to topic reaches n connections.
func wantRecipients(t *testing.T, r *servertest.Running, topic string, n int) {
	t.Helper()
	want := fmt.Sprintf(`{"recipients":%d}`, n)
	var last string
	testutil.Eventually(t, 5*time.Second, func() bool {
		_, last = post(t, r.Management+"/@topics/"+topic, "hello")
		return strings.TrimSpace(last) == want
	}, "POST /@topics/%.20s... never answered %s (last: %s)", topic, want, last)
}

// TestEveryLimitFromYAMLToComponent takes every limit, absent, "unlimited"
// and 0, from a YAML file through config.Load and server.New to the
// component that applies it: absent gives the default, the other two
// disable it.
func TestEveryLimitFromYAMLToComponent(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[config.Limits]()
	for i := range typ.NumField() {
		key, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if strings.HasSuffix(key, "Burst") {
			continue // a parameter of its rate
		}
		if _, ok := limitChecks[key]; !ok {
			t.Errorf("limits.%s has no row in limitChecks: say where it takes effect", key)
		}
	}
	for key, lc := range limitChecks {
		cases := []string{"", "unlimited", "0"}
		if lc.value == nil {
			cases = cases[1:]
		}
		for _, v := range cases {
			t.Run(key+"="+v, func(t *testing.T) {
				t.Parallel()
				yaml := "limits: {" + lc.extra + "}\n"
				if v != "" {
					yaml = "limits: {" + strings.Trim(lc.extra+", "+key+": "+v, ", ") + "}\n"
				}
				r := servertest.StartYAML(t, yaml)
				if lc.value == nil {
					lc.disabled(t, r)
					return
				}
				hs := &http.Server{}
				r.ConfigureHTTP(hs)
				got := lc.value(r, hs)
				switch {
				case v == "" && got != lc.def:
					t.Errorf("limits.%s absent: effective %v, want the default %v", key, got, lc.def)
				case v != "" && got >= 0:
					t.Errorf("limits.%s: %s: effective %v, want disabled (negative)", key, v, got)
				}
			})
		}
	}
}

// TestPongTimeoutUnlimitedKeepsSilentClient: with pongTimeout: unlimited, a
// client that never answers pings stays connected through many of them.
func TestPongTimeoutUnlimitedKeepsSilentClient(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, echoConfig+"limits: {pingInterval: 20ms, pongTimeout: unlimited}\n")
	c := openRaw(t, strings.TrimPrefix(r.HTTP, "http://"))
	for pings := 0; pings < 10; {
		f, err := c.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d pings left unanswered: %v, want more pings", pings, err)
		}
		if f.op != opPing {
			t.Fatalf("after %d pings left unanswered: got %v, want a ping", pings, f)
		}
		pings++
	}
	c.mustWrite(wire(textFrame(`{"still":"here"}`)))
	for {
		op, data, _ := c.readMessageSkippingPings(5 * time.Second)
		if op == opText && string(data) == `{"still":"here"}` {
			return
		}
	}
}

// readMessageSkippingPings reads one data message, skipping pings.
func (c *rawWS) readMessageSkippingPings(timeout time.Duration) (byte, []byte, error) {
	c.t.Helper()
	for {
		f, err := c.readFrame(timeout)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if f.op == opPing || f.op == opPong {
			continue
		}
		if f.op != opText && f.op != opBinary || !f.fin {
			c.t.Fatalf("got %v, want a whole data message", f)
		}
		return f.op, f.payload, nil
	}
}

// TestSendQueueUnlimitedHoldsMany: with either send queue bound unlimited,
// a client that reads only after sending gets all of its many echoes; none
// is cut for what waits in its queue.
//
// The client reads nothing until it has sent everything, so the gateway's
// writer makes no progress meanwhile, and the write timeout (10s, fixed)
// would cut a client that took longer than that to send. The client's
// socket buffer is therefore small, so that a few MB are well beyond what
// the socket buffers hold, and each message is written on its own: a
// single Write of the whole burst costs the race detector time quadratic
// in its length (each partial write checks the rest of the buffer), which
// under load took longer than the write timeout.
func TestSendQueueUnlimitedHoldsMany(t *testing.T) {
	t.Parallel()
	for _, limit := range []string{"sendQueueBytes: unlimited", "sendQueueMessages: unlimited", "sendQueueBytes: 0"} {
		t.Run(limit, func(t *testing.T) {
			t.Parallel()
			r := servertest.StartYAML(t, echoConfig+"limits: {messageRate: unlimited, "+limit+"}\n")
			c := openRawSmallBuffer(t, strings.TrimPrefix(r.HTTP, "http://"))
			const n, size = 60, 100 << 10 // 6 MB: more than the socket buffers hold
			// A bound on the whole exchange, for a gateway that hangs; the
			// write timeout is what bounds how long it may take.
			deadline := time.Now().Add(2 * time.Minute)
			_ = c.nc.SetWriteDeadline(deadline)
			for i := range n {
				f := textFrame(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", size)))
				if _, err := c.nc.Write(f.encode()); err != nil {
					t.Fatalf("write message %d of %d: %v", i, n, err)
				}
			}
			for i := range n {
				_, data, _ := c.readMessageSkippingPings(time.Until(deadline))
				if want := fmt.Sprintf(`{"n":%d,`, i); !strings.HasPrefix(string(data), want) {
					t.Fatalf("echo %d starts %.20q, want %q", i, data, want)
				}
			}
		})
	}
}

// behaviourOnly are the defaults of the limits limitChecks checks by
// behaviour, from the components' constants.
var behaviourOnly = map[string]float64{
	"maxPostBytes":     apigw.MaxPostBytes,
	"maxRecipients":    mgmtapi.DefaultMaxRecipients,
	"maxTopicBytes":    builtin.DefaultMaxTopicBytes,
	"maxSubscriptions": builtin.DefaultMaxSubscriptions,
}

// TestReferenceStatesTheLimitDefaults: the defaults docs/config.md and
// `switchboard config defaults` state for limits are the ones the
// components apply (limitChecks' def).
func TestReferenceStatesTheLimitDefaults(t *testing.T) {
	t.Parallel()
	for _, k := range config.Reference() {
		key, isLimit := strings.CutPrefix(k.Path, "limits.")
		lc, checked := limitChecks[key]
		if d, ok := behaviourOnly[key]; ok {
			lc.def = d
		} else if !isLimit || !checked || lc.value == nil {
			continue
		}
		var got float64
		var err error
		switch k.Type {
		case "size":
			var v int64
			v, err = config.ParseSize(k.Default)
			got = float64(v)
		case "duration":
			var v time.Duration
			v, err = config.ParseDuration(k.Default)
			got = float64(v)
		case "count":
			var v int
			v, err = config.ParseCount(k.Default)
			got = float64(v)
		case "rate":
			got, err = config.ParseRate(k.Default)
		default:
			t.Errorf("%s: type %q", k.Path, k.Type)
			continue
		}
		if err != nil {
			t.Errorf("%s: default %q: %v", k.Path, k.Default, err)
			continue
		}
		if got == config.Unlimited && lc.def == 0 { // the component's "no limit"
			continue
		}
		if got != lc.def {
			t.Errorf("the reference says %s defaults to %s (%v), the component applies %v", k.Path, k.Default, got, lc.def)
		}
	}
}
