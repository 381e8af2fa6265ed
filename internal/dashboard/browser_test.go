package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-gateway/switchboard/internal/dashboard"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// These tests drive the pages in headless Chromium against a full
// zero-config gateway. They skip when no Chromium is installed; .ci/run
// installs Debian's. They run one at a time: each starts a browser.

// waitTimeout bounds every wait on a page, so that a broken page fails the
// test instead of hanging it.
const waitTimeout = 20 * time.Second

func chromiumPath() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// tab is one browser tab, with the uncaught exceptions of its pages.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu         sync.Mutex
	exceptions []string
}

// newBrowser starts headless Chromium for the test and returns its first tab.
// The browser stops at the end of the test.
func newBrowser(t *testing.T, name string, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	bin := chromiumPath()
	if bin == "" {
		t.Skip("no Chromium: neither /usr/bin/chromium nor chromium on PATH")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser and binds it to ctx, so it gets no
	// timeout of its own; a browser that never starts still fails the test.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start Chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("Chromium did not start within 60s")
	}
	return watch(t, name, ctx)
}

// newTab opens another tab (a new target) in the browser of parent.
func newTab(t *testing.T, parent *tab, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent.ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab %s: %v", name, err)
	}
	return watch(t, name, ctx)
}

// watch records the tab's uncaught exceptions, logs its console, and fails
// the test at its end if a page threw.
func watch(t *testing.T, name string, ctx context.Context) *tab {
	tb := &tab{t: t, name: name, ctx: ctx}
	cctx, stop := context.WithCancel(ctx)
	messages := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			if m.IsException() {
				tb.exceptions = append(tb.exceptions, m.Text)
			}
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.exceptions {
			t.Errorf("tab %s: uncaught exception in the page: %s", name, e)
		}
	})
	return tb
}

// do runs the actions within waitTimeout.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("tab %s: %s: %v", tb.name, what, err)
	}
}

// text returns the text of the first element matching the CSS selector.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("tab %s: text of %s: %v", tb.name, sel, err)
	}
	return s
}

// waitJS polls the JavaScript predicate until it is true.
func (tb *tab) waitJS(what, predicate string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		tb.t.Fatalf("tab %s: waiting for %s: %v", tb.name, what, err)
	}
}

// screenshot saves a PNG of the whole page into the artifacts directory.
func (tb *tab) screenshot(file string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		tb.t.Fatalf("tab %s: screenshot: %v", tb.name, err)
	}
	dir := artifactsDir(tb.t)
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatalf("save screenshot: %v", err)
	}
	tb.t.Logf("screenshot of %s: %s", tb.name, path)
}

// artifactsDir is $SWITCHBOARD_ARTIFACTS, or a temporary directory of the
// test (logged, and removed with it) when that is not set.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type listedConn struct {
	ConnectionID string   `json:"connectionId"`
	Topics       []string `json:"topics"`
}

