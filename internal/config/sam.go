package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Pseudo parameters' local values: sam local's account, and the region of
// the environment (AWS_REGION, AWS_DEFAULT_REGION) or us-east-1.
const (
	TemplateAccountID = "123456789012"
	TemplateRegion    = "us-east-1"
)

const samTransform = "AWS::Serverless-2016-10-31"

// The properties read from each resource type; any other is listed in one
// warning. The resource types not listed here are not run locally.
var samProperties = map[string][]string{
	"AWS::ApiGatewayV2::Api":           {"Name", "ProtocolType", "RouteSelectionExpression", "Description"},
	"AWS::ApiGatewayV2::Route":         {"ApiId", "RouteKey", "Target", "AuthorizationType", "AuthorizerId", "OperationName", "RouteResponseSelectionExpression"},
	"AWS::ApiGatewayV2::Integration":   {"ApiId", "IntegrationType", "IntegrationUri", "IntegrationMethod", "Description"},
	"AWS::ApiGatewayV2::RouteResponse": {"ApiId", "RouteId", "RouteResponseKey"},
	"AWS::ApiGatewayV2::Authorizer":    {"ApiId", "Name", "AuthorizerType", "AuthorizerUri", "IdentitySource"},
	"AWS::ApiGatewayV2::Stage":         {"ApiId", "StageName", "DeploymentId", "Description", "AutoDeploy"},
	"AWS::Serverless::Function":        {"CodeUri", "Handler", "Runtime", "Timeout", "Environment", "FunctionName", "Description", "ReservedConcurrentExecutions", "Events"},
	"AWS::Events::Rule":                {"Name", "Description", "EventBusName", "EventPattern", "State", "Targets"},
	"AWS::Events::EventBus":            {"Name", "Description"},
	"AWS::Lambda::EventSourceMapping":  {"EventSourceArn", "FunctionName", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "ScalingConfig", "Enabled"},
	"AWS::SQS::Queue":                  {"QueueName", "VisibilityTimeout", "DelaySeconds", "MessageRetentionPeriod", "MaximumMessageSize", "RedrivePolicy", "FifoQueue", "ReceiveMessageWaitTimeSeconds"},
	"AWS::Lambda::Function":            {"Code", "Handler", "Runtime", "Timeout", "Environment", "FunctionName", "Description", "ReservedConcurrentExecutions"},
}

// samNoLocalEffect are resource types whose job API Gateway or Lambda does
// on AWS and that mean nothing locally; they are listed in one warning too.
var samNoLocalEffect = []string{"AWS::ApiGatewayV2::Deployment", "AWS::Lambda::Permission", "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::SQS::QueuePolicy"}

var lambdaARNFunction = regexp.MustCompile(`:function:([A-Za-z0-9_-]+)(?::[^/]*)?(?:/invocations)?$`)

// LoadTemplate reads a SAM or CloudFormation template (YAML or JSON) into a
// Config that runs its WebSocket API: the routes, integrations, route
// responses, authorizer and stage of its AWS::ApiGatewayV2 resources, and
// its functions (AWS::Serverless::Function, AWS::Lambda::Function), nodejs*
// handlers through the Node bootstrap, provided* and go1.x as executables.
// Parameters take their Default, or flags.Parameters (--parameter-overrides)
// first. The intrinsic functions are evaluated in their long and short
// forms; a Ref to a resource yields its logical ID, as sam local does.
// Everything the template says that is not run is listed in
// Config.Warnings, never silently dropped.
func LoadTemplate(path string, getenv func(string) string, flags Overrides) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := parseTemplate(raw, path, getenv, flags)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// readTemplate decodes a template into plain values.
func readTemplate(raw []byte) (map[string]any, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the template is empty", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	budget := cfnMaxNodes
	v, err := cfnValue(&doc, 0, &budget)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a template is a map with Resources", ErrInvalid)
	}
	return top, nil
}

