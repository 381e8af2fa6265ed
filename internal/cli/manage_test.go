package cli_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/auth/sigv4"
	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// manage runs a management command with stdin and returns its stdout.
func manage(t *testing.T, getenv func(string) string, stdin io.Reader, command string, args ...string) (string, error) {
	t.Helper()
	var out, errOut testutil.Buffer
	err := cli.ManageForTest(context.Background(), command, args, getenv, stdin, &out, &errOut)
	return out.String(), err
}

// mustManage runs a management command that must succeed.
func mustManage(t *testing.T, getenv func(string) string, command string, args ...string) string {
	t.Helper()
	out, err := manage(t, getenv, strings.NewReader(""), command, args...)
	if err != nil {
		t.Fatalf("%s %q: %v", command, args, err)
	}
	return out
}

func TestManagePost(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	tests := []struct {
		name   string
		getenv func(string) string
		stdin  string
		args   func(id string) []string
		want   string // received by the client
	}{
		{"stage endpoint", noEnv, "", func(id string) []string { return []string{"--endpoint", gw.HTTP + "/dev", id, "hello"} }, "hello"},
		{"root endpoint, flag last", noEnv, "", func(id string) []string { return []string{id, "hello", "--endpoint", gw.HTTP} }, "hello"},
		{"endpoint from the environment", env(map[string]string{"SWITCHBOARD_ENDPOINT": gw.HTTP + "/dev/"}), "", func(id string) []string { return []string{id, "hi"} }, "hi"},
		{"data from stdin", noEnv, "line one\nline two\n", func(id string) []string { return []string{"--endpoint", gw.HTTP, id, "-"} }, "line one\nline two\n"},
		{"data starting with a dash", noEnv, "", func(id string) []string { return []string{"--endpoint", gw.HTTP, "--", id, "-1"} }, "-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			peer := testutil.Dial(t, gw.WS, nil)
			id := peerID(t, peer)
			out, err := manage(t, tt.getenv, strings.NewReader(tt.stdin), "post", tt.args(id)...)
			if err != nil {
				t.Fatalf("post: %v", err)
			}
			if got := testutil.ReadText(t, peer); got != tt.want {
				t.Errorf("client received %q, want %q", got, tt.want)
			}
			if want := "sent " + strconv.Itoa(len(tt.want)) + " bytes to " + id + "\n"; out != want {
				t.Errorf("stdout = %q, want %q", out, want)
			}
		})
	}
}

// post with IDs separated by commas sends to each in one call and names
// those that were gone.
func TestManagePostMany(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	a, b := testutil.Dial(t, gw.WS, nil), testutil.Dial(t, gw.WS, nil)
	idA, idB := peerID(t, a), peerID(t, b)
	const unknown = "AAAAAAAAAAAAAAA="
	out := mustManage(t, noEnv, "post", "--endpoint", gw.HTTP, idA+","+unknown+","+idB, "to both")
	if want := "sent 7 bytes to 2 connections\ngone: " + unknown + "\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := testutil.ReadText(t, c); got != "to both" {
			t.Errorf("client received %q, want %q", got, "to both")
		}
	}
}

