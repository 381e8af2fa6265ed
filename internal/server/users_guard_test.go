package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
)

// The user and presence calls sit behind the management API's guard, as
// every other call does.
func TestUsersBehindTheGuard(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, "management: {tokens: [the-token]}\n")
	for _, call := range []struct{ method, path string }{
		{"GET", "/@users"},
		{"GET", "/@users/alice"},
		{"POST", "/@users/alice"},
		{"DELETE", "/dev/@users/alice"},
		{"GET", "/@topics/news/presence"},
	} {
		for _, token := range []string{"", "the-token"} {
			req, err := http.NewRequestWithContext(t.Context(), call.method, srv.HTTP+call.path, strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := http.StatusOK
			if token == "" {
				want = http.StatusForbidden // as API Gateway answers a call without credentials
			}
			if resp.StatusCode != want {
				t.Errorf("%s %s with token %q = %d, want %d", call.method, call.path, token, resp.StatusCode, want)
			}
		}
	}
}
