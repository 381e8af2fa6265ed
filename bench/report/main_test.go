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
