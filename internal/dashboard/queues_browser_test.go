package dashboard_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

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

// The dashboard lists the queues with their counts, and its Redrive
// button moves a dead-letter queue's messages back to their queue.
func TestBrowserDashboardQueues(t *testing.T) {
	srv := servertest.StartYAML(t, `queues:
  - {name: jobs, deadLetter: {queue: jobs-dlq, maxReceiveCount: 1}}
  - {name: jobs-dlq}
`)
	q := srv.HTTP + "/123456789012/jobs"
	sqsCall(t, srv.HTTP, "SendMessage", map[string]any{"QueueUrl": q, "MessageBody": "poison"})
	got := sqsCall(t, srv.HTTP, "ReceiveMessage", map[string]any{"QueueUrl": q})
	handle := got["Messages"].([]any)[0].(map[string]any)["ReceiptHandle"]
	sqsCall(t, srv.HTTP, "ChangeMessageVisibility", map[string]any{"QueueUrl": q, "ReceiptHandle": handle, "VisibilityTimeout": 0})
	sqsCall(t, srv.HTTP, "ReceiveMessage", map[string]any{"QueueUrl": q}) // moves it to jobs-dlq

	page := newBrowser(t, "dashboard-queues")
	page.do("open the dashboard", chromedp.Navigate(srv.HTTP+"/_/"))
	page.do("wait for the dead-letter queue's row", chromedp.WaitVisible(chromedp.CSS(`tr[data-queue="jobs-dlq"] button.redrive`)))
	page.waitJS("the dead letter counted", `document.querySelector('tr[data-queue="jobs-dlq"] .visible').textContent === '1'`)
	page.do("redrive", chromedp.Click(chromedp.CSS(`tr[data-queue="jobs-dlq"] button.redrive`)))
	page.waitJS("the message back in jobs", `document.querySelector('tr[data-queue="jobs"] .visible').textContent === '1' &&
		document.querySelector('tr[data-queue="jobs-dlq"] .visible').textContent === '0' &&
		document.querySelector('#queues-result').textContent === '1 moved from jobs-dlq'`)
}
