package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/evanw/esbuild/pkg/api"
)

// ErrNodeMissing is returned for a serverless.ts or serverless.js project
// when no node executable is in PATH: the framework evaluates these files
// with Node.js, and so does LoadServerless.
var ErrNodeMissing = errors.New("config: node is not in PATH; it is needed to evaluate a serverless.ts or serverless.js project")

// serverlessEvalTimeout bounds the evaluation of a serverless.ts or
// serverless.js file, promise included. A variable for tests.
var serverlessEvalTimeout = 30 * time.Second

// scriptExts are the project file extensions that are evaluated by Node.js
// rather than read as YAML or JSON.
var scriptExts = map[string]bool{".ts": true, ".js": true, ".mts": true, ".cts": true, ".mjs": true, ".cjs": true}

// readServerless returns the text of a Serverless Framework project file:
// serverless.yml, .yaml or .json as it is, and for serverless.ts and
// serverless.js the JSON of the object the file exports, evaluated as the
// framework does (JSON is YAML, so both take the same path afterwards).
func readServerless(path string) ([]byte, error) {
	if scriptExts[strings.ToLower(filepath.Ext(path))] {
		return evalServerless(path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return raw, nil
}

// evalServerless bundles the file at path with esbuild and runs the bundle
// with node, in the file's directory, to get the JSON of what it exports.
// As under the framework's TypeScript loader: other .ts files are imported,
// tsconfig.json "paths" apply, every file sees its own __dirname and
// __filename, type-only imports need no installed package, packages are
// loaded by Node from node_modules, and an exported Promise is awaited.
// Errors name the file and line.
func evalServerless(path string) ([]byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// process.cwd() is a real path: __dirname must be one too, since the
	// template cuts one from the other (handlerPath).
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, ErrNodeMissing)
	}
	dir := filepath.Dir(abs)
	tmp, err := os.MkdirTemp("", "switchboard-serverless-")
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer os.RemoveAll(tmp)
	bundle := filepath.Join(tmp, "serverless.cjs")
	res := api.Build(api.BuildOptions{
		EntryPoints:   []string{abs},
		AbsWorkingDir: dir,
		Bundle:        true,
		Platform:      api.PlatformNode,
		Format:        api.FormatCommonJS,
		Packages:      api.PackagesExternal,
		Sourcemap:     api.SourceMapInline,
		Outfile:       bundle,
		LogLevel:      api.LogLevelSilent,
		Plugins:       []api.Plugin{fileNamesPlugin},
		// Packages are external: Node resolves them from the project, as
		// it would load the file itself.
		Banner: map[string]string{"js": "require = require('node:module').createRequire(" + strconv.Quote(abs) + ");"},
	})
	if len(res.Errors) > 0 {
		return nil, buildError(path, filepath.Dir(path), res.Errors)
	}
	for _, f := range res.OutputFiles {
		if err := os.WriteFile(f.Path, f.Contents, 0o600); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	runner := filepath.Join(tmp, "run.cjs")
	out := filepath.Join(tmp, "serverless.json")
	if err := os.WriteFile(runner, []byte(serverlessRunner), 0o600); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), serverlessEvalTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--enable-source-maps", runner, bundle, out)
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	cmd.WaitDelay = time.Second // a child that kept the pipe must not hold up Wait
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w: evaluation did not finish within %v", path, ErrInvalid, serverlessEvalTimeout)
		}
		return nil, fmt.Errorf("%s: %w: evaluation failed (%v): %s", path, ErrInvalid, err, tail(output.String(), 4096))
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("%s: evaluation gave no result: %w", path, err)
	}
	return raw, nil
}

// buildError turns esbuild's errors into one error naming each file:line:column.
func buildError(path, dir string, msgs []api.Message) error {
	lines := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if l := m.Location; l != nil {
			file := l.File
			if !filepath.IsAbs(file) {
				file = filepath.Join(dir, file)
			}
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", file, l.Line, l.Column+1, m.Text))
			continue
		}
		lines = append(lines, m.Text)
	}
	return fmt.Errorf("%s: %w: %s", path, ErrInvalid, strings.Join(lines, "; "))
}

// tail returns the end of s, at most n bytes, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// ownNamesRE finds a file that declares __dirname or __filename itself (as
// ES modules do from import.meta.url); such a file keeps its own.
var ownNamesRE = regexp.MustCompile(`\b(?:var|let|const|function)\s+__(?:dirname|filename)\b`)

// fileNamesPlugin gives every bundled file its own __dirname and
// __filename, as Node gives each module, instead of the bundle's. The
// declaration is put on the file's first line, so that the line numbers of
// errors and source maps stay the file's own.
var fileNamesPlugin = api.Plugin{
	Name: "filenames",
	Setup: func(b api.PluginBuild) {
		b.OnLoad(api.OnLoadOptions{Filter: `\.[cm]?[jt]sx?$`, Namespace: "file"}, func(args api.OnLoadArgs) (api.OnLoadResult, error) {
			src, err := os.ReadFile(args.Path)
			if err != nil {
				return api.OnLoadResult{}, err
			}
			text := string(src)
			if (strings.Contains(text, "__dirname") || strings.Contains(text, "__filename")) &&
				!ownNamesRE.MatchString(text) && !strings.HasPrefix(text, "#!") {
				text = "var __dirname = " + strconv.Quote(filepath.Dir(args.Path)) +
					", __filename = " + strconv.Quote(args.Path) + "; " + text
			}
			dir := filepath.Dir(args.Path)
			return api.OnLoadResult{Contents: &text, ResolveDir: dir, Loader: loaderFor(args.Path)}, nil
		})
	},
}

func loaderFor(path string) api.Loader {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ts", ".mts", ".cts":
		return api.LoaderTS
	case ".tsx":
		return api.LoaderTSX
	case ".jsx":
		return api.LoaderJSX
	}
	return api.LoaderJS
}

// serverlessRunner loads the bundle and writes the JSON of what it exports
// to the file named by its second argument: an object, or a Promise of
// one, or either as an ES module's default export.
const serverlessRunner = `'use strict';
const fs = require('node:fs');
const [bundle, out] = process.argv.slice(2);
const unwrap = (v) => (v !== null && typeof v === 'object' && v.__esModule && 'default' in v ? v.default : v);
let written = false;
process.on('exit', (code) => {
  if (code === 0 && !written) {
    console.error('the exported Promise never settled');
    process.exitCode = 1;
  }
});
(async () => {
  let v = unwrap(require(bundle));
  if (typeof v === 'function') {
    throw new Error('the file exports a function; export the configuration object (or a Promise of it)');
  }
  v = unwrap(await v);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new Error('the file exports ' + (Array.isArray(v) ? 'an array' : String(v)) + ', not a configuration object');
  }
  fs.writeFileSync(out, JSON.stringify(v));
  written = true;
})().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
`
