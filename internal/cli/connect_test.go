package cli_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

const sendHi = `{"action":"sendMessage","data":"hi"}`

func TestConnectExecute(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	var out, errOut testutil.Buffer
	err := cli.Connect(context.Background(), []string{gw.WS, "--execute", sendHi, "--wait", "300ms"}, noEnv, strings.NewReader(""), &out, &errOut)
	if err != nil {
		t.Fatalf("Connect: %v; stderr:\n%s", err, &errOut)
	}
	// The broadcast route sends "hi" to every connection, the sender included;
	// --execute prints it as it came, with no marker.
	if got := out.String(); got != "hi\n" {
		t.Errorf("stdout = %q, want %q", got, "hi\n")
	}
	for _, want := range []string{"Connected\n", "Disconnected (code 1000: Normal closure)\n"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr = %q, want it to contain %q", &errOut, want)
		}
	}
}

func TestConnectExecuteNoWait(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	peer := testutil.Dial(t, gw.WS, nil)
	peerID(t, peer) // the peer is registered before the broadcast
	var out, errOut testutil.Buffer
	start := time.Now()
	err := cli.Connect(context.Background(), []string{"--wait", "0", "--execute", sendHi, gw.WS}, noEnv, strings.NewReader(""), &out, &errOut)
	if err != nil {
		t.Fatalf("Connect: %v; stderr:\n%s", err, &errOut)
	}
	if d := time.Since(start); d > 1500*time.Millisecond { // well under the default --wait of 2s
		t.Errorf("Connect --wait 0 took %v, want it to return right after sending", d)
	}
	if got := testutil.ReadText(t, peer); got != "hi" {
		t.Errorf("peer received %q, want %q", got, "hi")
	}
}

func TestConnectInteractive(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	stdin, typing := io.Pipe()
	run := startConnect(context.Background(), []string{gw.WS}, stdin)
	waitFor(t, "stderr", run.stderr, "Connected\n")
	var ids []string
	testutil.Eventually(t, 5*time.Second, func() bool { ids = connIDs(t, gw.HTTP); return len(ids) == 1 }, "connections = %v, want the command's only", ids)
	peer := testutil.Dial(t, gw.WS, nil)
	peerID(t, peer)

	// A typed line is sent (the peer gets the broadcast), echoed as "> ..."
	// since stdout is not a terminal, and comes back as "< ...".
	line := `{"action":"sendMessage","data":"typed"}`
	if _, err := io.WriteString(typing, line+"\n\n"); err != nil { // the empty line is skipped
		t.Fatal(err)
	}
	if got := testutil.ReadText(t, peer); got != "typed" {
		t.Errorf("peer received %q, want %q", got, "typed")
	}
	waitFor(t, "stdout", run.stdout, "< typed\n")

	// A message pushed by the management API is printed.
	if status := mgmt(t, http.MethodPost, gw.HTTP+"/@connections/"+ids[0], "pushed"); status != http.StatusOK {
		t.Fatalf("POST /@connections/%s = %d, want 200", ids[0], status)
	}
	waitFor(t, "stdout", run.stdout, "< pushed\n")

	// End of input closes with 1000 and succeeds.
	typing.Close()
	if err := run.wait(t); err != nil {
		t.Fatalf("Connect after EOF = %v, want nil", err)
	}
	if want := "> " + line + "\n< typed\n< pushed\n"; run.stdout.String() != want {
		t.Errorf("stdout = %q, want %q", run.stdout, want)
	}
	if !strings.Contains(run.stderr.String(), "Disconnected (code 1000: Normal closure)") {
		t.Errorf("stderr = %q, want the disconnect reported", run.stderr)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(connIDs(t, gw.HTTP)) == 1 }, "the command's connection is still listed")
}

func TestConnectDeletedByServer(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	stdin, typing := io.Pipe()
	defer typing.Close()
	run := startConnect(context.Background(), []string{gw.WS}, stdin)
	waitFor(t, "stderr", run.stderr, "Connected\n")
	var ids []string
	testutil.Eventually(t, 5*time.Second, func() bool { ids = connIDs(t, gw.HTTP); return len(ids) == 1 }, "connections = %v, want the command's only", ids)
	if status := mgmt(t, http.MethodDelete, gw.HTTP+"/@connections/"+ids[0], ""); status != http.StatusNoContent {
		t.Fatalf("DELETE /@connections/%s = %d, want 204", ids[0], status)
	}
	if err := run.wait(t); err != nil {
		t.Fatalf("Connect after DeleteConnection = %v, want nil (close 1000)", err)
	}
	if want := "Disconnected (code 1000: Connection Closed Normally)\n"; !strings.Contains(run.stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", run.stderr, want)
	}
	// The pending read of stdin was released: the pipe is closed.
	if _, err := io.WriteString(typing, "late\n"); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to stdin after Connect returned: err = %v, want io.ErrClosedPipe", err)
	}
}

