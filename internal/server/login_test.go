package server_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

const protectedConfig = `
management:
  accessKeys: {AKIDLOGIN: login-secret}
  tokens: [login-token-123]
`

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func dashDo(t *testing.T, method, target, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// signIn posts the sign-in form from the gateway's own origin and returns
// the session cookie as a Cookie header.
func signIn(t *testing.T, base string, form url.Values) string {
	t.Helper()
	resp, body := dashDo(t, "POST", base+"/_/login", form.Encode(), http.Header{
		"Origin": {base}, "Content-Type": {"application/x-www-form-urlencoded"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /_/login: %d %s, want 303", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "switchboard_session" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("POST /_/login: no session cookie in %v", resp.Header["Set-Cookie"])
	return ""
}

// With credentials configured, a browser gets a sign-in page, never JSON;
// a session then opens the dashboard and its API, but never the management
// API, which still takes SigV4 or a bearer token only.
func TestDashboardSignIn(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, protectedConfig)
	c := testutil.Dial(t, srv.WS, nil)

	resp, body := dashDo(t, "GET", srv.HTTP+"/_/", "", http.Header{"Accept": {"text/html"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `action="login"`) || strings.HasPrefix(strings.TrimSpace(body), "{") {
		t.Fatalf("GET /_/ without a session: %d %s %q, want the sign-in page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp, _ := dashDo(t, "GET", srv.HTTP+"/_/style.css", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /_/style.css without a session: %d, want 200 (the sign-in page needs it)", resp.StatusCode)
	}
	if resp, _ := dashDo(t, "GET", srv.HTTP+"/_/api/connections", "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /_/api/connections without a session: %d, want 403", resp.StatusCode)
	}

	for _, form := range []url.Values{
		{"token": {"login-token-123"}},
		{"accessKeyId": {"AKIDLOGIN"}, "secretAccessKey": {"login-secret"}},
	} {
		cookie := signIn(t, srv.HTTP, form)
		session := http.Header{"Cookie": {cookie}}
		if resp, body := dashDo(t, "GET", srv.HTTP+"/_/", "", session); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Switchboard dashboard") {
			t.Errorf("GET /_/ signed in: %d, want the dashboard", resp.StatusCode)
		}
		resp, body := dashDo(t, "GET", srv.HTTP+"/_/api/connections", "", session)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"items":[{"connectionId"`) {
			t.Errorf("GET /_/api/connections signed in: %d %s, want the listing", resp.StatusCode, body)
		}
		// The management API takes no cookie.
		for _, p := range []string{"/@connections", "/dev/@connections", "/metrics"} {
			resp, body := dashDo(t, "GET", srv.HTTP+p, "", session)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-amzn-ErrorType") != "ForbiddenException" {
				t.Errorf("GET %s with a session cookie: %d %s, want 403 ForbiddenException", p, resp.StatusCode, body)
			}
		}
		// A POST of the session must come from the gateway's own origin.
		if resp, _ := dashDo(t, "POST", srv.HTTP+"/_/api/broadcast", "from another origin", http.Header{"Cookie": {cookie}, "Origin": {"http://localhost:1"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST /_/api/broadcast from another origin: %d, want 403", resp.StatusCode)
		}
		if resp, _ := dashDo(t, "POST", srv.HTTP+"/_/api/broadcast", "without origin", session); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST /_/api/broadcast without Origin: %d, want 403", resp.StatusCode)
		}
		if resp, body := dashDo(t, "POST", srv.HTTP+"/_/api/broadcast", "hello "+form.Encode(), http.Header{"Cookie": {cookie}, "Origin": {srv.HTTP}}); resp.StatusCode != http.StatusOK {
			t.Errorf("POST /_/api/broadcast signed in: %d %s, want 200", resp.StatusCode, body)
		}
		if got := testutil.ReadText(t, c); got != "hello "+form.Encode() {
			t.Errorf("the connection received %q, want the dashboard's broadcast (nothing refused may arrive)", got)
		}

		resp, _ = dashDo(t, "POST", srv.HTTP+"/_/logout", "", http.Header{"Cookie": {cookie}, "Origin": {srv.HTTP}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("POST /_/logout: %d, want 303", resp.StatusCode)
		}
		if resp, _ := dashDo(t, "GET", srv.HTTP+"/_/api/connections", "", session); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET /_/api/connections after sign-out: %d, want 403", resp.StatusCode)
		}
	}
	// The bearer token still opens the dashboard's API without a session.
	if resp, _ := dashDo(t, "GET", srv.HTTP+"/_/api/connections", "", http.Header{"Authorization": {"Bearer login-token-123"}}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /_/api/connections with the bearer token: %d, want 200", resp.StatusCode)
	}
	// So do the AWS SDKs the management API.
	client := apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.HTTP + "/dev"), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDLOGIN", SecretAccessKey: "login-secret"}, nil
		}),
	})
	var gone *types.GoneException
	if _, err := client.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String("AAAAAAAAAAAAAAA="), Data: []byte("x")}); !errors.As(err, &gone) {
		t.Errorf("SigV4 PostToConnection to an unknown ID: %v, want GoneException", err)
	}
}

// Refused sign-ins are counted like other refused management requests,
// and limited per address.
func TestDashboardSignInRefusals(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, protectedConfig)
	post := func(token, origin string) (*http.Response, string) {
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return dashDo(t, "POST", srv.HTTP+"/_/login", url.Values{"token": {token}}.Encode(), h)
	}
	if resp, body := post("login-token-123", "http://evil.example"); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("sign-in from another origin: %d %s, want 403 without a cookie", resp.StatusCode, body)
	}
	if resp, _ := post("login-token-123", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-in without Origin: %d, want 403", resp.StatusCode)
	}
	for i := range 10 {
		resp, body := post("wrong", srv.HTTP)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not accepted by this gateway") {
			t.Fatalf("wrong token, attempt %d: %d, want 401 and the page saying so", i+1, resp.StatusCode)
		}
	}
	resp, body := post("login-token-123", srv.HTTP)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many sign-in attempts") {
		t.Errorf("the 11th attempt in a minute: %d, want 429", resp.StatusCode)
	}
	metrics := func() string {
		_, body := dashDo(t, "GET", srv.HTTP+"/metrics", "", http.Header{"Authorization": {"Bearer login-token-123"}})
		return body
	}()
	for _, want := range []string{
		`switchboard_management_auth_failures_total{reason="login_failed"} 10`,
		`switchboard_management_auth_failures_total{reason="login_rate"} 1`,
		`switchboard_management_auth_failures_total{reason="cross_origin"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// The banner of a gateway with credentials links only what a browser can
// open: the dashboard, the chat page and /healthz.
func TestBannerLinksOnlyWhatOpens(t *testing.T) {
	t.Parallel()
	srv := servertest.StartYAML(t, protectedConfig+"pprof: true\n")
	addr := strings.TrimPrefix(srv.HTTP, "http://")
	banner := srv.Banner(addr, addr, false)
	for _, line := range strings.Split(banner, "\n") {
		for _, word := range strings.Fields(line) {
			u, ok := strings.CutPrefix(word, "http://")
			if !ok {
				continue
			}
			u = strings.TrimRight(u, ")")
			resp, body := dashDo(t, "GET", "http://"+u, "", http.Header{"Accept": {"text/html"}})
			if resp.StatusCode != http.StatusOK && !(resp.StatusCode == http.StatusUnauthorized && strings.Contains(body, `action="login"`)) {
				t.Errorf("the banner links %s, which answers %d", u, resp.StatusCode)
			}
		}
	}
	for _, want := range []string{srv.HTTP + "/_/", "sign in", srv.HTTP + "/healthz"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	for _, unwanted := range []string{srv.HTTP + "/@connections", srv.HTTP + "/metrics", srv.HTTP + "/debug/pprof/"} {
		if strings.Contains(banner, unwanted) {
			t.Errorf("banner links %q, which needs credentials:\n%s", unwanted, banner)
		}
	}
}

// A reload that keeps the management credentials keeps the dashboard's
// sessions; one that changes them signs everyone out.
func TestReloadAndDashboardSessions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := servertest.Start(t, loadYAML(t, dir, protectedConfig))
	session := http.Header{"Cookie": {signIn(t, srv.HTTP, url.Values{"token": {"login-token-123"}})}}
	status := func() int {
		resp, _ := dashDo(t, "GET", srv.HTTP+"/_/api/connections", "", session)
		return resp.StatusCode
	}
	if err := srv.Reload(loadYAML(t, dir, protectedConfig+"limits: {maxPostBytes: 4096}\n")); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusOK {
		t.Errorf("after a reload with the same credentials: %d, want 200", got)
	}
	if err := srv.Reload(loadYAML(t, dir, "management:\n  tokens: [another-token-456]\n")); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != http.StatusForbidden {
		t.Errorf("after a reload that changed the credentials: %d, want 403", got)
	}
}
