package sqs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/memqueue"
	"github.com/switchboard-gateway/switchboard/internal/sqs"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// call posts one operation to api and returns the status, the query error
// header and the decoded answer.
func call(t *testing.T, api http.Handler, op, body string) (int, string, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "AmazonSQS."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	w := httptest.NewRecorder()
	api.ServeHTTP(w, req)
	var out map[string]any
	if err := json.NewDecoder(bytes.NewReader(w.Body.Bytes())).Decode(&out); err != nil {
		t.Fatalf("%s: answer %q: %v", op, w.Body.String(), err)
	}
	return w.Code, w.Header().Get("X-Amzn-Query-Error"), out
}

// TestAPIRefusals: requests the SDKs' own checks let through answer with
// SQS's codes, in AWS JSON 1.0's error shape.
func TestAPIRefusals(t *testing.T) {
	t.Parallel()
	s := memqueue.New(memqueue.Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
	api := sqs.New(sqs.Options{Store: s})
	entries := func(n int, id string) string {
		var e []string
		for i := 0; i < n; i++ {
			e = append(e, `{"Id":"`+id+`","MessageBody":"x"}`)
		}
		return `{"QueueUrl":"q","Entries":[` + strings.Join(e, ",") + `]}`
	}
	attrs := func(n int) string {
		var a []string
		for i := 0; i < n; i++ {
			a = append(a, fmt.Sprintf(`"a%d":{"DataType":"String","StringValue":"v"}`, i))
		}
		return strings.Join(a, ",")
	}
	tests := []struct {
		name, op, body string
		status         int
		code, typ      string
	}{
		{"body with a control character", "SendMessage", `{"QueueUrl":"q","MessageBody":"a\u0001b"}`, 400, "InvalidParameterValue;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"missing body", "SendMessage", `{"QueueUrl":"q"}`, 400, "MissingParameter;Sender", "com.amazonaws.sqs#MissingParameter"},
		{"FIFO parameters", "SendMessage", `{"QueueUrl":"q","MessageBody":"x","MessageGroupId":"g"}`, 400, "InvalidParameterValue;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"eleven attributes", "SendMessage", `{"QueueUrl":"q","MessageBody":"x","MessageAttributes":{` + attrs(11) + `}}`, 400, "InvalidParameterValue;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"bad attribute type", "SendMessage", `{"QueueUrl":"q","MessageBody":"x","MessageAttributes":{"a":{"DataType":"Blob","StringValue":"v"}}}`, 400, "InvalidParameterValue;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"no such queue", "SendMessage", `{"QueueUrl":"http://h/1/nope","MessageBody":"x"}`, 400, "AWS.SimpleQueueService.NonExistentQueue;Sender", "com.amazonaws.sqs#QueueDoesNotExist"},
		{"queue URL without a name", "SendMessage", `{"QueueUrl":"http://h/","MessageBody":"x"}`, 404, "InvalidAddress;Sender", "com.amazonaws.sqs#InvalidAddress"},
		{"eleven entries", "SendMessageBatch", entries(11, "a"), 400, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender", "com.amazonaws.sqs#TooManyEntriesInBatchRequest"},
		{"no entries", "SendMessageBatch", entries(0, "a"), 400, "AWS.SimpleQueueService.EmptyBatchRequest;Sender", "com.amazonaws.sqs#EmptyBatchRequest"},
		{"repeated ids", "SendMessageBatch", entries(2, "a"), 400, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct;Sender", "com.amazonaws.sqs#BatchEntryIdsNotDistinct"},
		{"bad id", "SendMessageBatch", entries(1, "a b"), 400, "AWS.SimpleQueueService.InvalidBatchEntryId;Sender", "com.amazonaws.sqs#InvalidBatchEntryId"},
		{"batch over 1 MiB", "SendMessageBatch", `{"QueueUrl":"q","Entries":[{"Id":"a","MessageBody":"` + strings.Repeat("x", 600<<10) + `"},{"Id":"b","MessageBody":"` + strings.Repeat("x", 600<<10) + `"}]}`,
			400, "AWS.SimpleQueueService.BatchRequestTooLong;Sender", "com.amazonaws.sqs#BatchRequestTooLong"},
		{"request over the size limit", "SendMessage", `{"QueueUrl":"q","MessageBody":"` + strings.Repeat("x", 4<<20) + `"}`, 400, "InvalidParameterValue;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"batch request over the size limit", "SendMessageBatch", `{"QueueUrl":"q","Entries":[{"Id":"a","MessageBody":"` + strings.Repeat("x", 4<<20) + `"}]}`,
			413, "AWS.SimpleQueueService.BatchRequestTooLong;Sender", "com.amazonaws.sqs#BatchRequestTooLong"},
		{"wait over 20s", "ReceiveMessage", `{"QueueUrl":"q","WaitTimeSeconds":21}`, 400, "InvalidParameterValue;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"eleven messages", "ReceiveMessage", `{"QueueUrl":"q","MaxNumberOfMessages":11}`, 400, "InvalidParameterValue;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"forged receipt", "ChangeMessageVisibility", `{"QueueUrl":"q","ReceiptHandle":"forged","VisibilityTimeout":0}`, 404, "ReceiptHandleIsInvalid;Sender", "com.amazonaws.sqs#ReceiptHandleIsInvalid"},
		{"not JSON", "SendMessage", `{`, 400, "SerializationException;Sender", "com.amazonaws.sqs#InvalidParameterValue"},
		{"queue management", "CreateQueue", `{"QueueName":"new"}`, 400, "AWS.SimpleQueueService.UnsupportedOperation;Sender", "com.amazonaws.sqs#UnsupportedOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, code, out := call(t, api, tt.op, tt.body)
			if status != tt.status || code != tt.code || out["__type"] != tt.typ || out["message"] == "" {
				t.Errorf("%s = %d %q %v, want %d %q %s", tt.op, status, code, out, tt.status, tt.code, tt.typ)
			}
		})
	}
}

// TestMD5OfAttributes: the checksum of message attributes follows SQS's
// encoding: sorted names, length-prefixed fields, a transport byte.
func TestMD5OfAttributes(t *testing.T) {
	t.Parallel()
	a := map[string]queue.MessageAttribute{"b": {DataType: "String", StringValue: "x"}, "a": {DataType: "Number", StringValue: "1"}}
	b := map[string]queue.MessageAttribute{"a": {DataType: "Number", StringValue: "1"}, "b": {DataType: "String", StringValue: "x"}}
	if sqs.MD5OfAttributes(a) != sqs.MD5OfAttributes(b) || len(sqs.MD5OfAttributes(a)) != 32 {
		t.Errorf("MD5OfAttributes depends on the map's order, or is not an MD5: %q %q", sqs.MD5OfAttributes(a), sqs.MD5OfAttributes(b))
	}
	c := map[string]queue.MessageAttribute{"a": {DataType: "Binary", BinaryValue: []byte("1")}, "b": {DataType: "String", StringValue: "x"}}
	if sqs.MD5OfAttributes(a) == sqs.MD5OfAttributes(c) || sqs.MD5OfAttributes(nil) != "" {
		t.Errorf("MD5OfAttributes does not tell types apart, or is not empty for none")
	}
}

// TestLongPollEndsWhenStopping: once Options.Stopping is done, a long poll
// waiting answers at once with no messages rather than holding a shutdown.
func TestLongPollEndsWhenStopping(t *testing.T) {
	t.Parallel()
	s := memqueue.New(memqueue.Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q"}}); err != nil {
		t.Fatal(err)
	}
	stopping, stop := context.WithCancel(context.Background())
	api := sqs.New(sqs.Options{Store: s, Stopping: stopping})
	w := httptest.NewRecorder()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"QueueUrl":"q","WaitTimeSeconds":20}`))
		req.Header.Set("X-Amz-Target", "AmazonSQS.ReceiveMessage")
		api.ServeHTTP(w, req)
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return s.WaitersForTest() == 1 }, "the receive does not wait")
	stop()
	<-done
	// A poll that ignored Stopping would answer empty too, after its 20s.
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("long poll ended %v after it began, want at once once stopping", elapsed)
	}
	if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != "{}" {
		t.Errorf("long poll while stopping = %d %s, want 200 {}", w.Code, w.Body)
	}
}

// TestSendBatchOversizedEntry: an entry over the queue's MaximumMessageSize
// or with more than 10 attributes fails on its own, with its own Id, and
// the other entries are stored.
func TestSendBatchOversizedEntry(t *testing.T) {
	t.Parallel()
	s := memqueue.New(memqueue.Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "q"}}); err != nil { // 256 KiB
		t.Fatal(err)
	}
	api := sqs.New(sqs.Options{Store: s})
	var attrs []string
	for i := 0; i < 11; i++ {
		attrs = append(attrs, fmt.Sprintf(`"a%d":{"DataType":"String","StringValue":"v"}`, i))
	}
	body := `{"QueueUrl":"q","Entries":[{"Id":"big","MessageBody":"` + strings.Repeat("x", 300<<10) + `"},{"Id":"small","MessageBody":"x"},` +
		`{"Id":"attrs","MessageBody":"x","MessageAttributes":{` + strings.Join(attrs, ",") + `}}]}`
	status, _, out := call(t, api, "SendMessageBatch", body)
	if status != http.StatusOK {
		t.Fatalf("SendMessageBatch: status %d, %v", status, out)
	}
	ok, _ := out["Successful"].([]any)
	failed, _ := out["Failed"].([]any)
	if len(ok) != 1 || ok[0].(map[string]any)["Id"] != "small" {
		t.Errorf("Successful = %v, want the entry small", ok)
	}
	if len(failed) != 2 {
		t.Fatalf("Failed = %v, want the entries big and attrs", failed)
	}
	for i, id := range []string{"big", "attrs"} {
		if f := failed[i].(map[string]any); f["Id"] != id || f["Code"] != "InvalidParameterValue" || f["SenderFault"] != true {
			t.Errorf("Failed[%d] = %v, want the entry %s, InvalidParameterValue", i, f, id)
		}
	}
	info, err := s.Info(context.Background(), "q")
	if err != nil {
		t.Fatal(err)
	}
	if info.Visible != 1 {
		t.Errorf("queue holds %d messages, want 1", info.Visible)
	}
}

// TestReceiveDeadLetterQueueSourceArn: DeadLetterQueueSourceArn is
// returned when it is the only attribute asked for.
func TestReceiveDeadLetterQueueSourceArn(t *testing.T) {
	t.Parallel()
	s := memqueue.New(memqueue.Options{})
	if err := s.Declare(context.Background(), []queue.Declaration{{Name: "dlq"}, {Name: "q", Attributes: queue.Attributes{DeadLetter: "dlq", MaxReceiveCount: 1}}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Send(ctx, "q", []queue.Outgoing{{Body: "poison"}}); err != nil {
		t.Fatal(err)
	}
	zero := time.Duration(0)
	for range 2 { // the second receive moves it to dlq
		if _, err := s.Receive(ctx, "q", queue.ReceiveOptions{Visibility: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	api := sqs.New(sqs.Options{Store: s, Region: "eu-west-1"})
	for _, field := range []string{"AttributeNames", "MessageSystemAttributeNames"} {
		_, _, out := call(t, api, "ReceiveMessage", `{"QueueUrl":"dlq","VisibilityTimeout":0,"`+field+`":["DeadLetterQueueSourceArn"]}`)
		msgs, _ := out["Messages"].([]any)
		if len(msgs) != 1 {
			t.Fatalf("ReceiveMessage(dlq) = %v, want the dead letter", out)
		}
		attrs, _ := msgs[0].(map[string]any)["Attributes"].(map[string]any)
		if len(attrs) != 1 || attrs["DeadLetterQueueSourceArn"] != "arn:aws:sqs:eu-west-1:123456789012:q" {
			t.Errorf("%s [DeadLetterQueueSourceArn]: Attributes = %v, want only q's ARN", field, attrs)
		}
	}
}
