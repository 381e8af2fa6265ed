package dashboard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/rates"
)

type ratesBody struct {
	IntervalMs int64          `json:"intervalMs"`
	Samples    []rates.Sample `json:"samples"`
}

func TestRatesEndpoint(t *testing.T) {
	t.Parallel()
	var totals rates.Totals
	ring := rates.New(func() rates.Totals { return totals }, rates.Options{Interval: 5 * time.Second, Size: 10})
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	ring.Record(t0)
	totals = rates.Totals{Connections: 3, In: 50, Out: 100, Errors: 5}
	ring.Record(t0.Add(5 * time.Second))

	tests := []struct {
		name         string
		ring         *rates.Ring
		wantInterval int64
		want         []rates.Sample
	}{
		{"from the ring", ring, 5000, []rates.Sample{{Time: t0.Add(5 * time.Second), Connections: 3, In: 10, Out: 20, Errors: 1}}},
		{"nil serves no samples", nil, 1000, []rates.Sample{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := get(t, dashboard.New(dashboard.Options{Rates: tt.ring}), "/_/api/rates", nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET /_/api/rates: %d %s, want 200 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if !strings.Contains(body, `"samples":[`) {
				t.Errorf("body %s: samples is not an array", body)
			}
			var got ratesBody
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got.IntervalMs != tt.wantInterval || len(got.Samples) != len(tt.want) {
				t.Fatalf("GET /_/api/rates = %s, want interval %d and %d samples", body, tt.wantInterval, len(tt.want))
			}
			for i := range tt.want {
				if !got.Samples[i].Time.Equal(tt.want[i].Time) || got.Samples[i].In != tt.want[i].In || got.Samples[i].Out != tt.want[i].Out ||
					got.Samples[i].Errors != tt.want[i].Errors || got.Samples[i].Connections != tt.want[i].Connections {
					t.Errorf("sample %d = %+v, want %+v", i, got.Samples[i], tt.want[i])
				}
			}
		})
	}
}

// The page's management calls under /_/api/ reach the management API with
// the path they have there, an escaped "/" in an ID staying one segment.
func TestForwardToTheManagementAPI(t *testing.T) {
	t.Parallel()
	api := http.NewServeMux()
	for _, p := range []string{"GET /@connections", "GET /@connections/{id}", "POST /@connections/{id}",
		"DELETE /@connections/{id}", "POST /@topics/{topic}", "POST /@broadcast"} {
		api.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, p+" id="+r.PathValue("id")+" topic="+r.PathValue("topic")+" query="+r.URL.RawQuery+" body="+string(body))
		})
	}
	h := dashboard.New(dashboard.Options{API: api})
	tests := []struct{ method, path, body, want string }{
		{"GET", "/_/api/connections?limit=1000", "", "GET /@connections id= topic= query=limit=1000 body="},
		{"GET", "/_/api/connections/ab%2Fc%3D", "", "GET /@connections/{id} id=ab/c= topic= query= body="},
		{"POST", "/_/api/connections/abc=", "hi", "POST /@connections/{id} id=abc= topic= query= body=hi"},
		{"DELETE", "/_/api/connections/abc=", "", "DELETE /@connections/{id} id=abc= topic= query= body="},
		{"POST", "/_/api/topics/order%2F42", "x", "POST /@topics/{topic} id= topic=order/42 query= body=x"},
		{"POST", "/_/api/broadcast", "all", "POST /@broadcast id= topic= query= body=all"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != tt.want {
			t.Errorf("%s %s: %d %q, want 200 %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.want)
		}
	}
	// Without an API: 404.
	if resp := get(t, dashboard.New(dashboard.Options{}), "/_/api/connections", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /_/api/connections without an API: %d, want 404", resp.StatusCode)
	}
}
