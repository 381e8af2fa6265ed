package config_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

// writeProject writes files (path relative to a new directory -> content)
// and returns the directory.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
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

func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
}

// The aws-nodejs-typescript template's shape: @functions/* paths, a type
// import of a package that is not installed, handlerPath(__dirname); and a
// package from node_modules.
var tsTemplate = map[string]string{
	"tsconfig.json": `{
  "compilerOptions": {
    "baseUrl": ".",
    "paths": {"@functions/*": ["src/functions/*"], "@libs/*": ["src/libs/*"]}
  }
}`,
	"node_modules/sls-region/package.json": `{"name": "sls-region", "main": "index.js"}`,
	"node_modules/sls-region/index.js":     "exports.region = 'eu-north-1';\n",
	"serverless.ts": `import type { AWS } from '@serverless/typescript';
import { region } from 'sls-region';

import hello from '@functions/hello';
import chat from '@functions/chat';

const serverlessConfiguration: AWS = {
  service: 'ts-template',
  provider: {
    name: 'aws',
    runtime: 'nodejs20.x',
    region,
    environment: { CONFIG_FILE: __filename },
  },
  functions: { hello, chat },
};

module.exports = serverlessConfiguration;
`,
	"src/libs/handler-resolver.ts": `export const handlerPath = (context: string) => {
  return ` + "`${context.split(process.cwd())[1].substring(1).replace(/\\\\/g, '/')}`" + `
};
`,
	"src/functions/hello/index.ts": `import { handlerPath } from '@libs/handler-resolver';

export default {
  handler: ` + "`${handlerPath(__dirname)}/handler.main`" + `,
  events: [{ websocket: { route: 'hello' } }],
};
`,
	"src/functions/chat/index.ts": `import { handlerPath } from '../../libs/handler-resolver';
import type { Handler } from 'aws-lambda';

const route: string = 'sendMessage';
export default {
  handler: ` + "`${handlerPath(__dirname)}/handler.main`" + `,
  events: [{ websocket: route }],
};
`,
}