func TestManageGet(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	peer := testutil.Dial(t, gw.WS, &websocket.DialOptions{HTTPHeader: http.Header{"User-Agent": {"cli-test/1"}}})
	id := peerID(t, peer)
	out := mustManage(t, noEnv, "get", "--endpoint", gw.HTTP+"/dev", id)
	var got struct {
		ConnectedAt  string `json:"connectedAt"`
		LastActiveAt string `json:"lastActiveAt"`
		Identity     struct {
			SourceIP  string `json:"sourceIp"`
			UserAgent string `json:"userAgent"`
		} `json:"identity"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("get printed %q: %v", out, err)
	}
	if _, err := time.Parse(time.RFC3339, got.ConnectedAt); err != nil {
		t.Errorf("connectedAt = %q: %v", got.ConnectedAt, err)
	}
	if got.Identity.SourceIP != "127.0.0.1" || got.Identity.UserAgent != "cli-test/1" {
		t.Errorf("identity = %+v, want sourceIp 127.0.0.1 and userAgent cli-test/1", got.Identity)
	}
	if !strings.Contains(out, "\n  \"identity\": {\n    \"sourceIp\"") || !strings.HasSuffix(out, "}\n") {
		t.Errorf("get printed %q, want indented JSON", out)
	}
}

func TestManageDelete(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	peer := testutil.Dial(t, gw.WS, nil)
	id := peerID(t, peer)
	if out := mustManage(t, noEnv, "delete", "--endpoint", gw.HTTP, id); out != "deleted "+id+"\n" {
		t.Errorf("stdout = %q, want %q", out, "deleted "+id+"\n")
	}
	if code, reason := testutil.CloseCode(t, peer, 5*time.Second); code != websocket.StatusNormalClosure {
		t.Errorf("client closed with %d %q, want 1000", code, reason)
	}
}

func TestManageGone(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	const unknown = "R1kmxc2VNjMCFIA="
	tests := []struct {
		command string
		args    []string
	}{
		{"post", []string{unknown, "x"}},
		{"get", []string{unknown}},
		{"delete", []string{unknown}},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			t.Parallel()
			out, err := manage(t, noEnv, nil, tt.command, append([]string{"--endpoint", gw.HTTP + "/dev"}, tt.args...)...)
			want := unknown + ": 410 GoneException: the connection is gone"
			if err == nil || err.Error() != want {
				t.Errorf("%s = %v, want %q", tt.command, err, want)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
		})
	}
}

func TestManagePublishAndBroadcast(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	subscriber := testutil.Dial(t, gw.WS, nil)
	testutil.Write(t, subscriber, `{"action":"subscribe","entityId":"order-42"}`)
	peerID(t, subscriber) // the subscription is done
	other := testutil.Dial(t, gw.WS, nil)
	peerID(t, other)

	if out := mustManage(t, noEnv, "publish", "--endpoint", gw.HTTP, "order-42", `{"status":"shipped"}`); out != "delivered to 1 connection\n" {
		t.Errorf("publish printed %q, want %q", out, "delivered to 1 connection\n")
	}
	if got := testutil.ReadText(t, subscriber); got != `{"status":"shipped"}` {
		t.Errorf("subscriber received %q", got)
	}
	if out := mustManage(t, noEnv, "publish", "--endpoint", gw.HTTP, "nobody/here", "x"); out != "delivered to 0 connections\n" {
		t.Errorf("publish to an empty topic printed %q", out)
	}

	out, err := manage(t, noEnv, strings.NewReader("to everyone"), "broadcast", "--endpoint", gw.HTTP+"/dev", "-")
	if err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	if out != "delivered to 2 connections\n" {
		t.Errorf("broadcast printed %q, want %q", out, "delivered to 2 connections\n")
	}
	for name, c := range map[string]*websocket.Conn{"subscriber": subscriber, "other": other} {
		if got := testutil.ReadText(t, c); got != "to everyone" {
			t.Errorf("%s received %q, want %q", name, got, "to everyone")
		}
	}
}

func TestManageList(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	var want []string
	for range 7 {
		want = append(want, peerID(t, testutil.Dial(t, gw.WS, nil)))
	}
	slices.Sort(want)
	type page struct {
		Items []struct {
			ConnectionID string `json:"connectionId"`
			ConnectedAt  string `json:"connectedAt"`
		} `json:"items"`
		NextCursor *string `json:"nextCursor"`
	}
	list := func(args ...string) (ids []string, next *string) {
		t.Helper()
		out := mustManage(t, noEnv, "list", append([]string{"--endpoint", gw.HTTP}, args...)...)
		var p page
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("list %q printed %q: %v", args, out, err)
		}
		for _, it := range p.Items {
			if it.ConnectedAt == "" {
				t.Errorf("list %q: item %s has no connectedAt", args, it.ConnectionID)
			}
			ids = append(ids, it.ConnectionID)
		}
		return ids, p.NextCursor
	}

	all, next := list("--all", "--limit", "2")
	if !slices.Equal(all, want) || next != nil {
		t.Errorf("list --all --limit 2 = %v (nextCursor %v), want %v and no cursor", all, next, want)
	}
	first, next := list("--limit", "3")
	if !slices.Equal(first, want[:3]) || next == nil || *next == "" {
		t.Fatalf("list --limit 3 = %v (nextCursor %v), want %v and a cursor", first, next, want[:3])
	}
	rest, _ := list("--cursor", *next, "--all")
	if !slices.Equal(rest, want[3:]) {
		t.Errorf("list --cursor C --all = %v, want %v", rest, want[3:])
	}
}

// authServer is a management API stand-in that checks every request with
// the sigv4 Verifier and records what it accepted.
type authServer struct {
	URL  string
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func newAuthServer(t *testing.T) *authServer {
	t.Helper()
	v, err := sigv4.New(sigv4.Options{
		Credentials:  map[string]string{"AKIDEXAMPLE": "the-secret"},
		BearerTokens: []string{"the-token"},
		Region:       "eu-west-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &authServer{}
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.reqs = append(a.reqs, r)
		a.body = append(a.body, string(b))
		a.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/@connections"):
			_, _ = io.WriteString(w, `{"items":[]}`)
		case r.Method == http.MethodGet:
			_, _ = io.WriteString(w, `{"connectedAt":"2025-02-03T01:46:33.523Z"}`)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case strings.Contains(r.URL.Path, "/@connections/"):
		default:
			_, _ = io.WriteString(w, `{"recipients":0}`)
		}
	}), nil))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

func (a *authServer) last() (*http.Request, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		return nil, ""
	}
	return a.reqs[len(a.reqs)-1], a.body[len(a.body)-1]
}

func TestManageAuth(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{"post", "R1kmxc2VNjMCFIA=", "payload"},
		{"get", "R1kmxc2VNjMCFIA="},
		{"delete", "R1kmxc2VNjMCFIA="},
		{"publish", "orders/eu=1", "payload"},
		{"broadcast", "payload"},
		{"list", "--limit", "5"},
	}
	tests := []struct {
		name   string
		flags  []string
		env    map[string]string
		bearer bool   // want Authorization: Bearer; else SigV4
		denied bool   // want 403 ForbiddenException
		token  string // want X-Amz-Security-Token
	}{
		{name: "token flag", flags: []string{"--token", "the-token"}, bearer: true},
		{name: "token env, over keys", env: map[string]string{"SWITCHBOARD_TOKEN": "the-token", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "the-secret"}, bearer: true},
		{name: "wrong token", flags: []string{"--token", "nope"}, bearer: true, denied: true},
		{name: "key flags", flags: []string{"--access-key-id", "AKIDEXAMPLE", "--secret-access-key", "the-secret", "--region", "eu-west-1"}},
		{name: "key env", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "the-secret", "AWS_SESSION_TOKEN": "sess", "AWS_REGION": "eu-west-1"}, token: "sess"},
		{name: "key flags ignore the env session token", flags: []string{"--access-key-id", "AKIDEXAMPLE", "--secret-access-key", "the-secret"}, env: map[string]string{"AWS_SESSION_TOKEN": "sess", "AWS_DEFAULT_REGION": "eu-west-1"}},
		{name: "wrong secret", flags: []string{"--access-key-id", "AKIDEXAMPLE", "--secret-access-key", "wrong", "--region", "eu-west-1"}, denied: true},
		{name: "default region us-east-1", flags: []string{"--access-key-id", "AKIDEXAMPLE", "--secret-access-key", "the-secret"}, denied: true},
		{name: "no credentials", denied: true},
	}
	for _, tt := range tests {
		for _, cmd := range commands {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				t.Parallel()
				srv := newAuthServer(t)
				vars := map[string]string{"SWITCHBOARD_ENDPOINT": srv.URL + "/dev"}
				for k, v := range tt.env {
					vars[k] = v
				}
				out, err := manage(t, env(vars), nil, cmd[0], append(slices.Clone(tt.flags), cmd[1:]...)...)
				if tt.denied {
					if err == nil || !strings.Contains(err.Error(), "403 ForbiddenException: Forbidden") {
						t.Fatalf("%s = %v, want 403 ForbiddenException", cmd[0], err)
					}
					for _, secret := range []string{"the-secret", "wrong", "the-token", "nope"} {
						if strings.Contains(out+err.Error(), secret) {
							t.Errorf("a secret was printed: %q, %v", out, err)
						}
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", cmd[0], err)
				}
				r, body := srv.last()
				if r == nil {
					t.Fatal("the server accepted no request")
				}
				authz := r.Header.Get("Authorization")
				if tt.bearer != strings.HasPrefix(authz, "Bearer ") {
					t.Errorf("Authorization = %q, want bearer %v", authz, tt.bearer)
				}
				if !tt.bearer {
					if !strings.HasPrefix(authz, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(authz, "/eu-west-1/execute-api/aws4_request") {
						t.Errorf("Authorization = %q, want a SigV4 signature for execute-api in eu-west-1", authz)
					}
					sum := sha256.Sum256([]byte(body))
					if got := r.Header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
						t.Errorf("X-Amz-Content-Sha256 = %q, want the body's hash", got)
					}
				}
				if got := r.Header.Get("X-Amz-Security-Token"); got != tt.token {
					t.Errorf("X-Amz-Security-Token = %q, want %q", got, tt.token)
				}
				switch cmd[0] {
				case "post", "get", "delete":
					if want := "/dev/@connections/R1kmxc2VNjMCFIA%3D"; r.RequestURI != want {
						t.Errorf("request URI = %q, want %q", r.RequestURI, want)
					}
				case "publish":
					if want := "/dev/@topics/orders%2Feu%3D1"; r.RequestURI != want {
						t.Errorf("request URI = %q, want %q", r.RequestURI, want)
					}
				case "list":
					if want := "/dev/@connections?limit=5"; r.RequestURI != want {
						t.Errorf("request URI = %q, want %q", r.RequestURI, want)
					}
				}
			})
		}
	}
}

func TestManageProtectedGateway(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, `
management:
  accessKeys: {AKIDEXAMPLE: the-secret}
  tokens: [the-token]
  region: eu-west-1
`)
	tests := []struct {
		name    string
		env     map[string]string
		flags   []string
		wantErr string
	}{
		{name: "bearer token", flags: []string{"--token", "the-token"}},
		{name: "SigV4", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "the-secret", "AWS_REGION": "eu-west-1"}},
		{name: "no credentials", wantErr: "403 ForbiddenException"},
		{name: "wrong region", flags: []string{"--access-key-id", "AKIDEXAMPLE", "--secret-access-key", "the-secret", "--region", "us-west-2"}, wantErr: "403 ForbiddenException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			peer := testutil.Dial(t, gw.WS, nil)
			id := peerID(t, peer)
			vars := map[string]string{"SWITCHBOARD_ENDPOINT": gw.HTTP + "/dev"}
			for k, v := range tt.env {
				vars[k] = v
			}
			_, err := manage(t, env(vars), nil, "post", append(slices.Clone(tt.flags), id, "signed")...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("post = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("post: %v", err)
			}
			if got := testutil.ReadText(t, peer); got != "signed" {
				t.Errorf("client received %q, want %q", got, "signed")
			}
			if _, err := manage(t, env(vars), nil, "get", append(slices.Clone(tt.flags), id)...); err != nil {
				t.Errorf("get: %v", err)
			}
		})
	}
}

func TestManageArgsStartingWithDash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantURI  string
		wantBody string
	}{
		{"connection ID starting with a dash", []string{"-XLminO4N9cG6LM=", "data"}, "/dev/@connections/-XLminO4N9cG6LM%3D", "data"},
		{"negative number as data", []string{"R1kmxc2VNjMCFIA=", "-1"}, "/dev/@connections/R1kmxc2VNjMCFIA%3D", "-1"},
		{"ID that is a flag name, after --", []string{"--", "-h", "data"}, "/dev/@connections/-h", "data"},
		{"flag=value among arguments", []string{"R1kmxc2VNjMCFIA=", "--token=the-token", "data"}, "/dev/@connections/R1kmxc2VNjMCFIA%3D", "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAuthServer(t)
			getenv := env(map[string]string{"SWITCHBOARD_ENDPOINT": srv.URL + "/dev", "SWITCHBOARD_TOKEN": "the-token"})
			if _, err := manage(t, getenv, nil, "post", tt.args...); err != nil {
				t.Fatalf("post %q: %v", tt.args, err)
			}
			r, body := srv.last()
			if r.RequestURI != tt.wantURI || body != tt.wantBody {
				t.Errorf("post %q sent %s with %q, want %s with %q", tt.args, r.RequestURI, body, tt.wantURI, tt.wantBody)
			}
		})
	}
}

func TestManageErrors(t *testing.T) {
	t.Parallel()
	answer := func(status int, typ, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if typ != "" {
				w.Header().Set("x-amzn-ErrorType", typ)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name     string
		endpoint string
		want     string
	}{
		{"message", answer(413, "PayloadTooLargeException", `{"message":"Request payload exceeds the limit"}`), "413 PayloadTooLargeException: Request payload exceeds the limit"},
		{"AWS capitalised Message and a type namespace", answer(403, "ForbiddenException:http://internal.amazon.com/coral/", `{"Message":"Bad keys"}`), "403 ForbiddenException: Bad keys"},
		{"no type, text body", answer(502, "", "upstream down\n"), "502 Bad Gateway: upstream down"},
		{"redirect not followed", answer(http.StatusMovedPermanently, "", ""), "301 Moved Permanently"},
		{"success that is not a delivery", answer(200, "", `{"ok":true}`), "unexpected answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := manage(t, noEnv, nil, "broadcast", "--endpoint", tt.endpoint, "x")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("broadcast = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestManageArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		command string
		args    []string
		env     map[string]string
		want    string
	}{
		{"unknown command", "send", []string{"x"}, nil, `unknown management command "send"`},
		{"missing data", "post", []string{"id"}, nil, "usage: switchboard post [flags] CONNECTION_ID DATA"},
		{"too many arguments", "get", []string{"a", "b"}, nil, "usage: switchboard get [flags] CONNECTION_ID"},
		{"empty connection ID", "delete", []string{""}, nil, "usage: switchboard delete"},
		{"list takes no argument", "list", []string{"x"}, nil, "usage: switchboard list [flags]"},
		{"negative limit", "list", []string{"--limit", "-1"}, nil, "--limit"},
		{"limit is list's only", "get", []string{"--limit", "2", "id"}, nil, "flag provided but not defined: --limit"},
		{"flag missing its value", "get", []string{"id", "--endpoint"}, nil, "flag needs an argument"},
		{"endpoint not HTTP", "get", []string{"--endpoint", "ws://127.0.0.1:1", "id"}, nil, "--endpoint"},
		{"key without secret", "get", []string{"id"}, map[string]string{"AWS_ACCESS_KEY_ID": "AKID"}, "both --access-key-id and --secret-access-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := manage(t, env(tt.env), nil, tt.command, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %q = %v, want an error containing %q", tt.command, tt.args, err, tt.want)
			}
		})
	}
}

func TestHelpPrintsNoSecret(t *testing.T) {
	t.Parallel()
	getenv := env(map[string]string{"SWITCHBOARD_TOKEN": "tok-s3cr3t", "AWS_SECRET_ACCESS_KEY": "key-s3cr3t", "SWITCHBOARD_ENDPOINT": "http://example.test"})
	for _, command := range []string{"post", "get", "delete", "publish", "broadcast", "list"} {
		var out, errOut testutil.Buffer
		err := cli.Manage(context.Background(), command, []string{"-h"}, getenv, &out, &errOut)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s -h = %v, want flag.ErrHelp", command, err)
		}
		help := out.String()
		if errOut.String() != "" {
			t.Errorf("%s -h wrote %q on stderr, want the help on stdout only", command, &errOut)
		}
		if !strings.Contains(help, "Usage: switchboard "+command) || !strings.Contains(help, "--secret-access-key") || !strings.Contains(help, "Examples:") {
			t.Errorf("%s -h printed %q, want the usage and flags", command, help)
		}
		if strings.Contains(help, "s3cr3t") {
			t.Errorf("%s -h printed a secret from the environment:\n%s", command, help)
		}
	}
	var out, errOut testutil.Buffer
	if err := cli.Connect(context.Background(), []string{"-h"}, noEnv, nil, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("connect -h = %v, want flag.ErrHelp", err)
	}
	if !strings.HasPrefix(out.String(), "Usage: switchboard connect") || !strings.Contains(out.String(), "--max-message-bytes") || errOut.String() != "" {
		t.Errorf("connect -h printed %q on stdout and %q on stderr, want its help on stdout", &out, &errOut)
	}
}
