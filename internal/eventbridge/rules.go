package eventbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/metrics"
)

// DefaultBus is the name of the bus an entry without EventBusName goes to.
const DefaultBus = "default"

// Delivery defaults, as EventBridge's retry policy has them.
const (
	DefaultMaxAttempts = 185
	DefaultMaxAge      = 24 * time.Hour
	DefaultRetryBase   = time.Second
	DefaultRetryCap    = 5 * time.Minute
	DefaultMaxPending  = 10000
)

// ErrPermanent is wrapped by a Target's error that retrying cannot cure
// (a field the topic needs is missing from the event): the delivery fails
// at once.
var ErrPermanent = errors.New("eventbridge: permanent delivery failure")

// Target receives the events its rule matched. A queue, a function and a
// topic are targets; the rules know nothing else of them.
type Target interface {
	// Deliver hands over event, the envelope's JSON, within ctx. An error
	// is retried with backoff unless it wraps ErrPermanent.
	Deliver(ctx context.Context, event []byte) error
}

// RuleTarget is a target of a rule and its retry policy.
type RuleTarget struct {
	// ID names the target within its rule, for metrics and logs.
	ID string
	// Kind is the target's kind for metrics: function, topic...
	Kind string
	// Target receives the events.
	Target Target
	// MaxAttempts bounds the deliveries of one event, the first included.
	// Zero means DefaultMaxAttempts; negative means one attempt.
	MaxAttempts int
	// MaxAge bounds how long an event is retried after it was accepted.
	// Zero means DefaultMaxAge.
	MaxAge time.Duration
}

// Rule routes the events of a bus that match its pattern to its targets.
type Rule struct {
	Name    string
	Bus     string   // empty means DefaultBus
	Pattern *Pattern // required
	Targets []RuleTarget
}

// Options configures a Router. The zero value of every field works.
type Options struct {
	// Rules are the rules in force; a disabled rule is left out.
	Rules []Rule
	// Buses are the buses that exist besides DefaultBus and those rules
	// name; an entry for any other bus fails with NotFoundException.
	Buses []string
	// RetryBase is the first retry's delay, doubled each retry up to
	// RetryCap, with jitter. Zero means DefaultRetryBase and DefaultRetryCap.
	RetryBase, RetryCap time.Duration
	// MaxPending bounds the deliveries waiting or in progress; an entry
	// that would pass it fails with ThrottlingException. Zero means
	// DefaultMaxPending.
	MaxPending int
	// Metrics counts events; nil counts nothing.
	Metrics *metrics.Events
	// Logger receives failed deliveries. Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.RetryBase == 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.RetryCap == 0 {
		o.RetryCap = DefaultRetryCap
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Router matches events against rules and delivers them to the rules'
// targets in the background. It is safe for concurrent use; Close stops
// the retries and waits for the deliveries in progress.
type Router struct {
	opts   Options
	buses  map[string][]*Rule
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending int
}

// NewRouter returns a router over opts.Rules.
func NewRouter(opts Options) *Router {
	o := opts.withDefaults()
	r := &Router{opts: o, buses: map[string][]*Rule{DefaultBus: nil}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	for _, b := range o.Buses {
		if _, ok := r.buses[b]; !ok {
			r.buses[b] = nil
		}
	}
	for i := range o.Rules {
		rule := &o.Rules[i]
		if rule.Bus == "" {
			rule.Bus = DefaultBus
		}
		r.buses[rule.Bus] = append(r.buses[rule.Bus], rule)
	}
	return r
}

// HasBus reports whether bus exists.
func (r *Router) HasBus(bus string) bool {
	_, ok := r.buses[bus]
	return ok
}

// ErrThrottled is returned by Route when too many deliveries are pending.
var ErrThrottled = errors.New("eventbridge: too many deliveries pending")

// Route matches event (its envelope's JSON) against bus's rules and starts
// a delivery to each target of each rule that matches. It refuses the
// event, starting nothing, with ErrThrottled when the deliveries would
// pass MaxPending.
func (r *Router) Route(bus string, event []byte) error {
	m, err := DecodeEvent(event)
	if err != nil {
		return err
	}
	type job struct {
		rule *Rule
		t    *RuleTarget
	}
	var jobs []job
	for _, rule := range r.buses[bus] {
		if !rule.Pattern.Match(m) {
			continue
		}
		for i := range rule.Targets {
			jobs = append(jobs, job{rule, &rule.Targets[i]})
		}
	}
	r.mu.Lock()
	if r.pending+len(jobs) > r.opts.MaxPending {
		r.mu.Unlock()
		return ErrThrottled
	}
	r.pending += len(jobs)
	r.mu.Unlock()
	matched := map[*Rule]bool{}
	for _, j := range jobs {
		if !matched[j.rule] {
			matched[j.rule] = true
			r.opts.Metrics.Match(j.rule.Name)
		}
		r.wg.Go(func() {
			defer func() { r.mu.Lock(); r.pending--; r.mu.Unlock() }()
			r.deliver(j.rule, j.t, event)
		})
	}
	return nil
}

// deliver hands event to t, retrying with backoff within t's policy.
func (r *Router) deliver(rule *Rule, t *RuleTarget, event []byte) {
	attempts := t.MaxAttempts
	switch {
	case attempts == 0:
		attempts = DefaultMaxAttempts
	case attempts < 0:
		attempts = 1
	}
	maxAge := t.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	deadline := time.Now().Add(maxAge)
	delay := r.opts.RetryBase
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithDeadline(r.ctx, deadline)
		err := t.Target.Deliver(ctx, event)
		cancel()
		if err == nil {
			r.opts.Metrics.Deliver(rule.Name, t.ID, t.Kind)
			return
		}
		reason := ""
		switch {
		case errors.Is(err, ErrPermanent):
			reason = "permanent"
		case r.ctx.Err() != nil:
			reason = "stopped"
		case attempt >= attempts:
			reason = "attempts"
		}
		// Full jitter, as EventBridge's backoff has it, within [delay/2, delay].
		wait := delay/2 + rand.N(delay/2+1)
		if reason == "" && time.Now().Add(wait).After(deadline) {
			reason = "age"
		}
		if reason != "" {
			r.opts.Metrics.Fail(rule.Name, t.ID, t.Kind, reason)
			r.opts.Logger.Warn("event delivery failed", "rule", rule.Name, "target", t.ID, "attempts", attempt, "reason", reason, "err", err)
			return
		}
		r.opts.Metrics.Retry(rule.Name, t.ID, t.Kind)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-r.ctx.Done():
			timer.Stop()
			r.opts.Metrics.Fail(rule.Name, t.ID, t.Kind, "stopped")
			r.opts.Logger.Warn("event delivery abandoned at shutdown", "rule", rule.Name, "target", t.ID, "attempts", attempt, "err", err)
			return
		}
		delay = min(delay*2, r.opts.RetryCap)
	}
}