func TestLoadServerlessTS(t *testing.T) {
	t.Parallel()
	needNode(t)
	dir := writeProject(t, tsTemplate)
	cfg, err := config.LoadServerless(filepath.Join(dir, "serverless.ts"), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatalf("LoadServerless: %v", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"hello": "src/functions/hello/handler.main", "chat": "src/functions/chat/handler.main"} {
		if got := cfg.Functions[name].Handler; got != want {
			t.Errorf("functions.%s.handler = %q, want %q (each file's own __dirname)", name, got, want)
		}
		if got := cfg.Functions[name].Runtime; got != "nodejs20.x" {
			t.Errorf("functions.%s runtime = %q, want nodejs20.x", name, got)
		}
	}
	for route, fn := range map[string]string{"hello": "hello", "sendMessage": "chat"} {
		if got := cfg.Routes[route].Integration.Function; got != fn {
			t.Errorf("route %s runs %q, want %q", route, got, fn)
		}
	}
	if got := cfg.Environment["AWS_REGION"]; got != "eu-north-1" {
		t.Errorf("region from a package in node_modules = %q, want eu-north-1", got)
	}
	if got, want := cfg.Environment["CONFIG_FILE"], filepath.Join(real, "serverless.ts"); got != want {
		t.Errorf("__filename in serverless.ts = %q, want %q", got, want)
	}
}

func TestLoadServerlessScriptExports(t *testing.T) {
	t.Parallel()
	needNode(t)
	const fn = `{handler: 'handler.main', events: [{websocket: '$default'}]}`
	tests := []struct {
		name, file, src string
		wantErr         string // empty: loads, with function "f"
	}{
		{"module.exports in js", "serverless.js", `module.exports = {service: 's', provider: {name: 'aws', runtime: 'nodejs20.x'}, functions: {f: ` + fn + `}};`, ""},
		{"export default", "serverless.ts", `export default {service: 's', provider: {name: 'aws', runtime: 'nodejs20.x'}, functions: {f: ` + fn + `}};`, ""},
		{"a Promise", "serverless.ts", `const load = async (): Promise<object> => ({service: 's', provider: {name: 'aws', runtime: 'nodejs20.x'}, functions: {f: ` + fn + `}});
module.exports = load();`, ""},
		{"a Promise as default export", "serverless.ts", `export default Promise.resolve({service: 's', provider: {name: 'aws', runtime: 'nodejs20.x'}, functions: {f: ` + fn + `}});`, ""},
		{"a package required at run time", "serverless.js", `const os = require('node:os'); module.exports = {service: os.platform(), provider: {name: 'aws', runtime: 'nodejs20.x'}, functions: {f: ` + fn + `}};`, ""},
		{"a function", "serverless.ts", `module.exports = () => ({});`, "exports a function"},
		{"a number", "serverless.ts", `module.exports = 42;`, "exports 42, not a configuration object"},
		{"a syntax error", "serverless.ts", "const a = 1;\nconst b = ;\n", "serverless.ts:2:11: Unexpected \";\""},
		{"a thrown error", "serverless.ts", "const a: number = 1;\n\nthrow new Error('no config for ' + a);\n", "serverless.ts:3"},
		{"a missing import", "serverless.ts", "import x from './nope';\nexport default x;\n", `serverless.ts:1:15: Could not resolve "./nope"`},
		{"a missing package", "serverless.ts", "import x from 'not-installed-anywhere';\nexport default x;\n", "not-installed-anywhere"},
		{"a rejected Promise", "serverless.ts", "export default Promise.reject(new Error('refused'));\n", "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeProject(t, map[string]string{tt.file: tt.src})
			cfg, err := config.LoadServerless(filepath.Join(dir, tt.file), func(string) string { return "" }, config.Overrides{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadServerless: %v", err)
				}
				if cfg.Functions["f"].Handler != "handler.main" || cfg.Routes["$default"].Integration.Function != "f" {
					t.Errorf("config %+v: want function f on $default", cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadServerless = nil error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, config.ErrInvalid) {
				t.Errorf("LoadServerless error %q: want ErrInvalid containing %q", err, tt.wantErr)
			}
		})
	}
}

// A syntax error in an imported file names that file and line.
func TestLoadServerlessTSErrorInImport(t *testing.T) {
	t.Parallel()
	needNode(t)
	files := map[string]string{}
	for k, v := range tsTemplate {
		files[k] = v
	}
	files["src/functions/chat/index.ts"] = "export default {\n  handler: 'x.main',,\n};\n"
	dir := writeProject(t, files)
	_, err := config.LoadServerless(filepath.Join(dir, "serverless.ts"), func(string) string { return "" }, config.Overrides{})
	want := filepath.Join(dir, "src/functions/chat/index.ts") + ":2:"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadServerless error %v, want one naming %s", err, want)
	}
}

// Not parallel: it empties PATH.
func TestLoadServerlessTSWithoutNode(t *testing.T) {
	dir := writeProject(t, map[string]string{"serverless.ts": "export default {};\n"})
	t.Setenv("PATH", t.TempDir())
	_, err := config.LoadServerless(filepath.Join(dir, "serverless.ts"), func(string) string { return "" }, config.Overrides{})
	if !errors.Is(err, config.ErrNodeMissing) {
		t.Errorf("LoadServerless without node: %v, want ErrNodeMissing", err)
	}
}

// Not parallel: it shortens the evaluation bound for the whole package.
func TestLoadServerlessTSPromiseNeverSettles(t *testing.T) {
	needNode(t)
	defer config.SetServerlessEvalTimeoutForTest(2 * time.Second)()
	tests := []struct{ name, src, want string }{
		{"nothing keeps Node running", "export default new Promise(() => {});\n", "the exported Promise never settled"},
		{"a timer keeps Node running", "setInterval(() => {}, 1000);\nexport default new Promise(() => {});\n", "did not finish within 2s"},
	}
	for _, tt := range tests {
		dir := writeProject(t, map[string]string{"serverless.ts": tt.src})
		_, err := config.LoadServerless(filepath.Join(dir, "serverless.ts"), func(string) string { return "" }, config.Overrides{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: LoadServerless = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}
