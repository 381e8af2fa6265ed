package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// serverless.yml, the parts Switchboard reads. Everything else is reported
// by LoadServerless as a warning.
type slsService struct {
	Service   string                 `yaml:"service"`
	Provider  map[string]yaml.Node   `yaml:"provider"`
	Funcs     map[string]slsFunction `yaml:"functions"`
	Custom    map[string]yaml.Node   `yaml:"custom"`
	UseDotenv yaml.Node              `yaml:"useDotenv"`
	Plugins   []string               `yaml:"plugins"`
	Other     map[string]yaml.Node   `yaml:",inline"`
}

type slsFunction struct {
	Name                string            `yaml:"name"`
	Handler             string            `yaml:"handler"`
	Runtime             string            `yaml:"runtime"`
	Environment         map[string]string `yaml:"environment"`
	Timeout             int               `yaml:"timeout"`
	ReservedConcurrency *int              `yaml:"reservedConcurrency"`
	Events              []map[string]yaml.Node
	Other               map[string]yaml.Node `yaml:",inline"`
}

// slsWebsocket is the object form of a websocket event.
type slsWebsocket struct {
	Route                            string               `yaml:"route"`
	RouteResponseSelectionExpression string               `yaml:"routeResponseSelectionExpression"`
	Authorizer                       yaml.Node            `yaml:"authorizer"`
	Other                            map[string]yaml.Node `yaml:",inline"`
}

// slsAuthorizer is the object form of a websocket event's authorizer.
type slsAuthorizer struct {
	Name           string               `yaml:"name"`
	ARN            string               `yaml:"arn"`
	IdentitySource []string             `yaml:"identitySource"`
	Other          map[string]yaml.Node `yaml:",inline"`
}

// slsOffline is custom.serverless-offline, the keys honoured.
type slsOffline struct {
	Host                string               `yaml:"host"`
	WebsocketPort       int                  `yaml:"websocketPort"`
	NoPrependStageInURL yaml.Node            `yaml:"noPrependStageInUrl"`
	Other               map[string]yaml.Node `yaml:",inline"`
}

// provider keys that are read; the rest are listed in a warning.
var slsProviderKeys = map[string]bool{
	"name": true, "runtime": true, "stage": true, "region": true,
	"environment": true, "websocketsApiRouteSelectionExpression": true, "timeout": true,
	"httpApi": true,
}

// slsHTTP is the object form of an http event (a REST API route).
type slsHTTP struct {
	Path   string               `yaml:"path"`
	Method string               `yaml:"method"`
	CORS   yaml.Node            `yaml:"cors"`
	Other  map[string]yaml.Node `yaml:",inline"`
}

// slsHTTPCORS is an http event's cors object.
type slsHTTPCORS struct {
	Origin           string               `yaml:"origin"`
	Origins          []string             `yaml:"origins"`
	Headers          []string             `yaml:"headers"`
	AllowCredentials bool                 `yaml:"allowCredentials"`
	MaxAge           int                  `yaml:"maxAge"`
	Other            map[string]yaml.Node `yaml:",inline"`
}

// slsHTTPAPICORS is provider.httpApi.cors.
type slsHTTPAPICORS struct {
	AllowedOrigins         []string             `yaml:"allowedOrigins"`
	AllowedHeaders         []string             `yaml:"allowedHeaders"`
	AllowedMethods         []string             `yaml:"allowedMethods"`
	AllowCredentials       bool                 `yaml:"allowCredentials"`
	ExposedResponseHeaders []string             `yaml:"exposedResponseHeaders"`
	MaxAge                 int                  `yaml:"maxAge"`
	Other                  map[string]yaml.Node `yaml:",inline"`
}

// SlsCORSHeaders are the request headers `cors: true` allows, as the
// Serverless Framework's defaults.
var SlsCORSHeaders = []string{"Content-Type", "X-Amz-Date", "Authorization", "X-Api-Key", "X-Amz-Security-Token", "X-Amz-User-Agent", "X-Amzn-Trace-Id"}