func TestConnectServerEnds(t *testing.T) {
	t.Parallel()
	text := func(s string) func(ctx context.Context, c *websocket.Conn) error {
		return func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(s))
		}
	}
	binary := func(b []byte) func(ctx context.Context, c *websocket.Conn) error {
		return func(ctx context.Context, c *websocket.Conn) error { return c.Write(ctx, websocket.MessageBinary, b) }
	}
	long := make([]byte, 40)
	for i := range long {
		long[i] = byte(i)
	}
	tests := []struct {
		name       string
		args       []string
		send       []func(context.Context, *websocket.Conn) error
		code       websocket.StatusCode // 0: drop the connection without a close frame
		reason     string
		wantOut    string
		wantErrOut string // in stderr
		wantErr    string // in the error; "" for success
	}{
		{
			name: "text and binary, then 1000", code: 1000, reason: "bye",
			send:       []func(context.Context, *websocket.Conn) error{text("hello"), binary([]byte{0, 1, 0xab})},
			wantOut:    "< hello\n< [binary 3 bytes] 0001ab\n",
			wantErrOut: "Disconnected (code 1000: bye)\n",
		},
		{
			name: "long binary shows a prefix", code: 1000,
			send:       []func(context.Context, *websocket.Conn) error{binary(long)},
			wantOut:    "< [binary 40 bytes] 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f...\n",
			wantErrOut: "Disconnected (code 1000: Normal closure)\n",
		},
		{name: "1001 succeeds", code: 1001, wantErrOut: "Disconnected (code 1001: Going away)\n"},
		{name: "1011 fails", code: 1011, reason: "boom", wantErrOut: "Disconnected (code 1011: boom)\n", wantErr: "code 1011: boom"},
		{name: "application code fails", code: 4000, wantErrOut: "Disconnected (code 4000)\n", wantErr: "code 4000"},
		{name: "dropped connection fails", code: 0, wantErr: "connection lost"},
		{
			name: "message over --max-message-bytes", args: []string{"--max-message-bytes", "8"}, code: 1000,
			send:       []func(context.Context, *websocket.Conn) error{text("more than eight bytes")},
			wantErrOut: "Disconnected (code 1009: Message too big)\n",
			wantErr:    "exceeded --max-message-bytes 8",
		},
		{
			name: "--execute ends early when the server closes", args: []string{"--execute", "x", "--wait", "1m"}, code: 1000,
			send:       []func(context.Context, *websocket.Conn) error{text("answer")},
			wantOut:    "answer\n",
			wantErrOut: "Disconnected (code 1000: Normal closure)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := wsServer(t, nil, func(ctx context.Context, c *websocket.Conn, _ *http.Request) {
				for _, send := range tt.send {
					if err := send(ctx, c); err != nil {
						t.Errorf("server write: %v", err)
						return
					}
				}
				if tt.code != 0 {
					_ = c.Close(tt.code, tt.reason)
				}
			})
			stdin, typing := io.Pipe() // never written: Connect must release it
			defer typing.Close()
			run := startConnect(context.Background(), append(tt.args, url), stdin)
			err := run.wait(t)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Connect = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Connect = %v, want an error containing %q", err, tt.wantErr)
			}
			if got := run.stdout.String(); got != tt.wantOut {
				t.Errorf("stdout = %q, want %q", got, tt.wantOut)
			}
			if !strings.Contains(run.stderr.String(), tt.wantErrOut) {
				t.Errorf("stderr = %q, want it to contain %q", run.stderr, tt.wantErrOut)
			}
		})
	}
}

