package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// The tests in this file check that queues outlive what runs them: on a
// cluster they live in the engine, shared by the nodes; on a node alone
// with a data directory, in its files.

// clusterQueues are the queues of these tests.
const clusterQueues = `queues:
  - {name: work, visibilityTimeout: 30s, deadLetter: {queue: work-dlq, maxReceiveCount: 2}}
  - {name: work-dlq}
  - {name: brief, visibilityTimeout: 2s}
  - {name: retry, visibilityTimeout: 2s, deadLetter: {queue: work-dlq, maxReceiveCount: 2}}
`

// sqsAt is the AWS SDK for Go v2's SQS client for the gateway at base.
func sqsAt(base string) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(base),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

// queueURL resolves name through c.
func queueURL(t *testing.T, c *sqs.Client, name string) *string {
	t.Helper()
	out, err := c.GetQueueUrl(bounded(t), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("GetQueueUrl(%s): %v", name, err)
	}
	return out.QueueUrl
}

// sendBodies sends each body to the queue through c.
func sendBodies(t *testing.T, c *sqs.Client, q *string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := c.SendMessage(bounded(t), &sqs.SendMessageInput{QueueUrl: q, MessageBody: aws.String(b)}); err != nil {
			t.Fatalf("SendMessage(%s): %v", b, err)
		}
	}
}