// slsEventRoute reads the string form "METHOD path" of an http or httpApi
// event ("*" alone: an HTTP API's catch-all).
func slsEventRoute(s string) (method, path string, ok bool) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return "ANY", "*", true
	}
	method, path, ok = strings.Cut(s, " ")
	return strings.TrimSpace(method), strings.TrimSpace(path), ok && strings.TrimSpace(path) != ""
}

// slsHTTPDecode reads an http or httpApi event in its string form (want
// names the form in the error) or its object form, warning of the keys it
// does not act on.
func slsHTTPDecode(node yaml.Node, at, want string, warn func(string)) (slsHTTP, error) {
	var ev slsHTTP
	if node.Kind == yaml.ScalarNode {
		m, p, ok := slsEventRoute(node.Value)
		if !ok {
			return ev, fmt.Errorf("%s: %w: %q: want %s", at, ErrInvalid, node.Value, want)
		}
		ev.Method, ev.Path = m, p
	} else if err := node.Decode(&ev); err != nil {
		return ev, fmt.Errorf("%s: %w: %v", at, ErrInvalid, err)
	}
	for _, k := range sortedKeys(ev.Other) {
		warn(fmt.Sprintf("%s.%s is not supported and is ignored", at, k))
	}
	return ev, nil
}

// slsHTTPEvent reads an http event into a route (payload 1.0).
func slsHTTPEvent(node yaml.Node, at, fn string, stagePrefix bool, warn func(string)) (HTTPRoute, error) {
	ev, err := slsHTTPDecode(node, at, `"METHOD path"`, warn)
	if err != nil {
		return HTTPRoute{}, err
	}
	if ev.Path == "" || ev.Method == "" {
		return HTTPRoute{}, fmt.Errorf("%s: %w: path and method are required", at, ErrInvalid)
	}
	r := HTTPRoute{Method: slsMethod(ev.Method), Path: "/" + strings.TrimLeft(ev.Path, "/"), Version: 1, Function: fn, StagePrefix: stagePrefix}
	switch {
	case ev.CORS.IsZero():
	case ev.CORS.Kind == yaml.ScalarNode:
		var on bool
		if err := ev.CORS.Decode(&on); err != nil {
			return HTTPRoute{}, fmt.Errorf("%s.cors: %w: want true, false or an object", at, ErrInvalid)
		}
		if on {
			r.CORS = &CORS{Origins: []string{"*"}, Headers: SlsCORSHeaders}
		}
	default:
		var c slsHTTPCORS
		if err := ev.CORS.Decode(&c); err != nil {
			return HTTPRoute{}, fmt.Errorf("%s.cors: %w: %v", at, ErrInvalid, err)
		}
		for _, k := range sortedKeys(c.Other) {
			warn(fmt.Sprintf("%s.cors.%s is not supported and is ignored", at, k))
		}
		r.CORS = &CORS{Origins: c.Origins, Headers: c.Headers, AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
		if c.Origin != "" {
			r.CORS.Origins = append(r.CORS.Origins, c.Origin)
		}
		if len(r.CORS.Origins) == 0 {
			r.CORS.Origins = []string{"*"}
		}
		if len(r.CORS.Headers) == 0 {
			r.CORS.Headers = SlsCORSHeaders
		}
	}
	return r, nil
}

// slsHTTPAPIEvent reads an httpApi event into a route (payload 2.0).
func slsHTTPAPIEvent(node yaml.Node, at, fn string, cors *CORS, warn func(string)) (HTTPRoute, error) {
	ev, err := slsHTTPDecode(node, at, `"METHOD /path" or "*"`, warn)
	if err != nil {
		return HTTPRoute{}, err
	}
	if !ev.CORS.IsZero() {
		warn(at + ".cors is not supported: an HTTP API's CORS is provider.httpApi.cors")
	}
	if ev.Method == "" {
		ev.Method = "ANY"
	}
	if ev.Path == "" {
		ev.Path = "*"
	}
	r := HTTPRoute{Method: slsMethod(ev.Method), Path: ev.Path, Version: 2, Function: fn, CORS: cors}
	if r.Path != "*" {
		r.Path = "/" + strings.TrimLeft(r.Path, "/")
	} else if r.Method != "ANY" {
		return HTTPRoute{}, fmt.Errorf("%s: %w: the catch-all path * takes method *", at, ErrInvalid)
	}
	return r, nil
}

// slsBool reads a boolean that may come from a variable as a string
// ("true"), as JavaScript's truthiness lets the framework's plugins read it.
func slsBool(n yaml.Node) (bool, error) {
	if n.IsZero() {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(n.Value)) {
	case "true":
		return true, nil
	case "false", "", "null":
		return false, nil
	}
	return false, fmt.Errorf("%w: %q (line %d): want true or false", ErrInvalid, n.Value, n.Line)
}

func slsMethod(m string) string {
	m = strings.ToUpper(strings.TrimSpace(m))
	if m == "*" {
		return "ANY"
	}
	return m
}

// slsHTTPAPICORSOf reads provider.httpApi.cors: true or an object.
func slsHTTPAPICORSOf(n yaml.Node, warn func(string)) (*CORS, error) {
	if n.Kind == yaml.ScalarNode {
		var on bool
		if err := n.Decode(&on); err != nil {
			return nil, fmt.Errorf("provider.httpApi.cors: %w: want true, false or an object", ErrInvalid)
		}
		if !on {
			return nil, nil
		}
		return &CORS{Origins: []string{"*"}, Headers: SlsCORSHeaders}, nil
	}
	var c slsHTTPAPICORS
	if err := n.Decode(&c); err != nil {
		return nil, fmt.Errorf("provider.httpApi.cors: %w: %v", ErrInvalid, err)
	}
	for _, k := range sortedKeys(c.Other) {
		warn("provider.httpApi.cors." + k + " is not supported and is ignored")
	}
	if len(c.AllowedMethods) > 0 {
		warn("provider.httpApi.cors.allowedMethods: the methods of each path's routes are allowed")
	}
	out := &CORS{Origins: c.AllowedOrigins, Headers: c.AllowedHeaders, ExposedHeaders: c.ExposedResponseHeaders, AllowCredentials: c.AllowCredentials, MaxAge: c.MaxAge}
	if len(out.Origins) == 0 {
		out.Origins = []string{"*"}
	}
	if len(out.Headers) == 0 {
		out.Headers = SlsCORSHeaders
	}
	return out, nil
}

// Top-level keys that are read or say nothing that runs locally; the rest
// are listed in a warning.
var slsTopKeys = map[string]bool{
	"frameworkVersion": true, "configValidationMode": true, "variablesResolutionMode": true,
	"resources": true, // its queues are read; the rest is listed in the warnings
}

// SlsDefaultRuntime is the runtime of a function when neither it nor the
// provider names one: a Node.js runtime, as the Serverless Framework v3
// defaults to.
const SlsDefaultRuntime = "nodejs14.x"

// SlsDefaultIdentitySource is a websocket authorizer's identity source when
// the event names none, as the Serverless Framework defaults to.
const SlsDefaultIdentitySource = "route.request.header.Auth"

// LoadServerless reads a Serverless Framework project (serverless.yml,
// .yaml or .json, or serverless.ts or .js evaluated by Node.js as the
// framework does: see readServerless) into a Config whose routes run the project's functions: nodejs* handlers through
// the Node bootstrap, provided* and go1.x handlers as executables. Variables
// are resolved as the framework v3 does (see slsVars), after .env files when
// useDotenv is true. Settings it does not support are listed in
// Config.Warnings, never silently dropped.
func LoadServerless(path string, getenv func(string) string, flags Overrides) (*Config, error) {
	root, err := readServerlessDocument(path)
	if err != nil {
		return nil, err
	}
	return serverlessConfig(path, root, getenv, flags)
}

// readServerlessDocument parses a project file into its top node: YAML,
// or the JSON that readServerless makes of a script.
func readServerlessDocument(path string) (*yaml.Node, error) {
	raw, err := readServerless(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrInvalid, err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0], nil
	}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
}

