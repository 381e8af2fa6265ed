package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/cli"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// runExit runs the command line as main does, in this process, and returns
// its exit status, stdout and stderr.
func runExit(t *testing.T, environ map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut testutil.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = exit(run(ctx, args, env(environ), &out, &errOut), &errOut)
	return code, out.String(), errOut.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// helpCommands lists every command and subcommand with a help text: those
// of the top-level help's Commands section, and bench's workloads.
func helpCommands(t *testing.T) [][]string {
	t.Helper()
	_, section, ok := strings.Cut(help.Text, "Commands:\n")
	if !ok {
		t.Fatal("the help has no Commands section")
	}
	section, _, _ = strings.Cut(section, "\n\n")
	cmds := [][]string{nil}
	for line := range strings.Lines(section) {
		name := strings.Fields(line)[0]
		cmds = append(cmds, []string{name})
		if name == "bench" {
			for _, w := range []string{"conns", "echo", "fanout", "mgmt", "start"} {
				cmds = append(cmds, []string{"bench", w})
			}
		}
	}
	return cmds
}

// Every command's --help (and -h) exits 0 with its help on stdout alone:
// usage, description, examples and the exit statuses, as in
// testdata/help/*.txt.
func TestHelpGolden(t *testing.T) {
	for _, cmd := range helpCommands(t) {
		name := strings.Join(append([]string{"switchboard"}, cmd...), "-")
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runExit(t, nil, append(cmd, "--help")...)
			if code != 0 || stderr != "" {
				t.Fatalf("%s --help: exit %d, stderr %q; want 0 and nothing", name, code, stderr)
			}
			for _, want := range []string{"Usage: switchboard", "Examples:\n  switchboard ", cli.ExitStatusText()} {
				if !strings.Contains(stdout, want) {
					t.Errorf("%s --help lacks %q:\n%s", name, want, stdout)
				}
			}
			golden(t, "help/"+name+".txt", stdout)
			if code, short, _ := runExit(t, nil, append(cmd, "-h")...); code != 0 || short != stdout {
				t.Errorf("%s -h: exit %d, and a help other than --help's", name, code)
			}
		})
	}
	if code, stdout, _ := runExit(t, nil, "help", "connect"); code != 0 || !strings.HasPrefix(stdout, "Usage: switchboard connect") {
		t.Errorf("switchboard help connect: exit %d, %q", code, stdout)
	}
}

// README's command-line section lists the exit statuses the help texts end with.
func TestREADMEExitStatuses(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cli.ExitStatuses {
		row := fmt.Sprintf("| %d | %s |", s.Code, s.Meaning)
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the row %q", row)
		}
	}
}

// Each kind of failure prints one line on stderr, nothing else, and exits
// with its own status; testdata/errors.txt holds the lines and statuses.
func TestErrorLinesAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gw.yaml")
	writeFile(t, cfg, "limits: {maxMessageBytes: 16}\nroutes:\n  sendMessage: {integration: {type: broadcast}}\n")
	wsURL, _, _ := serveForTest(t, []string{"--listen", "127.0.0.1:0", "--config", cfg}, map[string]string{"SWITCHBOARD_DATA_DIR": dir})
	addr := strings.TrimPrefix(wsURL, "ws://")
	broken := filepath.Join(dir, "broken.yaml")
	writeFile(t, broken, "routes:\n  $connect: {integration: {type: http, url: 'http://"+testutil.ClosedAddr(t)+"/'}}\n")
	brokenWS, _, _ := serveForTest(t, []string{"--listen", "127.0.0.1:0", "--config", broken}, map[string]string{"SWITCHBOARD_DATA_DIR": dir})
	fiveXX := strings.TrimPrefix(brokenWS, "ws://")
	closed := testutil.ClosedAddr(t)
	const gone = "XLminO4N9cG6LM="

	cases := [][]string{
		{},
		{"frobnicate"},
		{"post"},
		{"post", "--nope", gone, "hi"},
		{"connect"},
		{"connect", "ws://a", "ws://b"},
		{"connect", "--wait", "-1s", "--execute", "x", "ws://" + addr},
		{"serve", "--nope"},
		{"serve", "extra"},
		{"bench", "echo", "-c", "0"},
		{"bench", "nope"},
		{"ca", "--nope"},
		{"post", "--endpoint", "http://" + closed, gone, "hi"},
		{"connect", "ws://" + closed},
		{"post", "--endpoint", "http://" + addr + "/dev", gone, "hi"},
		{"get", "--endpoint", "http://" + addr + "/prod", gone},
		{"connect", "ws://" + addr + "/prod"},
		{"connect", "ws://" + fiveXX},
		{"connect", "--execute", `{"action":"sendMessage","data":"more than sixteen bytes"}`, "ws://" + addr},
	}
	var got strings.Builder
	for _, args := range cases {
		code, stdout, stderr := runExit(t, nil, args...)
		line := strings.Join(append([]string{"$ switchboard"}, args...), " ")
		var errLines []string
		for l := range strings.Lines(stderr) {
			// connect's own transcript of the connection may come first.
			if !strings.HasPrefix(l, "Connected") && !strings.HasPrefix(l, "Disconnected") {
				errLines = append(errLines, l)
			}
		}
		if len(errLines) != 1 || !strings.HasPrefix(errLines[0], "switchboard: ") {
			t.Errorf("%s: stderr %q, want one line switchboard: ...", line, stderr)
		}
		if stdout != "" {
			t.Errorf("%s: stdout %q, want nothing", line, stdout)
		}
		fmt.Fprintf(&got, "%s\nexit %d\n%s\n", line, code, strings.Join(errLines, ""))
	}
	text := got.String()
	for from, to := range map[string]string{addr: "GATEWAY", fiveXX: "GATEWAY5XX", closed: "CLOSED"} {
		text = strings.ReplaceAll(text, from, to)
	}
	text = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(text, "127.0.0.1:PORT")
	golden(t, "errors.txt", text)
}

