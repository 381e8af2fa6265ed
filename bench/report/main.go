// Command report turns the benchmark suite's results into a Markdown table:
// for every case and figure, the median of the runs with their min–max, on
// the ceiling server and on the gateway, and the gateway's median as a
// ratio to the ceiling's. bench/run.sh runs it.
//
// Each input line is one run:
//
//	{"case":"echo","title":"echo 50×2000×100 B","server":"gateway","run":1,"exit":0,"result":{…the bench line…}}
//
// Cases appear in the table in the order of their first line. -base and
// -other name the two servers compared (default ceiling and gateway): the
// cluster cases compare one node with three, and a delivery through the
// node holding a connection with one through another node. When some lines
// are of -peer's server (default peer: bench/peer-centrifuge), the table
// also has its column and the -other's median as a ratio to the peer's,
// from the same run; a case the peer does not run shows "–" there.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// line is one run as bench/run.sh records it.
type line struct {
	Case   string         `json:"case"`
	Title  string         `json:"title"`
	Server string         `json:"server"` // "ceiling", "gateway" or "peer", or -base, -other and -peer
	Run    int            `json:"run"`
	Exit   int            `json:"exit"`
	Result map[string]any `json:"result"`
}

// figure is one column of a workload's result.
type figure struct {
	name  string
	path  string  // key in the result, "latency_ms.p50" for nested ones
	scale float64 // the printed value is the result's times scale
	unit  string
}

