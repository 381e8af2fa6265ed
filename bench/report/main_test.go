package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	t.Parallel()
	in := `{"case":"echo","title":"echo 2×3","server":"ceiling","run":1,"exit":0,"result":{"workload":"echo","msgs_per_s":1000,"latency_ms":{"p50":1,"p99":2,"max":3}}}
{"case":"echo","title":"echo 2×3","server":"gateway","run":1,"exit":0,"result":{"workload":"echo","msgs_per_s":400,"latency_ms":{"p50":2,"p99":5,"max":9}}}
{"case":"echo","title":"echo 2×3","server":"ceiling","run":2,"exit":0,"result":{"workload":"echo","msgs_per_s":3000,"latency_ms":{"p50":1,"p99":2,"max":3}}}
{"case":"echo","title":"echo 2×3","server":"gateway","run":2,"exit":0,"result":{"workload":"echo","msgs_per_s":600,"latency_ms":{"p50":2,"p99":5,"max":9}}}
{"case":"echo","title":"echo 2×3","server":"ceiling","run":3,"exit":0,"result":{"workload":"echo","msgs_per_s":2000,"latency_ms":{"p50":1,"p99":2,"max":3}}}
{"case":"echo","title":"echo 2×3","server":"gateway","run":3,"exit":1,"result":{"workload":"echo","msgs_per_s":500,"truncated":true,"errors":0,"latency_ms":{"p50":2,"p99":5,"max":9}}}
{"case":"fan","title":"fanout","server":"ceiling","run":1,"exit":0,"result":{"workload":"fanout","deliveries_per_s":10,"lost":0,"duplicated":0,"latency_ms":{"p50":1,"p99":1}}}
{"case":"fan","title":"fanout","server":"gateway","run":1,"exit":2,"result":null}
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| echo 2×3 | messages/s | 2000 (1000–3000) | 500 (400–600) | 0.25× |",
		"|  | round trip p50 (ms) | 1.00 | 2.00 | 2.00× |",
		"| fanout | deliveries/s | 10.0 | – | – |",
		"|  | lost + duplicated | 0.00 | – | – |",
		"* echo 2×3 on the gateway, run 3: exit 1, truncated true, errors 0",
		"* fanout on the gateway, run 1: exit 2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q; it is:\n%s", want, got)
		}
	}
}

// Every workload has a server CPU row when the lines carry --pid's figures,
// and "–" where they do not.
func TestServerCPURows(t *testing.T) {
	t.Parallel()
	in := `{"case":"conns","title":"conns","server":"ceiling","run":1,"exit":0,"result":{"workload":"conns","server_cpu_s":0.3,"server_cpu_us_per_conn":20}}
{"case":"conns","title":"conns","server":"gateway","run":1,"exit":0,"result":{"workload":"conns","server_cpu_s":0.2,"server_cpu_us_per_conn":10}}
{"case":"echo","title":"echo","server":"ceiling","run":1,"exit":0,"result":{"workload":"echo","server_cpu_s":1,"server_cpu_us_per_message":8}}
{"case":"echo","title":"echo","server":"ceiling","run":2,"exit":0,"result":{"workload":"echo","server_cpu_s":1,"server_cpu_us_per_message":12}}
{"case":"echo","title":"echo","server":"gateway","run":1,"exit":0,"result":{"workload":"echo","server_cpu_s":2,"server_cpu_us_per_message":25}}
{"case":"echo","title":"echo","server":"gateway","run":2,"exit":0,"result":{"workload":"echo","server_cpu_s":2,"server_cpu_us_per_message":15}}
{"case":"fan","title":"fanout","server":"ceiling","run":1,"exit":0,"result":{"workload":"fanout","server_cpu_s":1,"server_cpu_us_per_delivery":1.25}}
{"case":"fan","title":"fanout","server":"gateway","run":1,"exit":0,"result":{"workload":"fanout","server_cpu_s":2,"server_cpu_us_per_delivery":2.5}}
{"case":"mgmt","title":"mgmt","server":"ceiling","run":1,"exit":0,"result":{"workload":"mgmt","requests_per_s":100}}
{"case":"mgmt","title":"mgmt","server":"gateway","run":1,"exit":0,"result":{"workload":"mgmt","requests_per_s":90,"server_cpu_s":1,"server_cpu_us_per_request":40}}
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| conns | connections/s | – | – | – |\n|  | server CPU per connection (µs) | 20.0 | 10.0 | 0.50× |",
		"|  | server CPU per message (µs) | 10.0 (8.00–12.0) | 20.0 (15.0–25.0) | 2.00× |",
		"|  | server CPU per delivery (µs) | 1.25 | 2.50 | 2.00× |\n|  | lost + duplicated |",
		"|  | server CPU per request (µs) | – | 40.0 | – |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q; it is:\n%s", want, got)
		}
	}
}