// The process's exit status is the one the error's kind calls for.
func TestExitStatusOfTheProcess(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"post", "--endpoint", "http://" + testutil.ClosedAddr(t), "XLminO4N9cG6LM=", "hi"}, cli.ExitNetwork},
		{[]string{"post"}, cli.ExitUsage},
		{[]string{"connect", "--help"}, cli.ExitOK},
	} {
		cmd := exec.Command(exe, tc.args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.want {
			t.Errorf("switchboard %q: exit status %d, want %d; stderr %q", tc.args, code, tc.want, &stderr)
		}
	}
}

// examplePlaceholder matches what an example leaves to its reader.
var examplePlaceholder = regexp.MustCompile(`CONNECTION_ID|OTHER_ID|\bPID\b`)

// Every example of every help text runs, and exits 0, in a shell against
// a gateway process started without configuration, as a user would type it:
// the test gives its address instead of 127.0.0.1:3001, and IDs of open
// connections and the gateway's process ID for the placeholders.
func TestHelpExamplesRun(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "switchboard")); err != nil {
		t.Fatal(err)
	}
	gwEnv := []string{"HOME=" + home, "XDG_DATA_HOME=", "SWITCHBOARD_DATA_DIR="}
	gw := startProcessEnv(t, gwEnv)
	addr := strings.TrimPrefix(gw.ws, "ws://")
	environ := append(os.Environ(), runMainEnv+"=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SWITCHBOARD_ENDPOINT=http://"+addr+"/dev", "SWITCHBOARD_LISTEN=127.0.0.1:0")
	environ = append(environ, gwEnv...)

	for _, cmd := range helpCommands(t) {
		_, stdout, _ := runExit(t, nil, append(cmd, "--help")...)
		_, examples, _ := strings.Cut(stdout, "\nExamples:\n")
		examples, _, _ = strings.Cut(examples, "\n\n")
		for line := range strings.Lines(examples) {
			example := strings.TrimSpace(line)
			t.Run(example, func(t *testing.T) {
				a := testutil.Dial(t, gw.ws, nil)
				b := testutil.Dial(t, gw.ws, nil)
				ids := map[string]string{"CONNECTION_ID": peerID(t, a), "OTHER_ID": peerID(t, b), "PID": strconv.Itoa(gw.cmd.Process.Pid)}
				script := examplePlaceholder.ReplaceAllStringFunc(example, func(p string) string { return ids[p] })
				serving := strings.HasPrefix(script, "switchboard serve") // not bench start, which runs one itself
				if serving {
					// exec: the shell's process becomes the gateway, which the signal reaches.
					script = "exec " + strings.ReplaceAll(script, "127.0.0.1:3001", "127.0.0.1:0")
				} else {
					script = strings.ReplaceAll(script, "127.0.0.1:3001", addr)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				sh := exec.CommandContext(ctx, "sh", "-c", script)
				sh.Env, sh.Dir = environ, t.TempDir()
				var out, errOut testutil.Buffer
				sh.Stdout, sh.Stderr = &out, &errOut
				if err := sh.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- sh.Wait() }()
				if serving {
					// A gateway runs until it is told to stop: its banner, then SIGTERM.
					testutil.Eventually(t, 60*time.Second, func() bool { return wsURLRE.MatchString(out.String()) },
						"%s printed its banner; stdout %q stderr %q", script, &out, &errOut)
					stopShell(t, sh)
				}
				if err := <-done; err != nil {
					t.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", script, err, &out, &errOut)
				}
			})
		}
	}
}

