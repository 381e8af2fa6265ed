package apigw_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
)

func TestNewID(t *testing.T) {
	t.Parallel()
	const n = 10000
	seen := make(map[string]bool, 3*n)
	var ids []string
	for range n {
		a, b := apigw.NewIDPair() // a message's request and message IDs
		ids = append(ids, apigw.NewID(), a, b)
	}
	for _, id := range ids {
		if len(id) != 16 || !strings.HasSuffix(id, "=") || strings.HasSuffix(id, "==") {
			t.Fatalf("NewID() = %q, want 16 characters ending in a single =", id)
		}
		if strings.Trim(id[:15], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("NewID() = %q, want URL-safe base64", id)
		}
		if !apigw.ValidID(id) {
			t.Fatalf("ValidID(NewID()) = false for %q, want true", id)
		}
		if seen[id] {
			t.Fatalf("%q came twice in %d identifiers", id, len(seen)+1)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id string
		want     bool
	}{
		{"AWS example", "R1kmxc2VNjMCFIA=", true},
		{"all A", "AAAAAAAAAAAAAAA=", true},
		{"URL-safe characters", "ab-_0123456789A=", true},
		{"empty", "", false},
		{"15 characters", "AAAAAAAAAAAAAA=", false},
		{"17 characters", "AAAAAAAAAAAAAAAA=", false},
		{"no padding", "AAAAAAAAAAAAAAAA", false},
		{"24 characters", "AAAAAAAAAAAAAAAAAAAAAAA=", false},
		{"standard base64 plus", "ab+/0123456789A=", false},
		{"standard base64 slash", "AAAAAAAAAAAAAA/=", false},
		{"padding inside", "AAAAAAAAAAAA=AA=", false},
		{"space", "AAAAAAA AAAAAAA=", false},
		{"non-ASCII", "AAAAAAAAAAAAAé=", false},
		{"double padding", "AAAAAAAAAAAAAA==", false},
		{"line feeds", "\n\n\n\nAAAAAAAAAAA=", false},
		{"carriage returns", "\r\n\r\nAAAAAAAAAAA=", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := apigw.ValidID(tt.id); got != tt.want {
				t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestErrorFrameExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, message, connID, requestID string
		want                             string
	}{
		{
			"forbidden", apigw.MsgForbidden, "AAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBB=",
			`{"message": "Forbidden", "connectionId":"AAAAAAAAAAAAAAA=", "requestId":"BBBBBBBBBBBBBBB="}`,
		},
		{
			"internal error", apigw.MsgInternalServerError, "XDmENcnwIE0CFEQ=", "XDmGEE2RoE0FRdQ=",
			`{"message": "Internal server error", "connectionId":"XDmENcnwIE0CFEQ=", "requestId":"XDmGEE2RoE0FRdQ="}`,
		},
		{
			"quote escaped", `say "hi"`, "a", "b",
			`{"message": "say \"hi\"", "connectionId":"a", "requestId":"b"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(apigw.ErrorFrame(tt.message, tt.connID, tt.requestID)); got != tt.want {
				t.Errorf("ErrorFrame(%q, %q, %q) = %s, want %s", tt.message, tt.connID, tt.requestID, got, tt.want)
			}
		})
	}
}

func TestErrorFrameJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, message, connID, requestID string
	}{
		{"plain", "Forbidden", "AAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBB="},
		{"quotes", `"quoted" "`, `"`, `""`},
		{"backslashes", `C:\path\ \"`, `\`, `\\`},
		{"control characters", "a\x00b\x01\x1f\n\r\t\x7f", "\b\f", "\x1b[0m"},
		{"HTML", "<script>&</script>", "<", ">"},
		{"unicode", "héllo \u2028\u2029 😀", "é", "\ufeff"},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkFrame(t, tt.message, tt.connID, tt.requestID)
		})
	}
}

// checkFrame asserts that ErrorFrame's output is one JSON object holding
// exactly the three fields it was given.
func checkFrame(t *testing.T, message, connID, requestID string) {
	t.Helper()
	frame := apigw.ErrorFrame(message, connID, requestID)
	var got map[string]any
	if err := json.Unmarshal(frame, &got); err != nil {
		t.Fatalf("ErrorFrame(%q, %q, %q) = %s: not JSON: %v", message, connID, requestID, frame, err)
	}
	want := map[string]string{"message": message, "connectionId": connID, "requestId": requestID}
	if len(got) != len(want) {
		t.Errorf("ErrorFrame(%q, %q, %q) = %s: %d fields, want %d", message, connID, requestID, frame, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ErrorFrame(%q, %q, %q) = %s: %s = %#v, want %q", message, connID, requestID, frame, k, got[k], v)
		}
	}
}

func FuzzErrorFrame(f *testing.F) {
	f.Add("Forbidden", "AAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBB=")
	f.Add(`"\`, "\x00\n", "</script>")
	f.Add("\u2028", "\xff", "é")
	f.Fuzz(func(t *testing.T, message, connID, requestID string) {
		frame := apigw.ErrorFrame(message, connID, requestID)
		if !json.Valid(frame) {
			t.Fatalf("ErrorFrame(%q, %q, %q) = %q: not valid JSON", message, connID, requestID, frame)
		}
		if utf8.ValidString(message) && utf8.ValidString(connID) && utf8.ValidString(requestID) {
			checkFrame(t, message, connID, requestID)
		}
	})
}

func TestFormatTime(t *testing.T) {
	t.Parallel()
	utc := time.Date(2025, time.February, 3, 1, 46, 33, 523_000_000, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"UTC", utc, "2025-02-03T01:46:33.523Z"},
		{"fixed zone", utc.In(time.FixedZone("UTC+5:30", 5*3600+1800)), "2025-02-03T01:46:33.523Z"},
		{"west of UTC, previous day", utc.In(time.FixedZone("UTC-8", -8*3600)), "2025-02-03T01:46:33.523Z"},
		{"sub-millisecond truncated", utc.Add(999_999), "2025-02-03T01:46:33.523Z"},
		{"zero milliseconds kept", time.Date(2024, time.January, 20, 11, 55, 0, 0, time.UTC), "2024-01-20T11:55:00.000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := apigw.FormatTime(tt.in); got != tt.want {
				t.Errorf("FormatTime(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRequestTime(t *testing.T) {
	t.Parallel()
	utc := time.Date(2024, time.January, 20, 11, 55, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"UTC", utc, "20/Jan/2024:11:55:00 +0000"},
		{"east of UTC, next day", utc.In(time.FixedZone("UTC+14", 14*3600)), "20/Jan/2024:11:55:00 +0000"},
		{"single-digit day padded", time.Date(2024, time.March, 5, 1, 2, 3, 400_000_000, time.UTC), "05/Mar/2024:01:02:03 +0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := apigw.RequestTime(tt.in); got != tt.want {
				t.Errorf("RequestTime(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// A tagged ID has NewID's shape, carries its tag in its first two
// characters and keeps the other 76 bits random.
func TestNewTaggedID(t *testing.T) {
	t.Parallel()
	for _, tag := range []uint16{0, 1, 0x0ff, 0xabc, 1<<apigw.NodeTagBits - 1, apigw.NodeTag("node-a")} {
		seen := map[string]bool{}
		var prefix string
		for range 1000 {
			id := apigw.NewTaggedID(tag)
			if !apigw.ValidID(id) {
				t.Fatalf("NewTaggedID(%#x) = %q, not a valid ID", tag, id)
			}
			got, ok := apigw.IDTag(id)
			if !ok || got != tag {
				t.Fatalf("IDTag(NewTaggedID(%#x) = %q) = %#x, %v", tag, id, got, ok)
			}
			if prefix == "" {
				prefix = id[:2]
			} else if id[:2] != prefix {
				t.Fatalf("tag %#x gave IDs starting %q and %q, want the same two characters", tag, prefix, id[:2])
			}
			if seen[id] {
				t.Fatalf("NewTaggedID(%#x) returned %q twice", tag, id)
			}
			seen[id] = true
		}
	}
	if tag := apigw.NodeTag("node-a"); tag >= 1<<apigw.NodeTagBits || tag != apigw.NodeTag("node-a") {
		t.Errorf("NodeTag(node-a) = %#x, want a stable value below %#x", tag, 1<<apigw.NodeTagBits)
	}
	if _, ok := apigw.IDTag("not an id"); ok {
		t.Errorf("IDTag of a malformed ID reported a tag")
	}
}

// TestNewUUID: a version 4 UUID of RFC 9562's variant, in its text form.
func TestNewUUID(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := apigw.NewUUID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("NewUUID() = %q, want a fresh version 4 UUID", id)
		}
		seen[id] = true
	}
}
