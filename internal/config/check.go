package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checker walks a YAML document beside the Go type it decodes into, before
// it is decoded, so that every problem is reported with its line and key
// path in words a person can act on, never in Go's type names. It also
// records the line of every key, for the errors Validate finds later.
type checker struct {
	errs  []*Error
	lines map[string]int // key path -> line
}

// The expected forms of the value types, as errors state them.
const (
	formSize     = "a size such as 131072, 128KiB or unlimited"
	formDuration = "a duration such as 30s, 10m or unlimited"
	formCount    = "a whole number or unlimited"
	formRate     = "a number per second, such as 10 or 0.5, or unlimited"
)

var (
	sizeType     = reflect.TypeFor[Size]()
	durationType = reflect.TypeFor[Duration]()
	countType    = reflect.TypeFor[Count]()
	rateType     = reflect.TypeFor[Rate]()
)

func (c *checker) fail(n *yaml.Node, path, format string, args ...any) {
	c.errs = append(c.errs, &Error{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// describe names what a node is, for "got ...".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// yamlKeys returns the YAML keys of a struct type's fields, in order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// yamlKey is a field's YAML key; empty for a field not read from YAML.
func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if k == "-" || !f.IsExported() {
		return ""
	}
	return k
}

// check checks that n can decode into a value of type t, at path.
func (c *checker) check(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) > 0 {
			c.check(n.Content[0], t, path)
		}
		return
	}
	if n.Kind == 0 || n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!null" || n.Tag == "" && n.Value == "") {
		return // absent, or an empty document
	}
	switch t {
	case sizeType:
		c.scalar(n, path, formSize, func(s string) error { _, err := ParseSize(s); return err })
		return
	case durationType:
		c.scalar(n, path, formDuration, func(s string) error { _, err := ParseDuration(s); return err })
		return
	case countType:
		c.scalar(n, path, formCount, func(s string) error { _, err := ParseCount(s); return err })
		return
	case rateType:
		c.scalar(n, path, formRate, func(s string) error { _, err := ParseRate(s); return err })
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		c.check(n, t.Elem(), path)
	case reflect.Struct:
		c.mapping(n, path, func(key *yaml.Node, val *yaml.Node, keyPath string) {
			keys := yamlKeys(t)
			i := slices.Index(keys, key.Value)
			if i < 0 {
				c.fail(key, keyPath, "unknown key%s", c.hint(key.Value, keys))
				return
			}
			f, _ := fieldByKey(t, key.Value)
			c.check(val, f.Type, keyPath)
		})
	case reflect.Map:
		c.mapping(n, path, func(_ *yaml.Node, val *yaml.Node, keyPath string) {
			c.check(val, t.Elem(), keyPath)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.fail(n, path, "expected a list, such as [a, b] or one \"- item\" a line, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.lines[p] = item.Line
			c.check(item, t.Elem(), p)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.fail(n, path, "expected a string, got %s", describe(n))
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			c.fail(n, path, "expected true or false, got %s", describe(n))
		}
	case reflect.Int, reflect.Int64:
		var v int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
			c.fail(n, path, "expected a whole number, got %s", describe(n))
		}
	case reflect.Interface:
		// Free-form YAML (an event pattern): whatever it holds is read as is,
		// and checked by its owner.
	default:
		// Every field of Config is one of the kinds above; a new kind needs a case.
		c.fail(n, path, "cannot be read (a %s)", t.Kind())
	}
}

// scalar checks a scalar value with parse.
func (c *checker) scalar(n *yaml.Node, path, form string, parse func(string) error) {
	if n.Kind != yaml.ScalarNode {
		c.fail(n, path, "expected %s, got %s", form, describe(n))
		return
	}
	if err := parse(n.Value); err != nil {
		msg := fmt.Sprintf("expected %s, got %s", form, describe(n))
		if strings.HasSuffix(err.Error(), "too large") {
			msg += ", which is too large"
		}
		c.fail(n, path, "%s", msg)
	}
}

// mapping checks that n is a mapping with scalar keys, each once, and
// calls each for every entry (merge keys included).
func (c *checker) mapping(n *yaml.Node, path string, each func(key, val *yaml.Node, keyPath string)) {
	if n.Kind != yaml.MappingNode {
		what := "keys and values"
		if path == "" {
			what = "keys such as listen: and routes:"
		}
		c.fail(n, path, "expected a mapping of %s, got %s", what, describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			c.fail(key, path, "expected a key, got %s", describe(key))
			continue
		}
		if key.ShortTag() == "!!merge" {
			for val.Kind == yaml.AliasNode && val.Alias != nil {
				val = val.Alias
			}
			merged := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				merged = val.Content
			}
			for _, m := range merged {
				c.mapping(m, path, each)
			}
			continue
		}
		keyPath := joinPath(path, key.Value)
		if first, ok := seen[key.Value]; ok {
			c.fail(key, keyPath, "key given twice (first on line %d)", first)
			continue
		}
		seen[key.Value] = key.Line
		c.lines[keyPath] = key.Line
		each(key, val, keyPath)
	}
}

// hint is "; did you mean X?" for a misspelt key, else the keys known there.
func (c *checker) hint(key string, known []string) string {
	if s := didYouMean(key, known); s != "" {
		return s
	}
	return "; known keys here: " + strings.Join(known, ", ")
}

// fieldByKey returns the field of struct type t whose YAML key is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// lineOf returns the line of path, or of its nearest parent in the file; 0
// when none is.
func lineOf(lines map[string]int, path string) int {
	for p := path; p != ""; {
		if l, ok := lines[p]; ok {
			return l
		}
		switch i := strings.LastIndexAny(p, ".["); {
		case i < 0:
			p = ""
		default:
			p = p[:i]
		}
	}
	return 0
}

// yamlErrLine finds "line N:" in the yaml package's messages.
var yamlErrLine = regexp.MustCompile(`line (\d+): `)

// syntaxError turns a YAML syntax error into an Error: its line, and the
// message without the package's prefix.
func syntaxError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{Msg: "not valid YAML: " + msg}
	if m := yamlErrLine.FindStringSubmatchIndex(msg); m != nil {
		e.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		e.Msg = "not valid YAML: " + msg[:m[0]] + msg[m[1]:]
	}
	return e
}