// samTemplate is what parseTemplate builds up.
type samTemplate struct {
	eval     *cfnEval
	cfg      *Config
	warnings []string
	warned   map[string]bool
	// ignored collects, per property or resource type, where it was seen.
	ignored map[string][]string
}

func (t *samTemplate) warn(w string) {
	if !t.warned[w] {
		t.warned[w] = true
		t.warnings = append(t.warnings, w)
	}
}

func parseTemplate(raw []byte, path string, getenv func(string) string, flags Overrides) (*Config, error) {
	top, err := readTemplate(raw)
	if err != nil {
		return nil, err
	}
	kind := "CloudFormation template"
	if transformsSAM(top["Transform"]) {
		kind = "SAM template"
	}
	t := &samTemplate{warned: map[string]bool{}, ignored: map[string][]string{}}
	t.cfg = &Config{
		Source:      path + " (" + kind + ")",
		Dir:         filepath.Dir(path),
		Routes:      map[string]Route{},
		Functions:   map[string]Function{},
		Environment: map[string]string{},
	}
	for _, k := range sortedKeys(top) {
		switch k {
		case "AWSTemplateFormatVersion", "Description", "Transform", "Parameters", "Conditions",
			"Mappings", "Resources", "Globals", "Outputs", "Metadata":
		default:
			t.warn(fmt.Sprintf("template section %s is not read", k))
		}
	}
	if tr, ok := top["Transform"]; ok && !transformsOnlySAM(tr) {
		t.warn(fmt.Sprintf("Transform %v: only %s is understood", tr, samTransform))
	}
	if _, ok := top["Outputs"]; ok {
		t.warn("Outputs are not evaluated")
	}

	region := getenv("AWS_REGION")
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = TemplateRegion
	}
	stack := filepath.Base(filepath.Dir(mustAbs(path)))
	e := &cfnEval{
		pseudo: map[string]any{
			"AWS::Region": region, "AWS::AccountId": TemplateAccountID, "AWS::StackName": stack,
			"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NotificationARNs": []any{},
			"AWS::StackId": fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/local", region, TemplateAccountID, stack),
		},
		conds: map[string]bool{}, condBusy: map[string]bool{},
		physical: map[string]string{}, resources: map[string]cfnResource{},
		warn: t.warn,
	}
	t.eval = e
	if e.mappings, err = section(top, "Mappings"); err != nil {
		return nil, err
	}
	if e.condDefs, err = section(top, "Conditions"); err != nil {
		return nil, err
	}
	if e.params, err = templateParameters(top, flags.Parameters); err != nil {
		return nil, err
	}
	resources, err := section(top, "Resources")
	if err != nil {
		return nil, err
	}
	if len(resources) == 0 {
		return nil, fmt.Errorf("%w: the template has no Resources", ErrInvalid)
	}
	for _, id := range sortedKeys(resources) {
		m, ok := resources[id].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: Resources.%s: want a map with Type", ErrInvalid, id)
		}
		typ, _ := m["Type"].(string)
		if typ == "" {
			return nil, fmt.Errorf("%w: Resources.%s: Type is required", ErrInvalid, id)
		}
		r := cfnResource{Type: typ}
		if p, ok := m["Properties"]; ok && p != nil {
			if r.Properties, ok = p.(map[string]any); !ok {
				return nil, fmt.Errorf("%w: Resources.%s.Properties: want a map", ErrInvalid, id)
			}
		}
		if c, ok := m["Condition"]; ok {
			if r.Condition, ok = c.(string); !ok {
				return nil, fmt.Errorf("%w: Resources.%s.Condition: want a condition's name", ErrInvalid, id)
			}
		}
		if typ == "AWS::Serverless::Function" || typ == "AWS::Lambda::Function" {
			if name, ok := r.Properties["FunctionName"].(string); ok && name != "" {
				e.physical[id] = name
			}
		}
		if typ == "AWS::SQS::Queue" { // its Ref is its URL, made of its name
			if name, ok := r.Properties["QueueName"].(string); ok && name != "" {
				e.physical[id] = name
			}
		}
		if typ == "AWS::Events::EventBus" { // its Ref is its name
			if name, ok := r.Properties["Name"].(string); ok && name != "" {
				e.physical[id] = name
			}
		}
		e.resources[id] = r
	}
	for _, name := range sortedKeys(e.condDefs) {
		if _, err := e.condition(name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if err := t.build(top); err != nil {
		return nil, err
	}
	cfg := t.cfg
	cfg.Environment["AWS_REGION"] = region
	cfg.override(getenv, flags)
	for _, what := range sortedKeys(t.ignored) {
		t.warn(fmt.Sprintf("%s: %s", what, strings.Join(t.ignored[what], ", ")))
	}
	cfg.Warnings = t.warnings
	if err := cfg.applyEnv(getenv); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func transformsSAM(v any) bool {
	switch t := v.(type) {
	case string:
		return t == samTransform
	case []any:
		return slices.ContainsFunc(t, func(x any) bool { return x == samTransform })
	}
	return false
}

func transformsOnlySAM(v any) bool {
	if s, ok := v.(string); ok {
		return s == samTransform
	}
	l, ok := v.([]any)
	return ok && len(l) == 1 && l[0] == samTransform
}

func section(top map[string]any, name string) (map[string]any, error) {
	v, ok := top[name]
	if !ok || v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s: want a map", ErrInvalid, name)
	}
	return m, nil
}

// templateParameters gives each parameter its override or Default.
func templateParameters(top map[string]any, overrides map[string]string) (map[string]any, error) {
	defs, err := section(top, "Parameters")
	if err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(overrides) {
		if _, ok := defs[k]; !ok {
			return nil, fmt.Errorf("%w: parameter override %s: the template has no parameter %s", ErrInvalid, k, k)
		}
	}
	params := map[string]any{}
	for _, name := range sortedKeys(defs) {
		def, ok := defs[name].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: Parameters.%s: want a map with Type", ErrInvalid, name)
		}
		var value string
		if v, ok := overrides[name]; ok {
			value = v
		} else if d, ok := def["Default"]; ok {
			if value, err = cfnString(d); err != nil {
				return nil, fmt.Errorf("%w: Parameters.%s.Default: %v", ErrInvalid, name, err)
			}
		} else {
			return nil, fmt.Errorf("%w: parameter %s has no Default: give it with --parameter-overrides %s=VALUE", ErrInvalid, name, name)
		}
		if allowed, ok := def["AllowedValues"].([]any); ok {
			if !slices.ContainsFunc(allowed, func(a any) bool { s, _ := cfnString(a); return s == value }) {
				return nil, fmt.Errorf("%w: parameter %s: %q is not one of its AllowedValues %v", ErrInvalid, name, value, allowed)
			}
		}
		typ, _ := def["Type"].(string)
		if typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<") {
			var list []any
			for _, s := range strings.Split(value, ",") {
				list = append(list, strings.TrimSpace(s))
			}
			params[name] = list
		} else {
			params[name] = value
		}
	}
	return params, nil
}

