package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// sqsQueueName returns the queue name of an SQS ARN or queue URL, or "".
func sqsQueueName(ref string) string {
	if parts := strings.Split(ref, ":"); len(parts) == 6 && parts[0] == "arn" && parts[2] == "sqs" {
		return parts[5]
	}
	if strings.HasPrefix(ref, "https://sqs.") || strings.HasPrefix(ref, "http://sqs.") {
		return ref[strings.LastIndexByte(ref, '/')+1:]
	}
	return ""
}

// templateQueues reads the AWS::SQS::Queue resources into cfg.Queues.
// A FIFO queue is refused: only standard queues are run.
func (t *samTemplate) templateQueues(byType map[string][]string) error {
	e := t.eval
	for _, id := range byType["AWS::SQS::Queue"] {
		p, err := t.props(id, e.resources[id], nil)
		if err != nil {
			return err
		}
		q, err := cfnQueue(id, p, "Resources."+id+".Properties", t.warn)
		if err != nil {
			return err
		}
		t.cfg.Queues = append(t.cfg.Queues, q)
	}
	return nil
}

// cfnQueue reads one AWS::SQS::Queue's resolved properties; at names them
// in errors.
func cfnQueue(id string, p map[string]any, at string, warn func(string)) (Queue, error) {
	q := Queue{Name: id}
	if v, ok := p["QueueName"]; ok {
		s, err := cfnString(v)
		if err != nil {
			return q, fmt.Errorf("%w: %s.QueueName: %v", ErrInvalid, at, err)
		}
		q.Name = s
	}
	if v, ok := p["FifoQueue"]; ok {
		if s, _ := cfnString(v); s == "true" {
			return q, fmt.Errorf("%w: %s.FifoQueue: FIFO queues are not supported; only standard queues run locally", ErrInvalid, at)
		}
	}
	seconds := func(key string, min, max int) (time.Duration, bool, error) {
		v, ok := p[key]
		if !ok {
			return 0, false, nil
		}
		n, err := cfnInt(v)
		if err != nil || n < min || n > max {
			return 0, false, fmt.Errorf("%w: %s.%s: want %d to %d seconds, have %v", ErrInvalid, at, key, min, max, v)
		}
		return time.Duration(n) * time.Second, true, nil
	}
	d, ok, err := seconds("VisibilityTimeout", 0, 43200)
	if err != nil {
		return q, err
	}
	if ok && d == 0 {
		warn(fmt.Sprintf("%s.VisibilityTimeout 0 is not supported; the default, 30s, is used", at))
	}
	q.VisibilityTimeout = Duration(d)
	if d, _, err = seconds("DelaySeconds", 0, 900); err != nil {
		return q, err
	}
	q.Delay = Duration(d)
	if d, _, err = seconds("MessageRetentionPeriod", 60, 1209600); err != nil {
		return q, err
	}
	q.Retention = Duration(d)
	if d, _, err = seconds("ReceiveMessageWaitTimeSeconds", 0, 20); err != nil {
		return q, err
	}
	q.ReceiveWait = Duration(d)
	if v, ok := p["MaximumMessageSize"]; ok {
		n, err := cfnInt(v)
		if err != nil || n < 1024 || n > 1<<20 {
			return q, fmt.Errorf("%w: %s.MaximumMessageSize: want 1024 to 1048576 bytes, have %v", ErrInvalid, at, v)
		}
		q.MaxMessageBytes = Size(n)
	}
	if v, ok := p["RedrivePolicy"]; ok && v != nil {
		rp, ok := v.(map[string]any)
		if s, isStr := v.(string); isStr { // the policy as a JSON string
			if err := json.Unmarshal([]byte(s), &rp); err != nil {
				return q, fmt.Errorf("%w: %s.RedrivePolicy: not a JSON object: %v", ErrInvalid, at, err)
			}
			ok = true
		}
		if !ok {
			return q, fmt.Errorf("%w: %s.RedrivePolicy: want deadLetterTargetArn and maxReceiveCount", ErrInvalid, at)
		}
		arn, _ := cfnString(rp["deadLetterTargetArn"])
		dlq := sqsQueueName(arn)
		if dlq == "" {
			return q, fmt.Errorf("%w: %s.RedrivePolicy.deadLetterTargetArn: want a queue's ARN (!GetAtt Queue.Arn), have %q", ErrInvalid, at, arn)
		}
		n, err := cfnInt(rp["maxReceiveCount"])
		if err != nil {
			return q, fmt.Errorf("%w: %s.RedrivePolicy.maxReceiveCount: %v", ErrInvalid, at, err)
		}
		q.DeadLetter = &DeadLetter{Queue: dlq, MaxReceiveCount: n}
	}
	return q, nil
}

// sqsEvent is a function's SQS event source, kept until the queues are read.
type sqsEvent struct {
	function, queue, at string
	trigger             QueueTrigger
}