// slsOptions are the values of ${opt:...}: --stage (or SWITCHBOARD_STAGE).
func slsOptions(getenv func(string) string, flags Overrides) map[string]string {
	opts := map[string]string{}
	for _, st := range []string{getenv("SWITCHBOARD_STAGE"), flags.Stage} {
		if st != "" {
			opts["stage"] = st
		}
	}
	return opts
}

// resolveServerless resolves the variables of a decoded project document in
// place, after loading its .env file when useDotenv is true, and returns the
// warnings about variables it kept as written.
func resolveServerless(dir string, root *yaml.Node, getenv func(string) string, flags Overrides) ([]string, error) {
	opts := slsOptions(getenv, flags)
	v := newSlsVars(root, dir, getenv, opts)
	// The stage picks the .env file, so it is resolved first, from the
	// environment as it is (the framework does the same).
	v.stage = opts["stage"]
	if v.stage == "" {
		v.stage = DefaultStage
		if n := child(root, "provider"); n != nil {
			if st := child(n, "stage"); st != nil {
				if err := v.resolve(st, "provider.stage", true, 0); err != nil {
					return nil, err
				}
				if st.Kind == yaml.ScalarNode && st.Value != "" {
					v.stage = st.Value
				}
			}
		}
	}
	if n := child(root, "useDotenv"); n != nil {
		if err := v.resolve(n, "useDotenv", true, 0); err != nil {
			return nil, err
		}
		var on bool
		if err := n.Decode(&on); err != nil {
			return nil, fmt.Errorf("useDotenv (line %d): %w: want true or false", n.Line, ErrInvalid)
		}
		if on {
			dotenv, err := loadDotenv(dir, v.stage, getenv)
			if err != nil {
				return nil, err
			}
			v.getenv = func(k string) string {
				if val := getenv(k); val != "" {
					return val
				}
				return dotenv[k]
			}
		}
	}
	if err := v.resolveAll(); err != nil {
		return nil, err
	}
	return v.warnings, nil
}