// ParseParameterOverrides reads sam's --parameter-overrides: "Key=Value"
// pairs separated by spaces, or "ParameterKey=Key,ParameterValue=Value".
func ParseParameterOverrides(args ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, arg := range args {
		for _, f := range strings.Fields(arg) {
			var k, v string
			if rest, ok := strings.CutPrefix(f, "ParameterKey="); ok {
				var found bool
				k, v, found = strings.Cut(rest, ",ParameterValue=")
				if !found {
					return nil, fmt.Errorf("%w: parameter override %q: want ParameterKey=K,ParameterValue=V", ErrInvalid, f)
				}
			} else {
				var found bool
				k, v, found = strings.Cut(f, "=")
				if !found || k == "" {
					return nil, fmt.Errorf("%w: parameter override %q: want Key=Value", ErrInvalid, f)
				}
			}
			out[k] = v
		}
	}
	return out, nil
}

// props resolves a resource's properties, noting the ones not read.
func (t *samTemplate) props(id string, r cfnResource, globals map[string]any) (map[string]any, error) {
	var p any = r.Properties
	if p == nil {
		p = map[string]any{}
	}
	if globals != nil {
		p = cfnMerge(globals, p)
	}
	v, err := t.eval.resolve(p, "Resources."+id+".Properties")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: Resources.%s.Properties: want a map", ErrInvalid, id)
	}
	for _, k := range sortedKeys(m) {
		if !slices.Contains(samProperties[r.Type], k) {
			what := fmt.Sprintf("property %s is not applied locally", k)
			t.ignored[what] = append(t.ignored[what], id)
		}
	}
	return m, nil
}