func TestConnectCancelClosesNormally(t *testing.T) {
	t.Parallel()
	got := make(chan websocket.StatusCode, 1)
	url := wsServer(t, nil, func(ctx context.Context, c *websocket.Conn, _ *http.Request) {
		_ = c.Write(ctx, websocket.MessageText, []byte("ready"))
		for {
			if _, _, err := c.Read(ctx); err != nil {
				got <- websocket.CloseStatus(err)
				return
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	stdin, typing := io.Pipe()
	defer typing.Close()
	run := startConnect(ctx, []string{url}, stdin)
	waitFor(t, "stdout", run.stdout, "< ready\n")
	cancel() // Ctrl-C
	if err := run.wait(t); err != nil {
		t.Fatalf("Connect after cancel = %v, want nil", err)
	}
	if code := <-got; code != websocket.StatusNormalClosure {
		t.Errorf("server saw close code %d, want 1000", code)
	}
}

func TestConnectHandshake(t *testing.T) {
	t.Parallel()
	type request struct {
		header http.Header
		host   string
	}
	got := make(chan request, 1)
	url := wsServer(t, &websocket.AcceptOptions{Subprotocols: []string{"v2.chat"}}, func(ctx context.Context, c *websocket.Conn, r *http.Request) {
		got <- request{r.Header.Clone(), r.Host}
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
	args := []string{
		"--header", "Authorization: Bearer abc",
		"--header", "X-Tenant: a", "--header", "X-Tenant:b",
		"--header", "Host: chat.example",
		"--subprotocol", "v1.chat", "--subprotocol", "v2.chat",
		url,
	}
	run := startConnect(context.Background(), args, strings.NewReader(""))
	if err := run.wait(t); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	r := <-got
	if v := r.header.Get("Authorization"); v != "Bearer abc" {
		t.Errorf("Authorization = %q, want %q", v, "Bearer abc")
	}
	if v := r.header.Values("X-Tenant"); len(v) != 2 || v[0] != "a" || v[1] != "b" {
		t.Errorf("X-Tenant = %q, want [a b]", v)
	}
	if v := r.header.Get("User-Agent"); v != "switchboard-cli" {
		t.Errorf("User-Agent = %q, want switchboard-cli", v)
	}
	if r.host != "chat.example" {
		t.Errorf("Host = %q, want chat.example", r.host)
	}
	if v := strings.ReplaceAll(r.header.Get("Sec-WebSocket-Protocol"), " ", ""); v != "v1.chat,v2.chat" {
		t.Errorf("Sec-WebSocket-Protocol = %q, want v1.chat and v2.chat, in order", v)
	}
	if !strings.Contains(run.stderr.String(), "Connected (subprotocol: v2.chat)\n") {
		t.Errorf("stderr = %q, want the chosen subprotocol reported", run.stderr)
	}
}

func TestConnectGatewaySubprotocol(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, "")
	var out, errOut testutil.Buffer
	err := cli.Connect(context.Background(), []string{"--subprotocol", "websocket", "--execute", "x", "--wait", "0", gw.WS}, noEnv, strings.NewReader(""), &out, &errOut)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if !strings.Contains(errOut.String(), "Connected (subprotocol: websocket)\n") {
		t.Errorf("stderr = %q, want the gateway's echo of the subprotocol reported", &errOut)
	}
}

func TestConnectRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		want   string
	}{
		{http.StatusUnauthorized, "handshake refused: 401 Unauthorized: no"},
		{http.StatusForbidden, "handshake refused: 403 Forbidden: no"},
		{http.StatusBadGateway, "handshake refused: 502 Bad Gateway: no"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, `{"message":"no"}`, tt.status)
			}))
			defer srv.Close()
			var out, errOut testutil.Buffer
			err := cli.Connect(context.Background(), []string{srv.URL}, noEnv, strings.NewReader(""), &out, &errOut)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Connect = %v, want %q", err, tt.want)
			}
			if out.String() != "" || strings.Contains(errOut.String(), "Connected") {
				t.Errorf("output after a refused handshake: stdout %q, stderr %q", &out, &errOut)
			}
		})
	}
}

func TestConnectArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no URL", nil, "want a URL"},
		{"two URLs", []string{"ws://a", "ws://b"}, "want one URL"},
		{"header without colon", []string{"--header", "X-Tenant", "ws://a"}, `--header "X-Tenant"`},
		{"header with empty name", []string{"--header", ": v", "ws://a"}, "--header"},
		{"negative wait", []string{"--wait", "-1s", "ws://a"}, "--wait"},
		{"unknown flag", []string{"--nope", "ws://a"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut testutil.Buffer
			err := cli.Connect(context.Background(), tt.args, noEnv, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Connect(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}