// loadDotenv reads .env.STAGE in dir, or .env when there is none, as the
// framework does: only one of them. Variables already in the environment
// win. Neither file is an empty result.
func loadDotenv(dir, stage string, getenv func(string) string) (map[string]string, error) {
	for _, name := range []string{".env." + stage, ".env"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return parseDotenv(string(raw), getenv), nil
	}
	return map[string]string{}, nil
}

// serverlessConfig turns a decoded project document into a Config:
// variables, then provider, functions and their events, then
// custom.serverless-offline, the environment and flags.
func serverlessConfig(path string, root *yaml.Node, getenv func(string) string, flags Overrides) (*Config, error) {
	dir := filepath.Dir(path)
	warnings, err := resolveServerless(dir, root, getenv, flags)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var svc slsService
	if err := root.Decode(&svc); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrInvalid, err)
	}
	for _, k := range sortedKeys(svc.Other) {
		if !slsTopKeys[k] {
			warnings = append(warnings, k+" is not supported and is ignored")
		}
	}
	for _, p := range svc.Plugins {
		if p != "serverless-offline" {
			warnings = append(warnings, "plugin "+p+" is not run")
		}
	}
	cfg := &Config{
		Source:      path + " (Serverless Framework)",
		Dir:         dir,
		Routes:      map[string]Route{},
		Functions:   map[string]Function{},
		Environment: map[string]string{},
		Authorizers: map[string]Authorizer{},
	}
	defaultRuntime := SlsDefaultRuntime
	var defaultTimeout int
	var httpAPICORS *CORS
	warn := func(w string) { warnings = append(warnings, w) }
	for _, k := range sortedKeys(svc.Provider) {
		n := svc.Provider[k]
		var err error
		switch k {
		case "runtime":
			err = n.Decode(&defaultRuntime)
		case "stage":
			err = n.Decode(&cfg.Stage)
		case "timeout":
			err = n.Decode(&defaultTimeout)
		case "environment":
			err = n.Decode(&cfg.Environment)
		case "websocketsApiRouteSelectionExpression":
			err = n.Decode(&cfg.RouteSelectionExpression)
		case "region":
			var region string
			if err = n.Decode(&region); err == nil {
				cfg.Environment["AWS_REGION"] = region
			}
		case "httpApi":
			var h map[string]yaml.Node
			if err = n.Decode(&h); err == nil {
				for _, hk := range sortedKeys(h) {
					if hk != "cors" {
						warn("provider.httpApi." + hk + " is not supported and is ignored")
						continue
					}
					httpAPICORS, err = slsHTTPAPICORSOf(h[hk], warn)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", path, err)
					}
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: provider.%s: %w: %v", path, k, ErrInvalid, err)
		}
		if !slsProviderKeys[k] {
			warnings = append(warnings, "provider."+k+" is not supported and is ignored")
		}
	}
	if cfg.Environment == nil {
		cfg.Environment = map[string]string{}
	}
	var offline slsOffline
	if n, ok := svc.Custom["serverless-offline"]; ok {
		if err := n.Decode(&offline); err != nil {
			return nil, fmt.Errorf("%s: custom.serverless-offline: %w: %v", path, ErrInvalid, err)
		}
		for _, k := range sortedKeys(offline.Other) {
			warnings = append(warnings, "custom.serverless-offline."+k+" is not supported and is ignored")
		}
		if offline.Host != "" || offline.WebsocketPort != 0 {
			host, port := "127.0.0.1", "3001"
			if offline.Host != "" {
				host = offline.Host
			}
			if offline.WebsocketPort != 0 {
				port = strconv.Itoa(offline.WebsocketPort)
			}
			cfg.Listen = net.JoinHostPort(host, port)
		}
	}
	noStage, err := slsBool(offline.NoPrependStageInURL)
	if err != nil {
		return nil, fmt.Errorf("%s: custom.serverless-offline.noPrependStageInUrl: %w", path, err)
	}
	res, queues, err := slsResources(svc.Other["resources"], cmp.Or(cfg.Environment["AWS_REGION"], TemplateRegion), warn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Queues = queues
	var sqsEvents []sqsEvent
	var connectAuth *slsAuthorizer
	for _, name := range sortedKeys(svc.Funcs) {
		f := svc.Funcs[name]
		for _, k := range sortedKeys(f.Other) {
			warnings = append(warnings, fmt.Sprintf("functions.%s.%s is not supported and is ignored", name, k))
		}
		fn, err := slsFunctionConfig(name, f, defaultRuntime, defaultTimeout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for i, ev := range f.Events {
			for _, kind := range sortedKeys(ev) {
				node := ev[kind]
				switch kind {
				case "http", "httpApi":
					at := fmt.Sprintf("functions.%s.events[%d].%s", name, i, kind)
					var hr HTTPRoute
					var err error
					if kind == "http" {
						hr, err = slsHTTPEvent(node, at, name, !noStage, warn)
					} else {
						hr, err = slsHTTPAPIEvent(node, at, name, httpAPICORS, warn)
					}
					if err != nil {
						return nil, fmt.Errorf("%s: %w", path, err)
					}
					cfg.HTTPRoutes = append(cfg.HTTPRoutes, hr)
					continue
				case "eventBridge":
					rule, err := slsEventBridge(node, fmt.Sprintf("functions.%s.events[%d].eventBridge", name, i), name, warn)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", path, err)
					}
					if rule != nil {
						cfg.Events.Rules = append(cfg.Events.Rules, *rule)
					}
					continue
				case "sqs":
					ev, err := slsSQS(node, res, fmt.Sprintf("functions.%s.events[%d].sqs", name, i), name, warn)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", path, err)
					}
					sqsEvents = append(sqsEvents, ev)
					continue
				case "websocket":
				default:
					warnings = append(warnings, fmt.Sprintf("functions.%s.events[%d]: %s events are not supported and are ignored", name, i, kind))
					continue
				}
				at := fmt.Sprintf("functions.%s.events[%d].websocket", name, i)
				var ws slsWebsocket
				if node.Kind == yaml.ScalarNode {
					ws.Route = node.Value
				} else if err := node.Decode(&ws); err != nil {
					return nil, fmt.Errorf("%s: %s: %w: %v", path, at, ErrInvalid, err)
				}
				for _, k := range sortedKeys(ws.Other) {
					warnings = append(warnings, fmt.Sprintf("%s.%s is not supported and is ignored", at, k))
				}
				if ws.Route == "" {
					return nil, fmt.Errorf("%s: %s: %w: route is required", path, at, ErrInvalid)
				}
				if _, dup := cfg.Routes[ws.Route]; dup {
					return nil, fmt.Errorf("%s: %w: route %q is declared twice", path, ErrInvalid, ws.Route)
				}
				r := Route{Integration: Integration{Type: "lambda", Function: name}}
				twoWay := ws.RouteResponseSelectionExpression == "$default"
				r.RouteResponse = &twoWay
				if ws.RouteResponseSelectionExpression != "" && !twoWay {
					warnings = append(warnings, fmt.Sprintf("functions.%s: routeResponseSelectionExpression %q: only $default is supported", name, ws.RouteResponseSelectionExpression))
				}
				if !ws.Authorizer.IsZero() {
					a, err := slsAuthorizerOf(&ws.Authorizer, at)
					if err != nil {
						return nil, fmt.Errorf("%s: %w", path, err)
					}
					if ws.Route != "$connect" {
						warnings = append(warnings, fmt.Sprintf("%s.authorizer: only $connect takes an authorizer; it is ignored on %s", at, ws.Route))
					} else {
						connectAuth = a
					}
				}
				cfg.Routes[ws.Route] = r
			}
		}
		cfg.Functions[name] = fn
	}
	cfg.attachTriggers(sqsEvents, warn)
	if a := connectAuth; a != nil {
		for _, k := range sortedKeys(a.Other) {
			warnings = append(warnings, "the $connect authorizer's "+k+" is not supported and is ignored")
		}
		fn := a.Name
		if fn == "" { // an ARN: usable when it names one of the project's functions
			fn = slsFunctionOfARN(a.ARN, svc.Service, cfg.Stage, flags, getenv)
		}
		if _, ok := cfg.Functions[fn]; !ok {
			return nil, fmt.Errorf("%s: %w: the $connect authorizer %q is not a function of this project", path, ErrInvalid, cmp.Or(a.Name, a.ARN))
		}
		sources := a.IdentitySource
		if len(sources) == 0 {
			sources = []string{SlsDefaultIdentitySource}
		}
		cfg.Authorizers[fn] = Authorizer{Type: "lambda", Function: fn, IdentitySources: sources}
		r := cfg.Routes["$connect"]
		r.Authorizer = fn
		cfg.Routes["$connect"] = r
	}
	cfg.override(getenv, flags)
	cfg.Warnings = warnings
	if err := cfg.applyEnv(getenv); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	for name, fn := range cfg.Functions {
		// The names the framework deploys the function under, which code
		// that invokes it through the Lambda API uses.
		if svc.Service != "" {
			fn.Names = append(fn.Names, svc.Service+"-"+cfg.Stage+"-"+name)
		}
		if n := svc.Funcs[name].Name; n != "" && n != name {
			fn.Names = append(fn.Names, n)
		}
		cfg.Functions[name] = fn
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// slsEventBridgeEvent is a function's eventBridge event, the keys read.
type slsEventBridgeEvent struct {
	EventBus    string         `yaml:"eventBus"`
	Pattern     map[string]any `yaml:"pattern"`
	Enabled     *bool          `yaml:"enabled"`
	RetryPolicy *struct {
		MaximumRetryAttempts *int `yaml:"maximumRetryAttempts"`
		MaximumEventAge      int  `yaml:"maximumEventAge"` // seconds
	} `yaml:"retryPolicy"`
	Other map[string]yaml.Node `yaml:",inline"`
}

// slsEventBridge reads an eventBridge event into a rule that invokes fn;
// nil for one that has no pattern (a schedule), which is not run.
func slsEventBridge(node yaml.Node, at, fn string, warn func(string)) (*EventRule, error) {
	var ev slsEventBridgeEvent
	if err := node.Decode(&ev); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", at, ErrInvalid, err)
	}
	for _, k := range sortedKeys(ev.Other) {
		warn(fmt.Sprintf("%s.%s is not supported and is ignored", at, k))
	}
	if len(ev.Pattern) == 0 {
		warn(at + " is not run: it has no pattern (schedules are not supported)")
		return nil, nil
	}
	bus := ev.EventBus
	if _, name, ok := strings.Cut(bus, ":event-bus/"); ok {
		bus = name
	}
	t := EventTarget{ID: fn, Function: fn}
	if rp := ev.RetryPolicy; rp != nil {
		if rp.MaximumRetryAttempts != nil {
			t.MaxAttempts = *rp.MaximumRetryAttempts + 1
		}
		t.MaxAge = Duration(time.Duration(rp.MaximumEventAge) * time.Second)
	}
	return &EventRule{Name: at, Bus: bus, Pattern: ev.Pattern, Disabled: ev.Enabled != nil && !*ev.Enabled, Targets: []EventTarget{t}}, nil
}

// slsAuthorizerOf reads a websocket event's authorizer: a function name,
// or {name, arn, identitySource}.
func slsAuthorizerOf(n *yaml.Node, at string) (*slsAuthorizer, error) {
	var a slsAuthorizer
	if n.Kind == yaml.ScalarNode {
		a.Name = n.Value
	} else if err := n.Decode(&a); err != nil {
		return nil, fmt.Errorf("%s.authorizer: %w: %v", at, ErrInvalid, err)
	}
	if (a.Name == "") == (a.ARN == "") {
		return nil, fmt.Errorf("%s.authorizer: %w: set name or arn", at, ErrInvalid)
	}
	return &a, nil
}

// slsFunctionOfARN names the project's function an authorizer ARN refers
// to: the ARN's function name, or the framework's SERVICE-STAGE-NAME of it.
func slsFunctionOfARN(arn, service, stage string, flags Overrides, getenv func(string) string) string {
	name := arn
	if i := strings.LastIndex(arn, ":function:"); i >= 0 {
		name = arn[i+len(":function:"):]
	}
	name, _, _ = strings.Cut(name, ":") // a version or alias
	if st := cmp.Or(flags.Stage, getenv("SWITCHBOARD_STAGE"), stage, DefaultStage); service != "" {
		if short, ok := strings.CutPrefix(name, service+"-"+st+"-"); ok {
			return short
		}
	}
	return name
}

func slsFunctionConfig(name string, f slsFunction, defaultRuntime string, defaultTimeout int) (Function, error) {
	runtime := f.Runtime
	if runtime == "" {
		runtime = defaultRuntime
	}
	timeout := f.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	fn := Function{Environment: f.Environment, Handler: f.Handler, CodeDir: "."}
	if rc := f.ReservedConcurrency; rc != nil {
		if *rc <= 0 {
			return Function{}, fmt.Errorf("functions.%s: %w: reservedConcurrency %d lets the function never run; remove it or raise it", name, ErrInvalid, *rc)
		}
		fn.MaxProcesses = *rc
	}
	if timeout > 0 {
		fn.Timeout = Duration(time.Duration(timeout) * time.Second)
	}
	switch {
	case strings.HasPrefix(runtime, "nodejs"):
		fn.Runtime = runtime
	case strings.HasPrefix(runtime, "provided"), runtime == "go1.x":
		if f.Handler == "" {
			return Function{}, fmt.Errorf("functions.%s: %w: handler is required", name, ErrInvalid)
		}
		fn.Command = []string{f.Handler}
	default:
		return Function{}, fmt.Errorf("functions.%s: %w: runtime %q is not supported (nodejs*, provided*, go1.x)", name, ErrInvalid, runtime)
	}
	return fn, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
