package route_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/route"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr string
		wantErr    bool
	}{
		{"plain", "$request.body.action", false},
		{"plain nested", "$request.body.meta.type", false},
		{"template", "${request.body.service}/${request.body.action}", false},
		{"static", "action", false},
		{"static escaped dollar", `\$default`, false},
		{"empty", "", true},
		{"header is not selectable", "$request.header.x", true},
		{"unclosed template", "${request.body.a", true},
		{"trailing dot", "$request.body.", true},
		{"empty field in the middle", "$request.body.a..b", true},
		{"context is not selectable", "$context.x", true},
		{"template header is not selectable", "${request.header.x}", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := route.Parse(tt.expr)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, nil; want an error", tt.expr, e)
				}
				if !errors.Is(err, route.ErrSyntax) {
					t.Errorf("Parse(%q) error = %v, want it to wrap ErrSyntax", tt.expr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) error = %v, want nil", tt.expr, err)
			}
			if got := e.String(); got != tt.expr {
				t.Errorf("Parse(%q).String() = %q, want %q", tt.expr, got, tt.expr)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr, body string
		wantKey          string
		wantOK           bool
	}{
		// Plain form: the value must be a JSON string.
		{"string value", "$request.body.action", `{"action":"sendMessage"}`, "sendMessage", true},
		{"empty string value", "$request.body.action", `{"action":""}`, "", true},
		{"whitespace around", "$request.body.action", " {\n\t\"action\" : \"join\" } ", "join", true},
		{"other fields ignored", "$request.body.action", `{"data":{"action":"no"},"action":"yes"}`, "yes", true},
		{"nested path", "$request.body.meta.type", `{"meta":{"type":"ping"}}`, "ping", true},
		{"nested path through a string", "$request.body.meta.type", `{"meta":"ping"}`, "", false},
		{"nested path missing inner", "$request.body.meta.type", `{"meta":{}}`, "", false},
		{"missing key", "$request.body.action", `{"other":"x"}`, "", false},
		{"empty object", "$request.body.action", `{}`, "", false},
		{"number value", "$request.body.action", `{"action":1}`, "", false},
		{"bool value", "$request.body.action", `{"action":true}`, "", false},
		{"object value", "$request.body.action", `{"action":{"a":"b"}}`, "", false},
		{"array value", "$request.body.action", `{"action":["a"]}`, "", false},
		{"null value", "$request.body.action", `{"action":null}`, "", false},
		{"not JSON", "$request.body.action", `action=sendMessage`, "", false},
		{"truncated JSON", "$request.body.action", `{"action":"sendMessage"`, "", false},
		{"empty body", "$request.body.action", ``, "", false},
		{"top-level array", "$request.body.action", `[{"action":"x"}]`, "", false},
		{"top-level string", "$request.body.action", `"action"`, "", false},
		{"top-level null", "$request.body.action", `null`, "", false},
		{"escapes decoded", "$request.body.action", `{"action":"se\u006eD"}`, "senD", true},
		{"escaped quote and unicode", "$request.body.action", `{"action":"a\"b\u00e9"}`, "a\"b\u00e9", true},
		{"surrogate pair", "$request.body.action", `{"action":"\ud83d\ude00"}`, "\U0001F600", true},
		{"lone surrogate", "$request.body.action", `{"action":"\ud83dx"}`, "\uFFFDx", true},
		{"surrogate then non-surrogate escape", "$request.body.action", `{"action":"\ud83d\u0041"}`, "\uFFFDA", true},
		{"invalid UTF-8 replaced", "$request.body.action", "{\"action\":\"a\xffb\"}", "a\uFFFDb", true},
		{"escaped key", "$request.body.action", `{"act\u0069on":"x"}`, "x", true},
		{"invalid UTF-8 key matches U+FFFD", "$request.body.\uFFFD", "{\"\xff\":\"x\"}", "x", true},
		{"invalid UTF-8 field name matches nothing", "$request.body.\xff", "{\"\xff\":\"x\"}", "", false},
		{"duplicate key, last wins", "$request.body.action", `{"action":"first","action":"last"}`, "last", true},
		{"duplicate key, last not a string", "$request.body.action", `{"action":"first","action":1}`, "", false},
		{"duplicate object, last wins", "$request.body.meta.type", `{"meta":{"type":"a"},"meta":{}}`, "", false},
		{"numbers skipped", "$request.body.action", `{"n":[-0,1.5e+10,2E-3,0.25],"action":"x"}`, "x", true},
		{"trailing comma", "$request.body.action", `{"action":"x",}`, "", false},
		{"bad escape elsewhere", "$request.body.action", `{"action":"x","d":"\x"}`, "", false},
		{"control character in a string", "$request.body.action", "{\"action\":\"a\tb\"}", "", false},
		{"leading zero", "$request.body.action", `{"action":"x","n":01}`, "", false},
		{"trailing data", "$request.body.action", `{"action":"x"} {}`, "", false},
		{"nesting at encoding/json's limit", "$request.body.action", `{"action":"x","z":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, "x", true},
		{"nesting beyond encoding/json's limit", "$request.body.action", `{"action":"x","z":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, "", false},

		// Template form: missing fields are empty, other values stringified.
		{"template", "${request.body.service}/${request.body.action}", `{"service":"chat","action":"join"}`, "chat/join", true},
		{"template missing field", "${request.body.action}-${request.body.room}", `{"action":"join"}`, "join-", true},
		{"template all missing", "${request.body.a}/${request.body.b}", `{}`, "/", true},
		{"template number", "v${request.body.version}", `{"version":2}`, "v2", true},
		{"template bool", "${request.body.flag}", `{"flag":false}`, "false", true},
		{"template null", "x${request.body.a}x", `{"a":null}`, "xx", true},
		{"template array", "${request.body.list}", `{"list":["a", 1]}`, "[a, 1]", true},
		{"template compact array", "${request.body.list}", `{"list":["a",1]}`, "[a, 1]", true},
		{"template empty array", "${request.body.list}", `{"list":[]}`, "[]", true},
		{"template nested path", "${request.body.meta.type}!", `{"meta":{"type":"t"}}`, "t!", true},
		{"template escapes decoded", "${request.body.a}", `{"a":"\u0041\n"}`, "A\n", true},
		{"template object compacted", "${request.body.a}", `{"a":{ "k" : [ 1, "v w" ] }}`, `{"k":[1,"v w"]}`, true},
		{"template nested arrays", "${request.body.a}", `{"a":[ [1,"x"], null, [ ], {"k" : 2} ]}`, `[[1, x], , [], {"k":2}]`, true},
		{"template not JSON", "${request.body.service}/${request.body.action}", `not json`, "", false},
		{"template top-level array", "${request.body.a}/x", `["a"]`, "/x", true},

		// Static form: the body is not looked at.
		{"static", "action", `not json`, "action", true},
		{"static escaped dollar", `\$default`, `{"action":"x"}`, "$default", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := route.Parse(tt.expr)
			if err != nil {
				t.Fatalf("Parse(%q) error = %v", tt.expr, err)
			}
			key, ok := e.Select([]byte(tt.body))
			if key != tt.wantKey || ok != tt.wantOK {
				t.Errorf("Parse(%q).Select(%q) = %q, %v; want %q, %v", tt.expr, tt.body, key, ok, tt.wantKey, tt.wantOK)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	withDefault := route.NewTable(map[string]string{
		route.Connect:    "connect",
		route.Disconnect: "disconnect",
		route.Default:    "default",
		"sendMessage":    "send",
		"chat/join":      "join",
	})
	noDefault := route.NewTable(map[string]string{
		route.Connect: "connect",
		"sendMessage": "send",
	})
	tests := []struct {
		name      string
		table     *route.Table[string]
		key       string
		selected  bool
		wantKey   string
		wantRoute string
		wantFound bool
	}{
		{"exact key", withDefault, "sendMessage", true, "sendMessage", "send", true},
		{"exact template key", withDefault, "chat/join", true, "chat/join", "join", true},
		{"keys are case sensitive", withDefault, "SendMessage", true, route.Default, "default", true},
		{"unknown key falls back", withDefault, "nope", true, route.Default, "default", true},
		{"empty key falls back", withDefault, "", true, route.Default, "default", true},
		{"$connect is not selectable", withDefault, route.Connect, true, route.Default, "default", true},
		{"$disconnect is not selectable", withDefault, route.Disconnect, true, route.Default, "default", true},
		{"not selected goes to $default", withDefault, "sendMessage", false, route.Default, "default", true},
		{"no $default", noDefault, "nope", true, route.Default, "", false},
		{"no $default, $connect selected", noDefault, route.Connect, true, route.Default, "", false},
		{"no $default, not selected", noDefault, "sendMessage", false, route.Default, "", false},
		{"no $default, exact key", noDefault, "sendMessage", true, "sendMessage", "send", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gotKey, gotRoute, gotFound := tt.table.Match(tt.key, tt.selected)
			if gotKey != tt.wantKey || gotRoute != tt.wantRoute || gotFound != tt.wantFound {
				t.Errorf("Match(%q, %v) = %q, %q, %v; want %q, %q, %v",
					tt.key, tt.selected, gotKey, gotRoute, gotFound, tt.wantKey, tt.wantRoute, tt.wantFound)
			}
		})
	}
}

// TestSelectThenMatch runs a body through selection and the table, as the
// gateway does.
func TestSelectThenMatch(t *testing.T) {
	t.Parallel()
	table := route.NewTable(map[string]string{
		route.Connect: "connect",
		route.Default: "default",
		"sendMessage": "send",
	})
	e, err := route.Parse(route.DefaultExpression)
	if err != nil {
		t.Fatalf("Parse(%q) error = %v", route.DefaultExpression, err)
	}
	tests := []struct {
		name, body string
		wantRoute  string
	}{
		{"selected route", `{"action":"sendMessage","data":"hi"}`, "send"},
		{"body selecting $connect", `{"action":"$connect"}`, "default"},
		{"number action", `{"action":7}`, "default"},
		{"plain text", `hello`, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, ok := e.Select([]byte(tt.body))
			_, got, found := table.Match(key, ok)
			if !found || got != tt.wantRoute {
				t.Errorf("body %q routed to %q (found %v), want %q", tt.body, got, found, tt.wantRoute)
			}
		})
	}
}

func TestNewTableCopies(t *testing.T) {
	t.Parallel()
	routes := map[string]int{"a": 1}
	table := route.NewTable(routes)
	routes["a"] = 2
	routes["b"] = 3
	if got, ok := table.Get("a"); !ok || got != 1 {
		t.Errorf("Get(%q) = %v, %v; want 1, true", "a", got, ok)
	}
	if got, ok := table.Get("b"); ok {
		t.Errorf("Get(%q) = %v, %v; want 0, false", "b", got, ok)
	}
}

// TestSelectTemplateDeepArray renders an array nested as deeply as JSON
// allows: it must neither overflow the stack nor take quadratic time.
func TestSelectTemplateDeepArray(t *testing.T) {
	t.Parallel()
	const depth = 9999 // with the enclosing object, the deepest body json.Valid accepts
	arrays := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	e, err := route.Parse("${request.body.a}")
	if err != nil {
		t.Fatalf("Parse error = %v", err)
	}
	key, ok := e.Select([]byte(`{"a":` + arrays + `}`))
	if key != arrays || !ok {
		t.Errorf("Select(deep arrays) = %.20q (%d bytes), %v; want the %d arrays, true", key, len(key), ok, depth)
	}
}
