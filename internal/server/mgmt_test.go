package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

func post(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(url, "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read: %v", url, err)
	}
	return resp, string(b)
}

func TestManagementErrorsAsAWSSendsThem(t *testing.T) {
	t.Parallel()
	_, _, base := start(t, "limits: {maxPostBytes: 10}\n")
	tests := []struct {
		name, method, path, body string
		status                   int
		errType, message         string
	}{
		{"post unknown id", "POST", "/@connections/AAAAAAAAAAAAAAA%3D", "x", 410, "GoneException", ""},
		{"get unknown id", "GET", "/dev/@connections/AAAAAAAAAAAAAAA=", "", 410, "GoneException", ""},
		{"delete unknown id", "DELETE", "/@connections/nonsense", "", 410, "GoneException", ""},
		{"payload too large", "POST", "/@connections/AAAAAAAAAAAAAAA=", "12345678901", 413, "PayloadTooLargeException", "Request payload exceeds the limit of 10 bytes"},
		{"topic payload too large", "POST", "/@topics/t", "12345678901", 413, "PayloadTooLargeException", "Request payload exceeds the limit of 10 bytes"},
		{"unknown path", "PUT", "/@connections/a/b", "", 404, "NotFoundException", "No method found matching route @connections/a/b for http method PUT."},
		{"unknown path under the stage", "GET", "/dev/nope", "", 404, "NotFoundException", "No method found matching route dev/nope for http method GET."},
		{"unknown management path", "GET", "/@nope", "", 404, "NotFoundException", "No method found matching route @nope for http method GET."},
		{"list with another method", "PUT", "/dev/@connections", "", 404, "NotFoundException", "No method found matching route dev/@connections for http method PUT."},
		{"broadcast with another method", "GET", "/@broadcast", "", 404, "NotFoundException", "No method found matching route @broadcast for http method GET."},
		{"publish with another method", "GET", "/@topics/t", "", 404, "NotFoundException", "No method found matching route @topics/t for http method GET."},
		{"unknown stage", "POST", "/prod/@connections/AAAAAAAAAAAAAAA=", "x", 403, "ForbiddenException", "Forbidden"},
		{"unknown stage alone", "GET", "/prod", "", 403, "ForbiddenException", "Forbidden"},
		{"unknown top-level path", "GET", "/favicon.ico", "", 403, "ForbiddenException", "Forbidden"},
		{"bad list limit", "GET", "/@connections?limit=-3", "", 400, "BadRequestException", "limit must be a positive integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || resp.Header.Get("x-amzn-ErrorType") != tt.errType || resp.Header.Get("x-amzn-RequestId") == "" {
				t.Errorf("%s %s = %d type %q id %q, want %d %q", tt.method, tt.path, resp.StatusCode,
					resp.Header.Get("x-amzn-ErrorType"), resp.Header.Get("x-amzn-RequestId"), tt.status, tt.errType)
			}
			var msg struct {
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &msg); err != nil || msg.Message != tt.message {
				t.Errorf("body %q, want JSON with message %q", body, tt.message)
			}
		})
	}
}

func TestManagementExtensions(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "")
	sub := testutil.Dial(t, wsURL, nil)
	other := testutil.Dial(t, wsURL, nil)
	testutil.Write(t, sub, `{"action":"subscribe","topic":"news"}`)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, base)) == 2 && len(connIDs(t, base)[subID(t, base)]) == 1 }, "subscription registered")

	resp, body := post(t, base+"/dev/@topics/news", "extra! extra!")
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"recipients":1}` {
		t.Fatalf("publish = %d %s", resp.StatusCode, body)
	}
	if got := testutil.ReadText(t, sub); got != "extra! extra!" {
		t.Errorf("subscriber got %q", got)
	}
	resp, body = post(t, base+"/@broadcast", "to all")
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"recipients":2}` {
		t.Fatalf("broadcast = %d %s", resp.StatusCode, body)
	}
	for _, c := range []*websocket.Conn{other, sub} {
		if got := testutil.ReadText(t, c); got != "to all" {
			t.Errorf("got %q, want the broadcast (and nothing from the topic for the non-subscriber)", got)
		}
	}
	// Binary data goes out as a binary frame.
	if resp, _ := post(t, base+"/@connections/"+subID(t, base), "\xff\xfe"); resp.StatusCode != 200 {
		t.Fatalf("binary post = %d", resp.StatusCode)
	}
	if typ, got := testutil.Read(t, sub, 5*time.Second); typ != websocket.MessageBinary || got != "\xff\xfe" {
		t.Errorf("got %v %q, want binary ff fe", typ, got)
	}
}

// subID returns the ID of the connection subscribed to a topic.
func subID(t *testing.T, base string) string {
	for id, topics := range connIDs(t, base) {
		if len(topics) > 0 {
			return id
		}
	}
	return ""
}

func TestConnectionListPaging(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "")
	for range 5 {
		testutil.Dial(t, wsURL, nil)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, base)) == 5 }, "five connections")
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		status, body := testutil.Get(t, base+"/@connections?limit=2&cursor="+cursor)
		var page struct {
			Items []struct {
				ConnectionID string `json:"connectionId"`
				ConnectedAt  string `json:"connectedAt"`
			} `json:"items"`
			NextCursor string `json:"nextCursor"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Items) > 2 {
			t.Fatalf("page = %d %s", status, body)
		}
		for _, it := range page.Items {
			if seen[it.ConnectionID] || it.ConnectedAt == "" {
				t.Errorf("item %+v repeated or incomplete", it)
			}
			seen[it.ConnectionID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 5 {
		t.Errorf("paging saw %d connections, want 5", len(seen))
	}
}

func TestPostToStalledClientAnswers429ThenGone(t *testing.T) {
	t.Parallel()
	_, wsURL, base := start(t, "limits: {sendQueueBytes: 128KB}\n")
	testutil.Dial(t, wsURL, nil) // never reads
	id := onlyConnID(t, base)
	chunk := strings.Repeat("x", 128*1024)
	var statuses []int
	for range 2000 {
		resp, _ := post(t, base+"/@connections/"+id, chunk)
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode != 200 {
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("x-amzn-ErrorType") != "LimitExceededException" {
				t.Fatalf("post %d = %d %q, want 429 LimitExceededException", len(statuses), resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
			}
			break
		}
	}
	if statuses[len(statuses)-1] != http.StatusTooManyRequests {
		t.Fatalf("no 429 after %d posts of 128 KB to a client that does not read", len(statuses))
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		resp, _ := post(t, base+"/@connections/"+id, "x")
		return resp.StatusCode == http.StatusGone
	}, "the slow connection is gone")
}
