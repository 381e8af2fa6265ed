package eventbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// ErrPattern is wrapped by every error of ParsePattern: the pattern uses
// something this package does not understand, or is not a valid pattern.
var ErrPattern = errors.New("eventbridge: invalid event pattern")

// Numbers in patterns are bounded as EventBridge bounds them.
const maxPatternNumber = 5e9

// Pattern is a compiled EventBridge event pattern. It is immutable and safe
// for concurrent use.
//
// Supported, as EventBridge defines them: a field's array of values matches
// when any one matches; nested objects match nested fields (detail.x.y); an
// event field holding an array matches when any of its elements matches
// (for nested objects, when one element matches the whole nested pattern);
// exact strings, numbers, booleans and null; {"prefix"}, {"suffix"} (each
// also as {"equals-ignore-case"}); {"equals-ignore-case"}; {"wildcard"}
// with *; {"anything-but"} of a value, a list of values, a {"prefix"} or a
// {"suffix"}; {"numeric"} with one or two comparisons (<, <=, =, >, >=);
// {"exists"}; and "$or" of patterns. Anything else is refused by
// ParsePattern with the reason.
type Pattern struct {
	root object
}

// object is a set of field conditions, all of which must hold, and the
// alternatives of "$or", one of which must hold.
type object struct {
	fields []field
	or     [][]object // each "$or": its alternatives
}

// field is one key of a pattern object: either a nested object or a list
// of value matchers.
type field struct {
	name   string
	nested *object
	values []matcher // any one must match
}

// matcher matches one event value. absent is true when the field is not in
// the event; v is then nil.
type matcher interface {
	match(v any, absent bool) bool
}

// ParsePattern compiles raw, the pattern's JSON.
func ParsePattern(raw []byte) (*Pattern, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrPattern, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: text after the pattern", ErrPattern)
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, fmt.Errorf("%w: want a non-empty JSON object", ErrPattern)
	}
	root, err := parseObject(m, "")
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root}, nil
}

func parseObject(m map[string]any, at string) (object, error) {
	var o object
	for _, k := range slices.Sorted(maps.Keys(m)) {
		where := join(at, k)
		if k == "$or" {
			alts, ok := m[k].([]any)
			if !ok || len(alts) < 2 {
				return o, fmt.Errorf("%w: %s: want an array of at least two patterns", ErrPattern, where)
			}
			var or []object
			for i, a := range alts {
				am, ok := a.(map[string]any)
				if !ok || len(am) == 0 {
					return o, fmt.Errorf("%w: %s[%d]: want a non-empty object", ErrPattern, where, i)
				}
				sub, err := parseObject(am, at)
				if err != nil {
					return o, err
				}
				or = append(or, sub)
			}
			o.or = append(o.or, or)
			continue
		}
		switch v := m[k].(type) {
		case map[string]any:
			if len(v) == 0 {
				return o, fmt.Errorf("%w: %s: an empty object matches nothing", ErrPattern, where)
			}
			sub, err := parseObject(v, where)
			if err != nil {
				return o, err
			}
			o.fields = append(o.fields, field{name: k, nested: &sub})
		case []any:
			if len(v) == 0 {
				return o, fmt.Errorf("%w: %s: an empty array matches nothing", ErrPattern, where)
			}
			f := field{name: k}
			for _, e := range v {
				mt, err := parseValue(e, where)
				if err != nil {
					return o, err
				}
				f.values = append(f.values, mt)
			}
			o.fields = append(o.fields, f)
		default:
			return o, fmt.Errorf("%w: %s: want an array of values or an object, have %s", ErrPattern, where, kind(v))
		}
	}
	return o, nil
}

