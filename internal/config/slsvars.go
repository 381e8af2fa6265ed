package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// slsVars resolves the Serverless Framework's variables (v3 syntax) in a
// decoded project document, in place: ${self:a.b}, ${opt:stage},
// ${opt:region}, ${sls:stage}, ${env:NAME}, ${file(./x.yml):a.b}, with
// fallbacks after commas and variables nested in addresses and fallbacks.
// A value that is one variable takes the type of what it resolves to (a
// number, a boolean, an object); a variable inside a longer string is
// interpolated. It works on the yaml.Node tree, so a document decoded from
// JSON resolves the same way.
type slsVars struct {
	root   *yaml.Node // the document's top mapping
	dir    string     // relative ${file(...)} paths are taken from here
	getenv func(string) string
	opts   map[string]string // --stage and other options that are set

	stage    string                // ${sls:stage}, once known
	active   map[*yaml.Node]string // nodes being resolved, for cycles: their path
	done     map[*yaml.Node]bool
	files    map[string]*yaml.Node
	warnings []string
}

// errNoValue is returned by a source that has no value (an unset env
// variable, a missing self path, an unset option): the next fallback is
// tried.
var errNoValue = errors.New("no value")

// maxVarDepth bounds the nesting of file references and self lookups.
const maxVarDepth = 64

func newSlsVars(root *yaml.Node, dir string, getenv func(string) string, opts map[string]string) *slsVars {
	return &slsVars{root: root, dir: dir, getenv: getenv, opts: opts,
		active: map[*yaml.Node]string{}, done: map[*yaml.Node]bool{}, files: map[string]*yaml.Node{}}
}

// resolveAll resolves every variable of the document.
func (v *slsVars) resolveAll() error {
	return v.resolve(v.root, "", true, 0)
}

