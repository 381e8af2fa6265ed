package dashboard_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-gateway/switchboard/internal/consumer"
	"github.com/switchboard-gateway/switchboard/internal/dashboard"
)

// TestConsumersAPI: /_/api/consumers lists the consumers' counts, an empty
// list when there are none.
func TestConsumersAPI(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		f    func() []consumer.Stats
		want int
	}{
		{"none", nil, 0},
		{"two", func() []consumer.Stats { return []consumer.Stats{{Name: "a"}, {Name: "b"}} }, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := readAll(t, get(t, dashboard.New(dashboard.Options{Consumers: tt.f}), "/_/api/consumers", nil))
			var got struct{ Consumers []consumer.Stats }
			if err := json.Unmarshal([]byte(body), &got); err != nil || got.Consumers == nil || len(got.Consumers) != tt.want {
				t.Errorf("/_/api/consumers = %s (%v), want a list of %d", body, err, tt.want)
			}
		})
	}
}

// TestBrowserConsumers: the Consumers panel shows each consumer's lag,
// events per second (from two polls), retries and dead letters; it is
// hidden when there is none.
func TestBrowserConsumers(t *testing.T) {
	var mu sync.Mutex
	stats := []consumer.Stats{{Name: "orders", Kind: "nats", Source: "ORDERS orders.>", Lag: 12, Retries: 3, DeadLetters: 1}}
	current := func() []consumer.Stats {
		mu.Lock()
		defer mu.Unlock()
		for i := range stats {
			stats[i].Consumed += 500 // between two polls
		}
		return append([]consumer.Stats(nil), stats...)
	}
	srv := httptest.NewServer(dashboard.New(dashboard.Options{Stage: "dev", Routes: testRoutes, Consumers: current}))
	t.Cleanup(srv.Close)
	page := newBrowser(t, "dashboard")
	page.do("open the dashboard", chromedp.Navigate(srv.URL+"/_/"),
		chromedp.WaitVisible(chromedp.CSS(`#consumers-body tr[data-consumer="orders"]`)))
	page.waitJS("a rate above zero from two polls", `Number(document.querySelector('#consumers-body tr[data-consumer="orders"] .rate').textContent) > 0`)
	for _, tt := range []struct{ sel, want string }{
		{`#consumers-body tr[data-consumer="orders"] .lag`, "12"},
		{`#consumers-body tr[data-consumer="orders"] .retries`, "3"},
		{`#consumers-body tr[data-consumer="orders"] .dead`, "1"},
	} {
		if got := page.text(tt.sel); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.sel, got, tt.want)
		}
	}
	if got := page.text(`#consumers-body tr[data-consumer="orders"]`); !strings.Contains(got, "nats ORDERS orders.>") {
		t.Errorf("the row = %q, want what the consumer reads", got)
	}
	mu.Lock()
	stats = stats[:0]
	mu.Unlock()
	page.waitJS("no consumer: no panel", `document.querySelector('#consumers-panel').hidden`)
}
