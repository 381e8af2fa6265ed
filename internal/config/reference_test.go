package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/errors")

// TestErrorMessagesGolden loads each testdata/errors/NAME.yaml and compares
// the error, one problem a line, with NAME.want; $DIR stands for the
// directory's absolute path. Run with -update to rewrite them.
func TestErrorMessagesGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "errors", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	abs, err := filepath.Abs(filepath.Join("testdata", "errors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(file, noEnv, config.Overrides{})
			if err == nil {
				t.Fatalf("Load(%s) = nil error, want one", file)
			}
			got := strings.ReplaceAll(err.Error(), abs, "$DIR") + "\n"
			for _, bad := range []string{"!!", "unmarshal", "int64", "[]string", "config.", " yaml: "} {
				if strings.Contains(got, bad) {
					t.Errorf("Load(%s) error %q shows %q, a Go or YAML-library detail", file, got, bad)
				}
			}
			for line := range strings.Lines(got) {
				if !strings.HasPrefix(line, file+":") {
					t.Errorf("error line %q does not start with %s:LINE", line, file)
				}
			}
			want := strings.TrimSuffix(file, ".yaml") + ".want"
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(b) {
				t.Errorf("Load(%s) error:\n%s\nwant:\n%s", file, got, b)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	keys := []string{"listen", "stage", "maxMessageBytes", "maxHeaderBytes", "serve", "connect"}
	tests := []struct{ word, want string }{
		{"lisen", "listen"},
		{"max_message_bytes", "maxMessageBytes"},
		{"MAXMESSAGEBYTES", "maxMessageBytes"},
		{"serv", "serve"},
		{"conect", "connect"},
		{"colour", ""},
		{"listen", ""}, // itself is no suggestion
	}
	for _, tt := range tests {
		if got := config.Suggest(tt.word, keys); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

// TestReferenceCoversEveryKey: every key of Config has a meaning, and every
// meaning and component default names a key.
func TestReferenceCoversEveryKey(t *testing.T) {
	t.Parallel()
	ref := config.Reference()
	var paths []string
	for _, k := range ref {
		paths = append(paths, k.Path)
		if k.Meaning == "" {
			t.Errorf("%s has no meaning in the reference", k.Path)
		}
		if k.Type == "" {
			t.Errorf("%s has no type", k.Path)
		}
	}
	for _, p := range config.DocumentedPathsForTest() {
		if !slices.Contains(paths, p) {
			t.Errorf("the reference describes %s, which is no key of Config", p)
		}
	}
	for _, p := range []string{"listen", "limits.maxMessageBytes", "routes.<name>.integration.type", "cluster.embedded.peers", "authorizers.<name>.pemFiles"} {
		if !slices.Contains(paths, p) {
			t.Errorf("Reference() lacks %s", p)
		}
	}
}

// TestDefaultsYAMLRoundTrips: `switchboard config defaults` loads into the
// same Config as no file, and shows every key.
func TestDefaultsYAMLRoundTrips(t *testing.T) {
	t.Parallel()
	text := config.DefaultsYAML()
	path := writeFile(t, text)
	got, err := config.Load(path, noEnv, config.Overrides{})
	if err != nil {
		t.Fatalf("Load(defaults): %v\n%s", err, text)
	}
	want, err := config.Load("", noEnv, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	got.Source, got.Dir = want.Source, want.Dir
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(defaults) = %+v\nwant %+v", got, want)
	}
	for _, k := range config.Reference() {
		name := k.Path[strings.LastIndex(k.Path, ".")+1:]
		if !strings.Contains(text, name+":") {
			t.Errorf("defaults lack %s", k.Path)
		}
		if k.Component && !strings.Contains(text, "# "+name+": "+k.Default+"  #") {
			t.Errorf("defaults lack %s's default %s, commented", k.Path, k.Default)
		}
	}
	for _, line := range []string{"listen: 127.0.0.1:3001  #", "stage: dev  #", "shutdownTimeout: 10s  #", "  # maxMessageBytes: 128KiB  #"} {
		if !strings.Contains(text, line) {
			t.Errorf("defaults lack the line %q", line)
		}
	}
}

// TestDocsConfigIsCurrent: docs/config.md is what the code generates. Run
// go generate ./internal/config (or go run ./internal/config/gen from the
// repository's root) after changing a key.
func TestDocsConfigIsCurrent(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != config.ReferenceMarkdown() {
		t.Errorf("docs/config.md is stale: run go run ./internal/config/gen from the repository's root")
	}
}

// TestRelativePathsFromTheConfigFile: a config in another directory than
// the working one names its files relative to its own directory.
func TestRelativePathsFromTheConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"certs/cert.pem", "certs/key.pem", "keys/jwt.pem", "ca/ca.pem"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "fn"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "conf", "switchboard.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := `
tls: {certFile: ../certs/cert.pem, keyFile: ../certs/key.pem, dataDir: ../data}
functions:
  f: {runtime: nodejs20.x, handler: index.handler, codeDir: ../fn}
authorizers:
  a: {type: jwt, pemFiles: [../keys/jwt.pem]}
cluster: {url: 'nats://127.0.0.1:4222', tls: {caFile: ../ca/ca.pem}}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The working directory is the package's, where none of these exist.
	cfg, err := config.Load(path, noEnv, config.Overrides{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for name, got := range map[string]string{
		"tls.certFile":              cfg.TLS.CertFile,
		"tls.keyFile":               cfg.TLS.KeyFile,
		"tls.dataDir":               cfg.TLS.DataDir,
		"functions.f.codeDir":       cfg.Functions["f"].CodeDir,
		"authorizers.a.pemFiles[0]": cfg.Authorizers["a"].PEMFiles[0],
		"cluster.tls.caFile":        cfg.Cluster.TLS.CAFile,
	} {
		if !strings.HasPrefix(got, dir+string(filepath.Separator)) {
			t.Errorf("%s = %q, want it under the config's parent %s", name, got, dir)
		}
	}
	if cfg.TLS.CertFile != filepath.Join(dir, "certs", "cert.pem") {
		t.Errorf("tls.certFile = %q, want %q", cfg.TLS.CertFile, filepath.Join(dir, "certs", "cert.pem"))
	}
}
