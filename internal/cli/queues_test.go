package cli_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
)

// sqsCall makes one SQS API call as the SDKs send it and decodes its answer.
func sqsCall(t *testing.T, endpoint, op string, in map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(in)
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "AmazonSQS."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %v %v", op, resp.StatusCode, out, err)
	}
	return out
}

// The queues commands list the queues, show a dead-letter queue's
// messages and redrive them.
func TestManageQueues(t *testing.T) {
	t.Parallel()
	gw := servertest.StartYAML(t, `queues:
  - {name: jobs, deadLetter: {queue: jobs-dlq, maxReceiveCount: 1}}
  - {name: jobs-dlq}
`)
	q := gw.HTTP + "/123456789012/jobs"
	sqsCall(t, gw.HTTP, "SendMessage", map[string]any{"QueueUrl": q, "MessageBody": "poison"})
	got := sqsCall(t, gw.HTTP, "ReceiveMessage", map[string]any{"QueueUrl": q})
	handle := got["Messages"].([]any)[0].(map[string]any)["ReceiptHandle"]
	sqsCall(t, gw.HTTP, "ChangeMessageVisibility", map[string]any{"QueueUrl": q, "ReceiptHandle": handle, "VisibilityTimeout": 0})
	if got := sqsCall(t, gw.HTTP, "ReceiveMessage", map[string]any{"QueueUrl": q}); got["Messages"] != nil {
		t.Fatalf("second receive = %v, want none: the message moved to jobs-dlq", got)
	}

	ep := []string{"--endpoint", gw.HTTP}
	if out := mustManage(t, noEnv, "queues", append([]string{"list"}, ep...)...); !strings.Contains(out, `"name": "jobs-dlq"`) || !strings.Contains(out, `"sources": [`) {
		t.Errorf("queues list printed %q, want jobs-dlq and its sources", out)
	}
	if out := mustManage(t, noEnv, "queues", append([]string{"show"}, append(ep, "jobs-dlq")...)...); !strings.Contains(out, `"body": "poison"`) || !strings.Contains(out, `"source": "jobs"`) {
		t.Errorf("queues show jobs-dlq printed %q, want the poison message from jobs", out)
	}
	if out := mustManage(t, noEnv, "queues", append([]string{"redrive"}, append(ep, "jobs-dlq")...)...); out != "moved 1 message from jobs-dlq back to their queues\n" {
		t.Errorf("queues redrive printed %q", out)
	}
	if got := sqsCall(t, gw.HTTP, "ReceiveMessage", map[string]any{"QueueUrl": q}); got["Messages"] == nil {
		t.Errorf("receive after the redrive = %v, want the poison message", got)
	}
	_, err := manage(t, noEnv, strings.NewReader(""), "queues", append([]string{"show"}, append(ep, "nope")...)...)
	if err == nil || !strings.Contains(err.Error(), "404 NotFoundException") {
		t.Errorf("queues show nope: err = %v, want 404 NotFoundException", err)
	}
	_, err = manage(t, noEnv, strings.NewReader(""), "queues", append([]string{"redrive"}, append(ep, "jobs")...)...)
	if err == nil || !strings.Contains(err.Error(), "400 BadRequestException") {
		t.Errorf("queues redrive jobs: err = %v, want 400 BadRequestException", err)
	}
	if _, err := manage(t, noEnv, strings.NewReader(""), "queues", "purge", "jobs"); err == nil || !strings.Contains(err.Error(), "list|show|redrive") {
		t.Errorf("queues purge: err = %v, want the usage", err)
	}
}
