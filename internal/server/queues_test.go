package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/server"
	"github.com/switchboard-gateway/switchboard/internal/server/servertest"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// sqsClient is the AWS SDK for Go v2 SQS client, signing with the given keys.
func sqsClient(endpoint, id, secret string) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: id, SecretAccessKey: secret}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func ctx30(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const queuesYAML = `
queues:
  - name: work
    visibilityTimeout: 30s
    deadLetter: {queue: work-dlq, maxReceiveCount: 2}
  - name: work-dlq
`

// apiCode returns the error code the SDK reports for err.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestSQSAPI: the AWS SDK for Go v2 SQS client sends, receives, changes
// the visibility of and deletes messages, in batches too, and reads the
// errors it knows by type and by code.
func TestSQSAPI(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, queuesYAML)
	c := sqsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	ctx := ctx30(t)

	url, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("work")})
	if err != nil || !strings.HasSuffix(aws.ToString(url.QueueUrl), "/123456789012/work") {
		t.Fatalf("GetQueueUrl = %v, %v; want a URL ending /123456789012/work", url, err)
	}
	q := url.QueueUrl
	_, err = c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")})
	var missing *sqstypes.QueueDoesNotExist
	if !errors.As(err, &missing) || apiCode(err) != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("GetQueueUrl(nope) = %v (code %q), want QueueDoesNotExist with AWS.SimpleQueueService.NonExistentQueue", err, apiCode(err))
	}

	// The SDK checks MD5OfMessageBody itself; AWS's own URL form names the queue too.
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("https://sqs.us-east-1.amazonaws.com/123456789012/work"),
		MessageBody: aws.String("one"), MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("order")}}})
	if err != nil || aws.ToString(sent.MessageId) == "" || aws.ToString(sent.MD5OfMessageAttributes) == "" {
		t.Fatalf("SendMessage = %+v, %v", sent, err)
	}
	batch, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q, Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("two")},
		{Id: aws.String("b"), MessageBody: aws.String("late"), DelaySeconds: 901},
		{Id: aws.String("c"), MessageBody: aws.String("three")},
	}})
	if err != nil || len(batch.Successful) != 2 || len(batch.Failed) != 1 || aws.ToString(batch.Failed[0].Code) != "InvalidParameterValue" || !batch.Failed[0].SenderFault {
		t.Fatalf("SendMessageBatch = %+v, %v; want a and c sent, b failed with InvalidParameterValue", batch, err)
	}
	_, err = c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q, MessageBody: aws.String(strings.Repeat("x", 256<<10+1))})
	if apiCode(err) != "InvalidParameterValue" {
		t.Errorf("SendMessage(256 KiB + 1) = %v, want InvalidParameterValue", err)
	}

	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q, MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"}, MessageAttributeNames: []string{"All"}})
	if err != nil || len(got.Messages) != 3 {
		t.Fatalf("ReceiveMessage = %+v, %v; want 3 messages", got, err)
	}
	first := got.Messages[0]
	if aws.ToString(first.Body) != "one" || first.Attributes["ApproximateReceiveCount"] != "1" || first.Attributes["SentTimestamp"] == "" ||
		aws.ToString(first.MessageAttributes["kind"].StringValue) != "order" {
		t.Errorf("first message = %+v, want one with its attributes", first)
	}
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q, ReceiptHandle: first.ReceiptHandle, VisibilityTimeout: 0}); err != nil {
		t.Fatalf("ChangeMessageVisibility: %v", err)
	}
	again, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q, MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"ApproximateReceiveCount"}})
	if err != nil || len(again.Messages) != 1 || aws.ToString(again.Messages[0].Body) != "one" || again.Messages[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("ReceiveMessage after ChangeMessageVisibility(0) = %+v, %v; want one, received twice", again, err)
	}
	if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q, ReceiptHandle: again.Messages[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q, ReceiptHandle: aws.String("garbage")})
	var invalid *sqstypes.ReceiptHandleIsInvalid
	if !errors.As(err, &invalid) {
		t.Errorf("DeleteMessage(garbage) = %v, want ReceiptHandleIsInvalid", err)
	}
	del, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: q, Entries: []sqstypes.DeleteMessageBatchRequestEntry{
		{Id: aws.String("ok"), ReceiptHandle: got.Messages[1].ReceiptHandle},
		{Id: aws.String("bad"), ReceiptHandle: aws.String("garbage")},
	}})
	if err != nil || len(del.Successful) != 1 || len(del.Failed) != 1 || aws.ToString(del.Failed[0].Code) != "ReceiptHandleIsInvalid" {
		t.Errorf("DeleteMessageBatch = %+v, %v; want ok deleted, bad ReceiptHandleIsInvalid", del, err)
	}
	list, err := c.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String("work-")})
	if err != nil || len(list.QueueUrls) != 1 || !strings.HasSuffix(list.QueueUrls[0], "/123456789012/work-dlq") {
		t.Errorf("ListQueues(work-) = %v, %v; want work-dlq", list, err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q, AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil || attrs.Attributes["ApproximateNumberOfMessagesNotVisible"] != "1" || attrs.Attributes["QueueArn"] != "arn:aws:sqs:us-east-1:123456789012:work" ||
		!strings.Contains(attrs.Attributes["RedrivePolicy"], `"maxReceiveCount":2`) {
		t.Errorf("GetQueueAttributes = %v, %v; want one in flight, its ARN and redrive policy", attrs, err)
	}

	// A long poll returns with the message sent while it waits.
	done := make(chan *sqs.ReceiveMessageOutput, 1)
	go func() {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(aws.ToString(q)), WaitTimeSeconds: 20})
		if err != nil {
			t.Errorf("long poll: %v", err)
		}
		done <- out
	}()
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q, MessageBody: aws.String("waited for")}); err != nil {
		t.Fatal(err)
	}
	if out := <-done; out == nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "waited for" {
		t.Errorf("long poll = %+v, want the message sent meanwhile", out)
	}
	_, err = c.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: q})
	if apiCode(err) != "AWS.SimpleQueueService.UnsupportedOperation" {
		t.Errorf("PurgeQueue = %v, want UnsupportedOperation", err)
	}
}

