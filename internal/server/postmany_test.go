package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

type postManyResult struct {
	Delivered int      `json:"delivered"`
	Gone      []string `json:"gone"`
	Slow      []string `json:"slow"`
	Failed    []string `json:"failed"`
}

func postMany(t *testing.T, base string, body any) (int, postManyResult, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, out := post(t, base+"/@connections", string(b))
	var res postManyResult
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("POST /@connections body %q: %v", out, err)
		}
	}
	return resp.StatusCode, res, out
}

// One call sends one message to every listed connection and says which
// were gone; a string is sent as its text, another JSON value as written.
func TestPostToConnections(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "")
	a, b := testutil.Dial(t, wsURL, nil), testutil.Dial(t, wsURL, nil)
	var ids []string
	testutil.Eventually(t, 5*time.Second, func() bool {
		ids = ids[:0]
		for id := range connIDs(t, base) {
			ids = append(ids, id)
		}
		return len(ids) == 2
	}, "two connections listed")
	const unknown, invalid = "AAAAAAAAAAAAAAA=", "not an id"
	status, res, out := postMany(t, base, map[string]any{
		"connectionIds": []string{ids[0], unknown, ids[1], invalid, ids[0]},
		"data":          "hello both",
	})
	if status != http.StatusOK || res.Delivered != 2 || !slices.Equal(res.Gone, []string{unknown, invalid}) || len(res.Slow)+len(res.Failed) != 0 {
		t.Fatalf("POST /@connections = %d %s, want 2 delivered, %q and %q gone", status, out, unknown, invalid)
	}
	if got := testutil.ReadText(t, a); got != "hello both" {
		t.Errorf("first connection got %q", got)
	}
	if got := testutil.ReadText(t, b); got != "hello both" {
		t.Errorf("second connection got %q", got)
	}
	status, res, out = postMany(t, base, map[string]any{"connectionIds": ids, "data": map[string]int{"n": 1}})
	if status != http.StatusOK || res.Delivered != 2 {
		t.Fatalf("POST /@connections with an object = %d %s", status, out)
	}
	if got := testutil.ReadText(t, a); got != `{"n":1}` {
		t.Errorf("an object as data arrived as %q, want it as written", got)
	}
}

func TestPostToConnectionsRefusals(t *testing.T) {
	t.Parallel()
	_, _, base := start(t, "limits: {maxRecipients: 3, maxPostBytes: 10}\n")
	tests := []struct {
		name    string
		body    string
		status  int
		errType string
	}{
		{"more IDs than maxRecipients", `{"connectionIds":["a","b","c","d"],"data":"x"}`, 400, "BadRequestException"},
		{"no data", `{"connectionIds":["a"]}`, 400, "BadRequestException"},
		{"not JSON", `hello`, 400, "BadRequestException"},
		{"data over maxPostBytes", `{"connectionIds":["a"],"data":"12345678901"}`, 413, "PayloadTooLargeException"},
		{"body over its bound", `{"connectionIds":["a"],"data":"` + strings.Repeat("x", 400) + `"}`, 413, "PayloadTooLargeException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, out := post(t, base+"/@connections", tt.body)
			if resp.StatusCode != tt.status || resp.Header.Get("x-amzn-ErrorType") != tt.errType {
				t.Errorf("POST /@connections %s = %d %q %s, want %d %s", tt.name, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), out, tt.status, tt.errType)
			}
		})
	}
}

// A listed connection whose queue overflows is named slow, as
// PostToConnection answers it 429, and is gone afterwards.
func TestPostToConnectionsNamesTheSlow(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "limits: {sendQueueBytes: 128KB}\n")
	testutil.Dial(t, wsURL, nil) // never reads
	id := onlyConnID(t, base)
	chunk := strings.Repeat("x", 100*1024)
	for i := range 2000 {
		status, res, out := postMany(t, base, map[string]any{"connectionIds": []string{id}, "data": chunk})
		if status != http.StatusOK {
			t.Fatalf("POST /@connections = %d %s", status, out)
		}
		if slices.Equal(res.Slow, []string{id}) {
			break
		}
		if res.Delivered != 1 || i == 1999 {
			t.Fatalf("post %d: %+v; want delivered until the connection is named slow", i, res)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, res, _ := postMany(t, base, map[string]any{"connectionIds": []string{id}, "data": "x"})
		return slices.Equal(res.Gone, []string{id})
	}, "the slow connection is gone")
}