// Close abandons the retries waiting (each is counted as failed) and
// waits for the deliveries in progress, bounded by their targets.
func (r *Router) Close() error {
	r.cancel()
	r.wg.Wait()
	return nil
}

// FunctionTarget runs a function with the event, as EventBridge invokes a
// Lambda function asynchronously: the function's result is not read; an
// error (the function threw, timed out, or could not be run) is retried.
type FunctionTarget struct {
	Invoke func(ctx context.Context, event []byte) ([]byte, error)
}

// Deliver implements Target.
func (f FunctionTarget) Deliver(ctx context.Context, event []byte) error {
	_, err := f.Invoke(ctx, event)
	return err
}

// Publisher is what a TopicTarget needs: Hub.Publish reaches the topic's
// subscribers across the cluster.
type Publisher interface {
	Publish(ctx context.Context, topic string, data []byte) (int, error)
}

// TopicTarget publishes to a topic's subscribers, with no function: the
// topic and the message are taken from the event by a Template each.
type TopicTarget struct {
	Hub   Publisher
	Topic *Template
	Data  *Template // nil: the whole event
	// CallTimeout bounds one publish. Zero means 10s.
	CallTimeout time.Duration
}

// Deliver implements Target. A topic or data whose field is missing from
// the event fails at once; a publish the bus did not take is retried.
func (t TopicTarget) Deliver(ctx context.Context, event []byte) error {
	topic, err := t.Topic.Render(event)
	if err != nil {
		return fmt.Errorf("%w: topic: %v", ErrPermanent, err)
	}
	if strings.TrimSpace(topic) == "" {
		return fmt.Errorf("%w: topic: empty", ErrPermanent)
	}
	data := event
	if t.Data != nil {
		s, err := t.Data.Render(event)
		if err != nil {
			return fmt.Errorf("%w: data: %v", ErrPermanent, err)
		}
		data = []byte(s)
	}
	timeout := t.CallTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = t.Hub.Publish(ctx, topic, data)
	return err
}

// Template takes a value from an event: a path ("$" for the whole event,
// "$.detail.orderId") yields that value, a string as it is and anything
// else as JSON; any other text is a template whose ${path} parts (path
// without "$.", e.g. "orders.${detail.orderId}") are replaced the same way.
type Template struct {
	path  []string // a path template: the fields from the event's root
	parts []tmplPart
	whole bool
}

type tmplPart struct {
	text string
	path []string // nil: text
}

// ErrTemplate is wrapped by ParseTemplate's errors.
var ErrTemplate = errors.New("eventbridge: invalid template")

// ParseTemplate compiles a path or a template.
func ParseTemplate(s string) (*Template, error) {
	if s == "$" {
		return &Template{whole: true}, nil
	}
	if rest, ok := strings.CutPrefix(s, "$."); ok {
		p, err := splitPath(rest)
		if err != nil {
			return nil, err
		}
		return &Template{path: p}, nil
	}
	t := &Template{}
	for s != "" {
		i := strings.Index(s, "${")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{text: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{text: s[:i]})
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: %q: ${ without }", ErrTemplate, s)
		}
		p, err := splitPath(strings.TrimPrefix(s[i+2:i+end], "$."))
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, tmplPart{path: p})
		s = s[i+end+1:]
	}
	return t, nil
}

func splitPath(s string) ([]string, error) {
	p := strings.Split(s, ".")
	for _, f := range p {
		if f == "" {
			return nil, fmt.Errorf("%w: path %q has an empty field", ErrTemplate, s)
		}
	}
	return p, nil
}

// Render applies t to event, a JSON object. A value taken from the event
// is its JSON as the event has it (key order and number forms kept), or
// the text of a string.
func (t *Template) Render(event []byte) (string, error) {
	if t.whole {
		return string(event), nil
	}
	if t.path != nil {
		return lookup(event, t.path)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.text)
			continue
		}
		s, err := lookup(event, p.path)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func lookup(event []byte, path []string) (string, error) {
	v := json.RawMessage(event)
	for _, f := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil || m == nil {
			return "", fmt.Errorf("the event has no field %s", strings.Join(path, "."))
		}
		var ok bool
		if v, ok = m[f]; !ok {
			return "", fmt.Errorf("the event has no field %s", strings.Join(path, "."))
		}
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	return string(v), nil
}
