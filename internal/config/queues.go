package config

import (
	"fmt"
	"strings"
)

// Queue is one message queue. Absent settings take SQS's defaults, which
// the queue package applies and checks against SQS's limits.
type Queue struct {
	// Name is the queue's name: letters, digits, - and _. FIFO queues
	// (a .fifo name) are not supported.
	Name string `yaml:"name"`
	// VisibilityTimeout is how long a received message stays hidden.
	// Absent: 30s.
	VisibilityTimeout Duration `yaml:"visibilityTimeout"`
	// Delay hides each new message this long. Absent: none.
	Delay Duration `yaml:"delay"`
	// Retention is how long a message is kept. Absent: 4 days.
	Retention Duration `yaml:"retention"`
	// MaxMessageBytes bounds one message. Absent: 256KiB.
	MaxMessageBytes Size `yaml:"maxMessageBytes"`
	// MaxMessages bounds the messages the queue holds. Absent: 100000.
	MaxMessages int `yaml:"maxMessages"`
	// ReceiveWait is how long a receive that names no wait waits for a
	// message (long polling). Absent: none.
	ReceiveWait Duration `yaml:"receiveWait"`
	// DeadLetter moves a message received MaxReceiveCount times to
	// another queue of queues.
	DeadLetter *DeadLetter `yaml:"deadLetter"`
	// Triggers are the functions that run with the queue's messages.
	Triggers []QueueTrigger `yaml:"triggers"`
}

// DeadLetter is a queue's redrive policy.
type DeadLetter struct {
	// Queue names the dead-letter queue, an entry of queues.
	Queue string `yaml:"queue"`
	// MaxReceiveCount is the receives before a message moves, 1 to 1000.
	MaxReceiveCount int `yaml:"maxReceiveCount"`
}

// QueueTrigger runs a function with a queue's messages, as a Lambda SQS
// event source mapping does.
type QueueTrigger struct {
	// Function names an entry of functions.
	Function string `yaml:"function"`
	// BatchSize is the most messages of one event. Absent: 10.
	BatchSize int `yaml:"batchSize"`
	// BatchWindow is how long a batch is gathered. Absent: none.
	BatchWindow Duration `yaml:"batchWindow"`
	// ReportBatchItemFailures reads the function's batchItemFailures.
	ReportBatchItemFailures bool `yaml:"reportBatchItemFailures"`
	// MaxConcurrency bounds the function's invocations at once. Absent: 2.
	MaxConcurrency int `yaml:"maxConcurrency"`
	// Disabled leaves the trigger out (SAM's Enabled: false).
	Disabled bool `yaml:"disabled"`
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// validateQueues checks the queues' names and what they refer to; their
// attributes' limits are checked by the queue package when the server is
// built.
func validateQueues(queues []Queue, functions map[string]Function) problems {
	var p problems
	names := map[string]bool{}
	for _, q := range queues {
		names[q.Name] = true
	}
	seen := map[string]bool{}
	for i, q := range queues {
		path := fmt.Sprintf("queues[%d]", i)
		switch {
		case q.Name == "":
			p.add(path+".name", "is required")
			continue
		case strings.HasSuffix(q.Name, ".fifo"):
			p.add(path+".name", "queue %q: FIFO queues are not supported", q.Name)
		case seen[q.Name]:
			p.add(path+".name", "queue %q is declared twice", q.Name)
		}
		seen[q.Name] = true
		if q.VisibilityTimeout < 0 {
			p.add(path+".visibilityTimeout", "a received message needs a visibility timeout: expected a duration such as 30s (queue %q)", q.Name)
		}
		if q.Retention < 0 {
			p.add(path+".retention", "messages are kept for a bounded time: expected a duration such as 96h (queue %q)", q.Name)
		}
		if q.MaxMessages < 0 || q.MaxMessageBytes < 0 {
			p.add(path, "maxMessages and maxMessageBytes must be bounded (queue %q)", q.Name)
		}
		if dl := q.DeadLetter; dl != nil {
			switch {
			case dl.Queue == "":
				p.add(path+".deadLetter.queue", "is required (queue %q)", q.Name)
			case !names[dl.Queue]:
				p.add(path+".deadLetter.queue", "queue %q is not defined under queues (queue %q)", dl.Queue, q.Name)
			case dl.Queue == q.Name:
				p.add(path+".deadLetter.queue", "queue %q cannot be its own dead-letter queue", q.Name)
			}
			if dl.MaxReceiveCount < 1 || dl.MaxReceiveCount > 1000 {
				p.add(path+".deadLetter.maxReceiveCount", "expected 1 to 1000, got %d (queue %q)", dl.MaxReceiveCount, q.Name)
			}
		}
		for j, t := range q.Triggers {
			tp := fmt.Sprintf("%s.triggers[%d]", path, j)
			if _, ok := functions[t.Function]; !ok {
				p.add(tp+".function", "function %q is not defined under functions (queue %q)", t.Function, q.Name)
			}
			if t.BatchSize < 0 || t.MaxConcurrency < 0 || t.BatchWindow < 0 {
				p.add(tp, "batchSize, batchWindow and maxConcurrency must not be negative or unlimited (queue %q)", q.Name)
			}
		}
	}
	return p
}

// queueIndex finds a queue by name.
func (c *Config) queueIndex(name string) int {
	for i, q := range c.Queues {
		if q.Name == name {
			return i
		}
	}
	return -1
}