// samSQSEvents reads a function's Events of Type SQS; other event types
// are listed in the warnings.
func (t *samTemplate) samSQSEvents(fn string, p map[string]any) ([]sqsEvent, error) {
	events, _ := p["Events"].(map[string]any)
	var out []sqsEvent
	for _, name := range sortedKeys(events) {
		at := fmt.Sprintf("Resources.%s.Properties.Events.%s", fn, name)
		ev, ok := events[name].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: %s: want a map with Type and Properties", ErrInvalid, at)
		}
		typ, _ := ev["Type"].(string)
		if typ != "SQS" {
			t.warn(fmt.Sprintf("%s: events of Type %s are not run (SQS is)", at, typ))
			continue
		}
		props, _ := ev["Properties"].(map[string]any)
		sq, err := sqsTrigger(fn, props, at+".Properties", t.warn)
		if err != nil {
			return nil, err
		}
		out = append(out, sq)
	}
	return out, nil
}

// sqsTrigger reads the properties of a SAM SQS event, by SAM's names (a
// serverless sqs event's keys are mapped to them by slsSQS); any other
// property is listed in a warning.
func sqsTrigger(fn string, props map[string]any, at string, warn func(string)) (sqsEvent, error) {
	ref, _ := cfnString(props["Queue"])
	name := sqsQueueName(ref)
	if name == "" {
		return sqsEvent{}, fmt.Errorf("%w: %s.Queue: want a queue's ARN (!GetAtt Queue.Arn), have %q", ErrInvalid, at, ref)
	}
	ev := sqsEvent{function: fn, queue: name, at: strings.TrimSuffix(at, ".Properties"), trigger: QueueTrigger{Function: fn}}
	for _, k := range sortedKeys(props) {
		v := props[k]
		switch k {
		case "Queue":
		case "BatchSize":
			n, err := cfnInt(v)
			if err != nil || n < 1 || n > 10000 {
				return ev, fmt.Errorf("%w: %s.BatchSize: want 1 to 10000, have %v", ErrInvalid, at, v)
			}
			ev.trigger.BatchSize = n
		case "MaximumBatchingWindowInSeconds":
			n, err := cfnInt(v)
			if err != nil || n < 0 || n > 300 {
				return ev, fmt.Errorf("%w: %s.MaximumBatchingWindowInSeconds: want 0 to 300, have %v", ErrInvalid, at, v)
			}
			ev.trigger.BatchWindow = Duration(time.Duration(n) * time.Second)
		case "FunctionResponseTypes":
			list, _ := v.([]any)
			for _, x := range list {
				if x != "ReportBatchItemFailures" {
					return ev, fmt.Errorf("%w: %s.FunctionResponseTypes: only ReportBatchItemFailures exists, have %v", ErrInvalid, at, x)
				}
				ev.trigger.ReportBatchItemFailures = true
			}
		case "ScalingConfig":
			sc, _ := v.(map[string]any)
			if mc, ok := sc["MaximumConcurrency"]; ok {
				n, err := cfnInt(mc)
				if err != nil || n < 2 || n > 1000 {
					return ev, fmt.Errorf("%w: %s.ScalingConfig.MaximumConcurrency: want 2 to 1000, have %v", ErrInvalid, at, mc)
				}
				ev.trigger.MaxConcurrency = n
			}
		case "Enabled":
			s, _ := cfnString(v)
			ev.trigger.Disabled = s == "false"
		default:
			warn(fmt.Sprintf("%s.%s is not applied locally", at, k))
		}
	}
	return ev, nil
}

// eventSourceMapping reads an AWS::Lambda::EventSourceMapping: one whose
// EventSourceArn is a queue's is an SQS trigger of the function it names;
// another kind of source is listed in a warning (ok false).
func (t *samTemplate) eventSourceMapping(id string, function func(ref, where string) (string, error)) (sqsEvent, bool, error) {
	p, err := t.props(id, t.eval.resources[id], nil)
	if err != nil {
		return sqsEvent{}, false, err
	}
	at := "Resources." + id + ".Properties"
	arn, _ := cfnString(p["EventSourceArn"])
	if sqsQueueName(arn) == "" {
		t.warn(fmt.Sprintf("Resources.%s is not run: only SQS event sources are, not %q", id, arn))
		return sqsEvent{}, false, nil
	}
	ref, _ := cfnString(p["FunctionName"])
	fn, err := function(ref, at+".FunctionName")
	if err != nil {
		return sqsEvent{}, false, err
	}
	props := map[string]any{"Queue": arn}
	for _, k := range []string{"BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "ScalingConfig", "Enabled"} {
		if v, ok := p[k]; ok {
			props[k] = v
		}
	}
	ev, err := sqsTrigger(fn, props, at, t.warn)
	ev.at = "Resources." + id
	return ev, err == nil, err
}

// attachTriggers adds the SQS events' triggers to their queues; an event
// of a queue the project does not declare is listed in a warning.
func (c *Config) attachTriggers(events []sqsEvent, warn func(string)) {
	for _, ev := range events {
		i := c.queueIndex(ev.queue)
		if i < 0 {
			warn(fmt.Sprintf("%s is not run: queue %s is not one of the project's queues", ev.at, ev.queue))
			continue
		}
		c.Queues[i].Triggers = append(c.Queues[i].Triggers, ev.trigger)
	}
}

// queueTarget makes a rule target of an SQS ARN; ok is false when arn is
// not one.
func queueTarget(arn, id string) (EventTarget, bool) {
	name := sqsQueueName(arn)
	if name == "" {
		return EventTarget{}, false
	}
	return EventTarget{ID: id, Queue: name}, true
}
