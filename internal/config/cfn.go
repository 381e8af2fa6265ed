package config

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A CloudFormation template is read in two steps: the YAML (or JSON) tree
// becomes plain Go values, with the short-form tags (!Ref, !Sub...) turned
// into their long form ({"Ref": ...}, {"Fn::Sub": ...}); then the values a
// resource needs are resolved, intrinsic functions evaluated against the
// template's parameters, conditions, mappings and resources.

// Bounds on a template's tree: its depth, and how many nodes it may expand
// to once aliases are followed (against alias bombs).
const (
	cfnMaxDepth = 200
	cfnMaxNodes = 1 << 20
)

// cfnShortTags are the YAML short forms, each the tag of an intrinsic
// function's long form.
var cfnShortTags = map[string]string{
	"!Ref": "Ref", "!Condition": "Condition", "!GetAtt": "Fn::GetAtt",
	"!Sub": "Fn::Sub", "!Join": "Fn::Join", "!If": "Fn::If", "!Select": "Fn::Select",
	"!Split": "Fn::Split", "!Equals": "Fn::Equals", "!Not": "Fn::Not", "!And": "Fn::And",
	"!Or": "Fn::Or", "!FindInMap": "Fn::FindInMap", "!Base64": "Fn::Base64",
	"!ImportValue": "Fn::ImportValue", "!GetAZs": "Fn::GetAZs", "!Cidr": "Fn::Cidr",
	"!Transform": "Fn::Transform", "!Length": "Fn::Length", "!ToJsonString": "Fn::ToJsonString",
}

// cfnValue turns a YAML node into maps, lists and scalars, the short-form
// tags into long-form intrinsics.
func cfnValue(n *yaml.Node, depth int, budget *int) (any, error) {
	if depth > cfnMaxDepth {
		return nil, fmt.Errorf("line %d: nested deeper than %d levels", n.Line, cfnMaxDepth)
	}
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("line %d: more than %d values (aliases included)", n.Line, cfnMaxNodes)
	}
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return cfnValue(n.Content[0], depth+1, budget)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, fmt.Errorf("line %d: alias to nothing", n.Line)
		}
		return cfnValue(n.Alias, depth+1, budget)
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			v = n.Value
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %v", n.Line, err)
		}
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			e, err := cfnValue(c, depth+1, budget)
			if err != nil {
				return nil, err
			}
			list = append(list, e)
		}
		v = list
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a key must be a plain value", k.Line)
			}
			if k.Value == "<<" && k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: YAML merge keys (<<) are not supported in templates", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: key %q appears twice", k.Line, k.Value)
			}
			e, err := cfnValue(n.Content[i+1], depth+1, budget)
			if err != nil {
				return nil, err
			}
			m[k.Value] = e
		}
		v = m
	default:
		return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v, nil
	}
	fn, ok := cfnShortTags[n.Tag]
	if !ok {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	if s, isStr := v.(string); fn == "Fn::GetAtt" && isStr {
		res, attr, ok := strings.Cut(s, ".")
		if !ok {
			return nil, fmt.Errorf("line %d: !GetAtt %q: want Resource.Attribute", n.Line, s)
		}
		v = []any{res, attr}
	}
	return map[string]any{fn: v}, nil
}

// noValue is what AWS::NoValue resolves to: the property or list element
// holding it is removed.
type noValueType struct{}

var noValue = noValueType{}

// cfnResource is one entry of Resources.
type cfnResource struct {
	Type       string
	Properties map[string]any
	Condition  string
}

// cfnEval evaluates intrinsic functions.
type cfnEval struct {
	params    map[string]any
	pseudo    map[string]any
	mappings  map[string]any
	condDefs  map[string]any
	conds     map[string]bool
	condBusy  map[string]bool
	resources map[string]cfnResource
	// physical maps a resource's logical ID to its physical name when the
	// template gives one (a function's FunctionName); else Ref yields the
	// logical ID, as sam local does.
	physical map[string]string
	warn     func(string)
}

func cfnIsIntrinsic(m map[string]any) (string, any, bool) {
	if len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		if k == "Ref" || strings.HasPrefix(k, "Fn::") {
			return k, v, true
		}
	}
	return "", nil, false
}