// str reads a resolved string property.
func str(m map[string]any, id, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, err := cfnString(v)
	if err != nil {
		return "", fmt.Errorf("%w: Resources.%s.Properties.%s: %v", ErrInvalid, id, key, err)
	}
	return s, nil
}

// build turns the resources into routes, functions and authorizers.
func (t *samTemplate) build(top map[string]any) error {
	e := t.eval
	globals, err := section(top, "Globals")
	if err != nil {
		return err
	}
	var fnGlobals map[string]any
	for _, k := range sortedKeys(globals) {
		if k != "Function" {
			t.warn(fmt.Sprintf("Globals.%s is not applied", k))
			continue
		}
		if fnGlobals, _ = globals[k].(map[string]any); fnGlobals == nil {
			return fmt.Errorf("%w: Globals.Function: want a map", ErrInvalid)
		}
	}
	byType := map[string][]string{}
	for _, id := range sortedKeys(e.resources) {
		r := e.resources[id]
		if r.Condition != "" {
			on, err := e.condition(r.Condition)
			if err != nil {
				return fmt.Errorf("%w: Resources.%s: %v", ErrInvalid, id, err)
			}
			if !on {
				continue
			}
		}
		switch {
		case samProperties[r.Type] != nil:
			byType[r.Type] = append(byType[r.Type], id)
		case slices.Contains(samNoLocalEffect, r.Type):
			what := "resources with no local effect"
			t.ignored[what] = append(t.ignored[what], id+" ("+r.Type+")")
		default:
			what := "resources not run locally"
			t.ignored[what] = append(t.ignored[what], id+" ("+r.Type+")")
		}
	}

	// Functions, by logical ID; the unsupported ones say why.
	unsupported := map[string]string{}
	var sqsEvents []sqsEvent
	for _, typ := range []string{"AWS::Serverless::Function", "AWS::Lambda::Function"} {
		for _, id := range byType[typ] {
			var g map[string]any
			if typ == "AWS::Serverless::Function" {
				g = fnGlobals
			}
			p, err := t.props(id, e.resources[id], g)
			if err != nil {
				return err
			}
			fn, why, err := t.function(id, typ, p)
			if err != nil {
				return err
			}
			if why != "" {
				unsupported[id] = why
				continue
			}
			t.cfg.Functions[id] = fn
			evs, err := t.samSQSEvents(id, p)
			if err != nil {
				return err
			}
			sqsEvents = append(sqsEvents, evs...)
		}
	}
	// function finds the function an ARN or a name refers to.
	function := func(ref, where string) (string, error) {
		name := ref
		if m := lambdaARNFunction.FindStringSubmatch(ref); m != nil {
			name = m[1]
		}
		id := name
		for lid, phys := range e.physical {
			if phys == name {
				id = lid
			}
		}
		if why, ok := unsupported[id]; ok {
			return "", fmt.Errorf("%w: %s: function %s is not run: %s", ErrInvalid, where, id, why)
		}
		if _, ok := t.cfg.Functions[id]; !ok {
			return "", fmt.Errorf("%w: %s: %q names no function of the template", ErrInvalid, where, ref)
		}
		return id, nil
	}

	// The WebSocket API: there must be exactly one.
	var api string
	for _, id := range byType["AWS::ApiGatewayV2::Api"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		proto, err := str(p, id, "ProtocolType")
		if err != nil {
			return err
		}
		if proto != "WEBSOCKET" {
			t.warn(fmt.Sprintf("Resources.%s: ProtocolType %s APIs are not served (only WEBSOCKET)", id, proto))
			continue
		}
		if api != "" {
			return fmt.Errorf("%w: two WebSocket APIs, %s and %s: one gateway serves one", ErrInvalid, api, id)
		}
		api = id
		if t.cfg.RouteSelectionExpression, err = str(p, id, "RouteSelectionExpression"); err != nil {
			return err
		}
	}
	if api == "" {
		return fmt.Errorf("%w: no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET: nothing to serve", ErrInvalid)
	}
	// ofAPI reports whether a resource belongs to the WebSocket API.
	ofAPI := func(id string, p map[string]any) (bool, error) {
		a, err := str(p, id, "ApiId")
		if err != nil {
			return false, err
		}
		if a != api && a != "" {
			t.warn(fmt.Sprintf("Resources.%s belongs to API %s, not the WebSocket API %s, and is ignored", id, a, api))
			return false, nil
		}
		return true, nil
	}

	integrations := map[string]Integration{}
	for _, id := range byType["AWS::ApiGatewayV2::Integration"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		if ok, err := ofAPI(id, p); !ok {
			if err != nil {
				return err
			}
			continue
		}
		typ, err := str(p, id, "IntegrationType")
		if err != nil {
			return err
		}
		uri, err := str(p, id, "IntegrationUri")
		if err != nil {
			return err
		}
		switch typ {
		case "AWS_PROXY":
			fn, err := function(uri, "Resources."+id+".IntegrationUri")
			if err != nil {
				return err
			}
			integrations[id] = Integration{Type: "lambda", Function: fn}
		case "HTTP_PROXY":
			integrations[id] = Integration{Type: "http", URL: uri}
			t.warn(fmt.Sprintf("Resources.%s: HTTP_PROXY runs as the http integration, which POSTs the proxy event as JSON rather than the bare message", id))
		default:
			t.warn(fmt.Sprintf("Resources.%s: IntegrationType %s is not supported (AWS_PROXY, HTTP_PROXY); its routes are not served", id, typ))
		}
	}

	authorizers := map[string]Authorizer{}
	for _, id := range byType["AWS::ApiGatewayV2::Authorizer"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		if ok, err := ofAPI(id, p); !ok {
			if err != nil {
				return err
			}
			continue
		}
		if typ, err := str(p, id, "AuthorizerType"); err != nil {
			return err
		} else if typ != "REQUEST" {
			return fmt.Errorf("%w: Resources.%s: AuthorizerType %q: WebSocket APIs take REQUEST authorizers", ErrInvalid, id, typ)
		}
		uri, err := str(p, id, "AuthorizerUri")
		if err != nil {
			return err
		}
		fn, err := function(uri, "Resources."+id+".AuthorizerUri")
		if err != nil {
			return err
		}
		a := Authorizer{Type: "lambda", Function: fn}
		switch src := p["IdentitySource"].(type) {
		case nil:
		case []any:
			for _, s := range src {
				v, err := cfnString(s)
				if err != nil {
					return fmt.Errorf("%w: Resources.%s.Properties.IdentitySource: %v", ErrInvalid, id, err)
				}
				a.IdentitySources = append(a.IdentitySources, v)
			}
		case string:
			for _, s := range strings.Split(src, ",") {
				a.IdentitySources = append(a.IdentitySources, strings.TrimSpace(s))
			}
		default:
			return fmt.Errorf("%w: Resources.%s.Properties.IdentitySource: want a list", ErrInvalid, id)
		}
		for _, s := range a.IdentitySources {
			if !strings.HasPrefix(s, "route.request.header.") && !strings.HasPrefix(s, "route.request.querystring.") {
				return fmt.Errorf("%w: Resources.%s: IdentitySource %q: want route.request.header.NAME or route.request.querystring.NAME", ErrInvalid, id, s)
			}
		}
		authorizers[id] = a
	}

	twoWay := map[string]bool{}
	for _, id := range byType["AWS::ApiGatewayV2::RouteResponse"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		route, err := str(p, id, "RouteId")
		if err != nil {
			return err
		}
		if key, _ := str(p, id, "RouteResponseKey"); key != "$default" {
			t.warn(fmt.Sprintf("Resources.%s: RouteResponseKey %q: only $default is supported", id, key))
			continue
		}
		twoWay[route] = true
	}

	for _, id := range byType["AWS::ApiGatewayV2::Route"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		if ok, err := ofAPI(id, p); !ok {
			if err != nil {
				return err
			}
			continue
		}
		key, err := str(p, id, "RouteKey")
		if err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("%w: Resources.%s: RouteKey is required", ErrInvalid, id)
		}
		if _, dup := t.cfg.Routes[key]; dup {
			return fmt.Errorf("%w: Resources.%s: route %q is declared twice", ErrInvalid, id, key)
		}
		var r Route
		target, err := str(p, id, "Target")
		if err != nil {
			return err
		}
		if target != "" {
			in, ok := strings.CutPrefix(target, "integrations/")
			if !ok {
				return fmt.Errorf("%w: Resources.%s: Target %q: want integrations/<integration>", ErrInvalid, id, target)
			}
			if r.Integration, ok = integrations[in]; !ok {
				if _, exists := e.resources[in]; !exists {
					return fmt.Errorf("%w: Resources.%s: Target %q: no integration %s", ErrInvalid, id, target, in)
				}
				t.warn(fmt.Sprintf("Resources.%s: route %s is not served: its integration %s is not run", id, key, in))
				continue
			}
		}
		auth, err := str(p, id, "AuthorizationType")
		if err != nil {
			return err
		}
		switch auth {
		case "", "NONE":
		case "CUSTOM":
			a, err := str(p, id, "AuthorizerId")
			if err != nil {
				return err
			}
			az, ok := authorizers[a]
			if !ok {
				return fmt.Errorf("%w: Resources.%s: AuthorizerId %q names no REQUEST authorizer of the API", ErrInvalid, id, a)
			}
			if t.cfg.Authorizers == nil {
				t.cfg.Authorizers = map[string]Authorizer{}
			}
			t.cfg.Authorizers[a] = az
			r.Authorizer = a
		case "AWS_IAM":
			t.warn(fmt.Sprintf("Resources.%s: AuthorizationType AWS_IAM is not enforced locally: route %s is open", id, key))
		default:
			return fmt.Errorf("%w: Resources.%s: AuthorizationType %q: want NONE, AWS_IAM or CUSTOM", ErrInvalid, id, auth)
		}
		if target == "" && r.Authorizer == "" {
			t.warn(fmt.Sprintf("Resources.%s: route %s has no Target and is not served", id, key))
			continue
		}
		two := twoWay[id]
		r.RouteResponse = &two
		t.cfg.Routes[key] = r
	}

	if len(t.cfg.Routes) == 0 {
		t.warn(fmt.Sprintf("the WebSocket API %s has no route that can be served: every message is refused", api))
	}
	stage := ""
	for _, id := range byType["AWS::ApiGatewayV2::Stage"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		if ok, err := ofAPI(id, p); !ok {
			if err != nil {
				return err
			}
			continue
		}
		name, err := str(p, id, "StageName")
		if err != nil {
			return err
		}
		if stage != "" {
			t.warn(fmt.Sprintf("Resources.%s: stage %s is not served: the gateway serves one stage, %s", id, name, stage))
			continue
		}
		stage = name
		t.cfg.Stage = name
	}
	if err := t.templateQueues(byType); err != nil {
		return err
	}
	for _, id := range byType["AWS::Lambda::EventSourceMapping"] {
		ev, ok, err := t.eventSourceMapping(id, function)
		if err != nil {
			return err
		}
		if ok {
			sqsEvents = append(sqsEvents, ev)
		}
	}
	t.cfg.attachTriggers(sqsEvents, t.warn)
	return t.eventRules(byType, function)
}