// resolve resolves n in place; deep resolves its children too. path names n
// in messages ("provider.environment.TABLE").
func (v *slsVars) resolve(n *yaml.Node, path string, deep bool, depth int) error {
	if n == nil {
		return nil
	}
	if depth > maxVarDepth {
		return fmt.Errorf("%s: %w: variables nested more than %d deep", where(path, n), ErrInvalid, maxVarDepth)
	}
	if n.Kind == yaml.AliasNode {
		return v.resolve(n.Alias, path, deep, depth+1)
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := v.resolve(c, path, deep, depth); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind == yaml.ScalarNode && !v.done[n] && strings.Contains(n.Value, "${") {
		if from, ok := v.active[n]; ok {
			return fmt.Errorf("%s: %w: variables refer to each other in a cycle (%s needs its own value)", where(path, n), ErrInvalid, from)
		}
		v.active[n] = path
		err := v.resolveScalar(n, path, depth)
		delete(v.active, n)
		if err != nil {
			return err
		}
		v.done[n] = true
	}
	if !deep {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := v.resolve(n.Content[i+1], join(path, n.Content[i].Value), true, depth); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := v.resolve(c, fmt.Sprintf("%s[%d]", path, i), true, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolveScalar replaces a scalar holding variables by their value.
func (v *slsVars) resolveScalar(n *yaml.Node, path string, depth int) error {
	parts, err := parseSlsTemplate(n.Value)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", where(path, n), ErrInvalid, err)
	}
	if len(parts) == 1 && parts[0].v != nil { // the whole value: keep the type
		val, err := v.eval(parts[0].v, path, n, depth)
		if err != nil {
			return err
		}
		if val == nil { // kept verbatim, with a warning
			return nil
		}
		line, col := n.Line, n.Column
		*n = *copyNode(val)
		n.Line, n.Column = line, col
		return nil
	}
	s, err := v.render(parts, path, n, depth)
	if err != nil {
		return err
	}
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Line: n.Line, Column: n.Column}
	return nil
}

// render interpolates parts into a string; each variable must resolve to a
// scalar.
func (v *slsVars) render(parts []slsPart, path string, at *yaml.Node, depth int) (string, error) {
	var b strings.Builder
	for _, p := range parts {
		if p.v == nil {
			b.WriteString(p.text)
			continue
		}
		val, err := v.eval(p.v, path, at, depth)
		if err != nil {
			return "", err
		}
		if val == nil {
			b.WriteString(p.v.raw)
			continue
		}
		if val.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("%s: %w: %s is an object or a list, and cannot be part of a string", where(path, at), ErrInvalid, p.v.raw)
		}
		b.WriteString(val.Value)
	}
	return b.String(), nil
}

// eval resolves one variable: its sources in turn, the first with a value.
// nil, nil means the variable's source is not available locally and it is
// kept verbatim (a warning says so).
func (v *slsVars) eval(x *slsVar, path string, at *yaml.Node, depth int) (*yaml.Node, error) {
	var unsupported []string
	for _, src := range x.sources {
		val, err := v.source(src, path, at, depth)
		var u *unsupportedSource
		switch {
		case err == nil:
			if len(unsupported) > 0 {
				v.warnings = append(v.warnings, fmt.Sprintf("%s: variable %s: %s cannot be resolved here; the fallback is used", where(path, at), x.raw, strings.Join(unsupported, ", ")))
			}
			return val, nil
		case errors.As(err, &u):
			unsupported = append(unsupported, u.source)
		case errors.Is(err, errNoValue):
		default:
			return nil, err
		}
	}
	if len(unsupported) > 0 {
		v.warnings = append(v.warnings, fmt.Sprintf("%s: variable %s is not resolved (%s cannot be resolved here) and is kept as written", where(path, at), x.raw, strings.Join(unsupported, ", ")))
		return nil, nil
	}
	return nil, fmt.Errorf("%s: %w: variable %s cannot be resolved: it has no value and no fallback", where(path, at), ErrInvalid, x.raw)
}

type unsupportedSource struct{ source string }

func (e *unsupportedSource) Error() string { return e.source + " cannot be resolved" }

var slsNumberRE = regexp.MustCompile(`^-?\d+(\.\d+)?$`)

// source evaluates one source of a variable: a quoted string, a number, a
// boolean, a nested variable, or an address such as self:a.b.
func (v *slsVars) source(src slsSource, path string, at *yaml.Node, depth int) (*yaml.Node, error) {
	if src.quoted {
		return strNode(src.text), nil
	}
	if len(src.parts) == 1 && src.parts[0].v != nil {
		val, err := v.eval(src.parts[0].v, path, at, depth+1)
		if err != nil {
			return nil, err
		}
		if val == nil {
			return nil, &unsupportedSource{src.parts[0].v.raw}
		}
		return val, nil
	}
	s, err := v.render(src.parts, path, at, depth+1)
	if err != nil {
		return nil, err
	}
	s = strings.TrimSpace(s)
	switch {
	case slsNumberRE.MatchString(s):
		tag := "!!int"
		if strings.Contains(s, ".") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s}, nil
	case s == "true" || s == "false":
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: s}, nil
	case s == "null":
		return nil, errNoValue
	}
	if rest, ok := strings.CutPrefix(s, "file("); ok {
		return v.file(rest, s, path, at, depth)
	}
	kind, addr, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("%s: %w: %q in a variable is neither a quoted string, a number nor a source such as env:NAME", where(path, at), ErrInvalid, s)
	}
	addr = strings.TrimSpace(addr)
	switch kind {
	case "self":
		return v.lookup(v.root, addr, "self:", depth)
	case "opt":
		if val, ok := v.opts[addr]; ok && val != "" {
			return strNode(val), nil
		}
		return nil, errNoValue
	case "env":
		if val := v.getenv(addr); val != "" {
			return strNode(val), nil
		}
		return nil, errNoValue
	case "sls":
		switch addr {
		case "stage":
			return strNode(v.stage), nil
		case "instanceId":
			return strNode("local"), nil
		}
		return nil, fmt.Errorf("%s: %w: ${sls:%s}: want sls:stage or sls:instanceId", where(path, at), ErrInvalid, addr)
	}
	return nil, &unsupportedSource{s}
}

// file evaluates ${file(./x.yml):a.b}; rest is what follows "file(".
func (v *slsVars) file(rest, s, path string, at *yaml.Node, depth int) (*yaml.Node, error) {
	name, addr, ok := strings.Cut(rest, ")")
	if !ok {
		return nil, fmt.Errorf("%s: %w: %s: want file(./path):key", where(path, at), ErrInvalid, s)
	}
	name = strings.Trim(strings.TrimSpace(name), `'"`)
	addr = strings.TrimPrefix(strings.TrimSpace(addr), ":")
	if !filepath.IsAbs(name) {
		name = filepath.Join(v.dir, name)
	}
	doc, ok := v.files[name]
	if !ok {
		raw, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNoValue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where(path, at), s, err)
		}
		var d yaml.Node
		if err := yaml.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("%s: %s: %w: %v", where(path, at), s, ErrInvalid, err)
		}
		doc = &d
		if d.Kind == yaml.DocumentNode && len(d.Content) == 1 {
			doc = d.Content[0]
		}
		v.files[name] = doc
	}
	return v.lookup(doc, addr, s+":", depth)
}