// listConnections returns GET /@connections?limit=1000.
func listConnections(t *testing.T, base string) []listedConn {
	t.Helper()
	status, body := testutil.Get(t, base+"/@connections?limit=1000")
	if status != http.StatusOK {
		t.Fatalf("GET /@connections: %d %s", status, body)
	}
	var page struct {
		Items []listedConn `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("GET /@connections: %q: %v", body, err)
	}
	return page.Items
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The dashboard lists a connection opened outside the browser, with its
// topic and its invocation; its send form delivers to that connection, and
// a send to an unknown ID shows the management API's error type.
func TestBrowserDashboard(t *testing.T) {
	srv := servertest.StartYAML(t, "")
	c := testutil.Dial(t, srv.WS, nil)
	testutil.Write(t, c, `{"action":"subscribe","entityId":"orders"}`)
	var id string
	testutil.Eventually(t, waitTimeout, func() bool {
		items := listConnections(t, srv.HTTP)
		if len(items) == 1 && slices.Contains(items[0].Topics, "orders") {
			id = items[0].ConnectionID
		}
		return id != ""
	}, "GET /@connections does not list one connection subscribed to orders")

	page := newBrowser(t, "dashboard")
	row := fmt.Sprintf("tr[data-connection-id=%s]", jsString(id))
	page.do("open the dashboard", chromedp.Navigate(srv.HTTP+"/_/"))
	page.do("wait for the connection's row", chromedp.WaitVisible(chromedp.CSS(row)))
	page.waitJS("the row to show the topic",
		fmt.Sprintf(`document.querySelector(%s).querySelector('.topics').textContent.includes('orders')`, jsString(row)))
	page.waitJS("the connection count", `document.querySelector('#conn-count').textContent === '1'`)
	page.do("wait for the subscribe invocation in the tail",
		chromedp.WaitVisible(chromedp.CSS(`#tail-body tr[data-route-key="subscribe"]`)))
	page.do("wait for the routes", chromedp.WaitVisible(chromedp.CSS(`#routes-body tr[data-route-key="sendMessage"]`)))
	if got := page.text(`#routes-body tr[data-route-key="sendMessage"]`); !strings.Contains(got, "broadcast") {
		t.Errorf("sendMessage route row = %q, want its broadcast integration", got)
	}

	const msg = `hello from the dashboard & "friends"`
	page.do("fill and submit the send form",
		chromedp.SendKeys(chromedp.ID("send-id"), id),
		chromedp.SendKeys(chromedp.ID("send-message"), msg),
		chromedp.Click(chromedp.ID("send-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#send-result[data-state="ok"]`)),
	)
	if got := page.text("#send-result"); !strings.HasPrefix(got, "200") {
		t.Errorf("send result = %q, want 200", got)
	}
	if _, got := testutil.Read(t, c, waitTimeout); got != msg {
		t.Errorf("the connection received %q, want %q", got, msg)
	}

	page.do("send to an unknown connection",
		// Clear resets only the default value, and SetValue refuses "".
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#send-id').value = ''`),
		chromedp.SendKeys(chromedp.ID("send-id"), "AAAAAAAAAAAAAAA="),
		chromedp.Click(chromedp.ID("send-submit")),
		chromedp.WaitVisible(chromedp.CSS(`#send-result[data-state="err"]`)),
	)
	if got := page.text("#send-result"); !strings.Contains(got, "410") || !strings.Contains(got, "GoneException") {
		t.Errorf("send result for an unknown ID = %q, want 410 GoneException", got)
	}

	page.waitJS("the message rates", `!isNaN(parseFloat(document.querySelector('#rate-in').textContent))`)

	page.screenshot("dashboard.png")
	page.do("narrow the window", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	page.screenshot("dashboard-narrow.png")
}

// Two chat tabs reach "open"; what one sends, both show.
func TestBrowserChat(t *testing.T) {
	srv := servertest.StartYAML(t, "")
	alice := newBrowser(t, "alice")
	bob := newTab(t, alice, "bob")
	for _, p := range []*tab{alice, bob} {
		p.do("open the chat", chromedp.Navigate(srv.HTTP+"/_/chat?name="+p.name))
	}
	for _, p := range []*tab{alice, bob} {
		p.do("wait for the open state", chromedp.WaitVisible(chromedp.CSS(`#state[data-state="open"]`)))
	}
	if n := len(listConnections(t, srv.HTTP)); n != 2 {
		t.Errorf("the gateway lists %d connections, want 2", n)
	}

	say := func(from *tab, text string) {
		t.Helper()
		from.do("send a message",
			chromedp.SendKeys(chromedp.ID("message"), text),
			chromedp.Click(chromedp.ID("send")),
		)
		want := from.name + ": " + text
		for _, p := range []*tab{alice, bob} {
			p.waitJS("the message "+jsString(want), fmt.Sprintf(
				`[...document.querySelectorAll('#messages li')].some((li) => li.dataset.text === %s)`, jsString(want)))
		}
		// The sender's copy is marked as its own; the other's is not.
		for _, p := range []*tab{alice, bob} {
			ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
			mine, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
				`[...document.querySelectorAll('#messages li')].find((li) => li.dataset.text === %s).classList.contains('mine')`, jsString(want))))
			cancel()
			if err != nil {
				t.Fatalf("tab %s: %v", p.name, err)
			}
			if mine != (p == from) {
				t.Errorf("tab %s: message %q marked mine = %v, want %v", p.name, want, mine, p == from)
			}
		}
	}
	say(alice, "hi bob, it's alice")
	say(bob, "hello alice <3")

	alice.screenshot("chat-alice.png")
	bob.screenshot("chat-bob.png")
}

// A chat tab whose connection is deleted shows the close code, reconnects
// with a new connection, and chats again.
func TestBrowserChatReconnects(t *testing.T) {
	srv := servertest.StartYAML(t, "")
	page := newBrowser(t, "chat")
	page.do("open the chat", chromedp.Navigate(srv.HTTP+"/_/chat"),
		chromedp.WaitVisible(chromedp.CSS(`#state[data-state="open"]`)))
	items := listConnections(t, srv.HTTP)
	if len(items) != 1 {
		t.Fatalf("the gateway lists %d connections, want 1", len(items))
	}
	first := items[0].ConnectionID

	req, err := http.NewRequest(http.MethodDelete, srv.HTTP+"/@connections/"+url.PathEscape(first), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /@connections/%s: %d, want 204", first, resp.StatusCode)
	}

	page.do("wait for the close code", chromedp.WaitVisible(chromedp.CSS(`#state[data-last-close-code="1000"]`)))
	testutil.Eventually(t, waitTimeout, func() bool {
		items := listConnections(t, srv.HTTP)
		return len(items) == 1 && items[0].ConnectionID != first
	}, "the page did not reconnect with a new connection")
	page.do("wait for the open state again", chromedp.WaitVisible(chromedp.CSS(`#state[data-state="open"]`)))
	page.waitJS("the disconnect and reconnect notices", `(() => {
		const notices = [...document.querySelectorAll('#messages li.system')].map((li) => li.dataset.text);
		return notices.some((n) => n.startsWith('disconnected (code 1000')) && notices.includes('reconnected');
	})()`)
	page.do("send after the reconnect",
		chromedp.SendKeys(chromedp.ID("message"), "back again"),
		chromedp.Click(chromedp.ID("send")),
	)
	page.waitJS("the message after the reconnect",
		`[...document.querySelectorAll('#messages li')].some((li) => li.dataset.text === 'back again')`)
	page.screenshot("chat-reconnected.png")
}

// A gateway that answers 401 gets a token prompt; the token then goes with
// every request as a bearer token, and with the tail stream as access_token.
func TestBrowserTokenPrompt(t *testing.T) {
	const token = "s3cret/+="
	var mu sync.Mutex
	seen := map[string]bool{} // "connections", "stats", "tail": authorized requests
	dash := dashboard.New(dashboard.Options{Stage: "dev", Routes: testRoutes})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var part string
		switch {
		case r.URL.Path == "/_/api/connections":
			part = "connections"
		case r.URL.Path == "/_/api/stats", r.URL.Path == "/_/api/routes":
			part = "stats"
		case r.URL.Path == "/_/api/tail":
			part = "tail"
		default: // the pages and their assets need no token
			dash.ServeHTTP(w, r)
			return
		}
		ok := r.Header.Get("Authorization") == "Bearer "+token
		if part == "tail" {
			ok = r.URL.Query().Get("access_token") == token
		}
		if !ok {
			w.Header().Set("x-amzn-ErrorType", "UnauthorizedException")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"Unauthorized"}`)
			return
		}
		mu.Lock()
		seen[part] = true
		mu.Unlock()
		if part == "connections" {
			_, _ = io.WriteString(w, `{"items":[]}`)
			return
		}
		dash.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	page := newBrowser(t, "dashboard")
	page.do("open the dashboard and wait for the prompt",
		chromedp.Navigate(srv.URL+"/_/"),
		chromedp.WaitVisible(chromedp.ID("token-input")),
	)
	page.screenshot("dashboard-token-prompt.png")
	page.do("enter the token",
		chromedp.SendKeys(chromedp.ID("token-input"), token),
		chromedp.Click(chromedp.ID("token-ok")),
		chromedp.WaitVisible(chromedp.CSS(`#health[data-state="open"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tail-state[data-state="open"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#routes-body tr[data-route-key="sendMessage"]`)),
	)
	mu.Lock()
	defer mu.Unlock()
	for _, part := range []string{"connections", "stats", "tail"} {
		if !seen[part] {
			t.Errorf("no authorized %s request reached the server", part)
		}
	}
}