// resolve evaluates every intrinsic in v; where names the place for errors.
func (e *cfnEval) resolve(v any, where string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if fn, arg, ok := cfnIsIntrinsic(t); ok {
			return e.intrinsic(fn, arg, where)
		}
		out := make(map[string]any, len(t))
		for _, k := range sortedKeys(t) {
			r, err := e.resolve(t[k], where+"."+k)
			if err != nil {
				return nil, err
			}
			if r != noValue {
				out[k] = r
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(t))
		for i, x := range t {
			r, err := e.resolve(x, fmt.Sprintf("%s[%d]", where, i))
			if err != nil {
				return nil, err
			}
			if r != noValue {
				out = append(out, r)
			}
		}
		return out, nil
	}
	return v, nil
}

func (e *cfnEval) intrinsic(fn string, arg any, where string) (any, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s: "+format, append([]any{where, fn}, args...)...)
	}
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, bad("want a name")
		}
		return e.ref(name, where)
	case "Fn::GetAtt":
		if s, ok := arg.(string); ok { // the long form takes "Resource.Attribute" too
			res, attr, _ := strings.Cut(s, ".")
			arg = []any{res, attr}
		}
		parts, err := e.stringList(arg, where, fn)
		if err != nil {
			return nil, err
		}
		if len(parts) != 2 {
			return nil, bad("want [Resource, Attribute]")
		}
		return e.getAtt(parts[0], parts[1], where)
	case "Fn::Sub":
		return e.sub(arg, where)
	case "Fn::Join":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, bad("want [delimiter, [values]]")
		}
		delim, ok := a[0].(string)
		if !ok {
			return nil, bad("the delimiter must be a string")
		}
		parts, err := e.stringList(a[1], where, fn)
		if err != nil {
			return nil, err
		}
		return strings.Join(parts, delim), nil
	case "Fn::Select":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, bad("want [index, [values]]")
		}
		idx, err := e.resolve(a[0], where)
		if err != nil {
			return nil, err
		}
		i, err := cfnInt(idx)
		if err != nil {
			return nil, bad("index: %v", err)
		}
		list, err := e.resolve(a[1], where)
		if err != nil {
			return nil, err
		}
		l, ok := list.([]any)
		if !ok {
			return nil, bad("want a list to select from")
		}
		if i < 0 || i >= len(l) {
			return nil, bad("index %d is out of range (%d values)", i, len(l))
		}
		return l[i], nil
	case "Fn::Split":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, bad("want [delimiter, string]")
		}
		delim, ok := a[0].(string)
		if !ok || delim == "" {
			return nil, bad("the delimiter must be a non-empty string")
		}
		s, err := e.resolveString(a[1], where, fn)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, delim) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::If":
		a, ok := arg.([]any)
		if !ok || len(a) != 3 {
			return nil, bad("want [condition, value if true, value if false]")
		}
		name, ok := a[0].(string)
		if !ok {
			return nil, bad("the condition must be a name")
		}
		c, err := e.condition(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if c {
			return e.resolve(a[1], where)
		}
		return e.resolve(a[2], where)
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or":
		return e.condExpr(map[string]any{fn: arg}, where)
	case "Fn::FindInMap":
		keys, err := e.stringList(arg, where, fn)
		if err != nil {
			return nil, err
		}
		if len(keys) != 3 {
			return nil, bad("want [MapName, TopLevelKey, SecondLevelKey]")
		}
		var v any = e.mappings
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, bad("%v: no such entry in Mappings", keys)
			}
			if v, ok = m[k]; !ok {
				return nil, bad("%v: no such entry in Mappings", keys)
			}
		}
		return v, nil
	case "Fn::Base64":
		s, err := e.resolveString(arg, where, fn)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "Fn::ImportValue", "Fn::GetAZs", "Fn::Cidr", "Fn::Transform", "Fn::Length", "Fn::ToJsonString":
		e.warn(fmt.Sprintf("%s: %s cannot be resolved locally; an empty string is used", where, fn))
		return "", nil
	}
	return nil, bad("unknown intrinsic function")
}