// TestSQSQueueReceiveWait: a receive that names no wait waits as long as
// the queue's receiveWait (ReceiveMessageWaitTimeSeconds).
func TestSQSQueueReceiveWait(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, "queues: [{name: polled, receiveWait: 20s}]\n")
	c := sqsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	ctx := ctx30(t)
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String("polled"), AttributeNames: []sqstypes.QueueAttributeName{"ReceiveMessageWaitTimeSeconds"}})
	if err != nil || attrs.Attributes["ReceiveMessageWaitTimeSeconds"] != "20" {
		t.Fatalf("GetQueueAttributes = %v, %v; want ReceiveMessageWaitTimeSeconds 20", attrs, err)
	}
	done := make(chan *sqs.ReceiveMessageOutput, 1)
	go func() {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String("polled")})
		if err != nil {
			t.Errorf("ReceiveMessage: %v", err)
		}
		done <- out
	}()
	// The receive waits until a message is sent: it is not answered empty.
	testutil.Eventually(t, 10*time.Second, func() bool { return r.Server.QueueWaitersForTest() == 1 }, "the receive does not wait")
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("polled"), MessageBody: aws.String("late")}); err != nil {
		t.Fatal(err)
	}
	if out := <-done; out == nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "late" {
		t.Errorf("ReceiveMessage without WaitTimeSeconds = %+v, want the message sent while it waited", out)
	}
}

// TestSQSSignature: with management credentials configured, an SQS call
// must be signed for the service sqs with one of them.
func TestSQSSignature(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, "management: {accessKeys: {AKIDGOOD: goodsecret}}\n"+queuesYAML)
	ctx := ctx30(t)
	in := &sqs.GetQueueUrlInput{QueueName: aws.String("work")}
	_, err := sqsClient(r.HTTP, "AKIDGOOD", "wrongsecret").GetQueueUrl(ctx, in)
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Errorf("bad signature: err = %v, want 403", err)
	}
	if _, err := sqsClient(r.HTTP, "AKIDGOOD", "goodsecret").GetQueueUrl(ctx, in); err != nil {
		t.Errorf("good signature: %v", err)
	}
}

// adminJSON calls one of the queue calls of the CLI and the dashboard.
func adminJSON(t *testing.T, method, url string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode
}