// eventRules reads the AWS::Events::EventBus and AWS::Events::Rule
// resources: a rule's targets that are functions or queues of the
// template run; any other target is listed in a warning.
func (t *samTemplate) eventRules(byType map[string][]string, function func(ref, where string) (string, error)) error {
	e := t.eval
	for _, id := range byType["AWS::Events::EventBus"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		name, err := str(p, id, "Name")
		if err != nil {
			return err
		}
		t.cfg.Events.Buses = append(t.cfg.Events.Buses, cmp.Or(name, id))
	}
	for _, id := range byType["AWS::Events::Rule"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		at := "Resources." + id + ".Properties"
		rule := EventRule{Name: id}
		if rule.Bus, err = str(p, id, "EventBusName"); err != nil {
			return err
		}
		if _, name, ok := strings.Cut(rule.Bus, ":event-bus/"); ok {
			rule.Bus = name
		}
		state, err := str(p, id, "State")
		if err != nil {
			return err
		}
		rule.Disabled = state == "DISABLED"
		switch pat := p["EventPattern"].(type) {
		case map[string]any:
			rule.Pattern = pat
		case string: // the pattern as a JSON string
			if err := json.Unmarshal([]byte(pat), &rule.Pattern); err != nil {
				return fmt.Errorf("%w: %s.EventPattern: not a JSON object: %v", ErrInvalid, at, err)
			}
		case nil:
			t.warn(fmt.Sprintf("Resources.%s is not run: it has no EventPattern (schedules are not supported)", id))
			continue
		default:
			return fmt.Errorf("%w: %s.EventPattern: want an object", ErrInvalid, at)
		}
		targets, _ := p["Targets"].([]any)
		for i, tv := range targets {
			tm, ok := tv.(map[string]any)
			where := fmt.Sprintf("%s.Targets[%d]", at, i)
			if !ok {
				return fmt.Errorf("%w: %s: want a map with Arn and Id", ErrInvalid, where)
			}
			arn, err := cfnString(tm["Arn"])
			if err != nil {
				return fmt.Errorf("%w: %s.Arn: %v", ErrInvalid, where, err)
			}
			tid, _ := cfnString(tm["Id"])
			target, isQueue := queueTarget(arn, tid)
			if !isQueue && !strings.Contains(arn, ":lambda:") && !strings.Contains(arn, ":function:") {
				t.warn(fmt.Sprintf("%s: target %s (%s) is not run: only functions and queues are supported as rule targets", where, tid, arn))
				continue
			}
			if isQueue && t.cfg.queueIndex(target.Queue) < 0 {
				t.warn(fmt.Sprintf("%s: target %s (%s) is not run: queue %s is not one of the template's queues", where, tid, arn, target.Queue))
				continue
			}
			if !isQueue {
				fn, err := function(arn, where+".Arn")
				if err != nil {
					return err
				}
				target = EventTarget{ID: tid, Function: fn}
			}
			for _, k := range sortedKeys(tm) {
				if k != "Arn" && k != "Id" && k != "RetryPolicy" {
					t.warn(fmt.Sprintf("%s.%s is not applied locally", where, k))
				}
			}
			if rp, ok := tm["RetryPolicy"].(map[string]any); ok {
				if v, ok := rp["MaximumRetryAttempts"]; ok {
					n, err := cfnInt(v)
					if err != nil || n < 0 {
						return fmt.Errorf("%w: %s.RetryPolicy.MaximumRetryAttempts: want a number, have %v", ErrInvalid, where, v)
					}
					target.MaxAttempts = n + 1
				}
				if v, ok := rp["MaximumEventAgeInSeconds"]; ok {
					n, err := cfnInt(v)
					if err != nil || n <= 0 {
						return fmt.Errorf("%w: %s.RetryPolicy.MaximumEventAgeInSeconds: want seconds, have %v", ErrInvalid, where, v)
					}
					target.MaxAge = Duration(time.Duration(n) * time.Second)
				}
			}
			rule.Targets = append(rule.Targets, target)
		}
		if len(rule.Targets) == 0 {
			t.warn(fmt.Sprintf("Resources.%s is not run: none of its targets is a function or a queue of the template", id))
			continue
		}
		t.cfg.Events.Rules = append(t.cfg.Events.Rules, rule)
	}
	return nil
}

