package lambdahost

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/evanw/esbuild/pkg/api"
)

// ErrBuild is returned by New when a TypeScript handler does not compile;
// the message names each file:line:column with esbuild's error.
var ErrBuild = errors.New("lambdahost: handler build failed")

// handlerRootEnv tells the bootstrap where the compiled handler modules
// are; it removes the variable before the handler loads.
const handlerRootEnv = "_SWITCHBOARD_HANDLER_ROOT"

// tsBuild compiles one TypeScript handler with esbuild into the function's
// temporary directory, and again whenever one of its source files changes
// (esbuild's watch mode, which polls the files it read). A rebuild that
// fails is logged and the previous build stays in place; one that succeeds
// replaces the bundle atomically and calls changed, so that the next
// process loads it.
type tsBuild struct {
	ctx     api.BuildContext
	name    string // the function's, for logs
	dir     string // the entry's directory, which relative paths in esbuild's messages start from
	log     *slog.Logger
	changed func()

	mu       sync.Mutex
	written  []byte // the bundle in place; nil before the first build
	watching bool   // the first build is done: later ones are rebuilds
}

// newTSBuild compiles entry (an absolute .ts path) to out, a CommonJS
// bundle for the Node.js version of runtime with an inline source map, and
// watches its sources. Packages stay external and are loaded by Node.js
// from the handler's own node_modules, as when it runs from its folder.
// The caller must call close.
func newTSBuild(name, entry, out, runtime string, log *slog.Logger, changed func()) (*tsBuild, error) {
	b := &tsBuild{name: name, dir: filepath.Dir(entry), log: log, changed: changed}
	opts := api.BuildOptions{
		EntryPoints:    []string{entry},
		AbsWorkingDir:  b.dir,
		Bundle:         true,
		Platform:       api.PlatformNode,
		Format:         api.FormatCommonJS,
		Packages:       api.PackagesExternal,
		Sourcemap:      api.SourceMapInline,
		SourcesContent: api.SourcesContentExclude,
		Outfile:        out,
		LogLevel:       api.LogLevelSilent,
		Banner:         map[string]string{"js": "require = require('node:module').createRequire(" + strconv.Quote(entry) + ");"},
		Plugins: []api.Plugin{{Name: "switchboard-output", Setup: func(pb api.PluginBuild) {
			pb.OnEnd(func(r *api.BuildResult) (api.OnEndResult, error) {
				b.done(r)
				return api.OnEndResult{}, nil
			})
		}}},
	}
	if v := nodeMajor(runtime); v != "" {
		opts.Engines = []api.Engine{{Name: api.EngineNode, Version: v}}
	}
	ctx, cerr := api.Context(opts)
	if cerr != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBuild, entry, cerr)
	}
	b.ctx = ctx
	res := ctx.Rebuild()
	if len(res.Errors) > 0 {
		ctx.Dispose()
		return nil, fmt.Errorf("%w: %s", ErrBuild, buildMessages(b.dir, res.Errors))
	}
	b.mu.Lock()
	ok := b.written != nil
	b.watching = true
	b.mu.Unlock()
	if !ok {
		ctx.Dispose()
		return nil, fmt.Errorf("%w: %s: the bundle could not be written", ErrBuild, entry)
	}
	if err := ctx.Watch(api.WatchOptions{}); err != nil {
		ctx.Dispose()
		return nil, fmt.Errorf("%w: watch %s: %v", ErrBuild, entry, err)
	}
	return b, nil
}

// done handles the end of every build: the first, made by newTSBuild, and
// the rebuilds watch mode starts. It calls changed with b.mu held: changed
// must not call into b.
func (b *tsBuild) done(r *api.BuildResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(r.Errors) > 0 {
		if b.watching {
			b.log.Warn("function "+b.name+": handler rebuild failed; invocations keep the previous build",
				"function", b.name, "err", buildMessages(b.dir, r.Errors))
		}
		return
	}
	if len(r.OutputFiles) != 1 {
		b.log.Warn("function "+b.name+": handler build gave no single bundle", "function", b.name, "files", len(r.OutputFiles))
		return
	}
	f := r.OutputFiles[0]
	if bytes.Equal(f.Contents, b.written) {
		return // the watcher's first build, or a change that compiles to the same code
	}
	if err := writeAtomic(f.Path, f.Contents); err != nil {
		b.log.Warn("function "+b.name+": writing the handler build failed; invocations keep the previous build",
			"function", b.name, "err", err)
		return
	}
	first := b.written == nil
	b.written = f.Contents
	if !first {
		b.log.Info("function "+b.name+": handler rebuilt; new processes run it", "function", b.name)
		b.changed()
	}
}

// close stops watching.
func (b *tsBuild) close() { b.ctx.Dispose() }

// writeAtomic replaces path with data, so that a process starting at the
// same time reads the old file or the new one, never a part.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".build-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

// buildMessages joins esbuild's messages, each with its file:line:column,
// a relative file taken from dir.
func buildMessages(dir string, msgs []api.Message) string {
	parts := make([]string, 0, len(msgs))
	for _, m := range msgs {
		l := m.Location
		if l == nil {
			parts = append(parts, m.Text)
			continue
		}
		file := l.File
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		parts = append(parts, fmt.Sprintf("%s:%d:%d: %s", file, l.Line, l.Column+1, m.Text))
	}
	return strings.Join(parts, "; ")
}

// nodeMajor returns the Node.js major version of a runtime such as
// "nodejs20.x" ("20"), or "" when it names none.
func nodeMajor(runtime string) string {
	v := strings.TrimPrefix(runtime, "nodejs")
	v, _, _ = strings.Cut(v, ".")
	if _, err := strconv.Atoi(v); err != nil {
		return ""
	}
	return v
}
