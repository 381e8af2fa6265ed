package route_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/route"
)

// FuzzSelect checks that no expression or body makes Parse or Select panic,
// and that the plain form only ever selects a key from a JSON body.
func FuzzSelect(f *testing.F) {
	f.Add("$request.body.action", []byte(`{"action":"sendMessage"}`))
	f.Add("$request.body.meta.type", []byte(`{"meta":{"type":"x"}}`))
	f.Add("${request.body.service}/${request.body.action}", []byte(`{"service":"chat","action":["a",1,{"b":null}]}`))
	f.Add("$request.body.action", []byte(`{"action":"se\u006eD"}`))
	f.Add("$request.body.action", []byte(`{"action":null}`))
	f.Add("$request.body.action", []byte(`[{"action":"x"}]`))
	f.Add("$request.body.action", []byte(`{"action":"x"`))
	f.Add(`\$default`, []byte(`not json`))
	f.Add("${request.body.a", []byte(`{}`))
	f.Add("", []byte(``))
	f.Fuzz(func(t *testing.T, expr string, body []byte) {
		e, err := route.Parse(expr)
		if err != nil {
			if e != nil {
				t.Errorf("Parse(%q) = %v, %v; want nil with an error", expr, e, err)
			}
			return
		}
		key, ok := e.Select(body)
		if !ok && key != "" {
			t.Errorf("Parse(%q).Select(%q) = %q, false; want an empty key when not selected", expr, body, key)
		}
		if ok && strings.HasPrefix(expr, "$request.") && !json.Valid(body) {
			t.Errorf("Parse(%q).Select(%q) = %q, true from a body that is not JSON", expr, body, key)
		}
	})
}
