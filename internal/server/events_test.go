package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	"github.com/coder/websocket"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/server"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// eventsClient is the AWS SDK for Go v2 EventBridge client, signing with
// the given keys.
func eventsClient(endpoint, id, secret string) *eventbridge.Client {
	return eventbridge.New(eventbridge.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func put(t *testing.T, c *eventbridge.Client, entries ...types.PutEventsRequestEntry) (*eventbridge.PutEventsOutput, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
}

func entry(source, detailType, detail string) types.PutEventsRequestEntry {
	return types.PutEventsRequestEntry{Source: aws.String(source), DetailType: aws.String(detailType), Detail: aws.String(detail)}
}

// subscribe subscribes c to topic; the broadcast it sends next comes back
// once the subscription is in force on every node, as the gateway runs one
// message of a connection at a time.
func subscribe(t *testing.T, c *websocket.Conn, topic string) {
	t.Helper()
	testutil.Write(t, c, fmt.Sprintf(`{"action":"subscribe","topic":%q}`, topic))
	fence := "fence " + topic
	testutil.Write(t, c, fmt.Sprintf(`{"action":"sendMessage","data":%q}`, fence))
	if got := testutil.ReadText(t, c); got != fence {
		t.Fatalf("after subscribing, got %q, want the fence %q", got, fence)
	}
}

const topicRules = `
events:
  buses: [audit]
  rules:
    - name: orders
      pattern:
        source: [shop.orders]
        detail-type: [{prefix: "Order"}]
        detail: {total: [{numeric: [">", 0]}]}
      targets:
        - topic: orders.${detail.orderId}
          data: $.detail
`

// TestPutEventsTopicTarget: the AWS SDK's PutEvents reaches a subscriber
// through a rule's topic target; per-entry failures are reported beside
// accepted entries; an event the pattern does not match is not delivered.
func TestPutEventsTopicTarget(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, topicRules)
	c := testutil.Dial(t, r.WS, nil)
	subscribe(t, c, "orders.42")
	eb := eventsClient(r.HTTP, "AKIDEXAMPLE", "secret")

	out, err := put(t, eb,
		entry("shop.orders", "OrderPlaced", `{"orderId":"42","total":0}`), // no match: total is not > 0
		entry("shop.orders", "OrderPlaced", `["not","an","object"]`),
		types.PutEventsRequestEntry{Source: aws.String("shop.orders"), Detail: aws.String(`{}`)},
		types.PutEventsRequestEntry{Source: aws.String("x"), DetailType: aws.String("y"), Detail: aws.String(`{}`), EventBusName: aws.String("nope")},
		types.PutEventsRequestEntry{Source: aws.String("x"), DetailType: aws.String("y"), Detail: aws.String(`{}`), EventBusName: aws.String("arn:aws:events:us-east-1:123456789012:event-bus/audit")},
		entry("shop.orders", "OrderPlaced", "{\n  \"orderId\": \"42\",\n  \"total\": 12.5\n}"),
	)
	if err != nil {
		t.Fatalf("PutEvents: %v", err)
	}
	if out.FailedEntryCount != 3 {
		t.Errorf("FailedEntryCount = %d, want 3", out.FailedEntryCount)
	}
	want := []string{"", "MalformedDetail", "InvalidArgument", "NotFoundException", "", ""}
	for i, e := range out.Entries {
		code := aws.ToString(e.ErrorCode)
		if code != want[i] {
			t.Errorf("entry %d: ErrorCode %q (%s), want %q", i, code, aws.ToString(e.ErrorMessage), want[i])
		}
		if (code == "") != (aws.ToString(e.EventId) != "") {
			t.Errorf("entry %d: EventId %q with ErrorCode %q: want exactly one", i, aws.ToString(e.EventId), code)
		}
	}
	if got := testutil.ReadText(t, c); got != `{"orderId":"42","total":12.5}` {
		t.Errorf("subscriber got %q, want the detail of the matching event", got)
	}
	// The next message is the next match, not the event that did not match.
	if _, err := put(t, eb, entry("shop.orders", "OrderShipped", `{"orderId":"42","total":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ReadText(t, c); got != `{"orderId":"42","total":1}` {
		t.Errorf("subscriber got %q, want the second matching event", got)
	}
	_, metrics := testutil.Get(t, r.HTTP+"/metrics")
	for _, line := range []string{
		`switchboard_events_accepted_total{bus="default"} 3`,
		`switchboard_events_accepted_total{bus="audit"} 1`,
		`switchboard_events_matched_total{rule="orders"} 2`,
		`switchboard_event_deliveries_total{kind="topic",rule="orders",target="topic0"} 2`,
		`switchboard_events_refused_total{code="MalformedDetail"} 1`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}

// TestPutEventsLimits: AWS's limits answer ValidationException, as the SDK
// reads it.
func TestPutEventsLimits(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, topicRules)
	eb := eventsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	var eleven []types.PutEventsRequestEntry
	for range 11 {
		eleven = append(eleven, entry("a", "b", `{}`))
	}
	big := entry("a", "b", `{"x":"`+strings.Repeat("x", 256<<10)+`"}`)
	for name, entries := range map[string][]types.PutEventsRequestEntry{"11 entries": eleven, "over 256 KiB": {big}} {
		_, err := put(t, eb, entries...)
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
			t.Errorf("%s: err = %v, want ValidationException", name, err)
		}
	}
	out, err := put(t, eb, entry("a", "b", `{"x":"`+strings.Repeat("x", 200<<10)+`"}`))
	if err != nil || out.FailedEntryCount != 0 {
		t.Errorf("200 KiB: %v %+v, want accepted", err, out)
	}
}

// TestPutEventsSignature: with management credentials, PutEvents must be
// signed for the service events with one of them.
func TestPutEventsSignature(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, "management: {accessKeys: {AKIDGOOD: goodsecret}}\n"+topicRules)
	_, err := put(t, eventsClient(r.HTTP, "AKIDGOOD", "wrongsecret"), entry("a", "b", `{}`))
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != 403 {
		t.Errorf("bad signature: err = %v, want 403", err)
	}
	if out, err := put(t, eventsClient(r.HTTP, "AKIDGOOD", "goodsecret"), entry("a", "b", `{}`)); err != nil || out.FailedEntryCount != 0 {
		t.Errorf("good signature: %v %+v, want accepted", err, out)
	}
}

// TestEventRuleRefusedAtStart: a pattern that is not understood stops the
// start, naming the rule and the reason.
func TestEventRuleRefusedAtStart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	yaml := "events:\n  rules:\n    - name: odd\n      pattern: {source: [{cidr: 10.0.0.0/8}]}\n      targets: [{topic: t}]\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = server.New(cfg, server.Options{Addr: "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), `events rule "odd"`) || !strings.Contains(err.Error(), `"cidr" is not a supported content filter`) {
		t.Fatalf("server.New = %v, want the rule's name and the reason", err)
	}
}

// TestEventRuleFunctionTarget: a rule's function target receives the
// event's envelope as EventBridge builds it; a function that fails is
// invoked again.
func TestEventRuleFunctionTarget(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	// The function fails its first call, then posts the event it got to
	// the connection named in the detail.
	code := `let calls = 0;
exports.handler = async (event) => {
  calls++;
  if (calls === 1) throw new Error("first call fails");
  const res = await fetch(process.env.APIG_ENDPOINT + "/@connections/" + event.detail.connectionId,
    {method: "POST", body: JSON.stringify({calls, event})});
  if (res.status !== 200) throw new Error("post: " + res.status);
};`
	if err := os.WriteFile(filepath.Join(dir, "push.js"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	r := servertest.StartYAML(t, fmt.Sprintf(`
functions:
  push: {runtime: nodejs20.x, handler: push.handler, codeDir: %q, maxProcesses: 1}
events:
  rules:
    - name: push
      pattern: {source: [app], detail: {connectionId: [{exists: true}]}}
      targets: [{function: push}]
`, dir))
	c := testutil.Dial(t, r.WS, nil)
	id := r.Server.Gateway().Hub().LocalRecords()[0].ConnID
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	out, err := put(t, eventsClient(r.HTTP, "AKIDEXAMPLE", "secret"), types.PutEventsRequestEntry{
		Source: aws.String("app"), DetailType: aws.String("Ping"), Detail: aws.String(`{"connectionId":"` + id + `"}`),
		Resources: []string{"arn:aws:s3:::bucket"}, Time: aws.Time(when),
	})
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v %+v", err, out)
	}
	_, msg := testutil.Read(t, c, 30*time.Second)
	var got struct {
		Calls int
		Event map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(msg), &got); err != nil {
		t.Fatalf("message %q: %v", msg, err)
	}
	if got.Calls != 2 {
		t.Errorf("delivered on call %d, want 2 (the first failed and was retried)", got.Calls)
	}
	var keys []string
	d := json.NewDecoder(strings.NewReader(msg[strings.Index(msg, `"event":`)+len(`"event":`):]))
	d.Token()
	for d.More() {
		tok, _ := d.Token()
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		_ = d.Decode(&skip)
	}
	if want := []string{"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}; !slices.Equal(keys, want) {
		t.Errorf("envelope keys %v, want %v", keys, want)
	}
	for k, want := range map[string]string{"version": `"0"`, "detail-type": `"Ping"`, "source": `"app"`, "account": `"123456789012"`,
		"time": `"2026-01-02T03:04:05Z"`, "region": `"us-east-1"`, "resources": `["arn:aws:s3:::bucket"]`} {
		if string(got.Event[k]) != want {
			t.Errorf("event %s = %s, want %s", k, got.Event[k], want)
		}
	}
}

// TestEventTopicTargetAcrossCluster: on a two-node cluster, an event put on
// one node reaches, through a topic target, a subscriber on the other.
func TestEventTopicTargetAcrossCluster(t *testing.T) {
	t.Parallel()
	yamls := engines["nats"](t, "3s")
	for i := range yamls {
		yamls[i] += topicRules
	}
	nodes := startCluster(t, yamls...)
	a, b := nodes[0], nodes[1]
	c, _ := connect(t, a)
	subscribe(t, c, "orders.7")
	out, err := put(t, eventsClient(b.HTTP, "AKIDEXAMPLE", "secret"), entry("shop.orders", "OrderPlaced", `{"orderId":"7","total":3}`))
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents through b: %v %+v", err, out)
	}
	if got := testutil.ReadText(t, c); got != `{"orderId":"7","total":3}` {
		t.Errorf("subscriber on a got %q, want the event's detail", got)
	}
}

// TestEventRuleSAMTemplate: the push path of a SAM template: PutEvents →
// AWS::Events::Rule → a Node function → postToConnection with the AWS SDK
// for JavaScript v3 → the subscriber. An event of another source is not
// delivered.
func TestEventRuleSAMTemplate(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	// The SDK comes from the sam-chat example's packages.
	modules, err := filepath.Abs("../../examples/sam-chat/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	testutil.NPMModules(t, filepath.Dir(modules), "@aws-sdk/client-apigatewaymanagementapi", "--omit=dev")
	cfg, err := config.LoadTemplate("testdata/events-sam/template.yaml", func(string) string { return "" }, config.Overrides{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Environment["NODE_PATH"] = modules
	cfg.Environment["AWS_ACCESS_KEY_ID"], cfg.Environment["AWS_SECRET_ACCESS_KEY"] = "AKIDEXAMPLE", "secret"
	r := servertest.Start(t, cfg)
	c := testutil.Dial(t, r.WS, nil)
	id := testutil.ReadTextAfter(t, c, `{"action":"whoami"}`)
	eb := eventsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	out, err := put(t, eb,
		entry("elsewhere", "EntityUpdated", `{"subscriber":"`+id+`","entity":"ignored"}`),
		entry("entities", "EntityUpdated", `{"subscriber":"`+id+`","entity":"e-1"}`))
	if err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v %+v", err, out)
	}
	_, got := testutil.Read(t, c, 30*time.Second)
	if got != `{"source":"entities","entity":"e-1"}` {
		t.Errorf("subscriber got %q, want the entities event only", got)
	}
}

// TestPutEventsManagementListener: with management.listen, PutEvents is
// served there, beside the management API, and not on the main listener.
func TestPutEventsManagementListener(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, "management: {listen: 127.0.0.1:0}\n"+topicRules)
	if out, err := put(t, eventsClient(r.Management, "AKIDEXAMPLE", "secret"), entry("a", "b", `{}`)); err != nil || out.FailedEntryCount != 0 {
		t.Errorf("PutEvents on management.listen: %v %+v, want accepted", err, out)
	}
	if _, err := put(t, eventsClient(r.HTTP, "AKIDEXAMPLE", "secret"), entry("a", "b", `{}`)); err == nil {
		t.Errorf("PutEvents on the main listener succeeded, want it refused")
	}
}

// TestEventRulesReload: a reload puts the new rules in force.
func TestEventRulesReload(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, topicRules)
	c := testutil.Dial(t, r.WS, nil)
	subscribe(t, c, "users.9")
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	next := strings.ReplaceAll(strings.ReplaceAll(topicRules, "shop.orders", "shop.users"), "orders.${detail.orderId}", "users.${detail.userId}")
	if err := os.WriteFile(path, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Server.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if out, err := put(t, eventsClient(r.HTTP, "AKIDEXAMPLE", "secret"), entry("shop.users", "OrderLike", `{"userId":"9","total":1}`)); err != nil || out.FailedEntryCount != 0 {
		t.Fatalf("PutEvents: %v %+v", err, out)
	}
	if got := testutil.ReadText(t, c); got != `{"userId":"9","total":1}` {
		t.Errorf("subscriber got %q, want the event of the reloaded rule", got)
	}
}
