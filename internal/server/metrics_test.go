package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value returns the sample of family with the given labels (name=value pairs).
func value(families map[string]*dto.MetricFamily, family string, labels ...string) float64 {
	f, ok := families[family]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, "limits: {messageRate: 1, messageBurst: 1}\n")
	a := testutil.Dial(t, srv.WS, nil)
	b := testutil.Dial(t, srv.WS, nil)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, srv.HTTP)) == 2 }, "two connections")
	testutil.Write(t, a, `{"action":"sendMessage","data":"m"}`)
	testutil.ReadText(t, a)
	testutil.ReadText(t, b)
	if got := testutil.ReadTextAfter(t, b, `{"action":"nope"}`); !strings.Contains(got, "Forbidden") {
		t.Fatalf("unmatched message answered %q", got)
	}
	// b's second message within the second is over its rate of 1/s: dropped.
	if got := testutil.ReadTextAfter(t, b, `{"action":"nope"}`); !strings.Contains(got, "Too Many Requests") {
		t.Fatalf("message over the rate answered %q", got)
	}
	for _, c := range []*websocket.Conn{a, b} { // read on, as clients do, to answer the close handshake
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	if resp, _ := post(t, srv.HTTP+"/@connections/AAAAAAAAAAAAAAA=", "x"); resp.StatusCode != http.StatusGone {
		t.Fatalf("post to unknown: %d", resp.StatusCode)
	}
	var ids []string
	for id := range connIDs(t, srv.HTTP) {
		ids = append(ids, id)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.HTTP+"/@connections/"+ids[0], nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %v %v", resp, err)
	}

	testutil.Eventually(t, 5*time.Second, func() bool {
		return value(scrape(t, srv.HTTP), "switchboard_disconnects_total", "reason", "deleted") == 1
	}, "the deleted connection is counted")
	m := scrape(t, srv.HTTP)
	checks := []struct {
		family string
		labels []string
		want   float64
	}{
		{"switchboard_connections_open", nil, 1},
		{"switchboard_connects_total", []string{"result", "accepted"}, 2},
		{"switchboard_messages_in_total", []string{"route", "sendMessage"}, 1},
		{"switchboard_messages_in_total", []string{"route", "(none)"}, 1},
		{"switchboard_messages_dropped_total", []string{"reason", "rate_limited"}, 1},
		{"switchboard_messages_out_total", []string{"source", "sendMessage"}, 2}, // the broadcast to both
		{"switchboard_messages_out_total", []string{"source", "(none)"}, 2},      // the Forbidden and Too Many Requests frames
		{"switchboard_integration_duration_seconds", []string{"route", "sendMessage", "integration", "broadcast"}, 1},
		{"switchboard_management_requests_total", []string{"operation", "PostToConnection", "status", "410"}, 1},
		{"switchboard_management_requests_total", []string{"operation", "DeleteConnection", "status", "204"}, 1},
	}
	for _, c := range checks {
		if got := value(m, c.family, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, c.labels, got, c.want)
		}
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("the Go runtime collector is not registered")
	}
}
