// Package route owns route selection: it compiles a route selection
// expression such as "$request.body.action", evaluates it against a message
// body, and picks the route from a table, falling back to "$default". It is
// pure matching with no I/O.
package route

import (
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
	if e.single {
		raw, found, _ := find(body, e.parts[0].path)
		if !found || raw[0] != '"' { // not JSON, missing, or not a string
			return "", false
		}
		return decodeString(raw[1 : len(raw)-1]), true
	}
	var b strings.Builder
	checked := false // whether body is known to be JSON
	for _, p := range e.parts {
		if p.path == nil {
			b.WriteString(p.literal)
			continue
		}
		raw, found, ok := find(body, p.path)
		if !ok {
			return "", false
		}
		checked = true
		if found {
			b.WriteString(stringify(raw))
		}
	}
	if !checked && !valid(body) {
		return "", false
	}
	return b.String(), true
}

// stringify renders a JSON value as API Gateway's templates do: strings
// unquoted, null as "", arrays as "[item1, item2]" with each item rendered
// the same way, anything else as compact JSON text. raw must be a valid value
// without surrounding whitespace. It reads raw once and does not recurse, so
// deeply nested arrays cost linear time.
func stringify(raw []byte) string {
	switch raw[0] {
	case '"':
		return decodeString(raw[1 : len(raw)-1])
	case 'n':
		return ""
	case '{':
		return string(appendCompact(nil, raw))
	case '[':
	default: // a number, true or false
		return string(raw)
	}
	b := make([]byte, 0, len(raw))
	s := scanner{data: raw}
	open := 0 // arrays being rendered
	for {
		// An item is expected.
		s.skipSpace()
		start := s.i
		switch raw[s.i] {
		case '[':
			b = append(b, '[')
			s.i++
			open++
			s.skipSpace()
			if raw[s.i] != ']' {
				continue
			}
			b = append(b, ']')
			s.i++
			open--
		case '"':
			content, _, _ := s.str()
			b = appendDecoded(b, content)
		case 'n':
			s.i += len("null")
		default: // an object, a number, true or false
			s.value()
			b = appendCompact(b, raw[start:s.i])
		}
		for open > 0 {
			s.skipSpace()
			if raw[s.i] == ',' {
				b = append(b, ", "...)
				s.i++
				break
			}
			b = append(b, ']')
			s.i++
			open--
		}
		if open == 0 {
			return string(b)
		}
	}
}

// appendCompact appends valid JSON text v without the whitespace outside its
// strings, as json.Compact does.
func appendCompact(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		switch c := v[i]; c {
		case ' ', '\t', '\n', '\r':
			i++
		case '"':
			j := i + 1
			for v[j] != '"' {
				if v[j] == '\\' {
					j++
				}
				j++
			}
			dst = append(dst, v[i:j+1]...)
			i = j + 1
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst
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
