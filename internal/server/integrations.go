package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/httpevent"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/builtin"
	"github.com/switchboard-gateway/switchboard/internal/integration/httpint"
	"github.com/switchboard-gateway/switchboard/internal/integration/invoke"
	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/lambdaapi"
	"github.com/switchboard-gateway/switchboard/internal/sqs"
)

// builder turns configured routes into gateway routes, sharing one process
// pool per hosted function among the routes that name it. After a reload,
// a function whose options did not change keeps the previous builder's
// pool, and its warm processes.
type builder struct {
	cfg       *config.Config
	opts      Options
	hub       *gateway.Hub
	prev      *builder // the configuration being replaced, or nil
	endpoint  string   // the management API URL functions are told
	functions map[string]*lambdahost.Function
	fnOpts    map[string]lambdahost.Options // what each function was made with
	fresh     []string                      // functions made here, not taken over from prev
	router    *httpevent.Router             // the HTTP routes; nil when there are none
	events    *eventbridge.Router           // the event rules
	triggers  []sqs.TriggerOptions          // the queue triggers, started once the build is in force
	closers   []io.Closer
}

func (b *builder) route(rc config.Route) (gateway.Route, error) {
	if rc.Integration.Type == "" { // $connect guarded by an authorizer alone
		return gateway.Route{}, nil
	}
	in, timeout, inline, err := b.integration(rc.Integration)
	if err != nil {
		return gateway.Route{}, err
	}
	return gateway.Route{Integration: in, RouteResponse: rc.TwoWay(), Timeout: timeout, Inline: inline, Ordering: ordering(rc.Ordering)}, nil
}

// ordering is a configured ordering (config.Orderings) as the gateway's;
// empty is the gateway's default.
func ordering(s string) gateway.Ordering {
	switch s {
	case "ordered":
		return gateway.Ordered
	case "concurrent":
		return gateway.Concurrent
	}
	return gateway.OrderingDefault
}

// integration builds a configured integration, its route's timeout (zero:
// the gateway's default) and whether it may run on the connection's reader
// (gateway.Route.Inline).
func (b *builder) integration(ic config.Integration) (in integration.Integration, timeout time.Duration, inline bool, err error) {
	switch ic.Type {
	case "lambda":
		f, err := b.function(ic.Function)
		if err != nil {
			return nil, 0, false, err
		}
		// The function's own timeout, counted once it has the event, fires
		// first and reads as a function error ("Internal server error"), as
		// on AWS; the route's bound also covers a cold start.
		return f, f.InitTimeout() + f.Timeout() + time.Second, false, nil
	case "http":
		h, err := httpint.New(httpint.Options{URL: ic.URL, Headers: ic.Headers})
		if err != nil {
			return nil, 0, false, err
		}
		b.closers = append(b.closers, h)
		return h, 0, false, nil
	case "invoke":
		iv, err := invoke.New(context.Background(), invoke.Options{
			Endpoint: ic.Endpoint, Function: ic.Function, Qualifier: ic.Qualifier, Region: ic.Region,
		})
		if err != nil {
			return nil, 0, false, err
		}
		b.closers = append(b.closers, iv)
		return iv, 0, false, nil
	}
	// Whether a built-in may run inline is its own declaration: it never
	// waits on a hub whose node is alone.
	in, err = builtin.New(ic.Type, b.hub, b.builtinOptions(ic))
	if err != nil {
		return nil, 0, false, err
	}
	return in, 0, integration.Inline(in), nil
}

// builtinOptions are a built-in integration's options, limits included.
func (b *builder) builtinOptions(ic config.Integration) builtin.Options {
	l := b.cfg.Limits
	return builtin.Options{
		MockResponse:     ic.Response,
		MaxTopicBytes:    int(l.MaxTopicBytes),
		MaxSubscriptions: int(l.MaxSubscriptions),
	}
}

