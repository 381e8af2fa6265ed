package switchboard_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// goBlocks returns the ```go blocks of the document at path.
func goBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur *strings.Builder
	for line := range strings.Lines(string(b)) {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```go":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return blocks
}

// docs/library.md's program and README.md's excerpt build, its API listing is the package's, and
// every test it cites exists.
func TestDocsLibrary(t *testing.T) {
	t.Parallel()
	const doc = "docs/library.md"
	blocks := goBlocks(t, doc)
	if len(blocks) != 2 {
		t.Fatalf("%s has %d go blocks, want 2 (a program, the API)", doc, len(blocks))
	}

	// The program: built in a folder of this module, so that it imports
	// this package as it is.
	dir, err := os.MkdirTemp(".", ".docs-program-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(blocks[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	// README.md's excerpt, in a function of a file of its own.
	readme := goBlocks(t, "README.md")
	if len(readme) != 1 {
		t.Fatalf("README.md has %d go blocks, want 1", len(readme))
	}
	excerpt := "package main\n\nimport (\n\t\"context\"\n\n\t\"github.com/switchboard-gateway/switchboard\"\n)\n\n" +
		"func readme() {\n" + readme[0] + "\t_, _ = gw, err\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "readme.go"), []byte(excerpt), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "vet", "./"+dir).CombinedOutput(); err != nil {
		t.Errorf("the program of %s or README.md's excerpt does not build: %v\n%s", doc, err, out)
	}

	// The API: each func line is a declaration of the package.
	var source strings.Builder
	for _, f := range []string{"switchboard.go", "handler.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		source.Write(b)
	}
	funcs := 0
	for line := range strings.Lines(blocks[1]) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "func ") {
			funcs++
			if !strings.Contains(source.String(), "\n"+line+" {") {
				t.Errorf("%s lists %q, which the package does not declare", doc, line)
			}
		}
	}
	if want := len(regexp.MustCompile(`(?m)^func (\(g \*Gateway\) )?[A-Z]\w*\(`).FindAllString(source.String(), -1)); funcs != want {
		t.Errorf("%s lists %d functions and methods of Gateway, want the %d the package has", doc, funcs, want)
	}
	for _, typ := range []string{"Handler", "Route", "Options", "Request", "Connection", "Response", "ClientError", "Limits", "Management", "Cluster", "Embedded"} {
		if !strings.Contains(source.String(), "\ntype "+typ+" ") {
			t.Errorf("type %s of %s is not declared", typ, doc)
		}
	}

	// The tests it cites, here and in examples/.
	var tests strings.Builder
	for _, pattern := range []string{"*_test.go", "examples/*_test.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tests.Write(b)
		}
	}
	docText, _ := os.ReadFile(doc)
	cited := regexp.MustCompile("`((?:Test|Example)[A-Za-z_]*)`").FindAllStringSubmatch(string(docText), -1)
	if len(cited) < 10 {
		t.Errorf("%s cites %d tests", doc, len(cited))
	}
	for _, m := range cited {
		if !strings.Contains(tests.String(), "\nfunc "+m[1]+"(") {
			t.Errorf("%s cites %s, which does not exist", doc, m[1])
		}
	}

	// The figures TestDocumentedDefaults and the other tests check.
	testutil.DocContains(t, doc, "`127.0.0.1:3001`", "stage `dev`", "`$request.body.action`", "timeout of 29s",
		"`sendMessage` (broadcast)", "**1001 Going away**", "answer **503**", "with 1000", "1008",
		`{"message": "Internal server error", ...}`, `{"message": "Endpoint request timed out", ...}`,
		"fails with 502", "`Sec-WebSocket-Protocol`", "`X-Switchboard-User`", "`http.ErrServerClosed`",
		"(`CONNECT`, `MESSAGE`, `DISCONNECT`)", `{integration="go",route="sendMessage"}`)
	testutil.DocContains(t, "README.md", "(docs/library.md)", "go get github.com/switchboard-gateway/switchboard")
}
