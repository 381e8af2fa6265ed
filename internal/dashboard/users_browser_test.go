package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The dashboard shows each connection's user and the users online.
func TestBrowserDashboardUsers(t *testing.T) {
	connect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Switchboard-User", "frank")
	}))
	t.Cleanup(connect.Close)
	srv := servertest.StartYAML(t, `routes:
  $connect: {integration: {type: http, url: "`+connect.URL+`"}}
`)
	testutil.Dial(t, srv.WS, nil)
	var id string
	testutil.Eventually(t, waitTimeout, func() bool {
		if items := listConnections(t, srv.HTTP); len(items) == 1 {
			id = items[0].ConnectionID
		}
		return id != ""
	}, "GET /@connections does not list the connection")

	page := newBrowser(t, "dashboard-users")
	row := fmt.Sprintf("tr[data-connection-id=%s]", jsString(id))
	page.do("open the dashboard", chromedp.Navigate(srv.HTTP+"/_/"))
	page.do("wait for the connection's row", chromedp.WaitVisible(chromedp.CSS(row)))
	page.waitJS("the row to show the user",
		fmt.Sprintf(`document.querySelector(%s).querySelector('.user').textContent === 'frank'`, jsString(row)))
	page.waitJS("the users online", `document.querySelector('#user-count').textContent === '1' && document.querySelector('#user-list').textContent === 'frank'`)
}