// A server that holds no goroutine per connection measures 0: a figure, not
// a missing one.
func TestZeroGoroutines(t *testing.T) {
	t.Parallel()
	in := `{"case":"conns","title":"conns","server":"ceiling","run":1,"exit":0,"result":{"workload":"conns","goroutines_per_conn":2}}
{"case":"conns","title":"conns","server":"gateway","run":1,"exit":0,"result":{"workload":"conns","goroutines_per_conn":0}}
{"case":"conns","title":"conns","server":"gateway","run":2,"exit":0,"result":{"workload":"conns","goroutines_per_conn":0}}
{"case":"c2","title":"conns, both none","server":"ceiling","run":1,"exit":0,"result":{"workload":"conns","goroutines_per_conn":0}}
{"case":"c2","title":"conns, both none","server":"gateway","run":1,"exit":0,"result":{"workload":"conns","goroutines_per_conn":0}}
{"case":"c3","title":"conns, not measured","server":"ceiling","run":1,"exit":0,"result":{"workload":"conns","goroutines_per_conn":2}}
{"case":"c3","title":"conns, not measured","server":"gateway","run":1,"exit":0,"result":{"workload":"conns"}}
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	var rows []string
	for l := range strings.Lines(got) {
		if strings.Contains(l, "goroutines per connection") {
			rows = append(rows, strings.TrimSuffix(l, "\n"))
		}
	}
	want := []string{
		"|  | goroutines per connection | 2.00 | 0.00 | 0.00× |",
		"|  | goroutines per connection | 0.00 | 0.00 | = |",
		"|  | goroutines per connection | 2.00 | – | – |",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("goroutine rows:\n%s\nwant:\n%s\ntable:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"), got)
	}
}

// -base and -other compare two other servers, named in the header, the
// ratios and the notes; lines of other servers are left out.
func TestOtherServers(t *testing.T) {
	t.Parallel()
	in := `{"case":"cluster-fanout","title":"fan","server":"one-node","run":1,"exit":0,"result":{"workload":"fanout","deliveries_per_s":800,"server_cpu_us_per_delivery":1}}
{"case":"cluster-fanout","title":"fan","server":"three-nodes","run":1,"exit":0,"result":{"workload":"fanout","deliveries_per_s":400,"server_cpu_us_per_delivery":3}}
{"case":"cluster-fanout","title":"fan","server":"three-nodes","run":2,"exit":1,"result":{"workload":"fanout","deliveries_per_s":200,"server_cpu_us_per_delivery":5,"errors":2,"first_error":"lost"}}
{"case":"cluster-fanout","title":"fan","server":"gateway","run":1,"exit":0,"result":{"workload":"fanout","deliveries_per_s":1}}
`
	var out bytes.Buffer
	if err := run([]string{"-base", "one-node", "-other", "three-nodes"}, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| workload | figure | one node: median (min–max) | three nodes: median (min–max) | three nodes ÷ one node |",
		"| fan | deliveries/s | 800 | 300 (200–400) | 0.38× |",
		"|  | server CPU per delivery (µs) | 1.00 | 4.00 (3.00–5.00) | 4.00× |",
		"* fan on the three nodes, run 2: exit 1, truncated <nil>, errors 2: lost",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q; it is:\n%s", want, got)
		}
	}
	if err := run([]string{"-base", "x", "-other", "x"}, strings.NewReader(in), &out); err == nil {
		t.Error("run(-base x -other x) = nil, want an error")
	}
}

// Lines of the peer add its column and the gateway's ratio to it, from the
// same runs; a case without the peer shows "–" there, and its failed runs
// are noted.
func TestPeerColumns(t *testing.T) {
	t.Parallel()
	in := `{"case":"echo","title":"echo","server":"ceiling","run":1,"exit":0,"result":{"workload":"echo","msgs_per_s":1000,"latency_ms":{"p50":1}}}
{"case":"echo","title":"echo","server":"gateway","run":1,"exit":0,"result":{"workload":"echo","msgs_per_s":800,"latency_ms":{"p50":2}}}
{"case":"echo","title":"echo","server":"peer","run":1,"exit":0,"result":{"workload":"echo","msgs_per_s":300,"latency_ms":{"p50":4}}}
{"case":"echo","title":"echo","server":"ceiling","run":2,"exit":0,"result":{"workload":"echo","msgs_per_s":1200,"latency_ms":{"p50":1}}}
{"case":"echo","title":"echo","server":"gateway","run":2,"exit":0,"result":{"workload":"echo","msgs_per_s":1000,"latency_ms":{"p50":2}}}
{"case":"echo","title":"echo","server":"peer","run":2,"exit":1,"result":{"workload":"echo","msgs_per_s":500,"errors":3,"first_error":"closed","latency_ms":{"p50":4}}}
{"case":"mgmt","title":"mgmt","server":"ceiling","run":1,"exit":0,"result":{"workload":"mgmt","requests_per_s":100}}
{"case":"mgmt","title":"mgmt","server":"gateway","run":1,"exit":0,"result":{"workload":"mgmt","requests_per_s":90}}
`
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| workload | figure | ceiling: median (min–max) | gateway: median (min–max) | peer: median (min–max) | gateway ÷ ceiling | gateway ÷ peer |\n|---|---|---:|---:|---:|---:|---:|\n",
		"| echo | messages/s | 1100 (1000–1200) | 900 (800–1000) | 400 (300–500) | 0.82× | 2.25× |",
		"|  | round trip p50 (ms) | 1.00 | 2.00 | 4.00 | 2.00× | 0.50× |",
		"| mgmt | requests/s | 100 | 90.0 | – | 0.90× | – |",
		"* echo on the peer, run 2: exit 1, truncated <nil>, errors 3: closed",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q; it is:\n%s", want, got)
		}
	}
	if err := run([]string{"-peer", "gateway"}, strings.NewReader(in), &out); err == nil {
		t.Error("run(-peer gateway) = nil, want an error")
	}
}