// function returns the process pool of a configured function, creating it once.
func (b *builder) function(name string) (*lambdahost.Function, error) {
	if f, ok := b.functions[name]; ok {
		return f, nil
	}
	fc := b.cfg.Functions[name]
	codeDir := fc.CodeDir
	if !filepath.IsAbs(codeDir) {
		codeDir = filepath.Join(b.cfg.Dir, codeDir)
	}
	env := maps.Clone(b.cfg.Environment)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, fc.Environment)
	env[b.cfg.EndpointEnv] = b.endpoint
	env["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = b.endpoint
	if _, set := env["AWS_ENDPOINT_URL_SQS"]; !set { // the SQS API is served at the listener's root
		env["AWS_ENDPOINT_URL_SQS"] = strings.TrimSuffix(b.endpoint, "/"+b.cfg.Stage)
	}
	for k, v := range map[string]string{"NODE_EXTRA_CA_CERTS": b.opts.CAFile, "AWS_CA_BUNDLE": b.opts.CABundle, "SSL_CERT_FILE": b.opts.CABundle} {
		if _, set := env[k]; !set && v != "" {
			env[k] = v
		}
	}
	// Hosted functions are part of the deployment: when the management API
	// requires SigV4, they sign with its first access key unless their
	// environment names credentials of its own.
	if keys := b.cfg.Management.AccessKeys; len(keys) > 0 && env["AWS_ACCESS_KEY_ID"] == "" {
		id := slices.Sorted(maps.Keys(keys))[0]
		env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = id, keys[id]
		delete(env, "AWS_SESSION_TOKEN")
	}
	timeout := time.Duration(fc.Timeout)
	if timeout <= 0 {
		timeout = time.Duration(b.cfg.IntegrationTimeout)
	}
	opts := lambdahost.Options{
		Name:        name,
		Command:     fc.Command, // a relative path is taken from CodeDir by lambdahost
		Runtime:     fc.Runtime,
		Handler:     fc.Handler,
		CodeDir:     codeDir,
		Env:         env,
		MaxProcs:    fc.MaxProcesses,
		Timeout:     timeout,
		InitTimeout: max(time.Duration(fc.InitTimeout), 0),
		Output:      b.opts.FunctionOutput,
		Logger:      b.opts.Logger,
	}
	if p := b.prev; p != nil && p.functions[name] != nil && reflect.DeepEqual(p.fnOpts[name], opts) {
		f := p.functions[name]
		b.functions[name], b.fnOpts[name] = f, opts
		b.closers = append(b.closers, f)
		return f, nil
	}
	f, err := lambdahost.New(opts)
	if err != nil {
		return nil, fmt.Errorf("function %q: %w", name, err)
	}
	b.functions[name], b.fnOpts[name] = f, opts
	b.fresh = append(b.fresh, name)
	b.closers = append(b.closers, f)
	return f, nil
}

// warm starts a process of each function b made (those taken over from the
// previous configuration are warm already), all at once, logging a line as
// each is ready. Each start is bounded by its function's start-up limit.
func (b *builder) warm(log *slog.Logger) error {
	names := slices.Sorted(slices.Values(b.fresh))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		f := b.functions[name]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), f.InitTimeout()+time.Second)
			defer cancel()
			start := time.Now()
			if err := f.Warm(ctx); err != nil {
				errs[i] = fmt.Errorf("function %q: %w", name, err)
				return
			}
			log.Info("function "+name+" warm", "function", name, "startup", time.Since(start).Round(time.Millisecond))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// close releases everything b holds, the functions it took over from the
// previous configuration included: for the final Close. The queue
// triggers stop first and are waited for last, once the functions they
// invoke are closed (which ends their invocations).
func (b *builder) close() error {
	if b == nil {
		return nil
	}
	var errs []error
	var triggers []*sqs.Trigger
	for _, c := range b.closers {
		if tr, ok := c.(*sqs.Trigger); ok {
			tr.Stop()
			triggers = append(triggers, tr)
		}
	}
	for _, c := range b.closers {
		if _, ok := c.(*sqs.Trigger); !ok {
			errs = append(errs, c.Close())
		}
	}
	for _, tr := range triggers {
		errs = append(errs, tr.Close())
	}
	return errors.Join(errs...)
}

