package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a message leaves a queue without being deleted.
const (
	QueueExpired    = "expired"     // its retention ended
	QueueDeadLetter = "dead_letter" // moved to the dead-letter queue after maxReceiveCount receives
)

// Results of a queue trigger's batch.
const (
	BatchOK      = "ok"      // the function took every message
	BatchPartial = "partial" // it reported some as failed (batchItemFailures)
	BatchFailed  = "failed"  // it failed, or its report was not valid: every message comes back
)

// QueueCounts are a queue's messages by state, for the gauges.
type QueueCounts struct {
	Queue                    string
	Visible, InFlight, Delay int
}

// Queues are the queues' metrics.
type Queues struct {
	Left    *prometheus.CounterVec // queue, reason
	Batches *prometheus.CounterVec // queue, function, result
}

// NewQueues registers the queue collectors on reg; counts, read at each
// scrape, feeds switchboard_queue_messages.
func NewQueues(reg prometheus.Registerer, counts func() []QueueCounts) *Queues {
	q := &Queues{
		Left: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_queue_messages_left_total", Help: "Messages that left a queue without being deleted, by queue and reason (expired, dead_letter).",
		}, []string{"queue", "reason"}),
		Batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_queue_trigger_batches_total", Help: "Batches a queue trigger ran its function with, by queue, function and result (ok, partial, failed).",
		}, []string{"queue", "function", "result"}),
	}
	reg.MustRegister(q.Left, q.Batches, queueGauges{counts})
	return q
}

// Leave counts a message that left queue for reason.
func (q *Queues) Leave(queue, reason string) {
	if q != nil {
		q.Left.WithLabelValues(queue, reason).Inc()
	}
}

// Batch counts a trigger's batch.
func (q *Queues) Batch(queue, function, result string) {
	if q != nil {
		q.Batches.WithLabelValues(queue, function, result).Inc()
	}
}

var queueMessagesDesc = prometheus.NewDesc("switchboard_queue_messages",
	"Messages in a queue, by queue and state (visible, in_flight, delayed).", []string{"queue", "state"}, nil)

// queueGauges reads the queues' counts at each scrape.
type queueGauges struct{ counts func() []QueueCounts }

func (g queueGauges) Describe(ch chan<- *prometheus.Desc) { ch <- queueMessagesDesc }

func (g queueGauges) Collect(ch chan<- prometheus.Metric) {
	for _, c := range g.counts() {
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(c.Visible), c.Queue, "visible")
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(c.InFlight), c.Queue, "in_flight")
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(c.Delay), c.Queue, "delayed")
	}
}
