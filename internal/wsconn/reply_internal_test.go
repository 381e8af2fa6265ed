package wsconn

import "testing"

// Answers wait for the reader's write only while the queue holds fewer
// than maxReplyBatch frames and half of each of its limits, so that a long
// read's answers never make a reading client a slow consumer: past that
// room, a writer takes them at once.
func TestReplyBatchRoom(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		opts          Options
		queued, bytes int
		want          bool
	}{
		{"empty, no limits", Options{}, 0, 0, true},
		{"below maxReplyBatch", Options{}, maxReplyBatch - 1, 0, true},
		{"at maxReplyBatch", Options{}, maxReplyBatch, 0, false},
		{"below half the message limit", Options{SendQueueMessages: 8}, 3, 0, true},
		{"at half the message limit", Options{SendQueueMessages: 8}, 4, 0, false},
		{"below half the byte limit", Options{SendQueueBytes: 1000}, 1, 499, true},
		{"at half the byte limit", Options{SendQueueBytes: 1000}, 1, 500, false},
	} {
		c := &Conn{opts: &tt.opts, queue: make([][]byte, tt.queued), queuedBytes: tt.bytes}
		if got := c.batchRoom(); got != tt.want {
			t.Errorf("%s: batchRoom() = %v, want %v", tt.name, got, tt.want)
		}
	}
}
