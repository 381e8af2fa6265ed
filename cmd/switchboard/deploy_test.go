package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

const unitPath = "../../deploy/switchboard.service"

// unit is the [Service] section of deploy/switchboard.service.
type unit struct {
	exec   []string          // ExecStart, split on spaces
	reload []string          // ExecReload
	env    map[string]string // Environment=
	keys   map[string]string // every key, the last value
}

func readUnit(t *testing.T) unit {
	t.Helper()
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{env: map[string]string{}, keys: map[string]string{}}
	section := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", unitPath, line)
		}
		if section != "[Service]" {
			continue
		}
		u.keys[k] = v
		switch k {
		case "ExecStart":
			u.exec = strings.Fields(v)
		case "ExecReload":
			u.reload = strings.Fields(v)
		case "Environment":
			ek, ev, _ := strings.Cut(v, "=")
			u.env[ek] = ev
		}
	}
	return u
}

// systemd itself finds nothing wrong with the unit, once its ExecStart
// names an executable that exists on this machine.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "switchboard.service")
	writeFile(t, copyPath, strings.ReplaceAll(string(b), "/usr/local/bin/switchboard", exe))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, analyze, "verify", copyPath).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The unit's ExecStart runs the gateway with the real serve flags and its
// environment; its ExecReload sends SIGHUP, which reloads the configuration
// without dropping a connection. The hardening the docs describe is there.
func TestSystemdUnitStartsAndReloads(t *testing.T) {
	t.Parallel()
	u := readUnit(t)
	for k, want := range map[string]string{
		"Type": "simple", "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"StateDirectory": "switchboard", "LimitNOFILE": "1048576",
	} {
		if got := u.keys[k]; got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if u.env["SWITCHBOARD_DATA_DIR"] != "/var/lib/"+u.keys["StateDirectory"] {
		t.Errorf("SWITCHBOARD_DATA_DIR=%q is not the StateDirectory", u.env["SWITCHBOARD_DATA_DIR"])
	}
	if len(u.exec) < 2 || u.exec[0] != "/usr/local/bin/switchboard" || u.exec[1] != "serve" {
		t.Fatalf("ExecStart=%v, want /usr/local/bin/switchboard serve ...", u.exec)
	}
	// The unit's command line and environment, with this machine's paths.
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	writeFile(t, cfgPath, "routes:\n  $default: {integration: {type: mock, response: v1}}\n")
	args := append([]string(nil), u.exec[2:]...)
	for i, a := range args {
		if a == "/etc/switchboard/switchboard.yaml" {
			args[i] = cfgPath
		}
	}
	var env []string
	for k, v := range u.env {
		switch k {
		case "SWITCHBOARD_LISTEN":
			v = "127.0.0.1:0"
		case "SWITCHBOARD_DATA_DIR":
			v = filepath.Join(dir, "state")
		}
		env = append(env, k+"="+v)
	}
	p := startProcessEnv(t, env, args...)
	c := testutil.Dial(t, p.ws, nil)
	if got := testutil.ReadTextAfter(t, c, "hi"); got != "v1" {
		t.Fatalf("before reload: %q, want v1", got)
	}

	writeFile(t, cfgPath, "routes:\n  $default: {integration: {type: mock, response: v2}}\n")
	reload := strings.ReplaceAll(strings.Join(u.reload, " "), "$MAINPID", strconv.Itoa(p.cmd.Process.Pid))
	f := strings.Fields(reload)
	if out, err := exec.Command(f[0], f[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v %s", reload, err, out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(p.stderr.String(), `"msg":"configuration reloaded"`) },
		"the reload is logged as JSON; stderr:\n%s", p.stderr)
	if got := testutil.ReadTextAfter(t, c, "hi"); got != "v2" {
		t.Errorf("after reload, the same connection got %q, want v2", got)
	}
}

// Behind a reverse proxy that appends the client's address to
// X-Forwarded-For (as nginx's $proxy_add_x_forwarded_for and Go's
// httputil.ReverseProxy do), the gateway believes the header only when the
// proxy is in trustedProxies; a value the client forged is ignored either
// way. WebSocket upgrades and /healthz pass through.
func TestBehindAReverseProxy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		config string
		wantIP string
	}{
		{"proxy trusted", "trustedProxies: [127.0.0.1]\n", "127.0.0.2"},
		{"proxy not trusted", "", "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfgPath := filepath.Join(t.TempDir(), "switchboard.yaml")
			writeFile(t, cfgPath, tt.config)
			gw := startProcess(t, "--config", cfgPath)
			target, err := url.Parse(gw.http)
			if err != nil {
				t.Fatal(err)
			}
			proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
			t.Cleanup(proxy.Close)

			// The client comes from 127.0.0.2 and forges a header.
			client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
				LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")},
			}).DialContext}}
			c := testutil.Dial(t, "ws"+strings.TrimPrefix(proxy.URL, "http"), &websocket.DialOptions{
				HTTPClient: client,
				HTTPHeader: http.Header{"X-Forwarded-For": {"203.0.113.66"}},
			})
			testutil.Write(t, c, `{"action":"sendMessage","data":"through the proxy"}`)
			if got := testutil.ReadText(t, c); got != "through the proxy" {
				t.Errorf("through the proxy got %q", got)
			}
			status, body := testutil.Get(t, gw.http+"/@connections")
			if status != http.StatusOK || !strings.Contains(body, `"sourceIp":"`+tt.wantIP+`"`) {
				t.Errorf("GET /@connections = %d %s, want sourceIp %s", status, body, tt.wantIP)
			}
			if status, body := testutil.Get(t, proxy.URL+"/healthz"); status != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
				t.Errorf("GET /healthz through the proxy = %d %s", status, body)
			}
		})
	}
}