func (e *cfnEval) ref(name, where string) (any, error) {
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	if name == "AWS::NoValue" {
		return noValue, nil
	}
	if v, ok := e.pseudo[name]; ok {
		return v, nil
	}
	if r, ok := e.resources[name]; ok {
		phys := name
		if p, ok := e.physical[name]; ok {
			phys = p
		}
		if r.Type == "AWS::SQS::Queue" { // a queue's Ref is its URL
			return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", e.pseudo["AWS::Region"], e.pseudo["AWS::AccountId"], phys), nil
		}
		return phys, nil
	}
	return nil, fmt.Errorf("%s: Ref %q: no such parameter or resource", where, name)
}

func (e *cfnEval) getAtt(res, attr, where string) (any, error) {
	if res == "" || attr == "" {
		return nil, fmt.Errorf("%s: Fn::GetAtt %q: want Resource.Attribute", where, res+"."+attr)
	}
	r, ok := e.resources[res]
	if !ok {
		return nil, fmt.Errorf("%s: Fn::GetAtt %s.%s: no such resource", where, res, attr)
	}
	name := res
	if p, ok := e.physical[res]; ok {
		name = p
	}
	region, account, partition := e.pseudo["AWS::Region"], e.pseudo["AWS::AccountId"], e.pseudo["AWS::Partition"]
	switch {
	case attr == "Arn" && (r.Type == "AWS::Serverless::Function" || r.Type == "AWS::Lambda::Function"):
		return fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", partition, region, account, name), nil
	case r.Type == "AWS::ApiGatewayV2::Api" && attr == "ApiId":
		return name, nil
	case r.Type == "AWS::ApiGatewayV2::Api" && attr == "ApiEndpoint":
		return fmt.Sprintf("wss://%s.execute-api.%s.amazonaws.com", name, region), nil
	case r.Type == "AWS::SQS::Queue" && attr == "QueueName":
		return name, nil
	case r.Type == "AWS::SQS::Queue" && attr == "QueueUrl":
		return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", region, account, name), nil
	case attr == "Arn":
		svc, _, _ := strings.Cut(strings.TrimPrefix(r.Type, "AWS::"), "::")
		return fmt.Sprintf("arn:%s:%s:%s:%s:%s", partition, strings.ToLower(svc), region, account, name), nil
	}
	e.warn(fmt.Sprintf("%s: Fn::GetAtt %s.%s has no local value; %q is used", where, res, attr, res+"."+attr))
	return res + "." + attr, nil
}

// sub evaluates Fn::Sub in both forms: "text ${Name}" and ["text", {vars}].
func (e *cfnEval) sub(arg any, where string) (any, error) {
	text, ok := arg.(string)
	vars := map[string]any{}
	if !ok {
		a, isList := arg.([]any)
		if !isList || len(a) != 2 {
			return nil, fmt.Errorf("%s: Fn::Sub: want a string or [string, {variables}]", where)
		}
		if text, ok = a[0].(string); !ok {
			return nil, fmt.Errorf("%s: Fn::Sub: the template must be a string", where)
		}
		if vars, ok = a[1].(map[string]any); !ok {
			return nil, fmt.Errorf("%s: Fn::Sub: the variables must be a map", where)
		}
	}
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		b.WriteString(text[:i])
		text = text[i+2:]
		if strings.HasPrefix(text, "!") { // ${!Literal} is written as ${Literal}
			b.WriteString("${")
			text = text[1:]
			continue
		}
		j := strings.Index(text, "}")
		if j < 0 {
			return nil, fmt.Errorf("%s: Fn::Sub: unclosed ${ in %q", where, arg)
		}
		name := strings.TrimSpace(text[:j])
		text = text[j+1:]
		var v any
		var err error
		if val, ok := vars[name]; ok {
			v, err = e.resolve(val, where)
		} else if res, attr, dotted := strings.Cut(name, "."); dotted && !strings.HasPrefix(name, "AWS::") {
			v, err = e.getAtt(res, attr, where)
		} else {
			v, err = e.ref(name, where)
		}
		if err != nil {
			return nil, err
		}
		s, err := cfnString(v)
		if err != nil {
			return nil, fmt.Errorf("%s: Fn::Sub: ${%s}: %v", where, name, err)
		}
		b.WriteString(s)
	}
}

