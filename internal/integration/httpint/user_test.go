package httpint_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/integration/httpint"
)

// The X-Switchboard-User header of the backend's HTTP answer joins the
// response's headers; a proxy response's own header wins.
func TestInvokeUserHeader(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, body, want string }{
		{"header alone", "", "alice"},
		{"proxy response without it", `{"statusCode":200}`, "alice"},
		{"proxy response naming another", `{"statusCode":200,"headers":{"X-Switchboard-User":"bob"}}`, "bob"},
		{"proxy response naming another, in lower case", `{"statusCode":200,"headers":{"x-switchboard-user":"bob"}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set(integration.UserHeader, "alice")
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			resp, err := newIntegration(t, httpint.Options{URL: srv.URL}).Invoke(context.Background(), newRequest(""))
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if got := resp.Headers[integration.UserHeader]; got != tt.want || len(resp.Headers) != 1 {
				t.Errorf("user header = %q, want %q", got, tt.want)
			}
		})
	}
}