// discard releases what a build that will not be used made, leaving the
// functions it shares with the configuration in force running.
func (b *builder) discard() error {
	if b == nil {
		return nil
	}
	var errs []error
	for _, c := range b.closers {
		if f, ok := c.(*lambdahost.Function); ok && uses(b.prev, f) {
			continue
		}
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// uses reports whether in (possibly nil) uses function f.
func uses(in *builder, f *lambdahost.Function) bool {
	if in == nil {
		return false
	}
	for _, g := range in.functions {
		if g == f {
			return true
		}
	}
	return false
}

// retire releases what b (the configuration replaced) holds and next does
// not: queue triggers stop receiving now and finish their invocations in
// flight (bounded by their invoke timeout), functions once those and
// their own invocations in flight are done (bounded by their cold start
// and timeout), everything else now. retiring counts the triggers and
// functions still finishing; nothing here waits for them.
func (b *builder) retire(next *builder, retiring *sync.WaitGroup, log *slog.Logger) {
	var triggers sync.WaitGroup // b's triggers, finishing their invocations
	for _, c := range b.closers {
		if tr, ok := c.(*sqs.Trigger); ok {
			tr.Stop()
			triggers.Go(func() { _ = tr.Close() }) // Close returns no error
		}
	}
	retiring.Go(triggers.Wait)
	for _, c := range b.closers {
		if _, ok := c.(*sqs.Trigger); ok {
			continue
		}
		f, ok := c.(*lambdahost.Function)
		if !ok {
			if err := c.Close(); err != nil {
				log.Warn("reload: releasing a replaced integration", "err", err)
			}
			continue
		}
		if uses(next, f) {
			continue
		}
		retiring.Go(func() {
			triggers.Wait() // a trigger's invocation in flight is served
			ctx, cancel := context.WithTimeout(context.Background(), f.InitTimeout()+f.Timeout()+time.Second)
			defer cancel()
			if err := f.Retire(ctx); err != nil {
				log.Warn("reload: stopping a replaced function", "err", err)
			}
		})
	}
}

// target names what a route invokes, for the banner and the dashboard.
func target(ic config.Integration) string {
	switch ic.Type {
	case "lambda", "invoke":
		return ic.Function
	case "http":
		return ic.URL
	}
	return ""
}

// kinds names each route's integration kind, the Go handlers' included.
func (b *builder) kinds() map[string]string {
	out := make(map[string]string, len(b.cfg.Routes)+len(b.opts.Handlers))
	for key, rc := range b.cfg.Routes {
		out[key] = rc.Integration.Type
	}
	for key := range b.opts.Handlers {
		out[key] = KindGo
	}
	return out
}

// routeInfos describes the route table for the dashboard, the Go
// handlers' routes included.
func (b *builder) routeInfos() []dashboard.RouteInfo {
	out := make([]dashboard.RouteInfo, 0, len(b.cfg.Routes)+len(b.opts.Handlers))
	for key, rc := range b.cfg.Routes {
		out = append(out, dashboard.RouteInfo{RouteKey: key, Integration: rc.Integration.Type, Target: target(rc.Integration), TwoWay: rc.TwoWay()})
	}
	for key := range b.opts.Handlers {
		out = append(out, dashboard.RouteInfo{RouteKey: key, Integration: KindGo, TwoWay: true})
	}
	slices.SortFunc(out, func(a, b dashboard.RouteInfo) int { return strings.Compare(a.RouteKey, b.RouteKey) })
	return out
}

// invokeAPI serves the Lambda Invoke API over b's functions, by their keys
// and their other names. Event invocations run under async.
func (b *builder) invokeAPI(async *sync.WaitGroup) *lambdaapi.API {
	fns := map[string]lambdaapi.Function{}
	for name, fc := range b.cfg.Functions {
		f, ok := b.functions[name]
		if !ok {
			continue
		}
		for _, n := range append([]string{name}, fc.Names...) {
			if _, taken := fns[n]; !taken || n == name {
				fns[n] = f
			}
		}
	}
	return lambdaapi.New(lambdaapi.Options{
		Functions:     fns,
		FunctionError: lambdaFunctionError,
		Region:        b.cfg.Environment["AWS_REGION"],
		Go:            async.Go,
		Logger:        b.opts.Logger,
	})
}

// lambdaFunctionError tells what Lambda reports as a function error (with
// X-Amz-Function-Error) from a failure to run the function.
func lambdaFunctionError(err error) (lambdaapi.FunctionError, bool) {
	var fe *lambdahost.FunctionError
	switch {
	case errors.As(err, &fe):
		return lambdaapi.FunctionError{Type: fe.Type, Message: fe.Message}, true
	case errors.Is(err, lambdahost.ErrTimeout):
		return lambdaapi.FunctionError{Type: "Sandbox.Timedout", Message: "Task timed out"}, true
	case errors.Is(err, lambdahost.ErrCrashed):
		return lambdaapi.FunctionError{Type: "Runtime.ExitError", Message: "Runtime exited: " + err.Error()}, true
	case errors.Is(err, lambdahost.ErrInit):
		return lambdaapi.FunctionError{Type: "Runtime.InitError", Message: err.Error()}, true
	}
	return lambdaapi.FunctionError{}, false
}

// httpRouter builds the project's HTTP routes over b's functions; nil when
// there are none.
func (b *builder) httpRouter() (*httpevent.Router, error) {
	if len(b.cfg.HTTPRoutes) == 0 {
		return nil, nil
	}
	routes := make([]httpevent.Route, 0, len(b.cfg.HTTPRoutes))
	for _, hr := range b.cfg.HTTPRoutes {
		f, err := b.function(hr.Function)
		if err != nil {
			return nil, err
		}
		r := httpevent.Route{Method: hr.Method, Path: hr.Path, Version: hr.Version, Function: f, Name: hr.Function}
		if hr.StagePrefix {
			r.Stage = b.cfg.Stage
		}
		if c := hr.CORS; c != nil {
			r.CORS = &httpevent.CORS{Origins: c.Origins, Headers: c.Headers, ExposedHeaders: c.ExposedHeaders, AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
		}
		routes = append(routes, r)
	}
	rt, err := httpevent.New(httpevent.Options{Routes: routes, Logger: b.opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("http routes: %w", err)
	}
	return rt, nil
}

// httpMount is where an HTTP route answers, for the banner.
func httpMount(hr config.HTTPRoute, stage string) string {
	switch {
	case hr.Path == "*":
		return "/*"
	case hr.StagePrefix:
		return "/" + stage + hr.Path
	}
	return hr.Path
}