// condition evaluates a named entry of Conditions, once.
func (e *cfnEval) condition(name string) (bool, error) {
	if c, ok := e.conds[name]; ok {
		return c, nil
	}
	def, ok := e.condDefs[name]
	if !ok {
		return false, fmt.Errorf("condition %q is not defined under Conditions", name)
	}
	if e.condBusy[name] {
		return false, fmt.Errorf("condition %q refers to itself", name)
	}
	e.condBusy[name] = true
	defer delete(e.condBusy, name)
	v, err := e.condExpr(def, "Conditions."+name)
	if err != nil {
		return false, err
	}
	e.conds[name] = v
	return v, nil
}

// condExpr evaluates a condition: Fn::Equals, Fn::Not, Fn::And, Fn::Or, or
// {Condition: Name}.
func (e *cfnEval) condExpr(v any, where string) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("%s: want Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition", where)
	}
	var fn string
	var arg any
	for fn, arg = range m {
	}
	if fn == "Condition" {
		name, ok := arg.(string)
		if !ok {
			return false, fmt.Errorf("%s: Condition: want a name", where)
		}
		return e.condition(name)
	}
	args, ok := arg.([]any)
	if !ok {
		return false, fmt.Errorf("%s: %s: want a list", where, fn)
	}
	switch fn {
	case "Fn::Equals":
		if len(args) != 2 {
			return false, fmt.Errorf("%s: Fn::Equals: want two values", where)
		}
		a, err := e.resolve(args[0], where)
		if err != nil {
			return false, err
		}
		b, err := e.resolve(args[1], where)
		if err != nil {
			return false, err
		}
		return fmt.Sprint(a) == fmt.Sprint(b), nil
	case "Fn::Not":
		if len(args) != 1 {
			return false, fmt.Errorf("%s: Fn::Not: want one condition", where)
		}
		c, err := e.condExpr(args[0], where)
		return !c, err
	case "Fn::And", "Fn::Or":
		if len(args) < 2 || len(args) > 10 {
			return false, fmt.Errorf("%s: %s: want 2 to 10 conditions", where, fn)
		}
		all, some := true, false
		for _, a := range args {
			c, err := e.condExpr(a, where)
			if err != nil {
				return false, err
			}
			all, some = all && c, some || c
		}
		if fn == "Fn::And" {
			return all, nil
		}
		return some, nil
	}
	return false, fmt.Errorf("%s: %s is not a condition function", where, fn)
}

func (e *cfnEval) resolveString(v any, where, fn string) (string, error) {
	r, err := e.resolve(v, where)
	if err != nil {
		return "", err
	}
	s, err := cfnString(r)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %v", where, fn, err)
	}
	return s, nil
}

// stringList resolves v to a list of strings.
func (e *cfnEval) stringList(v any, where, fn string) ([]string, error) {
	r, err := e.resolve(v, where)
	if err != nil {
		return nil, err
	}
	l, ok := r.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: %s: want a list", where, fn)
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, err := cfnString(x)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", where, fn, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// cfnString is a scalar as CloudFormation passes it on: numbers and
// booleans as their text.
func cfnString(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(t), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("want a string, have %s", cfnKind(v))
}

func cfnInt(v any) (int, error) {
	switch t := v.(type) {
	case int:
		return t, nil
	case float64:
		if t == float64(int(t)) {
			return int(t), nil
		}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(t))
		if err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("want a whole number, have %v", v)
}

func cfnKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

// cfnMerge merges a Globals section under a resource's own properties, as
// SAM does: maps merge key by key, lists add up, the resource's scalars win.
func cfnMerge(global, local any) any {
	gm, gok := global.(map[string]any)
	lm, lok := local.(map[string]any)
	if gok && lok {
		if _, _, intrinsic := cfnIsIntrinsic(lm); intrinsic {
			return local
		}
		out := make(map[string]any, len(gm)+len(lm))
		for k, v := range gm {
			out[k] = v
		}
		for k, v := range lm {
			if g, ok := gm[k]; ok {
				out[k] = cfnMerge(g, v)
			} else {
				out[k] = v
			}
		}
		return out
	}
	gl, gok := global.([]any)
	ll, lok := local.([]any)
	if gok && lok {
		return append(append([]any{}, gl...), ll...)
	}
	return local
}
