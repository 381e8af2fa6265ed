package mgmtapi_test

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/integration"
	"github.com/switchboard-gateway/switchboard/internal/mgmtapi"
	"github.com/switchboard-gateway/switchboard/internal/registry/memreg"
)

// patterns records the patterns registered on it.
type patterns []string

func (p *patterns) Handle(pattern string, _ http.Handler) { *p = append(*p, pattern) }

// docs/users-presence.md names the header, the user ID's limit and every
// route the API registers for users and presence, as the code has them.
func TestDocsUsersPresence(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/users-presence.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var ps patterns
	mgmtapi.New(gateway.NewHub(memreg.New(), "", nil), mgmtapi.Options{}).Register(&ps)
	want := []string{
		"`" + integration.UserHeader + "`",
		"at most " + strconv.Itoa(integration.MaxUserBytes) + " bytes",
	}
	n := 0
	for _, p := range ps {
		method, path, _ := strings.Cut(p, " ")
		if strings.HasPrefix(path, "/@users") || strings.HasPrefix(path, "/@topics/") && strings.HasSuffix(path, "/presence") {
			n++
			path = strings.ReplaceAll(path, "{user}", "{userId}")
			want = append(want, "`"+method+" "+path)
		}
	}
	if n != 5 {
		t.Errorf("%d user and presence routes at the root, want 5", n)
	}
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/users-presence.md lacks %q", w)
		}
	}
}