// receiveOnce receives up to 10 messages through c, waiting up to 2s.
func receiveOnce(t *testing.T, c *sqs.Client, q *string) []sqstypes.Message {
	t.Helper()
	out, err := c.ReceiveMessage(bounded(t), &sqs.ReceiveMessageInput{QueueUrl: q, MaxNumberOfMessages: 10, WaitTimeSeconds: 2,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	return out.Messages
}

// visibleCount is the queue's ApproximateNumberOfMessages, read through c.
func visibleCount(t *testing.T, c *sqs.Client, q *string) int {
	t.Helper()
	out, err := c.GetQueueAttributes(bounded(t), &sqs.GetQueueAttributesInput{QueueUrl: q,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	return n
}

// TestClusterQueues: three gateway processes serve the same queues, kept
// in their engine. Messages sent through every node are each received
// once through the others and deleted through a third; a message that
// fails twice moves to the dead-letter queue, whatever node received it,
// and a redrive through another node brings it back; and a node killed
// while it holds messages in flight loses none of them.
func TestClusterQueues(t *testing.T) {
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			cl := startClusterConfig(t, f, clusterQueues)
			var cs []*sqs.Client
			for _, n := range cl.nodes {
				cs = append(cs, sqsAt(n.http))
			}
			t.Run("shared", func(t *testing.T) { queuesShared(t, cs) })
			t.Run("dead letters", func(t *testing.T) { queuesDeadLetter(t, cs) })
			t.Run("node killed", func(t *testing.T) { queuesNodeKilled(t, cl, cs) })
		})
	}
}

// queuesShared: 30 messages sent through the three nodes in turn are
// received once each by receivers on node-b and node-c together, and
// deleted through node-a.
func queuesShared(t *testing.T, cs []*sqs.Client) {
	const total = 30
	q := queueURL(t, cs[0], "work")
	for i := range total {
		sendBodies(t, cs[i%3], q, fmt.Sprintf("m%d", i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var receipts []*string
	var wg sync.WaitGroup
	for _, c := range cs[1:] {
		wg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				out, err := c.ReceiveMessage(bounded(t), &sqs.ReceiveMessageInput{QueueUrl: q, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					t.Errorf("ReceiveMessage: %v", err)
					return
				}
				mu.Lock()
				for _, m := range out.Messages {
					seen[aws.ToString(m.Body)]++
					receipts = append(receipts, m.ReceiptHandle)
				}
				done := len(seen) == total
				mu.Unlock()
				if done {
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range total {
		if n := seen[fmt.Sprintf("m%d", i)]; n != 1 {
			t.Errorf("m%d received %d times, want once", i, n)
		}
	}
	for _, r := range receipts {
		if _, err := cs[0].DeleteMessage(bounded(t), &sqs.DeleteMessageInput{QueueUrl: q, ReceiptHandle: r}); err != nil {
			t.Fatalf("DeleteMessage through node-a: %v", err)
		}
	}
	// The count is approximate, as SQS's: on JetStream a deleted message
	// leaves the consumer's pending count before its stream (replicated,
	// whose leader may be another server) removes it.
	testutil.Eventually(t, 10*time.Second, func() bool { return visibleCount(t, cs[2], q) == 0 },
		"node-c still counts visible messages after the deletes, want 0")
}

// queuesDeadLetter: a message received through node-b and then node-c,
// and made visible again each time, moves to work-dlq at its third
// receive; a redrive through node-a brings it back.
func queuesDeadLetter(t *testing.T, cs []*sqs.Client) {
	q, dlq := queueURL(t, cs[0], "work"), queueURL(t, cs[0], "work-dlq")
	sendBodies(t, cs[0], q, "poison")
	for i, c := range cs[1:] {
		got := receiveOnce(t, c, q)
		if len(got) != 1 || aws.ToString(got[0].Body) != "poison" {
			t.Fatalf("receive %d: %d messages, want the poison one", i+1, len(got))
		}
		if n := got[0].Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]; n != strconv.Itoa(i+1) {
			t.Errorf("receive %d: ApproximateReceiveCount %s", i+1, n)
		}
		if _, err := c.ChangeMessageVisibility(bounded(t), &sqs.ChangeMessageVisibilityInput{QueueUrl: q, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
			t.Fatalf("ChangeMessageVisibility: %v", err)
		}
	}
	if got := receiveOnce(t, cs[0], q); len(got) != 0 {
		t.Fatalf("third receive returned %d messages, want none (moved to the dead-letter queue)", len(got))
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return visibleCount(t, cs[2], dlq) == 1 }, "the dead-letter queue does not hold the message")
	arn := "arn:aws:sqs:us-east-1:123456789012:work-dlq"
	if _, err := cs[0].StartMessageMoveTask(bounded(t), &sqs.StartMessageMoveTaskInput{SourceArn: aws.String(arn)}); err != nil {
		t.Fatalf("StartMessageMoveTask: %v", err)
	}
	got := receiveOnce(t, cs[1], q)
	if len(got) != 1 || aws.ToString(got[0].Body) != "poison" {
		t.Fatalf("after the redrive: %d messages, want the poison one", len(got))
	}
	if _, err := cs[1].DeleteMessage(bounded(t), &sqs.DeleteMessageInput{QueueUrl: q, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
}

// queuesNodeKilled: node-c receives five messages of "brief" (visibility
// 2s) and is killed before it deletes them; node-a receives the five once
// their visibility ends.
func queuesNodeKilled(t *testing.T, cl *cluster, cs []*sqs.Client) {
	q := queueURL(t, cs[0], "brief")
	want := []string{"k0", "k1", "k2", "k3", "k4"}
	sendBodies(t, cs[1], q, want...)
	held := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(held) < len(want) && time.Now().Before(deadline) {
		for _, m := range receiveOnce(t, cs[2], q) {
			held[aws.ToString(m.Body)] = true
		}
	}
	if len(held) != len(want) {
		t.Fatalf("node-c received %d of the messages, want %d", len(held), len(want))
	}
	cl.nodes[2].signal(t, syscall.SIGKILL)
	cl.nodes[2].wait(t)
	back := map[string]bool{}
	deadline = time.Now().Add(30 * time.Second)
	for len(back) < len(want) && time.Now().Before(deadline) {
		// While the engine's servers elect new leaders (embedded NATS lost
		// a server with node-c), a receive may be answered with an error
		// the SDKs retry (500); this client retries too.
		out, err := cs[0].ReceiveMessage(bounded(t), &sqs.ReceiveMessageInput{QueueUrl: q, MaxNumberOfMessages: 10, WaitTimeSeconds: 2})
		if err != nil {
			t.Logf("ReceiveMessage after the kill: %v", err)
			time.Sleep(200 * time.Millisecond) // retry pacing
			continue
		}
		for _, m := range out.Messages {
			back[aws.ToString(m.Body)] = true
			if _, err := cs[0].DeleteMessage(bounded(t), &sqs.DeleteMessageInput{QueueUrl: q, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Logf("DeleteMessage after the kill: %v", err) // received again later: no harm here
			}
		}
	}
	for _, b := range want {
		if !back[b] {
			t.Errorf("%s was lost with node-c", b)
		}
	}
}

// TestQueuesSurviveRestart: a node alone with a data directory keeps its
// queues' messages across a restart: visible, delayed, in flight and in
// the dead-letter queue; without one, a restart empties them, as
// docs/events.md says.
func TestQueuesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchboard.yaml")
	writeFile(t, cfg, "tls: {disable: true}\n"+clusterQueues)
	serve := func(data string) (*sqs.Client, func() error) {
		wsURL, _, stop := serveForTest(t, []string{"--listen", "127.0.0.1:0", "--config", cfg}, map[string]string{"SWITCHBOARD_DATA_DIR": data})
		return sqsAt("http" + wsURL[len("ws"):]), stop
	}
	data := filepath.Join(dir, "data")
	c, stop := serve(data)
	q, dlq, brief, retry := queueURL(t, c, "work"), queueURL(t, c, "work-dlq"), queueURL(t, c, "brief"), queueURL(t, c, "retry")
	// "dead" fails twice: its next receive moves it to the dead-letter queue.
	sendBodies(t, c, retry, "dead")
	for i := range 2 {
		got := receiveOnce(t, c, retry)
		if len(got) != 1 {
			t.Fatalf("receive %d of dead: %d messages", i+1, len(got))
		}
		if _, err := c.ChangeMessageVisibility(bounded(t), &sqs.ChangeMessageVisibilityInput{QueueUrl: retry, ReceiptHandle: got[0].ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	// Its third receive moves it to the dead-letter queue.
	testutil.Eventually(t, 20*time.Second, func() bool {
		if got := receiveOnce(t, c, retry); len(got) != 0 {
			t.Fatalf("the third receive of dead returned %d messages", len(got))
		}
		return visibleCount(t, c, dlq) == 1
	}, "the message that failed twice did not reach the dead-letter queue")
	sendBodies(t, c, q, "visible-1", "visible-2")
	// "in-flight" is held by a receiver when the gateway stops.
	sendBodies(t, c, brief, "in-flight")
	if got := receiveOnce(t, c, brief); len(got) != 1 {
		t.Fatalf("receive of in-flight: %d messages", len(got))
	}
	// "delayed" is still delayed when the gateway stops.
	if _, err := c.SendMessage(bounded(t), &sqs.SendMessageInput{QueueUrl: q, MessageBody: aws.String("delayed"), DelaySeconds: 3}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "queues")); err != nil {
		t.Fatalf("no queue storage in the data directory: %v", err)
	}

	c, stop = serve(data)
	got := map[string]bool{}
	want := []string{"visible-1", "visible-2", "in-flight", "delayed"}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		for _, u := range []*string{q, brief, retry} {
			for _, m := range receiveOnce(t, c, u) {
				got[aws.ToString(m.Body)] = true
				if _, err := c.DeleteMessage(bounded(t), &sqs.DeleteMessageInput{QueueUrl: u, ReceiptHandle: m.ReceiptHandle}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, b := range want {
		if !got[b] {
			t.Errorf("%s did not survive the restart", b)
		}
	}
	if got["dead"] {
		t.Error("the dead letter came back to its queue without a redrive")
	}
	dead, err := c.ReceiveMessage(bounded(t), &sqs.ReceiveMessageInput{QueueUrl: dlq, WaitTimeSeconds: 2})
	if err != nil || len(dead.Messages) != 1 || aws.ToString(dead.Messages[0].Body) != "dead" {
		t.Errorf("the dead-letter queue after the restart: %v, %v; want the dead letter", dead, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}

	// Without a data directory, the queues live in memory.
	c, stop = serve("")
	sendBodies(t, c, queueURL(t, c, "work"), "kept-in-memory")
	_ = stop()
	c, _ = serve("")
	if n := visibleCount(t, c, queueURL(t, c, "work")); n != 0 {
		t.Errorf("without a data directory, %d messages outlived the restart; docs/events.md says they are lost", n)
	}
}
