package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// running reports whether pid is a process that has not exited (a zombie
// waiting for its new parent to reap it has exited).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// A hosted function in the middle of an invocation dies with a gateway
// killed by SIGKILL, and the next gateway removes the temporary directory
// the killed one could not.
func TestFunctionsDieWithAKilledGateway(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the parent-death signal is Linux's")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	t.Parallel()
	code, tmp := t.TempDir(), t.TempDir()
	files := map[string]string{
		"handler.js": `const fs = require('fs');
exports.handler = async () => {
  fs.writeFileSync('fn.pid.tmp', String(process.pid));
  fs.renameSync('fn.pid.tmp', 'fn.pid');
  await new Promise((resolve) => setTimeout(resolve, 10 * 60 * 1000));
  return {statusCode: 200};
};
`,
		"switchboard.yaml": fmt.Sprintf(`
functions:
  slow: {runtime: nodejs20.x, handler: handler.handler, codeDir: %q, timeout: 10m}
routes:
  $default: {integration: {type: lambda, function: slow}}
`, code),
	}
	if err := writeFiles(code, files); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", filepath.Join(code, "switchboard.yaml")}

	env := []string{"TMPDIR=" + tmp}
	first := startProcessEnv(t, env, args...)
	c := testutil.Dial(t, first.ws, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("hold on")); err != nil {
		t.Fatal(err)
	}
	var fnPID int
	testutil.Eventually(t, 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(code, "fn.pid"))
		fnPID, _ = strconv.Atoi(string(b))
		return err == nil && fnPID > 0
	}, "the function received the message; gateway stderr %q", first.stderr)
	if !running(fnPID) {
		t.Fatalf("function process %d is not running mid-invocation", fnPID)
	}
	t.Cleanup(func() { // should the check below fail, the function must not outlive the test
		if running(fnPID) {
			_ = syscall.Kill(fnPID, syscall.SIGKILL)
		}
	})
	leftover, _ := filepath.Glob(filepath.Join(tmp, fmt.Sprintf("switchboard-fn-%d-*", first.cmd.Process.Pid)))
	if len(leftover) != 1 {
		t.Fatalf("temporary directories of the gateway: %v, want one", leftover)
	}

	first.signal(t, syscall.SIGKILL)
	first.wait(t)
	testutil.Eventually(t, 30*time.Second, func() bool { return !running(fnPID) },
		"function process %d exits with the gateway killed by SIGKILL", fnPID)
	if _, err := os.Stat(leftover[0]); err != nil {
		t.Fatalf("the killed gateway's directory: %v, want it left behind", err)
	}

	second := startProcessEnv(t, env, args...)
	if _, err := os.Stat(leftover[0]); !os.IsNotExist(err) {
		t.Errorf("after the next start, %s: %v, want it removed", leftover[0], err)
	}
	second.signal(t, syscall.SIGTERM)
	if code := second.wait(t); code != 0 {
		t.Errorf("second gateway exited %d; stderr %q", code, second.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "switchboard-fn-*")); len(left) != 0 {
		t.Errorf("after a clean stop: %v left, want nothing", left)
	}
}

func writeFiles(dir string, files map[string]string) error {
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
