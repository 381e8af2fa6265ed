package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/config"
)

// TestTemplateQueues: AWS::SQS::Queue resources become queues with their
// redrive policy; a function's SQS event becomes the queue's trigger; a
// rule's queue target sends to the queue; !Ref of a queue is its URL.
func TestTemplateQueues(t *testing.T) {
	t.Parallel()
	cfg, err := loadTemplate(t, tmplWith("", `!Join [" ", [!Ref Work, !GetAtt Work.QueueName, !GetAtt Work.QueueUrl]]`)+`
  Work:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: work
      VisibilityTimeout: 5
      DelaySeconds: 2
      MessageRetentionPeriod: 3600
      MaximumMessageSize: 2048
      ReceiveMessageWaitTimeSeconds: 20
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dead.Arn, maxReceiveCount: 3}
  Dead:
    Type: AWS::SQS::Queue
  Push:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.push
      Runtime: nodejs20.x
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 5
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: {MaximumConcurrency: 3}
        Elsewhere:
          Type: SQS
          Properties: {Queue: "arn:aws:sqs:us-east-1:123456789012:other"}
  Rule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [shop]}
      Targets: [{Arn: !GetAtt Work.Arn, Id: toWork}]
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Dead.Arn, FunctionName: !Ref F, BatchSize: 1, Enabled: false}
  Policy:
    Type: AWS::SQS::QueuePolicy
    Properties: {Queues: [!Ref Work], PolicyDocument: {}}
  Stream:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: "arn:aws:kinesis:us-east-1:123456789012:stream/s", FunctionName: !Ref F}
`, nil, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Queue{
		{Name: "Dead", Triggers: []config.QueueTrigger{{Function: "F", BatchSize: 1, Disabled: true}}},
		{Name: "work", VisibilityTimeout: config.Duration(5 * time.Second), Delay: config.Duration(2 * time.Second),
			Retention: config.Duration(time.Hour), MaxMessageBytes: 2048, ReceiveWait: config.Duration(20 * time.Second), DeadLetter: &config.DeadLetter{Queue: "Dead", MaxReceiveCount: 3},
			Triggers: []config.QueueTrigger{{Function: "Push", BatchSize: 5, BatchWindow: config.Duration(time.Second), ReportBatchItemFailures: true, MaxConcurrency: 3}}},
	}
	if !reflect.DeepEqual(cfg.Queues, want) {
		t.Errorf("queues = %#v\nwant %#v", cfg.Queues, want)
	}
	if got := cfg.Events.Rules[0].Targets; !reflect.DeepEqual(got, []config.EventTarget{{ID: "toWork", Queue: "work"}}) {
		t.Errorf("rule targets = %#v, want the queue work", got)
	}
	if got, url := cfg.Functions["F"].Environment["V"], "https://sqs.us-east-1.amazonaws.com/123456789012/work"; got != url+" work "+url {
		t.Errorf("!Ref Work, QueueName and QueueUrl = %q, want its URL, name and URL", got)
	}
	if w := strings.Join(cfg.Warnings, "\n"); !strings.Contains(w, "Events.Elsewhere is not run: queue other is not one of the project's queues") ||
		!strings.Contains(w, "Resources.Stream is not run: only SQS event sources are") ||
		!strings.Contains(w, "resources with no local effect: Policy (AWS::SQS::QueuePolicy)") {
		t.Errorf("warnings lack the event of a queue the template does not declare:\n%s", w)
	}
}

// TestTemplateQueueRefused: a FIFO queue, and settings outside SQS's
// limits, stop the load with the property's path.
func TestTemplateQueueRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ props, want string }{
		{"{FifoQueue: true}", "FifoQueue: FIFO queues are not supported"},
		{"{VisibilityTimeout: 50000}", "VisibilityTimeout: want 0 to 43200 seconds"},
		{"{RedrivePolicy: {deadLetterTargetArn: nope, maxReceiveCount: 3}}", "deadLetterTargetArn: want a queue's ARN"},
		{"{RedrivePolicy: {deadLetterTargetArn: !GetAtt Q.Arn, maxReceiveCount: 3}}", "cannot be its own dead-letter queue"},
	} {
		_, err := loadTemplate(t, tmplWith("", "x")+"\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: "+tt.props+"\n", nil, config.Overrides{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Q %s: err = %v, want %q", tt.props, err, tt.want)
		}
	}
}

// TestServerlessQueues: resources.Resources' queues and a function's sqs
// events, in both forms.
func TestServerlessQueues(t *testing.T) {
	t.Parallel()
	cfg, err := config.LoadServerless(writeServerless(t, `
service: shop
provider: {name: aws, runtime: nodejs20.x}
functions:
  push:
    handler: handler.push
    events:
      - sqs:
          arn: {Fn::GetAtt: [Jobs, Arn]}
          batchSize: 2
          functionResponseType: ReportBatchItemFailures
          maximumConcurrency: 4
  audit:
    handler: handler.audit
    events:
      - sqs: {arn: "arn:aws:sqs:us-east-1:123456789012:jobs-dlq", enabled: false}
resources:
  Resources:
    Jobs:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: jobs
        RedrivePolicy:
          deadLetterTargetArn: !GetAtt JobsDLQ.Arn
          maxReceiveCount: 2
    JobsDLQ:
      Type: AWS::SQS::Queue
      Properties: {QueueName: jobs-dlq}
    Table:
      Type: AWS::DynamoDB::Table
`), func(string) string { return "" }, config.Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Queue{
		{Name: "jobs", DeadLetter: &config.DeadLetter{Queue: "jobs-dlq", MaxReceiveCount: 2},
			Triggers: []config.QueueTrigger{{Function: "push", BatchSize: 2, ReportBatchItemFailures: true, MaxConcurrency: 4}}},
		{Name: "jobs-dlq", Triggers: []config.QueueTrigger{{Function: "audit", Disabled: true}}},
	}
	if !reflect.DeepEqual(cfg.Queues, want) {
		t.Errorf("queues = %#v\nwant %#v", cfg.Queues, want)
	}
	if w := strings.Join(cfg.Warnings, "\n"); !strings.Contains(w, "resources.Resources.Table (AWS::DynamoDB::Table) is not run locally") {
		t.Errorf("warnings lack the table:\n%s", w)
	}
}

// TestQueuesValidate: the queues' names and references are checked when
// the configuration is loaded.
func TestQueuesValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ yaml, want string }{
		{"queues: [{visibilityTimeout: 5s}]", "queues[0].name: is required"},
		{"queues: [{name: a.fifo}]", "FIFO queues are not supported"},
		{"queues: [{name: a}, {name: a}]", `queue "a" is declared twice`},
		{"queues: [{name: a, deadLetter: {queue: b, maxReceiveCount: 2}}]", `queue "b" is not defined under queues`},
		{"queues: [{name: a, deadLetter: {queue: b}}, {name: b}]", "maxReceiveCount: expected 1 to 1000, got 0"},
		{"queues: [{name: a, triggers: [{function: nope}]}]", `function "nope" is not defined under functions`},
		{"queues: [{name: a, visibilityTimeout: 0}]", "a received message needs a visibility timeout"},
		{"events: {rules: [{name: r, pattern: {a: [b]}, targets: [{queue: nope}]}]}", `queue "nope" is not defined under queues`},
	} {
		cfg, err := config.Parse(strings.NewReader(tt.yaml))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}
