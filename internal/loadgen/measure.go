package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// histogram counts durations in buckets at most 1/64 of their value wide
// (under 1.6% error), from 1ns to centuries, in constant memory. It is safe
// for concurrent use.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	histSub     = 64                       // buckets per power of two
	histBuckets = (64-6)*histSub + histSub // bucketOf(math.MaxUint64) + 1
)

// bucketOf returns v's bucket: v itself below 128, then 64 buckets per power of two.
func bucketOf(v uint64) int {
	e := max(bits.Len64(v)-7, 0)
	return e*histSub + int(v>>e)
}

// bucketMid returns the middle of bucket i's range.
func bucketMid(i int) uint64 {
	e := 0
	if i >= 2*histSub {
		e = i/histSub - 1
	}
	lo := uint64(i-e*histSub) << e
	return lo + (uint64(1)<<e)/2
}

func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// quantile returns the smallest recorded value v, to the bucket's
// precision, with at least q of the values at or below v.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// latency is a histogram's summary in milliseconds, as printed.
type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func (h *histogram) summary() latency {
	ms := func(d time.Duration) float64 { return round(float64(d)/1e6, 3) }
	return latency{
		Count: h.n.Load(),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   ms(time.Duration(h.max.Load())),
	}
}

// rss returns the resident set size of process pid, from /proc/PID/status (VmRSS).
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return kb * 1024, nil
			}
		}
		return 0, fmt.Errorf("rss of %d: unreadable VmRSS line %q", pid, line)
	}
	return 0, fmt.Errorf("rss of %d: no VmRSS in /proc/%d/status", pid, pid)
}

// clockTicks is the unit of the CPU times in /proc/PID/stat: Linux's USER_HZ,
// which sysconf(_SC_CLK_TCK) reports as 100 on every architecture Go
// supports. It is a constant because reading it would take cgo.
const clockTicks = 100

// cpuTime returns the CPU time process pid has used, user and system, all
// its threads, twice: fine is the sum of its threads' time on a CPU, to the
// nanosecond (/proc/PID/task/TID/schedstat; ok false when it cannot be
// read), and coarse is utime + stime from /proc/PID/stat, to the clock tick
// (10ms), which keeps the time of threads that ended too.
func cpuTime(pid int) (fine, coarse time.Duration, ok bool, err error) {
	if runtime.GOOS != "linux" {
		return 0, 0, false, fmt.Errorf("cpu time of %d: /proc/PID/stat is Linux only", pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	coarse, err = parseStatCPU(string(b))
	if err != nil {
		return 0, 0, false, fmt.Errorf("cpu time of %d: /proc/%d/stat: %w", pid, pid, err)
	}
	fine, ok = threadsCPU(pid)
	return fine, coarse, ok, nil
}

// threadsCPU sums the time on a CPU of process pid's threads, the first
// field of each /proc/PID/task/TID/schedstat, in nanoseconds.
func threadsCPU(pid int) (time.Duration, bool) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread ended since the listing
		}
		if err != nil {
			return 0, false
		}
		ns, err := parseSchedstat(string(b))
		if err != nil {
			return 0, false
		}
		sum += ns
	}
	// A kernel without scheduler statistics shows zeros: no measure.
	return sum, sum > 0
}

// parseSchedstat returns the first field of a schedstat line: the time the
// thread ran, in nanoseconds.
func parseSchedstat(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return 0, fmt.Errorf("empty schedstat")
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("schedstat run time %q: want nanoseconds", f[0])
	}
	return time.Duration(v), nil
}