// TestSQSDeadLetterRedrive: a message received maxReceiveCount times
// without being deleted moves to the dead-letter queue, is listed there,
// and is back in its queue after a redrive, its receive count reset.
func TestSQSDeadLetterRedrive(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, queuesYAML)
	c := sqsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	ctx := ctx30(t)
	q := aws.String(r.HTTP + "/123456789012/work")
	sent, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q, MessageBody: aws.String("poison")})
	if err != nil {
		t.Fatal(err)
	}
	receive := func(url *string) []sqstypes.Message {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	for i := 1; i <= 2; i++ {
		got := receive(q)
		if len(got) != 1 || got[0].Attributes["ApproximateReceiveCount"] != string(rune('0'+i)) {
			t.Fatalf("receive %d = %+v, want poison", i, got)
		}
		// The consumer fails: the message is visible again at once.
		if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: q, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	if got := receive(q); len(got) != 0 {
		t.Fatalf("receive 3 = %+v, want none: the message moved to work-dlq", got)
	}
	if got := receive(aws.String("work-dlq")); len(got) != 1 || got[0].Attributes["DeadLetterQueueSourceArn"] != "arn:aws:sqs:us-east-1:123456789012:work" {
		t.Fatalf("receive from work-dlq = %+v, want poison with its DeadLetterQueueSourceArn", got)
	}
	var shown struct {
		Queue struct {
			Sources []string `json:"sources"`
		} `json:"queue"`
		Messages []struct {
			ID, Body, Source string
		} `json:"messages"`
	}
	if st := adminJSON(t, http.MethodGet, r.HTTP+"/_/api/queues/work-dlq", &shown); st != http.StatusOK || len(shown.Messages) != 1 ||
		shown.Messages[0].ID != aws.ToString(sent.MessageId) || shown.Messages[0].Source != "work" || len(shown.Queue.Sources) != 1 {
		t.Fatalf("GET /_/api/queues/work-dlq = %d %+v, want the poison message from work", st, shown)
	}
	var moved struct{ Moved int }
	if st := adminJSON(t, http.MethodPost, r.HTTP+"/@queues/work-dlq/redrive", &moved); st != http.StatusOK || moved.Moved != 1 {
		t.Fatalf("redrive = %d %+v, want 1 moved", st, moved)
	}
	got := receive(q)
	if len(got) != 1 || aws.ToString(got[0].MessageId) != aws.ToString(sent.MessageId) || got[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("receive after redrive = %+v, want poison, received once", got)
	}
	// Dead again, and redriven with SQS's own StartMessageMoveTask.
	if _, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: q, Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{
		{Id: aws.String("a"), ReceiptHandle: got[0].ReceiptHandle}}}); err != nil {
		t.Fatal(err)
	}
	again := receive(q)
	if len(again) != 1 {
		t.Fatalf("receive 2 after redrive = %+v, want poison", again)
	}
	cv, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: q, Entries: []sqstypes.ChangeMessageVisibilityBatchRequestEntry{
		{Id: aws.String("a"), ReceiptHandle: again[0].ReceiptHandle}, {Id: aws.String("stale"), ReceiptHandle: got[0].ReceiptHandle}}})
	if err != nil || len(cv.Successful) != 1 || len(cv.Failed) != 1 || aws.ToString(cv.Failed[0].Code) != "AWS.SimpleQueueService.MessageNotInflight" {
		t.Fatalf("ChangeMessageVisibilityBatch = %+v, %v; want a changed, stale MessageNotInflight", cv, err)
	}
	if got := receive(q); len(got) != 0 {
		t.Fatalf("receive 3 after redrive = %+v, want none: dead again", got)
	}
	sources, err := c.ListDeadLetterSourceQueues(ctx, &sqs.ListDeadLetterSourceQueuesInput{QueueUrl: aws.String("work-dlq")})
	if err != nil || len(sources.QueueUrls) != 1 || !strings.HasSuffix(sources.QueueUrls[0], "/work") {
		t.Fatalf("ListDeadLetterSourceQueues = %+v, %v; want work", sources, err)
	}
	if task, err := c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:123456789012:work-dlq")}); err != nil || aws.ToString(task.TaskHandle) == "" {
		t.Fatalf("StartMessageMoveTask = %+v, %v", task, err)
	}
	if got := receive(q); len(got) != 1 || aws.ToString(got[0].MessageId) != aws.ToString(sent.MessageId) {
		t.Fatalf("receive after StartMessageMoveTask = %+v, want poison", got)
	}
	if _, err := c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:123456789012:work")}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("StartMessageMoveTask(work) = %v, want InvalidParameterValue: work is no dead-letter queue", err)
	}
	var bad struct{ Message string }
	if st := adminJSON(t, http.MethodPost, r.HTTP+"/@queues/work/redrive", &bad); st != http.StatusBadRequest || !strings.Contains(bad.Message, "no queue's dead-letter queue") {
		t.Errorf("redrive of work = %d %+v, want 400", st, bad)
	}
}

