// Package route owns route selection: it compiles a route selection
// expression such as "$request.body.action", evaluates it against a message
// body, and picks the route from a table, falling back to "$default". It is
// pure matching with no I/O.
package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// DefaultExpression is API Gateway's usual route selection expression.
const DefaultExpression = "$request.body.action"

// Reserved route keys.
const (
	Connect    = "$connect"
	Disconnect = "$disconnect"
	Default    = "$default"
)

// ErrSyntax is returned by Parse for an expression it cannot compile.
var ErrSyntax = errors.New("route: invalid route selection expression")

const bodyPrefix = "request.body."

// Expression is a compiled route selection expression. It is immutable and
// safe for concurrent use.
type Expression struct {
	src string
	// single is set for the plain form "$request.body.a.b": the selected value
	// must be a JSON string, or the message goes to $default.
	single bool
	parts  []part
}

type part struct {
	literal string
	path    []string // nil for a literal
}

// Parse compiles expr. Three forms are accepted, as in API Gateway:
//
//	$request.body.action                          the value of a JSON field (nested: $request.body.meta.type)
//	${request.body.service}/${request.body.action} a template of fields and literal text
//	action                                        a static key (\$default escapes a leading $)
//
// Field names are separated by dots, so a key that contains a dot cannot be selected.
func Parse(expr string) (*Expression, error) {
	e := &Expression{src: expr}
	if strings.HasPrefix(expr, "$request.") {
		path, err := parsePath(expr[1:])
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrSyntax, expr, err)
		}
		e.single = true
		e.parts = []part{{path: path}}
		return e, nil
	}
	rest := expr
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			i = len(rest)
		}
		if i > 0 {
			lit := rest[:i]
			if strings.HasPrefix(lit, "$") {
				return nil, fmt.Errorf("%w %q: only $request.body.* can be selected", ErrSyntax, expr)
			}
			e.parts = append(e.parts, part{literal: strings.ReplaceAll(lit, `\$`, "$")})
			rest = rest[i:]
			continue
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("%w %q: unclosed ${", ErrSyntax, expr)
		}
		path, err := parsePath(rest[2:end])
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrSyntax, expr, err)
		}
		e.parts = append(e.parts, part{path: path})
		rest = rest[end+1:]
	}
	if len(e.parts) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrSyntax)
	}
	return e, nil
}

func parsePath(v string) ([]string, error) {
	if !strings.HasPrefix(v, bodyPrefix) {
		return nil, errors.New("only request.body.* can be selected")
	}
	path := strings.Split(v[len(bodyPrefix):], ".")
	for _, k := range path {
		if k == "" {
			return nil, errors.New("empty field name")
		}
	}
	return path, nil
}

// String returns the source text of the expression.
func (e *Expression) String() string { return e.src }

// Select evaluates the expression against a message body. ok is false when
// the message must go to $default: the body is not JSON, or (plain form) the
// selected value is missing or not a string. In the template form a missing
// field becomes "" and other values their JSON text, as API Gateway does.
func (e *Expression) Select(body []byte) (key string, ok bool) {
	if len(e.parts) == 1 && e.parts[0].path == nil {
		return e.parts[0].literal, true
	}
	if !json.Valid(body) {
		return "", false
	}
	if e.single {
		raw, found := lookup(body, e.parts[0].path)
		if !found || raw[0] != '"' { // null would unmarshal into "" without error
			return "", false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	}
	var b strings.Builder
	for _, p := range e.parts {
		if p.path == nil {
			b.WriteString(p.literal)
			continue
		}
		raw, found := lookup(body, p.path)
		if found {
			b.WriteString(stringify(raw))
		}
	}
	return b.String(), true
}

// lookup walks path through nested JSON objects of a valid JSON document.
func lookup(doc []byte, path []string) (json.RawMessage, bool) {
	cur := json.RawMessage(doc)
	for _, k := range path {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil || obj == nil {
			return nil, false
		}
		v, found := obj[k]
		if !found {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

// stringify renders a JSON value as API Gateway's templates do: strings
// unquoted, arrays as "[item1, item2]", anything else as compact JSON text.
func stringify(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '"':
		var s string
		_ = json.Unmarshal(raw, &s) // raw came from a valid document
		return s
	case raw[0] == '[':
		var items []json.RawMessage
		_ = json.Unmarshal(raw, &items)
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = stringify(it)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		var b bytes.Buffer
		_ = json.Compact(&b, raw)
		return b.String()
	}
}

// Table maps route keys to routes of type R and applies API Gateway's
// fallback to $default. It is immutable after New and safe for concurrent use.
type Table[R any] struct {
	routes map[string]R
}

// NewTable returns a table over routes, keyed by route key.
func NewTable[R any](routes map[string]R) *Table[R] {
	m := make(map[string]R, len(routes))
	for k, v := range routes {
		m[k] = v
	}
	return &Table[R]{routes: m}
}

// Match returns the route for a selected key (selected is false when the
// expression could not be evaluated), falling back to $default. found is
// false when neither exists; the client then gets the "Forbidden" frame.
func (t *Table[R]) Match(key string, selected bool) (routeKey string, r R, found bool) {
	if selected && !strings.HasPrefix(key, "$") {
		if r, ok := t.routes[key]; ok {
			return key, r, true
		}
	}
	r, found = t.routes[Default]
	return Default, r, found
}

// Get returns the route with exactly this key, such as $connect.
func (t *Table[R]) Get(key string) (R, bool) {
	r, ok := t.routes[key]
	return r, ok
}

// Keys returns the route keys in the table.
func (t *Table[R]) Keys() []string {
	keys := make([]string, 0, len(t.routes))
	for k := range t.routes {
		keys = append(keys, k)
	}
	return keys
}