// parseStatCPU returns utime + stime, fields 14 and 15 of a /proc/PID/stat
// line. Field 2 is the command name in parentheses, which may itself hold
// spaces and parentheses: fields are counted from the last ')'.
func parseStatCPU(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("no ')' closing the command name in %.100q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("utime or stime %q: want a tick count", s)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// cpuMeter reads the server's CPU time (--pid) at the start and the end of a
// run's measured phase: its cost per unit of work, which the rates alone hide
// when the load generator shares the machine. Given several processes (the
// nodes of a cluster), it sums their times. Without a pid it does nothing;
// a failed reading counts as a run error and leaves the figures out.
//
// A process's time is its threads' time to the nanosecond, unless its
// clock ticks counted more than two ticks beyond it: then threads ended
// during the phase and took their time with them, and the ticks are used.
type cpuMeter struct {
	run         *run
	pids        []int
	starts      []cpuReading // at begin, one per pid
	used        time.Duration
	begun, done bool
}

// cpuReading is one process's CPU time, both ways (see cpuTime).
type cpuReading struct {
	fine, coarse time.Duration
	fineOK       bool
}

// read returns the CPU time of every process.
func (m *cpuMeter) read() ([]cpuReading, error) {
	out := make([]cpuReading, len(m.pids))
	for i, pid := range m.pids {
		f, c, ok, err := cpuTime(pid)
		if err != nil {
			return nil, err
		}
		out[i] = cpuReading{fine: f, coarse: c, fineOK: ok}
	}
	return out, nil
}

func (m *cpuMeter) begin() {
	if len(m.pids) == 0 {
		return
	}
	r, err := m.read()
	if err != nil {
		m.run.fail(err)
		return
	}
	m.starts, m.begun = r, true
}

// end takes the second reading; only the first call after begin counts.
func (m *cpuMeter) end() {
	if !m.begun || m.done {
		return
	}
	r, err := m.read()
	if err != nil {
		m.run.fail(err)
		return
	}
	var used time.Duration
	for i, e := range r {
		b := m.starts[i]
		used += usedCPU(e.fine-b.fine, e.coarse-b.coarse, b.fineOK && e.fineOK)
	}
	m.used, m.done = used, true
}

// usedCPU picks a phase's CPU time from its two measures (see cpuMeter).
func usedCPU(fine, coarse time.Duration, fineOK bool) time.Duration {
	if !fineOK || coarse-fine > 2*time.Second/clockTicks {
		return coarse
	}
	return fine
}

// pidList is the value of a --pid flag that takes one process ID or several,
// comma separated (the nodes of a cluster on this machine).
type pidList []int

func (p *pidList) String() string {
	s := make([]string, len(*p))
	for i, v := range *p {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (p *pidList) Set(v string) error {
	var out pidList
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("process ID %q: want a positive number", f)
		}
		out = append(out, n)
	}
	*p = out
	return nil
}

// first returns the first process ID, 0 without one.
func (p pidList) first() int {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// many returns the list when it names more than one process, for the
// result line's "pids".
func (p pidList) many() []int {
	if len(p) < 2 {
		return nil
	}
	return p
}

// onePID is the process list of a single --pid flag; 0 is none.
func onePID(pid int) []int {
	if pid <= 0 {
		return nil
	}
	return []int{pid}
}

// figures returns the phase's CPU seconds and microseconds per unit of work:
// nil when not measured, so that a measured 0 is told from a missing one, and
// the latter nil when no work was done.
func (m *cpuMeter) figures(units int64) (seconds, perUnit *float64) {
	if !m.done {
		return nil, nil
	}
	s := round(m.used.Seconds(), 2)
	if units > 0 {
		u := round(float64(m.used)/float64(time.Microsecond)/float64(units), 3)
		perUnit = &u
	}
	return &s, perUnit
}

// httpGet fetches u with the bearer token, if any, and returns the body of a 2xx answer.
func httpGet(ctx context.Context, client *http.Client, u, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, measureTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, body)
	}
	return body, nil
}

// goroutines reads a server's goroutine count from u: Prometheus text with
// go_goroutines (the gateway's /metrics) or a JSON object with "goroutines"
// (expvar's /debug/vars, where the server publishes it).
func goroutines(ctx context.Context, client *http.Client, u, token string) (int64, error) {
	body, err := httpGet(ctx, client, u, token)
	if err != nil {
		return 0, fmt.Errorf("goroutines: %w", err)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) == nil {
		var n int64
		if raw, ok := obj["goroutines"]; ok && json.Unmarshal(raw, &n) == nil {
			return n, nil
		}
		return 0, fmt.Errorf("goroutines: %s: no number \"goroutines\" in the JSON", u)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int64(f), nil
			}
		}
	}
	return 0, fmt.Errorf("goroutines: %s: no go_goroutines line", u)
}