// function reads one function's properties; why says why it cannot run.
func (t *samTemplate) function(id, typ string, p map[string]any) (Function, string, error) {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: Resources.%s.Properties.%s: "+format, append([]any{ErrInvalid, id, key}, args...)...)
	}
	var fn Function
	codeKey := "CodeUri"
	if typ == "AWS::Lambda::Function" {
		codeKey = "Code"
	}
	switch code := p[codeKey].(type) {
	case nil:
		fn.CodeDir = "."
	case string:
		fn.CodeDir = code
	case map[string]any:
		why := fmt.Sprintf("%s is not a local path", codeKey)
		if _, ok := code["ZipFile"]; ok {
			why = "inline code (ZipFile) is not supported"
		}
		t.warn(fmt.Sprintf("Resources.%s is not run: %s", id, why))
		return Function{}, why, nil
	default:
		return Function{}, "", bad(codeKey, "want a local path")
	}
	handler, err := str(p, id, "Handler")
	if err != nil {
		return Function{}, "", err
	}
	runtime, err := str(p, id, "Runtime")
	if err != nil {
		return Function{}, "", err
	}
	fn.Handler = handler
	switch {
	case strings.HasPrefix(runtime, "nodejs"):
		fn.Runtime = runtime
	case strings.HasPrefix(runtime, "provided"):
		fn.Command = []string{"./bootstrap"}
	case runtime == "go1.x":
		if handler == "" {
			return Function{}, "", bad("Handler", "a go1.x function needs Handler")
		}
		fn.Command = []string{"./" + handler}
	default:
		why := fmt.Sprintf("runtime %q is not supported (nodejs*, provided*, go1.x)", runtime)
		if runtime == "" {
			why = "no Runtime (container images are not supported)"
		}
		t.warn(fmt.Sprintf("Resources.%s is not run: %s", id, why))
		return Function{}, why, nil
	}
	if v, ok := p["Timeout"]; ok {
		n, err := cfnInt(v)
		if err != nil || n <= 0 {
			return Function{}, "", bad("Timeout", "want seconds, have %v", v)
		}
		fn.Timeout = Duration(time.Duration(n) * time.Second)
	}
	if v, ok := p["ReservedConcurrentExecutions"]; ok {
		n, err := cfnInt(v)
		if err != nil || n <= 0 {
			return Function{}, "", bad("ReservedConcurrentExecutions", "want a positive number, have %v", v)
		}
		fn.MaxProcesses = n
	}
	if env, ok := p["Environment"]; ok {
		m, ok := env.(map[string]any)
		vars, varsOK := m["Variables"].(map[string]any)
		if !ok || (m["Variables"] != nil && !varsOK) {
			return Function{}, "", bad("Environment", "want {Variables: {NAME: value}}")
		}
		fn.Environment = map[string]string{}
		for _, k := range sortedKeys(vars) {
			s, err := cfnString(vars[k])
			if err != nil {
				return Function{}, "", bad("Environment.Variables."+k, "%v", err)
			}
			fn.Environment[k] = s
		}
	}
	return fn, "", nil
}