// TestSQSTriggerReportBatchItemFailures: a Node function with
// ReportBatchItemFailures gets only the items it reported again, after
// the visibility timeout, with their receive count raised.
func TestSQSTriggerReportBatchItemFailures(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	// Each invocation posts what it got to the connection named in the
	// message attributes; the message "fail" fails on its first receive.
	code := `exports.handler = async (event) => {
  const got = event.Records.map(r => ({body: r.body, count: r.attributes.ApproximateReceiveCount,
    source: r.eventSource, arn: r.eventSourceARN, endpoint: process.env.AWS_ENDPOINT_URL_SQS}));
  const conn = event.Records[0].messageAttributes.conn.stringValue;
  const res = await fetch(process.env.APIG_ENDPOINT + "/@connections/" + conn, {method: "POST", body: JSON.stringify(got)});
  if (res.status !== 200) throw new Error("post: " + res.status);
  return {batchItemFailures: event.Records
    .filter(r => r.body === "fail" && r.attributes.ApproximateReceiveCount === "1")
    .map(r => ({itemIdentifier: r.messageId}))};
};`
	if err := os.WriteFile(filepath.Join(dir, "push.js"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	r := servertest.StartYAML(t, `
functions:
  push: {runtime: nodejs20.x, handler: push.handler, codeDir: "`+dir+`", maxProcesses: 1}
queues:
  - name: jobs
    visibilityTimeout: 3s
    triggers: [{function: push, reportBatchItemFailures: true, maxConcurrency: 2}]
`)
	ws := testutil.Dial(t, r.WS, nil)
	id := r.Server.Gateway().Hub().LocalRecords()[0].ConnID
	c := sqsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	ctx := ctx30(t)
	attrs := map[string]sqstypes.MessageAttributeValue{"conn": {DataType: aws.String("String"), StringValue: aws.String(id)}}
	var entries []sqstypes.SendMessageBatchRequestEntry
	for _, body := range []string{"a", "fail", "b"} {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(body), MessageBody: aws.String(body), MessageAttributes: attrs})
	}
	if out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String("jobs"), Entries: entries}); err != nil || len(out.Failed) != 0 {
		t.Fatalf("SendMessageBatch = %+v, %v", out, err)
	}
	type item struct{ Body, Count, Source, ARN, Endpoint string }
	read := func() []item {
		_, msg := testutil.Read(t, ws, 30*time.Second)
		var got []item
		if err := json.Unmarshal([]byte(msg), &got); err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		return got
	}
	var bodies []string
	for len(bodies) < 3 { // one batch, as they were sent in one call
		for _, it := range read() {
			if it.Count != "1" || it.Source != "aws:sqs" || it.ARN != "arn:aws:sqs:us-east-1:123456789012:jobs" || it.Endpoint != r.HTTP {
				t.Errorf("first delivery %+v, want ApproximateReceiveCount 1 from the jobs queue, and AWS_ENDPOINT_URL_SQS %s", it, r.HTTP)
			}
			bodies = append(bodies, it.Body)
		}
	}
	if again := read(); len(again) != 1 || again[0].Body != "fail" || again[0].Count != "2" {
		t.Fatalf("second delivery = %+v, want only fail, received twice", again)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String("jobs"), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
		return err == nil && out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
	}, "the queue did not empty")
}