// parseValue compiles one element of a field's array.
func parseValue(e any, where string) (matcher, error) {
	switch v := e.(type) {
	case nil, string, bool:
		return exact{v}, nil
	case json.Number:
		f, err := number(v, where)
		if err != nil {
			return nil, err
		}
		return exact{f}, nil
	case []any:
		return nil, fmt.Errorf("%w: %s: arrays inside a field's array are not allowed", ErrPattern, where)
	}
	m := e.(map[string]any)
	if len(m) != 1 {
		return nil, fmt.Errorf("%w: %s: a content filter is an object of exactly one key, have %d", ErrPattern, where, len(m))
	}
	for op, arg := range m {
		switch op {
		case "prefix", "suffix":
			return parseAffix(op, arg, where)
		case "equals-ignore-case":
			s, ok := arg.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s: equals-ignore-case wants a string", ErrPattern, where)
			}
			return foldEqual{s}, nil
		case "wildcard":
			s, ok := arg.(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s: wildcard wants a string", ErrPattern, where)
			}
			if strings.Contains(s, "**") {
				return nil, fmt.Errorf("%w: %s: wildcard %q: consecutive * are not allowed", ErrPattern, where, s)
			}
			return wildcard{strings.Split(s, "*")}, nil
		case "exists":
			b, ok := arg.(bool)
			if !ok {
				return nil, fmt.Errorf("%w: %s: exists wants true or false", ErrPattern, where)
			}
			return exists{b}, nil
		case "numeric":
			return parseNumeric(arg, where)
		case "anything-but":
			return parseAnythingBut(arg, where)
		}
		return nil, fmt.Errorf("%w: %s: %q is not a supported content filter (prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists)", ErrPattern, where, op)
	}
	panic("unreachable")
}

// parseAffix compiles {"prefix": "x"} and {"prefix": {"equals-ignore-case": "x"}}, and the same of suffix.
func parseAffix(op string, arg any, where string) (matcher, error) {
	fold := false
	if m, ok := arg.(map[string]any); ok && len(m) == 1 {
		if s, ok := m["equals-ignore-case"].(string); ok {
			arg, fold = s, true
		}
	}
	s, ok := arg.(string)
	if !ok {
		return nil, fmt.Errorf("%w: %s: %s wants a string or {\"equals-ignore-case\": string}", ErrPattern, where, op)
	}
	if s == "" && op == "suffix" {
		return nil, fmt.Errorf("%w: %s: suffix wants a non-empty string", ErrPattern, where)
	}
	return affix{s: s, suffix: op == "suffix", fold: fold}, nil
}

func parseNumeric(arg any, where string) (matcher, error) {
	a, ok := arg.([]any)
	if !ok || (len(a) != 2 && len(a) != 4) {
		return nil, fmt.Errorf("%w: %s: numeric wants [op, number] or [op, number, op, number]", ErrPattern, where)
	}
	var n numeric
	for i := 0; i < len(a); i += 2 {
		op, ok := a[i].(string)
		if !ok || !slices.Contains([]string{"<", "<=", "=", ">", ">="}, op) {
			return nil, fmt.Errorf("%w: %s: numeric operator %v: want <, <=, =, > or >=", ErrPattern, where, a[i])
		}
		num, ok := a[i+1].(json.Number)
		if !ok {
			return nil, fmt.Errorf("%w: %s: numeric operand %v: want a number", ErrPattern, where, a[i+1])
		}
		f, err := number(num, where)
		if err != nil {
			return nil, err
		}
		n.ops = append(n.ops, op)
		n.vals = append(n.vals, f)
	}
	if len(n.ops) == 2 {
		lower := n.ops[0] == ">" || n.ops[0] == ">="
		upper := n.ops[1] == "<" || n.ops[1] == "<="
		if !lower || !upper || n.vals[0] > n.vals[1] {
			return nil, fmt.Errorf("%w: %s: a numeric range is [\">\" or \">=\", low, \"<\" or \"<=\", high] with low <= high", ErrPattern, where)
		}
	}
	return n, nil
}

