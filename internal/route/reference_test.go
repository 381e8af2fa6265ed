package route

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// selectReference is Select as it was before the scanner: json.Valid, then
// a json.Unmarshal into a map at each level of the path. It defines the
// behaviour Select must keep.
func selectReference(e *Expression, body []byte) (key string, ok bool) {
	if len(e.parts) == 1 && e.parts[0].path == nil {
		return e.parts[0].literal, true
	}
	if !json.Valid(body) {
		return "", false
	}
	if e.single {
		raw, found := lookupReference(body, e.parts[0].path)
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
		raw, found := lookupReference(body, p.path)
		if found {
			b.WriteString(stringifyReference(raw))
		}
	}
	return b.String(), true
}

func lookupReference(doc []byte, path []string) (json.RawMessage, bool) {
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

func stringifyReference(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	case raw[0] == '[':
		var items []json.RawMessage
		_ = json.Unmarshal(raw, &items)
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = stringifyReference(it)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	default:
		var b bytes.Buffer
		_ = json.Compact(&b, raw)
		return b.String()
	}
}

// trickyBodies are bodies where a hand-written scanner could part from
// encoding/json. They seed FuzzSelectMatchesReference and TestSelectMatchesReference.
var trickyBodies = []string{
	`{"action":"sendMessage"}`,
	" \t\r\n{ \t\r\n\"action\" \t\r\n: \t\r\n\"x\" \t\r\n, \"b\" : [ 1 , { } , [ ] ] } \t\r\n",
	`{"meta":{"type":"ping","x":[{"type":"no"}]},"action":"a"}`,
	`{"a":{"b":{"c":{"d":"deep"}}}}`,
	`{"action":"first","action":"last"}`,
	`{"action":"first","action":1}`,
	`{"action":1,"action":"last"}`,
	`{"meta":{"type":"a"},"meta":{}}`,
	`{"meta":{},"meta":{"type":"b"}}`,
	`{"meta":{"type":"a"},"meta":null}`,
	`{"act\u0069on":"escaped key"}`,
	`{"action\u0000":"nul in key","action":"plain"}`,
	`{"\u00e9":"e acute", "é":"raw e acute"}`,
	`{"action":"\ud83d\ude00 pair"}`,
	`{"action":"\ud83d lone high"}`,
	`{"action":"\ude00 lone low"}`,
	`{"action":"\ud83d\u0041 high then A"}`,
	`{"action":"\ud83d\ud83d\ude00 high then pair"}`,
	`{"action":"\ud83d\n"}`,
	`{"action":"a\"\\\/\b\f\n\r\tz"}`,
	`{"action":"\u0041\u00e9\u20ac\uFFFD\uffff"}`,
	"{\"action\":\"\xff invalid byte\"}",
	"{\"action\":\"\xe2\x82 truncated\"}",
	"{\"action\":\"\xed\xa0\x80 encoded surrogate\"}",
	"{\"\xff\":\"invalid key\"}",
	"{\"\xef\xbf\xbd\":\"replacement key\"}",
	"{\"action\":\"\x7f del\"}",
	"{\"action\":\"\x1f control\"}",
	`{"action":"bad \x escape"}`,
	`{"action":"bad \u12 escape"}`,
	`{"action":"bad \u12g4 escape"}`,
	`{"action":"x",}`,
	`{"action":"x" "b":1}`,
	`{"action" "x"}`,
	`{,}`,
	`[1,]`,
	`[1 2]`,
	`{"n":[0,-0,1.5,-1.5e10,1E+2,1e-2,0.0e0,123456789012345678901234567890],"action":"n"}`,
	`{"n":01}`,
	`{"n":1.}`,
	`{"n":.1}`,
	`{"n":1e}`,
	`{"n":1e+}`,
	`{"n":-}`,
	`{"n":+1}`,
	`{"n":0x10}`,
	`{"n":Infinity}`,
	`{"b":[true,false,null],"action":"lits"}`,
	`{"b":tru}`,
	`{"b":nul}`,
	`{"b":falsey}`,
	`{"b":True}`,
	`{"action":"x"}{}`,
	`{"action":"x"} x`,
	"\ufeff{\"action\":\"bom\"}",
	`{"action":"x"}` + "\x00",
	`"top"`,
	`42`,
	`null`,
	`[]`,
	`{}`,
	``,
	` `,
	`{`,
	`}`,
	`{"action":"unterminated`,
	`{"action":"x"`,
	`{"a":1}}`,
	`[[[[[[[[[["x"]]]]]]]]]]`,
	`{"a":[}`,
	`{"a":{]}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	// No template selects z: the reference renders nested arrays in quadratic time.
	`{"z":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `,"action":"deep"}`,
	`{"z":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `,"action":"too deep"}`,
	`{"a":` + strings.Repeat("[ ", 500) + strings.Repeat(" ]", 500) + `}`,
	`{"a":[[1, "x\u00e9"], null, [ null ], {"k" : [ 1 , "v w" ] }, [[], [[true]]], -1.5e-3 ],"b":{ "s" : "a b" , "t" : [ ] }}`,
	strings.Repeat(`{"a":`, maxDepth) + `"x"` + strings.Repeat("}", maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + `"x"` + strings.Repeat("}", maxDepth+1),
	strings.Repeat("[", 300) + strings.Repeat("{\"a\":[", 100) + strings.Repeat("]}", 100) + strings.Repeat("]", 300),
	strings.Repeat("[", 1<<20),
}

var trickyExpressions = []string{
	"$request.body.action",
	"$request.body.meta.type",
	"$request.body.a.b.c.d",
	"$request.body.a",
	"$request.body.b",
	"$request.body.n",
	"$request.body.é",
	"$request.body.\xef\xbf\xbd",
	"$request.body.\xff",
	"$request.body.action\x00",
	"${request.body.action}/${request.body.meta.type}",
	"${request.body.n}|${request.body.b}|${request.body.a}",
	"x${request.body.missing}x",
	"action",
}

// TestSelectMatchesReference runs every tricky body through every tricky
// expression, so the cases FuzzSelectMatchesReference is seeded with are
// checked by a plain go test too.
func TestSelectMatchesReference(t *testing.T) {
	t.Parallel()
	for _, body := range trickyBodies {
		if got, want := valid([]byte(body)), json.Valid([]byte(body)); got != want {
			t.Errorf("valid(%.80q) = %v, json.Valid = %v", body, got, want)
		}
	}
	for _, expr := range trickyExpressions {
		e, err := Parse(expr)
		if err != nil {
			t.Fatalf("Parse(%q) error = %v", expr, err)
		}
		for _, body := range trickyBodies {
			key, ok := e.Select([]byte(body))
			wantKey, wantOK := selectReference(e, []byte(body))
			if key != wantKey || ok != wantOK {
				t.Errorf("Parse(%q).Select(%.80q) = %q, %v; reference %q, %v", expr, body, key, ok, wantKey, wantOK)
			}
		}
	}
}

// FuzzSelectMatchesReference checks that Select returns what
// selectReference returns for any expression and body, and that the scanner
// accepts exactly what json.Valid accepts.
func FuzzSelectMatchesReference(f *testing.F) {
	for i, body := range trickyBodies {
		if len(body) > 1<<12 {
			// Large bodies slow the fuzzer down, and a mutation of a deep
			// one can send the reference's quadratic template rendering
			// into seconds. TestSelectMatchesReference checks them.
			continue
		}
		f.Add(trickyExpressions[i%len(trickyExpressions)], []byte(body))
	}
	f.Add("${request.body.a}", []byte(`{"a":`+strings.Repeat("[", 1000)+strings.Repeat("]", 1000)+`}`))
	for _, expr := range trickyExpressions {
		f.Add(expr, []byte(`{"action":"a","meta":{"type":"t"},"a":{"b":{"c":{"d":"d"}}},"n":1.5e3,"b":[1,"x",null]}`))
	}
	f.Fuzz(func(t *testing.T, expr string, body []byte) {
		if got, want := valid(body), json.Valid(body); got != want {
			t.Errorf("valid(%q) = %v, json.Valid = %v", body, got, want)
		}
		e, err := Parse(expr)
		if err != nil {
			return
		}
		key, ok := e.Select(body)
		wantKey, wantOK := selectReference(e, body)
		if key != wantKey || ok != wantOK {
			t.Errorf("Parse(%q).Select(%q) = %q, %v; reference %q, %v", expr, body, key, ok, wantKey, wantOK)
		}
	})
}

// benchBodies are the bodies of BenchmarkSelect and BenchmarkSelectReference:
// a typical chat message, and a 4 KiB one whose action key comes last.
var benchBodies = []struct {
	name string
	body []byte
}{
	{"chat-100B", []byte(`{"action":"sendMessage","data":"hello world, this is a typical chat message of about 100 bytes"}`)},
	{"action-last-4KiB", largeActionLast()},
}

func largeActionLast() []byte {
	var b bytes.Buffer
	b.WriteString(`{"room":"general","user":{"id":12345,"name":"Ada \"the\" Lovelace","roles":["admin","mod"]},"data":[`)
	for i := 0; b.Len() < 4096-120; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"seq":1.25e3,"text":"line of chat text with caf\u00e9 in it","ok":true,"tags":[null,false]}`)
	}
	b.WriteString(`],"pad":"`)
	for b.Len() < 4096-len(`","action":"sendMessage"}`) {
		b.WriteByte('x')
	}
	b.WriteString(`","action":"sendMessage"}`)
	return b.Bytes()
}

func benchmarkSelect(b *testing.B, sel func(*Expression, []byte) (string, bool)) {
	e, err := Parse(DefaultExpression)
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range benchBodies {
		b.Run(bb.name, func(b *testing.B) {
			if key, ok := sel(e, bb.body); key != "sendMessage" || !ok {
				b.Fatalf("Select = %q, %v; want sendMessage, true", key, ok)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.body)))
			for b.Loop() {
				sel(e, bb.body)
			}
		})
	}
}

func BenchmarkSelect(b *testing.B) { benchmarkSelect(b, (*Expression).Select) }

func BenchmarkSelectReference(b *testing.B) { benchmarkSelect(b, selectReference) }
