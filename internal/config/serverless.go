package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// serverless.yml, the parts Switchboard reads. Everything else is reported
// by LoadServerless as a warning.
type slsService struct {
	Service  string                 `yaml:"service"`
	Provider map[string]yaml.Node   `yaml:"provider"`
	Funcs    map[string]slsFunction `yaml:"functions"`
}

type slsFunction struct {
	Handler     string            `yaml:"handler"`
	Runtime     string            `yaml:"runtime"`
	Environment map[string]string `yaml:"environment"`
	Timeout     int               `yaml:"timeout"`
	Events      []map[string]yaml.Node
	Other       map[string]yaml.Node `yaml:",inline"`
}

// slsWebsocket is the object form of a websocket event.
type slsWebsocket struct {
	Route                            string               `yaml:"route"`
	RouteResponseSelectionExpression string               `yaml:"routeResponseSelectionExpression"`
	Other                            map[string]yaml.Node `yaml:",inline"`
}

// provider keys that are read; the rest are listed in a warning.
var slsProviderKeys = map[string]bool{
	"name": true, "runtime": true, "stage": true, "region": true,
	"environment": true, "websocketsApiRouteSelectionExpression": true, "timeout": true,
}

var slsVarRE = regexp.MustCompile(`\$\{(\w+):([^,}\s]+)\s*(?:,\s*['"]?([^'"}]*)['"]?)?\}`)

// LoadServerless reads a Serverless Framework project (serverless.yml) into a
// Config whose routes run the project's functions: nodejs* handlers through
// the Node bootstrap, provided* and go1.x handlers as executables. Settings it
// does not support are listed in Config.Warnings, never silently dropped.
// ${env:NAME, 'default'} and ${opt:stage, 'dev'} are resolved; other
// variables are kept verbatim with a warning.
func LoadServerless(path string, getenv func(string) string, flags Overrides) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var warnings []string
	text := slsVarRE.ReplaceAllStringFunc(string(raw), func(m string) string {
		p := slsVarRE.FindStringSubmatch(m)
		switch {
		case p[1] == "env" && getenv(p[2]) != "":
			return getenv(p[2])
		case p[1] == "env":
			return p[3]
		case p[1] == "opt" && p[2] == "stage" && flags.Stage != "":
			return flags.Stage
		case p[1] == "opt" && p[2] == "stage":
			return p[3]
		}
		warnings = append(warnings, fmt.Sprintf("variable %s is not resolved", m))
		return m
	})
	var svc slsService
	if err := yaml.Unmarshal([]byte(text), &svc); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrInvalid, err)
	}
	dir := filepath.Dir(path)
	cfg := &Config{
		Source:      path + " (Serverless Framework)",
		Dir:         dir,
		Routes:      map[string]Route{},
		Functions:   map[string]Function{},
		Environment: map[string]string{},
	}
	var defaultRuntime string
	var defaultTimeout int
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
		}
		if err != nil {
			return nil, fmt.Errorf("%s: provider.%s: %w: %v", path, k, ErrInvalid, err)
		}
		if !slsProviderKeys[k] {
			warnings = append(warnings, "provider."+k+" is not supported and is ignored")
		}
	}
	for _, name := range sortedKeys(svc.Funcs) {
		f := svc.Funcs[name]
		for _, k := range sortedKeys(f.Other) {
			warnings = append(warnings, fmt.Sprintf("functions.%s.%s is not supported and is ignored", name, k))
		}
		fn, err := slsFunctionConfig(name, f, defaultRuntime, defaultTimeout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		routed := false
		for i, ev := range f.Events {
			for _, kind := range sortedKeys(ev) {
				node := ev[kind]
				if kind != "websocket" {
					warnings = append(warnings, fmt.Sprintf("functions.%s.events[%d]: %s events are not supported and are ignored", name, i, kind))
					continue
				}
				var ws slsWebsocket
				if node.Kind == yaml.ScalarNode {
					ws.Route = node.Value
				} else if err := node.Decode(&ws); err != nil {
					return nil, fmt.Errorf("%s: functions.%s.events[%d].websocket: %w: %v", path, name, i, ErrInvalid, err)
				}
				for _, k := range sortedKeys(ws.Other) {
					warnings = append(warnings, fmt.Sprintf("functions.%s.events[%d].websocket.%s is not supported and is ignored", name, i, k))
				}
				if ws.Route == "" {
					return nil, fmt.Errorf("%s: functions.%s.events[%d].websocket: %w: route is required", path, name, i, ErrInvalid)
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
				cfg.Routes[ws.Route] = r
				routed = true
			}
		}
		if !routed {
			warnings = append(warnings, fmt.Sprintf("functions.%s has no websocket event and is not run", name))
			continue
		}
		cfg.Functions[name] = fn
	}
	cfg.override(getenv, flags)
	cfg.Warnings = warnings
	if err := cfg.applyEnv(getenv); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
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