func parseAnythingBut(arg any, where string) (matcher, error) {
	switch v := arg.(type) {
	case string, bool, nil:
		return anythingBut{values: []any{v}}, nil
	case json.Number:
		f, err := number(v, where)
		if err != nil {
			return nil, err
		}
		return anythingBut{values: []any{f}}, nil
	case []any:
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: %s: anything-but wants a non-empty list", ErrPattern, where)
		}
		ab := anythingBut{}
		for _, e := range v {
			switch e := e.(type) {
			case string, bool, nil:
				ab.values = append(ab.values, e)
			case json.Number:
				f, err := number(e, where)
				if err != nil {
					return nil, err
				}
				ab.values = append(ab.values, f)
			default:
				return nil, fmt.Errorf("%w: %s: anything-but's list holds strings, numbers, booleans or null, have %s", ErrPattern, where, kind(e))
			}
		}
		return ab, nil
	case map[string]any:
		if len(v) == 1 {
			for op, a := range v {
				if op == "prefix" || op == "suffix" {
					m, err := parseAffix(op, a, where)
					if err != nil {
						return nil, err
					}
					return anythingBut{affix: m.(affix), hasAffix: true}, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%w: %s: anything-but wants a value, a list of values, {\"prefix\"} or {\"suffix\"}", ErrPattern, where)
}

func number(n json.Number, where string) (float64, error) {
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > maxPatternNumber {
		return 0, fmt.Errorf("%w: %s: number %s: want a number between -5e9 and 5e9", ErrPattern, where, n)
	}
	return f, nil
}

// Match reports whether event, an event's JSON envelope decoded with
// DecodeEvent, matches the pattern.
func (p *Pattern) Match(event map[string]any) bool { return p.root.match(event, false) }

// MatchJSON decodes event and reports whether it matches; an event that is
// not a JSON object matches nothing.
func (p *Pattern) MatchJSON(event []byte) bool {
	m, err := DecodeEvent(event)
	return err == nil && p.Match(m)
}

// DecodeEvent decodes an event's JSON for Match, numbers as float64.
func DecodeEvent(event []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(event, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("eventbridge: an event is a JSON object")
	}
	return m, nil
}

// match matches o against v, the value at o's place in the event (absent
// when it is not there; an array when any element must match).
func (o *object) match(v any, absent bool) bool {
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if o.match(e, false) {
				return true
			}
		}
		return false
	}
	m, _ := v.(map[string]any) // a scalar has no fields: they are all absent
	for i := range o.fields {
		f := &o.fields[i]
		fv, ok := m[f.name]
		if !f.match(fv, !ok) {
			return false
		}
	}
	for _, alts := range o.or {
		matched := false
		for i := range alts {
			if alts[i].match(m, m == nil) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

func (f *field) match(v any, absent bool) bool {
	if f.nested != nil {
		return f.nested.match(v, absent)
	}
	if arr, ok := v.([]any); ok {
		// A field holding an array matches when one element matches; an
		// empty array is present but matches no value.
		for _, mt := range f.values {
			if e, ok := mt.(exists); ok {
				if e.want {
					return true
				}
				continue
			}
			for _, elem := range arr {
				if mt.match(elem, false) {
					return true
				}
			}
		}
		return false
	}
	for _, mt := range f.values {
		if mt.match(v, absent) {
			return true
		}
	}
	return false
}

type exact struct{ want any } // string, float64, bool or nil

func (e exact) match(v any, absent bool) bool { return !absent && v == e.want }

type foldEqual struct{ s string }

func (e foldEqual) match(v any, absent bool) bool {
	s, ok := v.(string)
	return ok && strings.EqualFold(s, e.s)
}

type affix struct {
	s            string
	suffix, fold bool
}

func (a affix) match(v any, absent bool) bool {
	s, ok := v.(string)
	if !ok || len(s) < len(a.s) {
		return false
	}
	part := s[:len(a.s)]
	if a.suffix {
		part = s[len(s)-len(a.s):]
	}
	if a.fold {
		return strings.EqualFold(part, a.s)
	}
	return part == a.s
}

// wildcard holds the literal parts between the *s.
type wildcard struct{ parts []string }

func (w wildcard) match(v any, absent bool) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	p := w.parts
	if len(p) == 1 {
		return s == p[0]
	}
	if !strings.HasPrefix(s, p[0]) {
		return false
	}
	s = s[len(p[0]):]
	for _, mid := range p[1 : len(p)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, p[len(p)-1])
}

type exists struct{ want bool }

func (e exists) match(v any, absent bool) bool { return e.want != absent }

type numeric struct {
	ops  []string
	vals []float64
}

func (n numeric) match(v any, absent bool) bool {
	f, ok := v.(float64)
	if !ok {
		return false
	}
	for i, op := range n.ops {
		x := n.vals[i]
		var ok bool
		switch op {
		case "<":
			ok = f < x
		case "<=":
			ok = f <= x
		case "=":
			ok = f == x
		case ">":
			ok = f > x
		case ">=":
			ok = f >= x
		}
		if !ok {
			return false
		}
	}
	return true
}

type anythingBut struct {
	values   []any
	affix    affix
	hasAffix bool
}

func (a anythingBut) match(v any, absent bool) bool {
	if absent {
		return false
	}
	if a.hasAffix {
		_, isString := v.(string)
		return isString && !a.affix.match(v, false)
	}
	return !slices.Contains(a.values, v)
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