// refused returns switchboard_management_auth_failures_total{reason}.
func refused(t *testing.T, base, reason string) float64 {
	t.Helper()
	status, body := testutil.Get(t, base+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	var n float64
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, `switchboard_management_auth_failures_total{reason="`+reason+`"} `); ok {
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
		}
	}
	return n
}

// A page of another site cannot drive a gateway that has no management
// credentials through the browser of the person who runs it: the simple
// POST it may send without a preflight is refused, and a name of the
// attacker's rebound to the gateway's address (DNS rebinding, here by the
// browser's host-resolver rules) gets 403 for the dashboard. The gateway's
// own dashboard keeps working (TestBrowserDashboard).
func TestBrowserCrossSitePage(t *testing.T) {
	srv := servertest.StartYAML(t, "")
	c := testutil.Dial(t, srv.WS, nil)
	gw, err := url.Parse(srv.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>loading</title><script>
fetch(%s, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: 'pwned'})
  .then(() => { document.title = 'sent' }, (e) => { document.title = 'failed: ' + e })
</script>`, jsString(srv.HTTP+"/@broadcast"))
	}))
	t.Cleanup(evil.Close)

	page := newBrowser(t, "evil", chromedp.Flag("host-resolver-rules", "MAP rebind.test 127.0.0.1"))
	page.do("open the other site's page", chromedp.Navigate(evil.URL))
	page.waitJS("the page's POST to be sent", `document.title === 'sent'`)
	testutil.Eventually(t, waitTimeout, func() bool { return refused(t, srv.HTTP, "cross_origin") == 1 },
		"the page's POST was not refused as cross-origin")
	// Nothing reached the connection: the next message it gets is this one.
	resp, err := http.Post(srv.HTTP+"/@broadcast", "text/plain", strings.NewReader("after"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, got := testutil.Read(t, c, waitTimeout); got != "after" {
		t.Errorf("the connection received %q, want the later broadcast %q", got, "after")
	}

	page.do("open the dashboard under a rebound name", chromedp.Navigate("http://rebind.test:"+gw.Port()+"/_/"))
	if got := page.text("body"); !strings.Contains(got, "Forbidden") {
		t.Errorf("the dashboard under a rebound name shows %q, want Forbidden", got)
	}
	if n := refused(t, srv.HTTP, "host"); n < 1 {
		t.Errorf("host refusals counted: %v, want at least 1", n)
	}
}
