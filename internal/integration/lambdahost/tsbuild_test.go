package lambdahost_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/integration/lambdahost"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// tsProject writes a TypeScript function's folder: a handler importing
// another .ts file through tsconfig.json paths and a package from
// node_modules, and a type-only import
// of a package that is not installed.
func tsProject(t *testing.T, files map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
	dir := t.TempDir()
	all := map[string]string{
		"src/handler.ts": `import type { APIGatewayProxyWebsocketHandlerV2 } from 'aws-lambda';
import { greeting } from '@lib/greet';
import pad from 'left-pad-local';

export const main: APIGatewayProxyWebsocketHandlerV2 = async (event: any) => {
  if (event.do === 'throw') {
    throw new Error('thrown from TypeScript');
  }
  return { body: pad(greeting(event.name as string)), dir: __dirname === undefined ? '' : 'set' };
};
`,
		"tsconfig.json":    `{"compilerOptions": {"baseUrl": ".", "paths": {"@lib/*": ["src/lib/*"]}}}`,
		"src/lib/greet.ts": "export const greeting = (name: string): string => `hello ${name} v1`;\n",
		"node_modules/left-pad-local/package.json": `{"name": "left-pad-local", "main": "index.js"}`,
		"node_modules/left-pad-local/index.js":     "module.exports = (s) => '>' + s;\n",
	}
	for k, v := range files {
		all[k] = v
	}
	for name, content := range all {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeFile replaces path's content at once, as an editor that saves
// through a rename does: the watcher never sees it empty or half written.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTypeScriptHandler(t *testing.T) {
	t.Parallel()
	dir := tsProject(t, nil)
	h := newHost(t, lambdahost.Options{Name: "tsfunc", Runtime: "nodejs20.x", Handler: "src/handler.main", CodeDir: dir})
	if got := h.mustInvoke(t, `{"name":"ts"}`); !jsonEqual(t, got, `{"body":">hello ts v1","dir":"set"}`) {
		t.Errorf("TypeScript handler answered %s", got)
	}

	// A thrown error's stack names the .ts line, on the function's output.
	_, err := h.invoke(t, `{"do":"throw"}`)
	var fe *lambdahost.FunctionError
	if !errors.As(err, &fe) || fe.Message != "thrown from TypeScript" {
		t.Fatalf("throwing handler: %v, want its FunctionError", err)
	}
	want := filepath.Join(dir, "src", "handler.ts") + ":7:11"
	testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(h.out.String(), want) },
		"function output names %s; output:\n%s", want, h.out)
}

// A changed source file, the handler's or one it imports, is rebuilt and
// the next invocation runs it; a change that does not compile is logged,
// naming file:line, and the previous build keeps serving.
func TestTypeScriptHandlerRebuildsOnChange(t *testing.T) {
	t.Parallel()
	dir := tsProject(t, nil)
	h := newHost(t, lambdahost.Options{Name: "tsfunc", Runtime: "nodejs20.x", Handler: "src/handler.main", CodeDir: dir})
	if got := h.mustInvoke(t, `{"name":"a"}`); !strings.Contains(got, "hello a v1") {
		t.Fatalf("first build answered %s", got)
	}
	coldStarts := strings.Count(h.log.String(), "cold start")
	greet := filepath.Join(dir, "src", "lib", "greet.ts")
	writeFile(t, greet, "export const greeting = (name: string): string => `hello ${name} v2`;\n")
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(h.mustInvoke(t, `{"name":"a"}`), "v2") },
		"the change to greet.ts is never served; log:\n%s", h.log)
	if !strings.Contains(h.log.String(), "handler rebuilt") {
		t.Errorf("no rebuild logged; log:\n%s", h.log)
	}
	if n := strings.Count(h.log.String(), "cold start"); n <= coldStarts {
		t.Errorf("the new build ran in the old process: %d cold starts before the change, %d after", coldStarts, n)
	}

	writeFile(t, greet, "export const greeting = (name: string): string => {\n  return ;;; }}\n")
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(h.log.String(), "handler rebuild failed") },
		"no failed rebuild logged; log:\n%s", h.log)
	if want := regexp.MustCompile(`greet\.ts:2:\d+: Unexpected`); !want.MatchString(h.log.String()) {
		t.Errorf("the failed rebuild's log does not name greet.ts:2; log:\n%s", h.log)
	}
	if got := h.mustInvoke(t, `{"name":"b"}`); !strings.Contains(got, "hello b v2") {
		t.Errorf("after a failed rebuild the function answered %s, want the previous build's", got)
	}

	writeFile(t, filepath.Join(dir, "src", "handler.ts"), "export const main = async () => 'replaced';\n")
	testutil.Eventually(t, 20*time.Second, func() bool { return h.mustInvoke(t, `{}`) == `"replaced"` },
		"the changed handler is never served; log:\n%s", h.log)
}

func TestTypeScriptHandlerBuildErrorAtNew(t *testing.T) {
	t.Parallel()
	dir := tsProject(t, map[string]string{"src/lib/greet.ts": "export const greeting = (name: string) =>;\n"})
	f, err := lambdahost.New(lambdahost.Options{Name: "tsfunc", Runtime: "nodejs20.x", Handler: "src/handler.main", CodeDir: dir})
	if err == nil {
		_ = f.Close()
		t.Fatal("New with a handler that does not compile: nil error")
	}
	want := filepath.Join(dir, "src", "lib", "greet.ts") + ":1:"
	if !errors.Is(err, lambdahost.ErrBuild) || !strings.Contains(err.Error(), want) {
		t.Errorf("New = %v, want ErrBuild naming %s", err, want)
	}
}

// A compiled .js beside the .ts is what runs, as on AWS.
func TestTypeScriptHandlerJSBesideWins(t *testing.T) {
	t.Parallel()
	dir := tsProject(t, map[string]string{"src/handler.js": "exports.main = async () => 'from js';\n"})
	h := newHost(t, lambdahost.Options{Name: "tsfunc", Runtime: "nodejs20.x", Handler: "src/handler.main", CodeDir: dir})
	if got := h.mustInvoke(t, `{}`); got != `"from js"` {
		t.Errorf("handler answered %s, want the .js file's answer", got)
	}
}
