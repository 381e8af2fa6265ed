package apigw_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
)

func TestHeadersUseAWSSpelling(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("Sec-WebSocket-Key", "k")
	h.Add("X-Multi", "a")
	h.Add("X-Multi", "b")
	single, multi := apigw.Headers(h)
	if single["Sec-WebSocket-Key"] != "k" || single["Sec-Websocket-Key"] != "" {
		t.Errorf("Headers = %v, want the AWS spelling Sec-WebSocket-Key", single)
	}
	if single["X-Multi"] != "b" || len(multi["X-Multi"]) != 2 {
		t.Errorf("X-Multi: single %q multi %v, want the last value and both", single["X-Multi"], multi["X-Multi"])
	}
	if s, m := apigw.Headers(nil); s != nil || m != nil {
		t.Errorf("Headers(nil) = %v, %v, want nils", s, m)
	}
	if s, m := apigw.Query(url.Values{}); s != nil || m != nil {
		t.Errorf("Query(empty) = %v, %v, want nils so the event omits them", s, m)
	}
}