// lookup finds a dotted path below n, resolving each step's variables on
// the way, and the value found entirely.
func (v *slsVars) lookup(n *yaml.Node, addr, prefix string, depth int) (*yaml.Node, error) {
	cur, walked := n, strings.TrimSuffix(prefix, ":")
	if addr != "" {
		for _, key := range strings.Split(addr, ".") {
			if err := v.resolve(cur, walked, false, depth+1); err != nil {
				return nil, err
			}
			for cur.Kind == yaml.AliasNode {
				cur = cur.Alias
			}
			cur = child(cur, key)
			if cur == nil {
				return nil, errNoValue
			}
			walked = join(walked, key)
		}
	}
	if err := v.resolve(cur, walked, true, depth+1); err != nil {
		return nil, err
	}
	for cur.Kind == yaml.AliasNode {
		cur = cur.Alias
	}
	if cur.Kind == yaml.ScalarNode && cur.Tag == "!!null" {
		return nil, errNoValue
	}
	return cur, nil
}

// child is the value under key of a mapping, or at index key of a sequence.
func child(n *yaml.Node, key string) *yaml.Node {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return child(n.Content[0], key)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func copyNode(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	c := *n
	c.Anchor = ""
	if n.Content != nil {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, k := range n.Content {
			c.Content[i] = copyNode(k)
		}
	}
	return &c
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func where(path string, n *yaml.Node) string {
	if path == "" {
		path = "(top)"
	}
	if n != nil && n.Line > 0 {
		return fmt.Sprintf("%s (line %d)", path, n.Line)
	}
	return path
}

// slsPart is literal text or a variable.
type slsPart struct {
	text string
	v    *slsVar
}

// slsVar is ${source, fallback, ...}.
type slsVar struct {
	raw     string
	sources []slsSource
}

// slsSource is a quoted literal or a template (text with nested variables).
type slsSource struct {
	quoted bool
	text   string
	parts  []slsPart
}

// parseSlsTemplate splits s into text and variables.
func parseSlsTemplate(s string) ([]slsPart, error) {
	var parts []slsPart
	for len(s) > 0 {
		i := strings.Index(s, "${")
		if i < 0 {
			parts = append(parts, slsPart{text: s})
			break
		}
		if i > 0 {
			parts = append(parts, slsPart{text: s[:i]})
		}
		end, err := matchBrace(s, i)
		if err != nil {
			return nil, err
		}
		x, err := parseSlsVar(s[i : end+1])
		if err != nil {
			return nil, err
		}
		parts = append(parts, slsPart{v: x})
		s = s[end+1:]
	}
	return parts, nil
}

// matchBrace returns the index of the } that closes the ${ at i, skipping
// nested variables and quoted strings.
func matchBrace(s string, i int) (int, error) {
	depth := 0
	var quote byte
	for j := i; j < len(s); j++ {
		c := s[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case (c == '\'' || c == '"') && depth > 0:
			quote = c
		case c == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case c == '}':
			depth--
			if depth == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("%q: a variable is not closed with }", s[i:])
}

// parseSlsVar parses "${a, 'b', ${c}}".
func parseSlsVar(raw string) (*slsVar, error) {
	inner := raw[2 : len(raw)-1]
	x := &slsVar{raw: raw}
	for _, piece := range splitTopLevel(inner) {
		p := strings.TrimSpace(piece)
		if p == "" {
			return nil, fmt.Errorf("%s: an empty source", raw)
		}
		if len(p) >= 2 && (p[0] == '\'' || p[0] == '"') && p[len(p)-1] == p[0] {
			x.sources = append(x.sources, slsSource{quoted: true, text: p[1 : len(p)-1]})
			continue
		}
		parts, err := parseSlsTemplate(p)
		if err != nil {
			return nil, err
		}
		x.sources = append(x.sources, slsSource{parts: parts})
	}
	return x, nil
}

// splitTopLevel splits at commas outside nested variables and quotes.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for j := 0; j < len(s); j++ {
		c := s[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case c == '}':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:j])
			start = j + 1
		}
	}
	return append(out, s[start:])
}

// parseDotenv reads a .env file as dotenv does: KEY=VALUE lines, optional
// "export ", # comments, single- or double-quoted values (\n in double
// quotes), and $NAME or ${NAME} expanded from earlier lines and env, as
// dotenv-expand does.
func parseDotenv(data string, getenv func(string) string) map[string]string {
	out := map[string]string{}
	lookup := func(k string) string {
		if val := getenv(k); val != "" {
			return val
		}
		return out[k]
	}
	for _, line := range strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		expand := true
		switch {
		case len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'':
			val, expand = val[1:len(val)-1], false
		case len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"':
			val = strings.ReplaceAll(val[1:len(val)-1], `\n`, "\n")
		default:
			if i := strings.Index(val, " #"); i >= 0 {
				val = strings.TrimSpace(val[:i])
			}
		}
		if expand {
			val = os.Expand(val, lookup)
		}
		out[k] = val
	}
	return out
}