// stopShell interrupts the gateway a shell runs with exec.
func stopShell(t *testing.T, sh *exec.Cmd) {
	t.Helper()
	if err := sh.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
}

// peerID learns a connection's ID from the Forbidden frame the gateway
// without configuration answers to a message that matches no route.
func peerID(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	msg := testutil.ReadTextAfter(t, c, `{"action":"whoami"}`)
	m := regexp.MustCompile(`"connectionId":"([^"]+)"`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("answer %q has no connectionId", msg)
	}
	return m[1]
}

// The management commands verify an https:// endpoint as connect verifies
// wss://: against the system's roots and the CA of --cacert; --insecure
// skips the check and says so.
func TestManageTLSFlags(t *testing.T) {
	dir := t.TempDir()
	wsURL, _, _ := serveForTest(t, []string{"--listen", "127.0.0.1:0"}, map[string]string{"SWITCHBOARD_DATA_DIR": dir})
	endpoint := "https://" + strings.TrimPrefix(wsURL, "ws://") + "/dev"
	tests := []struct {
		name     string
		flags    []string
		want     int
		inStdout string
		inStderr string
	}{
		{"unknown CA refused", nil, cli.ExitNetwork, "", "certificate"},
		{"local CA trusted with --cacert", []string{"--cacert", filepath.Join(dir, "ca.pem")}, cli.ExitOK, `"items"`, ""},
		{"--insecure skips the check, and says so", []string{"--insecure"}, cli.ExitOK, `"items"`, "Warning: --insecure"},
		{"--cacert of a missing file", []string{"--cacert", filepath.Join(dir, "nope.pem")}, cli.ExitUsage, "", "--cacert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"list"}, tt.flags...), "--endpoint", endpoint)
			code, stdout, stderr := runExit(t, nil, args...)
			if code != tt.want || !strings.Contains(stdout, tt.inStdout) || !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("switchboard %q: exit %d, stdout %q, stderr %q; want %d, %q in stdout and %q in stderr", args, code, stdout, stderr, tt.want, tt.inStdout, tt.inStderr)
			}
		})
	}
}

// connect verifies a wss:// server against the system's roots, and the CA
// of --cacert; --insecure skips the check and says so.
func TestConnectTLSFlags(t *testing.T) {
	dir := t.TempDir()
	wsURL, _, _ := serveForTest(t, []string{"--listen", "127.0.0.1:0"}, map[string]string{"SWITCHBOARD_DATA_DIR": dir})
	wss := "wss://" + strings.TrimPrefix(wsURL, "ws://")
	msg := `{"action":"sendMessage","data":"over TLS"}`
	tests := []struct {
		name     string
		flags    []string
		want     int
		stdout   string
		inStderr string
	}{
		{"unknown CA refused", nil, cli.ExitNetwork, "", "certificate"},
		{"local CA trusted with --cacert", []string{"--cacert", filepath.Join(dir, "ca.pem")}, cli.ExitOK, "over TLS\n", ""},
		{"--insecure skips the check, and says so", []string{"--insecure"}, cli.ExitOK, "over TLS\n", "Warning: --insecure"},
		{"--cacert of a missing file", []string{"--cacert", filepath.Join(dir, "nope.pem")}, cli.ExitUsage, "", "--cacert"},
		{"--cacert of a file without PEM", []string{"--cacert", filepath.Join(dir, "gw.yaml")}, cli.ExitUsage, "", "no PEM certificate"},
	}
	writeFile(t, filepath.Join(dir, "gw.yaml"), "stage: dev\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"connect"}, tt.flags...), "--execute", msg, "--wait", "1s", wss)
			code, stdout, stderr := runExit(t, nil, args...)
			if code != tt.want || stdout != tt.stdout || !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("switchboard %q: exit %d, stdout %q, stderr %q; want %d, %q, and %q in stderr", args, code, stdout, stderr, tt.want, tt.stdout, tt.inStderr)
			}
		})
	}
}
