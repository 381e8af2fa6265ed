package integration_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/apigw"
	"github.com/switchboard-gateway/switchboard/internal/integration"
)

// BenchmarkMarshalEvent measures building the proxy event a Lambda or HTTP
// integration receives for one chat message.
func BenchmarkMarshalEvent(b *testing.B) {
	conn := &integration.Conn{
		ID: apigw.NewID(), ConnectedAt: time.Now(), SourceIP: "127.0.0.1", UserAgent: "bench",
		Header: http.Header{"Host": {"127.0.0.1:3001"}}, Query: url.Values{}, Stage: "dev", DomainName: "127.0.0.1:3001", APIID: "local",
	}
	req := &integration.Request{
		RouteKey: "sendMessage", EventType: apigw.EventMessage, RequestID: apigw.NewID(), MessageID: apigw.NewID(),
		Time: time.Now(), Conn: conn, Body: []byte(`{"action":"sendMessage","data":"Hello World!"}`),
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := integration.MarshalEvent(req); err != nil {
			b.Fatal(err)
		}
	}
}