// figures lists what the table shows for each workload.
var figures = map[string][]figure{
	"conns": {
		{"connections/s", "conns_per_s", 1, ""},
		{"server CPU per connection", "server_cpu_us_per_conn", 1, "µs"},
		{"RSS per connection, 5 s after the last connect", "rss_per_conn_bytes", 1.0 / 1024, "KiB"},
		{"RSS per connection, after a forced GC", "rss_per_conn_gc_bytes", 1.0 / 1024, "KiB"},
		{"goroutines per connection", "goroutines_per_conn", 1, ""},
	},
	"echo": {
		{"messages/s", "msgs_per_s", 1, ""},
		{"round trip p50", "latency_ms.p50", 1, "ms"},
		{"round trip p99", "latency_ms.p99", 1, "ms"},
		{"round trip max", "latency_ms.max", 1, "ms"},
		{"server CPU per message", "server_cpu_us_per_message", 1, "µs"},
	},
	"fanout": {
		{"deliveries/s", "deliveries_per_s", 1, ""},
		{"delivery latency p50", "latency_ms.p50", 1, "ms"},
		{"delivery latency p99", "latency_ms.p99", 1, "ms"},
		{"server CPU per delivery", "server_cpu_us_per_delivery", 1, "µs"},
		{"lost + duplicated", "", 1, ""},
	},
	"mgmt": {
		{"requests/s", "requests_per_s", 1, ""},
		{"request latency p50", "latency_ms.p50", 1, "ms"},
		{"request latency p99", "latency_ms.p99", 1, "ms"},
		{"server CPU per request", "server_cpu_us_per_request", 1, "µs"},
		{"deliveries/s", "deliveries_per_s", 1, ""},
		{"server CPU per delivery", "server_cpu_us_per_delivery", 1, "µs"},
	},
	"start": {
		{"ready: start to first handshake", "ready_ms", 1, "ms"},
		{"first message round trip", "first_message_ms", 1, "ms"},
		{"first answer: ready + first message", "first_answer_ms", 1, "ms"},
		{"warm message round trip, median", "warm_message_ms", 1, "ms"},
	},
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "report:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	base := fs.String("base", "ceiling", "the server the ratios are relative to")
	other := fs.String("other", "gateway", "the server compared with -base")
	peerName := fs.String("peer", "peer", "a third server -other is compared with, when the input has its lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *other == "" || *base == *other {
		return fmt.Errorf("-base %q and -other %q: want two different server names", *base, *other)
	}
	if *peerName == *base || *peerName == *other {
		return fmt.Errorf("-peer %q: want a server other than -base and -other", *peerName)
	}
	var (
		order  []string
		titles = map[string]string{}
		runs   = map[string]map[string][]line{} // case → server → runs
		// withPeer: some lines are the peer's, which gets columns of its own.
		withPeer bool
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if _, ok := runs[l.Case]; !ok {
			order = append(order, l.Case)
			titles[l.Case] = l.Title
			runs[l.Case] = map[string][]line{}
		}
		runs[l.Case][l.Server] = append(runs[l.Case][l.Server], l)
		withPeer = withPeer || (*peerName != "" && l.Server == *peerName)
	}
	if err := sc.Err(); err != nil {
		return err
	}

	b, o, p := label(*base), label(*other), label(*peerName)
	servers := []string{*base, *other}
	if withPeer {
		servers = append(servers, *peerName)
		fmt.Fprintf(out, "| workload | figure | %s: median (min–max) | %s: median (min–max) | %s: median (min–max) | %s ÷ %s | %s ÷ %s |\n",
			b, o, p, o, b, o, p)
		fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|")
	} else {
		fmt.Fprintf(out, "| workload | figure | %s: median (min–max) | %s: median (min–max) | %s ÷ %s |\n", b, o, o, b)
		fmt.Fprintln(out, "|---|---|---:|---:|---:|")
	}
	var notes []string
	for _, c := range order {
		workload := ""
		for _, ls := range runs[c] {
			for _, l := range ls {
				if w, ok := l.Result["workload"].(string); ok {
					workload = w
				}
			}
		}
		for _, srv := range servers {
			for _, l := range runs[c][srv] {
				if l.Exit != 0 || l.Result == nil || l.Result["truncated"] == true {
					why := fmt.Sprintf("exit %d", l.Exit)
					if l.Result != nil {
						why += fmt.Sprintf(", truncated %v, errors %v", l.Result["truncated"], l.Result["errors"])
						if fe, ok := l.Result["first_error"].(string); ok {
							why += ": " + fe
						}
					}
					notes = append(notes, fmt.Sprintf("%s on the %s, run %d: %s", titles[c], label(srv), l.Run, why))
				}
			}
		}
		for i, f := range figures[workload] {
			title := ""
			if i == 0 {
				title = titles[c]
			}
			ceil, gw := stats(runs[c][*base], f), stats(runs[c][*other], f)
			name := f.name
			if f.unit != "" {
				name += " (" + f.unit + ")"
			}
			if withPeer {
				pr := stats(runs[c][*peerName], f)
				fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s |\n", title, name, ceil, gw, pr, ratio(gw, ceil), ratio(gw, pr))
			} else {
				fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", title, name, ceil, gw, ratio(gw, ceil))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "Runs that failed or were cut short (their figures are still in the table):")
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintf(out, "* %s\n", n)
		}
	}
	return nil
}

// ratio prints a's median over b's: "–" when either is missing, "=" when
// both are 0.
func ratio(a, b summary) string {
	switch {
	case !a.ok || !b.ok:
		return "–"
	case b.median != 0:
		return fmt.Sprintf("%.2f×", a.median/b.median)
	case a.median == 0:
		return "="
	default:
		return "–"
	}
}

// label is a server's name for people: "via-holder" reads "via holder".
func label(server string) string { return strings.ReplaceAll(server, "-", " ") }

// summary is a figure over the runs.
type summary struct {
	ok               bool
	median, min, max float64
}

func (s summary) String() string {
	if !s.ok {
		return "–"
	}
	if s.min == s.max {
		return format(s.median)
	}
	return fmt.Sprintf("%s (%s–%s)", format(s.median), format(s.min), format(s.max))
}

// format prints about three significant digits, and whole numbers from 100 up.
func format(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1 || a == 0:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func stats(ls []line, f figure) summary {
	var vs []float64
	for _, l := range ls {
		if l.Result == nil {
			continue
		}
		var v float64
		var ok bool
		if f.path == "" { // lost + duplicated
			lost, ok1 := number(l.Result, "lost")
			dup, ok2 := number(l.Result, "duplicated")
			v, ok = lost+dup, ok1 && ok2
		} else {
			v, ok = number(l.Result, f.path)
		}
		if ok {
			vs = append(vs, v*f.scale)
		}
	}
	if len(vs) == 0 {
		return summary{}
	}
	slices.Sort(vs)
	med := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return summary{ok: true, median: med, min: vs[0], max: vs[len(vs)-1]}
}

// number reads a number at a dotted path of a decoded JSON object.
func number(m map[string]any, path string) (float64, bool) {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		cur = obj[k]
	}
	v, ok := cur.(float64)
	return v, ok
}
