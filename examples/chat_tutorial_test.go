package examples_test

import (
	"encoding/json"
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

// TestChatTutorialOnDynamoDB: the WebSocket chat tutorial as its users
// write it (bench/chat-tutorial, which bench/run.sh also runs under
// serverless-offline: handlers on the AWS SDK for JavaScript v2,
// connection IDs in a DynamoDB table, replies through the management API
// at https://{domainName}/{stage}) runs unchanged from its serverless.yml,
// against a real DynamoDB API (dynalite): $connect records each connection
// in the table, echo posts back to its sender, sendMessage scans the table
// and reaches every connection, $default answers an unknown action, and
// $disconnect removes the record.
func TestChatTutorialOnDynamoDB(t *testing.T) {
	t.Parallel()
	dir := npmProjectWith(t, filepath.Join("..", "bench", "chat-tutorial"), "aws-sdk")
	// The gateway reads DYNAMODB_ENDPOINT for serverless.yml's
	// ${env:DYNAMODB_ENDPOINT}; the rest is for this test's own node runs.
	dynamo := "DYNAMODB_ENDPOINT=http://127.0.0.1:" + strconv.Itoa(startDynalite(t, dir))
	env := []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1", dynamo}
	node := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("node", args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("node %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	node("create-table.js")
	connections := func() []string {
		var ids []string
		out := node("-e", `new (require("aws-sdk").DynamoDB.DocumentClient)({endpoint: process.env.DYNAMODB_ENDPOINT})
			.scan({TableName: "chat-connections"}).promise()
			.then((r) => console.log(JSON.stringify(r.Items.map((i) => i.connectionId))))`)
		if err := json.Unmarshal([]byte(out), &ids); err != nil {
			t.Fatalf("scan printed %q: %v", out, err)
		}
		return ids
	}

	gw := serveEnv(t, []string{dynamo}, "--project", filepath.Join(dir, "serverless.yml"))
	a := testutil.Dial(t, gw.ws+"/dev", nil)
	b := testutil.Dial(t, gw.ws+"/dev", nil)
	if ids := connections(); len(ids) != 2 {
		t.Fatalf("table after two connects: %v, want two connection IDs", ids)
	}

	if got := testutil.ReadTextAfter(t, a, `{"action":"echo","data":"ping"}`); got != "ping" {
		t.Errorf("echo answered %q, want ping", got)
	}
	testutil.Write(t, b, `{"action":"sendMessage","data":"hello all"}`)
	for name, conn := range map[string]*websocket.Conn{"a": a, "b": b} {
		if got := testutil.ReadText(t, conn); got != "hello all" {
			t.Errorf("%s got %q from sendMessage, want hello all", name, got)
		}
	}
	if got := testutil.ReadTextAfter(t, b, `{"action":"nope"}`); !strings.Contains(got, "unknown action") {
		t.Errorf("$default answered %q, want the list of actions", got)
	}

	_ = b.CloseNow()
	testutil.Eventually(t, 30*time.Second, func() bool { return len(connections()) == 1 },
		"$disconnect removes the closed connection from the table")
}

// startDynalite runs dynalite, the DynamoDB API on Node, from the
// project in dir on a free loopback port until the end of the test, and
// returns the port. Cleanups run last first: a gateway started after it
// is stopped before it.
func startDynalite(t *testing.T, dir string) int {
	t.Helper()
	port := testutil.FreePort(t)
	startCommand(t, exec.Command("node", filepath.Join(dir, "node_modules", "dynalite", "cli.js"), "--port", strconv.Itoa(port)))
	return port
}