// entitiesTemplate is the seed's push path as a SAM template: a rule into
// a queue with a dead-letter queue, and a function the queue triggers with
// ReportBatchItemFailures. The function posts each event's detail to the
// connection it names; a poison event fails until the file FIXED exists.
const entitiesTemplate = `AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: entities, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Default:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $default, Target: !Join [/, [integrations, !Ref Integ]]}
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${PushFunction.Arn}/invocations
  EntityQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 2
      RedrivePolicy: {deadLetterTargetArn: !GetAtt EntityDLQ.Arn, maxReceiveCount: 2}
  EntityDLQ:
    Type: AWS::SQS::Queue
  EntityRule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [entities]}
      Targets: [{Arn: !GetAtt EntityQueue.Arn, Id: entityQueue}]
  PushFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: push.handler
      Runtime: nodejs20.x
      Environment: {Variables: {FIXED: %s}}
      Events:
        Entities:
          Type: SQS
          Properties:
            Queue: !GetAtt EntityQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
`

const entitiesPush = `const fs = require("fs");
exports.handler = async (event) => {
  const batchItemFailures = [];
  for (const r of event.Records) {
    const ev = JSON.parse(r.body);
    if (ev.detail.poison && !fs.existsSync(process.env.FIXED)) {
      batchItemFailures.push({itemIdentifier: r.messageId});
      continue;
    }
    const res = await fetch(process.env.APIG_ENDPOINT + "/@connections/" + ev.detail.connectionId,
      {method: "POST", body: JSON.stringify({n: ev.detail.n, source: ev.source, count: r.attributes.ApproximateReceiveCount})});
    if (res.status !== 200) batchItemFailures.push({itemIdentifier: r.messageId});
  }
  return {batchItemFailures};
};`

