package dashboard_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// With management credentials, the dashboard opens on a sign-in page; each
// kind of credential signs in, shows the connections, and signs out; wrong
// credentials are an error on the page.
func TestBrowserSignIn(t *testing.T) {
	srv := servertest.StartYAML(t, `
management:
  accessKeys: {AKIDBROWSER: browser-secret}
  tokens: [browser-token-123]
`)
	c := testutil.Dial(t, srv.WS, nil)
	testutil.Write(t, c, `{"action":"subscribe","entityId":"signed-in"}`)
	page := newBrowser(t, "dashboard")

	page.do("open the dashboard", chromedp.Navigate(srv.HTTP+"/_/"),
		chromedp.WaitVisible(chromedp.ID("token-login")), chromedp.WaitVisible(chromedp.ID("key-login")))
	page.screenshot("sign-in.png")

	tests := []struct {
		name         string
		fill         func(wrong bool) []chromedp.Action[chromedp.Void]
		submit       string
		wrongMessage string
	}{
		{"token", func(wrong bool) []chromedp.Action[chromedp.Void] {
			tok := "browser-token-123"
			if wrong {
				tok = "not-the-token"
			}
			return []chromedp.Action[chromedp.Void]{chromedp.SendKeys(chromedp.ID("login-token"), tok)}
		}, "token-submit", "That token is not accepted"},
		{"access key", func(wrong bool) []chromedp.Action[chromedp.Void] {
			secret := "browser-secret"
			if wrong {
				secret = "not-the-secret"
			}
			return []chromedp.Action[chromedp.Void]{
				chromedp.SendKeys(chromedp.ID("login-key-id"), "AKIDBROWSER"),
				chromedp.SendKeys(chromedp.ID("login-secret"), secret),
			}
		}, "key-submit", "That access key ID and secret are not accepted"},
	}
	for _, tt := range tests {
		page.do(tt.name+": wrong credentials", append(tt.fill(true),
			chromedp.Click(chromedp.ID(tt.submit)),
			chromedp.WaitVisible(chromedp.ID("login-error")))...)
		if got := page.text("#login-error"); !strings.Contains(got, tt.wrongMessage) {
			t.Errorf("%s: the error shown is %q, want %q", tt.name, got, tt.wrongMessage)
		}
		page.screenshot("sign-in-wrong-" + strings.ReplaceAll(tt.name, " ", "-") + ".png")

		page.do(tt.name+": sign in", append(tt.fill(false),
			chromedp.Click(chromedp.ID(tt.submit)),
			chromedp.WaitVisible(chromedp.CSS(`#connections-body tr`)),
			chromedp.WaitVisible(chromedp.ID("logout")))...)
		page.waitJS("the connection's topic", `document.querySelector('#connections-body tr .topics').textContent.includes('signed-in')`)
		page.waitJS("the live tail", `document.querySelector('#tail-state').dataset.state === 'open'`)
		page.waitJS("no token button on a signed-in page", `document.querySelector('#token-button').hidden`)
		if tt.name == "token" {
			page.screenshot("signed-in.png")
		}

		page.do(tt.name+": sign out", chromedp.Click(chromedp.ID("logout")),
			chromedp.WaitVisible(chromedp.ID("token-login")))
		page.do(tt.name+": the dashboard asks again", chromedp.Navigate(srv.HTTP+"/_/"),
			chromedp.WaitVisible(chromedp.ID("token-login")))
	}
}

// The chart draws the rates the gateway sampled: the messages-in line
// rises after messages are sent; an unmatched message shows in the tail.
func TestBrowserRatesAndUnmatched(t *testing.T) {
	srv := servertest.StartYAML(t, "")
	c := testutil.Dial(t, srv.WS, nil)
	page := newBrowser(t, "dashboard")
	page.do("open the dashboard", chromedp.Navigate(srv.HTTP+"/_/"),
		chromedp.WaitVisible(chromedp.CSS(`#charts[data-state="ready"]`)))
	page.waitJS("a flat line before any message", `document.querySelector('#line-in').dataset.peak === '0'`)

	for i := range 40 {
		testutil.Write(t, c, fmt.Sprintf(`{"action":"sendMessage","data":"m%d"}`, i))
	}
	page.waitJS("the messages-in line to rise", `(() => {
		const line = document.querySelector('#line-in');
		const ys = line.getAttribute('points').trim().split(/\s+/).map((p) => Number(p.split(',')[1]));
		return Number(line.dataset.peak) > 0 && ys.some((y) => y < 120);
	})()`)
	page.waitJS("the card's sparkline drawn from the same samples",
		`document.querySelector('#spark-in polyline').getAttribute('points').trim() !== ''`)
	page.waitJS("the messages-out line to rise", `Number(document.querySelector('#line-out').dataset.peak) > 0`)
	page.waitJS("the connections line at one", `Number(document.querySelector('#line-connections').dataset.last) === 1`)

	testutil.Write(t, c, `{"action":"noSuchRoute"}`)
	page.do("wait for the unmatched message in the tail",
		chromedp.WaitVisible(chromedp.CSS(`#tail-body tr[data-unmatched="true"]`)))
	if got := page.text(`#tail-body tr[data-unmatched="true"]`); !strings.Contains(got, "Forbidden") || !strings.Contains(got, "no route") {
		t.Errorf("the unmatched message's row = %q, want Forbidden and no route", got)
	}
	page.waitJS("the errors line to rise", `Number(document.querySelector('#line-errors').dataset.peak) > 0`)
	page.screenshot("dashboard-rates.png")
}

// Until the first listing arrives the connections panel says it is
// loading, not that there are no connections.
func TestBrowserLoadingState(t *testing.T) {
	release := make(chan struct{})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"items":[]}`)
	})
	srv := httptest.NewServer(dashboard.New(dashboard.Options{Stage: "dev", Routes: testRoutes, API: api}))
	t.Cleanup(srv.Close)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})

	page := newBrowser(t, "dashboard")
	page.do("open the dashboard", chromedp.Navigate(srv.URL+"/_/"),
		chromedp.WaitVisible(chromedp.ID("connections-loading")))
	page.waitJS("the other parts loaded meanwhile", `document.querySelector('#routes-body tr') !== null`)
	page.waitJS("no claim of no connections", `document.querySelector('#connections-empty').offsetParent === null`)
	page.screenshot("dashboard-loading.png")

	close(release)
	released = true
	page.do("the listing arrives", chromedp.WaitVisible(chromedp.ID("connections-empty")))
	page.waitJS("the loading note gone", `document.querySelector('#connections-loading').offsetParent === null`)
}
