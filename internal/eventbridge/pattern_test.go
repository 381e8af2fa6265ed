package eventbridge_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
)

const sample = `{"version":"0","id":"1","detail-type":"OrderPlaced","source":"shop.orders","account":"123456789012",
"time":"2026-01-02T03:04:05Z","region":"us-east-1","resources":["arn:aws:s3:::a","arn:aws:s3:::b"],
"detail":{"orderId":"o-42","total":12.5,"state":"NEW","tags":["eu","rush"],"customer":{"tier":"gold","email":"ann@Example.COM"},
"items":[{"sku":"a","qty":1},{"sku":"b","qty":3}],"note":null,"paid":true}}`

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern string
		want          bool
	}{
		{"exact string", `{"source":["shop.orders"]}`, true},
		{"exact string, another value", `{"source":["shop.users"]}`, false},
		{"any of the array", `{"source":["x","shop.orders"]}`, true},
		{"two fields, both hold", `{"source":["shop.orders"],"detail-type":["OrderPlaced"]}`, true},
		{"two fields, one fails", `{"source":["shop.orders"],"detail-type":["OrderShipped"]}`, false},
		{"nested detail field", `{"detail":{"customer":{"tier":["gold"]}}}`, true},
		{"nested detail field fails", `{"detail":{"customer":{"tier":["silver"]}}}`, false},
		{"number exact", `{"detail":{"total":[12.5]}}`, true},
		{"a number is not its string", `{"detail":{"total":["12.5"]}}`, false},
		{"boolean", `{"detail":{"paid":[true]}}`, true},
		{"null", `{"detail":{"note":[null]}}`, true},
		{"null does not match absent", `{"detail":{"missing":[null]}}`, false},
		{"event array, any element", `{"detail":{"tags":["rush"]}}`, true},
		{"event array, no element", `{"detail":{"tags":["us"]}}`, false},
		{"resources array", `{"resources":["arn:aws:s3:::b"]}`, true},
		{"array of objects", `{"detail":{"items":{"sku":["b"],"qty":[3]}}}`, true},
		{"array of objects, one element must match all", `{"detail":{"items":{"sku":["a"],"qty":[3]}}}`, false},
		{"prefix", `{"source":[{"prefix":"shop."}]}`, true},
		{"prefix fails", `{"source":[{"prefix":"shops."}]}`, false},
		{"prefix ignoring case", `{"detail":{"state":[{"prefix":{"equals-ignore-case":"ne"}}]}}`, true},
		{"suffix", `{"source":[{"suffix":".orders"}]}`, true},
		{"suffix ignoring case", `{"detail":{"customer":{"email":[{"suffix":{"equals-ignore-case":"@example.com"}}]}}}`, true},
		{"suffix is case-sensitive", `{"detail":{"customer":{"email":[{"suffix":"@example.com"}]}}}`, false},
		{"equals-ignore-case", `{"detail-type":[{"equals-ignore-case":"orderplaced"}]}`, true},
		{"wildcard", `{"source":[{"wildcard":"shop.*s"}]}`, true},
		{"wildcard fails", `{"source":[{"wildcard":"*.users"}]}`, false},
		{"anything-but value", `{"detail":{"state":[{"anything-but":"CANCELLED"}]}}`, true},
		{"anything-but value fails", `{"detail":{"state":[{"anything-but":"NEW"}]}}`, false},
		{"anything-but list", `{"detail":{"state":[{"anything-but":["NEW","OLD"]}]}}`, false},
		{"anything-but number", `{"detail":{"total":[{"anything-but":[1,2]}]}}`, true},
		{"anything-but prefix", `{"source":[{"anything-but":{"prefix":"aws."}}]}`, true},
		{"anything-but prefix fails", `{"source":[{"anything-but":{"prefix":"shop"}}]}`, false},
		{"anything-but suffix", `{"source":[{"anything-but":{"suffix":".orders"}}]}`, false},
		{"anything-but needs the field", `{"detail":{"missing":[{"anything-but":"x"}]}}`, false},
		{"numeric range", `{"detail":{"total":[{"numeric":[">",10,"<=",12.5]}]}}`, true},
		{"numeric range fails", `{"detail":{"total":[{"numeric":[">=",13,"<",20]}]}}`, false},
		{"numeric equals", `{"detail":{"total":[{"numeric":["=",12.5]}]}}`, true},
		{"numeric on a string", `{"detail":{"state":[{"numeric":[">",0]}]}}`, false},
		{"numeric on array elements", `{"detail":{"items":{"qty":[{"numeric":[">",2]}]}}}`, true},
		{"exists true", `{"detail":{"orderId":[{"exists":true}]}}`, true},
		{"exists true fails", `{"detail":{"refund":[{"exists":true}]}}`, false},
		{"exists false", `{"detail":{"refund":[{"exists":false}]}}`, true},
		{"exists false fails", `{"detail":{"orderId":[{"exists":false}]}}`, false},
		{"exists false under an absent object", `{"detail":{"shipping":{"carrier":[{"exists":false}]}}}`, true},
		{"exists true on an object", `{"detail":{"customer":[{"exists":true}]}}`, true},
		{"$or, one holds", `{"source":["shop.orders"],"$or":[{"detail":{"total":[{"numeric":[">",100]}]}},{"detail":{"paid":[true]}}]}`, true},
		{"$or, none holds", `{"$or":[{"detail":{"total":[{"numeric":[">",100]}]}},{"detail":{"paid":[false]}}]}`, false},
		{"$or nested", `{"detail":{"$or":[{"state":["OLD"]},{"customer":{"tier":["gold"]}}]}}`, true},
		{"a value or a filter", `{"detail":{"state":["OLD",{"prefix":"N"}]}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := eventbridge.ParsePattern([]byte(tt.pattern))
			if err != nil {
				t.Fatalf("ParsePattern(%s): %v", tt.pattern, err)
			}
			if got := p.MatchJSON([]byte(sample)); got != tt.want {
				t.Errorf("MatchJSON(%s) = %v, want %v", tt.pattern, got, tt.want)
			}
		})
	}
}

func TestParsePatternRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, pattern, reason string }{
		{"not JSON", `{`, "not JSON"},
		{"not an object", `["a"]`, "non-empty JSON object"},
		{"empty", `{}`, "non-empty JSON object"},
		{"a scalar value", `{"source":"a"}`, "want an array of values or an object"},
		{"empty array", `{"source":[]}`, "empty array"},
		{"empty object", `{"detail":{}}`, "empty object"},
		{"unknown filter", `{"source":[{"cidr":"10.0.0.0/8"}]}`, `"cidr" is not a supported content filter`},
		{"two keys in a filter", `{"source":[{"prefix":"a","suffix":"b"}]}`, "exactly one key"},
		{"prefix of a number", `{"source":[{"prefix":1}]}`, "prefix wants a string"},
		{"numeric, odd operands", `{"a":[{"numeric":[">"]}]}`, "numeric wants"},
		{"numeric, bad operator", `{"a":[{"numeric":["!=",1]}]}`, "numeric operator"},
		{"numeric, upside-down range", `{"a":[{"numeric":["<",1,">",0]}]}`, "numeric range"},
		{"numeric, too large", `{"a":[{"numeric":[">",6e9]}]}`, "between -5e9 and 5e9"},
		{"exists of a string", `{"a":[{"exists":"yes"}]}`, "exists wants"},
		{"$or of one", `{"$or":[{"a":["b"]}]}`, "at least two"},
		{"anything-but of an object", `{"a":[{"anything-but":{"wildcard":"x*"}}]}`, "anything-but wants"},
		{"wildcard **", `{"a":[{"wildcard":"a**"}]}`, "consecutive"},
		{"nested array", `{"a":[["b"]]}`, "arrays inside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := eventbridge.ParsePattern([]byte(tt.pattern))
			if !errors.Is(err, eventbridge.ErrPattern) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("ParsePattern(%s) = %v, want ErrPattern with %q", tt.pattern, err, tt.reason)
			}
		})
	}
}

// FuzzPattern: no pattern or event makes the parser or the matcher panic;
// matching is deterministic; and a field's own value, as an exact pattern,
// matches the event it came from.
func FuzzPattern(f *testing.F) {
	f.Add(`{"source":["a",{"prefix":"b"}],"detail":{"n":[{"numeric":[">",1,"<",5]}]}}`, `{"source":"bx","detail":{"n":3}}`)
	f.Add(`{"$or":[{"a":[{"exists":false}]},{"b":[{"anything-but":["x"]}]}]}`, `{"b":["x","y"]}`)
	f.Add(`{"a":[{"wildcard":"*x*y"}]}`, `{"a":"xxy"}`)
	f.Add(`{"a":{"b":[null,true,1]}}`, `{"a":[{"b":1},{"b":null}]}`)
	f.Fuzz(func(t *testing.T, pattern, event string) {
		p, err := eventbridge.ParsePattern([]byte(pattern))
		if err != nil {
			if !errors.Is(err, eventbridge.ErrPattern) {
				t.Fatalf("ParsePattern: %v does not wrap ErrPattern", err)
			}
			return
		}
		if a, b := p.MatchJSON([]byte(event)), p.MatchJSON([]byte(event)); a != b {
			t.Fatalf("MatchJSON(%s, %s) is not deterministic", pattern, event)
		}
		m, err := eventbridge.DecodeEvent([]byte(event))
		if err != nil {
			return
		}
		for k, v := range m {
			s, ok := v.(string)
			if !ok || strings.HasPrefix(k, "$") {
				continue
			}
			self, err := eventbridge.ParsePattern([]byte(`{` + quote(k) + `:[` + quote(s) + `]}`))
			if err != nil {
				t.Fatalf("exact pattern of %q=%q: %v", k, s, err)
			}
			if !self.Match(m) {
				t.Fatalf("the exact pattern of %q=%q does not match its own event %s", k, s, event)
			}
		}
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