// TestTemplateRuleQueueFunction: a SAM template's rule → queue (with a
// dead-letter queue) → function runs as written: PutEvents through the AWS
// SDK reaches the subscriber through the queue and the function; an event
// of another source does not; a poison event lands in the dead-letter
// queue after maxReceiveCount receives and is delivered after a redrive.
func TestTemplateRuleQueueFunction(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	fixed := filepath.Join(dir, "fixed")
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"template.yaml": fmt.Sprintf(entitiesTemplate, fixed), "src/push.js": entitiesPush} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.LoadTemplate(filepath.Join(dir, "template.yaml"), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	r := servertest.Start(t, cfg)
	ws := testutil.Dial(t, r.WS, nil)
	id := r.Server.Gateway().Hub().LocalRecords()[0].ConnID
	eb := eventsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	send := func(source string, detail string) {
		t.Helper()
		if out, err := put(t, eb, entry(source, "EntityChanged", detail)); err != nil || out.FailedEntryCount != 0 {
			t.Fatalf("PutEvents: %+v, %v", out, err)
		}
	}
	type pushed struct {
		N      int
		Source string
		Count  string
	}
	read := func() pushed {
		t.Helper()
		_, msg := testutil.Read(t, ws, 30*time.Second)
		var p pushed
		if err := json.Unmarshal([]byte(msg), &p); err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		return p
	}
	send("entities", fmt.Sprintf(`{"connectionId":%q,"n":1}`, id))
	if got := read(); got.N != 1 || got.Source != "entities" || got.Count != "1" {
		t.Fatalf("first push = %+v, want n 1 from entities", got)
	}
	send("other", fmt.Sprintf(`{"connectionId":%q,"n":2}`, id))
	send("entities", fmt.Sprintf(`{"connectionId":%q,"n":3,"poison":true}`, id))
	send("entities", fmt.Sprintf(`{"connectionId":%q,"n":4}`, id))
	if got := read(); got.N != 4 {
		t.Fatalf("second push = %+v, want n 4: the other source is not matched, the poison event fails", got)
	}
	var dlq struct {
		Messages []struct{ Body, Source string } `json:"messages"`
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		adminJSON(t, http.MethodGet, r.HTTP+"/@queues/EntityDLQ", &dlq)
		return len(dlq.Messages) == 1
	}, "the poison event did not reach the dead-letter queue")
	if m := dlq.Messages[0]; m.Source != "EntityQueue" || !strings.Contains(m.Body, `"poison":true`) {
		t.Errorf("dead letter = %+v, want the poison event from EntityQueue", m)
	}
	_, metrics := testutil.Get(t, r.HTTP+"/metrics")
	for _, line := range []string{
		`switchboard_queue_messages{queue="EntityDLQ",state="visible"} 1`,
		`switchboard_queue_messages_left_total{queue="EntityQueue",reason="dead_letter"} 1`,
		`switchboard_queue_trigger_batches_total{function="PushFunction",queue="EntityQueue",result="partial"}`,
		`switchboard_queue_trigger_batches_total{function="PushFunction",queue="EntityQueue",result="ok"}`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	if err := os.WriteFile(fixed, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var moved struct{ Moved int }
	if st := adminJSON(t, http.MethodPost, r.HTTP+"/@queues/EntityDLQ/redrive", &moved); st != http.StatusOK || moved.Moved != 1 {
		t.Fatalf("redrive = %d %+v, want 1 moved", st, moved)
	}
	if got := read(); got.N != 3 || got.Count != "1" {
		t.Fatalf("push after the redrive = %+v, want the poison event n 3, received once since", got)
	}
}

// TestSQSNodeSDK: the AWS SDK for JavaScript v3's SQS client, signing with
// the management credentials, sends, receives and deletes, and reads a
// missing queue's error by name and code.
func TestSQSNodeSDK(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir, err := filepath.Abs("testdata/sqs-node")
	if err != nil {
		t.Fatal(err)
	}
	testutil.NPMModules(t, dir, "@aws-sdk/client-sqs", "--omit=dev")
	r := servertest.StartYAML(t, "management: {accessKeys: {AKIDNODE: nodesecret}}\n"+queuesYAML)
	script := `
const sqs = require("@aws-sdk/client-sqs");
(async () => {
  const c = new sqs.SQSClient({region: "us-east-1", endpoint: process.env.ENDPOINT, maxAttempts: 1,
    credentials: {accessKeyId: "AKIDNODE", secretAccessKey: "nodesecret"}});
  const {QueueUrl} = await c.send(new sqs.GetQueueUrlCommand({QueueName: "work"}));
  const sent = await c.send(new sqs.SendMessageCommand({QueueUrl, MessageBody: "from node",
    MessageAttributes: {kind: {DataType: "String", StringValue: "js"}}}));
  const got = await c.send(new sqs.ReceiveMessageCommand({QueueUrl, WaitTimeSeconds: 1,
    MessageSystemAttributeNames: ["All"], MessageAttributeNames: ["All"]}));
  const m = got.Messages[0];
  await c.send(new sqs.DeleteMessageCommand({QueueUrl, ReceiptHandle: m.ReceiptHandle}));
  let missing = {};
  try { await c.send(new sqs.GetQueueUrlCommand({QueueName: "nope"})); } catch (e) { missing = {name: e.name, code: e.Code}; }
  console.log(JSON.stringify({same: sent.MessageId === m.MessageId, body: m.Body, kind: m.MessageAttributes.kind.StringValue,
    count: m.Attributes.ApproximateReceiveCount, missing}));
})().catch((e) => { console.error(e); process.exit(1); });
`
	cmd := exec.CommandContext(ctx30(t), "node", "-e", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "ENDPOINT="+r.HTTP)
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s%s", err, out, &stderr)
	}
	var got struct {
		Same              bool
		Body, Kind, Count string
		Missing           struct{ Name, Code string }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if !got.Same || got.Body != "from node" || got.Kind != "js" || got.Count != "1" ||
		got.Missing.Name != "QueueDoesNotExist" || got.Missing.Code != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("node printed %+v, want its message back and QueueDoesNotExist with its query code", got)
	}
}

// TestQueuesReload: a reload keeps the messages of the queues it keeps
// and drops the others; a reload refused for a queue changes none.
func TestQueuesReload(t *testing.T) {
	t.Parallel()
	r := servertest.StartYAML(t, queuesYAML)
	c := sqsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	ctx := ctx30(t)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("work"), MessageBody: aws.String("kept")}); err != nil {
		t.Fatal(err)
	}
	reload := func(yaml string) error {
		path := filepath.Join(t.TempDir(), "switchboard.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Server.Reload(cfg)
	}
	if err := reload("queues: [{name: work, visibilityTimeout: 5s}, {name: extra}]\n"); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := reload("queues: [{name: work, visibilityTimeout: 13h}]\n"); err == nil || !strings.Contains(err.Error(), "VisibilityTimeout") {
		t.Fatalf("Reload(visibilityTimeout 13h) = %v, want the queue's limit", err)
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String("work"), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil || attrs.Attributes["VisibilityTimeout"] != "5" || attrs.Attributes["ApproximateNumberOfMessages"] != "1" || attrs.Attributes["RedrivePolicy"] != "" {
		t.Errorf("work after the reloads = %v, %v; want the first reload's settings and its message", attrs, err)
	}
	if _, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("extra")}); err != nil {
		t.Errorf("GetQueueUrl(extra) = %v, want the queue the first reload added", err)
	}
	var missing *sqstypes.QueueDoesNotExist
	if _, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("work-dlq")}); !errors.As(err, &missing) {
		t.Errorf("GetQueueUrl(work-dlq) = %v, want QueueDoesNotExist: the reload dropped it", err)
	}
}

