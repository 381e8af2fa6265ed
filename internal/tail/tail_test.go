package tail_test

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/tail"
)

func TestRecentKeepsTheLastRecordsInOrder(t *testing.T) {
	t.Parallel()
	h := tail.New(3, 1)
	for i := range 5 {
		h.Publish(tail.Record{Bytes: i})
	}
	got := h.Recent()
	if len(got) != 3 || got[0].Bytes != 2 || got[1].Bytes != 3 || got[2].Bytes != 4 {
		t.Errorf("Recent() = %+v, want records 2, 3, 4", got)
	}
	if got := tail.New(3, 1).Recent(); len(got) != 0 {
		t.Errorf("empty hub Recent() = %+v", got)
	}
}

func TestSlowSubscriberLosesRecordsWithoutBlocking(t *testing.T) {
	t.Parallel()
	h := tail.New(10, 2)
	s := h.Subscribe()
	for i := range 5 {
		h.Publish(tail.Record{Bytes: i}) // must not block
	}
	if got := h.Dropped(s); got != 3 {
		t.Errorf("Dropped = %d, want 3", got)
	}
	if r := <-s.C; r.Bytes != 0 {
		t.Errorf("first record = %+v", r)
	}
	h.Unsubscribe(s)
	h.Unsubscribe(s)                 // twice is harmless
	h.Publish(tail.Record{Bytes: 9}) // no subscriber left
	if r, open := <-s.C; !open || r.Bytes != 1 {
		t.Errorf("buffered record = %+v (open %v), want record 1", r, open)
	}
	if _, open := <-s.C; open {
		t.Error("channel still open after Unsubscribe")
	}
}