// TestSQSTriggerReload: a reload while a queue's function runs returns at
// once, and the invocation completes: its message is deleted, not sent
// back with one more receive.
func TestSQSTriggerReload(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	// Each invocation logs its receive count, then waits for the file go.
	code := `const fs = require("fs"), path = require("path");
exports.handler = async (event) => {
  fs.appendFileSync(path.join(__dirname, "log"), event.Records[0].attributes.ApproximateReceiveCount + "\n");
  while (!fs.existsSync(path.join(__dirname, "go"))) await new Promise(r => setTimeout(r, 20));
};`
	if err := os.WriteFile(filepath.Join(dir, "slow.js"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
functions:
  slow: {runtime: nodejs20.x, handler: slow.handler, codeDir: "` + dir + `", timeout: 60s}
queues:
  - name: jobs
    visibilityTimeout: 3s
    triggers: [{function: slow, maxConcurrency: 1}]
`
	r := servertest.StartYAML(t, yaml)
	c := sqsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	ctx := ctx30(t)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("jobs"), MessageBody: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	testutil.Eventually(t, 30*time.Second, func() bool { _, err := os.Stat(log); return err == nil }, "the function did not start")
	path := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(path, []byte(yaml+"    receiveWait: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- r.Server.Reload(cfg) }()
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatalf("Reload: %v", err)
		}
	case <-time.After(10 * time.Second): // the function waits for go, which comes only after
		t.Fatal("Reload waited for the invocation in progress")
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String("jobs"), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
		return err == nil && out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
	}, "the message was not deleted")
	if b, err := os.ReadFile(log); err != nil || string(b) != "1\n" {
		t.Errorf("receive counts = %q, %v; want one invocation, of the first receive", b, err)
	}
}

// TestQueuesDataDirHeld: a data directory whose queue storage another
// server holds refuses, at once and saying why, a gateway started on it
// and a reload that adds the first queue; the refused reload leaves the
// configuration in force.
func TestQueuesDataDirHeld(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	holder, err := natsembed.Start(natsembed.Options{InProcess: true, StoreDir: filepath.Join(dir, "queues")})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	load := func(yaml string) *config.Config {
		path := filepath.Join(t.TempDir(), "switchboard.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, func(string) string { return "" }, config.Overrides{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	withQueues := fmt.Sprintf("dataDir: %s\nqueues: [{name: work}]\n", dir)
	var log testutil.Buffer
	if _, err := server.New(load(withQueues), server.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))}); !errors.Is(err, natsembed.ErrStoreInUse) {
		t.Fatalf("server.New on a held data directory = %v, want ErrStoreInUse", err)
	}
	if strings.Contains(log.String(), "trying again") {
		t.Errorf("a held data directory was tried again:\n%s", log.String())
	}

	r := servertest.Start(t, load(fmt.Sprintf("dataDir: %s\n", dir)))
	if err := r.Server.Reload(load(withQueues)); !errors.Is(err, natsembed.ErrStoreInUse) {
		t.Fatalf("Reload adding a queue on a held data directory = %v, want ErrStoreInUse", err)
	}
	c := sqsClient(r.HTTP, "AKIDEXAMPLE", "secret")
	var missing *sqstypes.QueueDoesNotExist
	if _, err := c.GetQueueUrl(ctx30(t), &sqs.GetQueueUrlInput{QueueName: aws.String("work")}); !errors.As(err, &missing) {
		t.Errorf("GetQueueUrl(work) after the refused reload = %v, want QueueDoesNotExist", err)
	}
}
