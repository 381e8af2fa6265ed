package natsreg

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// entry is a KeyValueEntry as a watch delivers it.
type entry struct {
	key   string
	rev   uint64
	delta uint64
	op    jetstream.KeyValueOp
}

func (e entry) Bucket() string                  { return "b" }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return nil }
func (e entry) Revision() uint64                { return e.rev }
func (e entry) Created() time.Time              { return time.Time{} }
func (e entry) Delta() uint64                   { return e.delta }
func (e entry) Operation() jetstream.KeyValueOp { return e.op }

// watcher replays a watch's deliveries; nil is the end-of-initial-values marker.
type watcher struct{ c chan jetstream.KeyValueEntry }

func (w watcher) Updates() <-chan jetstream.KeyValueEntry { return w.c }
func (w watcher) Stop() error                             { return nil }

func replay(es ...jetstream.KeyValueEntry) watcher {
	c := make(chan jetstream.KeyValueEntry, len(es))
	for _, e := range es {
		c <- e
	}
	return watcher{c}
}

// TestDrainReadsPastAnEarlyMarker: the client library sends its marker once
// as many entries arrived as were pending when the watch began. Entries
// written during the watch count too, so the marker can come before
// entries that were there all along: drain must read on until the stream
// has nothing more, and report each key once, at its last write.
func TestDrainReadsPastAnEarlyMarker(t *testing.T) {
	t.Parallel()
	put, del := jetstream.KeyValuePut, jetstream.KeyValueDelete
	tests := []struct {
		name string
		in   []jetstream.KeyValueEntry
		want []string
	}{
		{"marker after the last entry", []jetstream.KeyValueEntry{
			entry{"a", 1, 1, put}, entry{"b", 2, 0, put}, nil,
		}, []string{"a@1", "b@2"}},
		{"empty bucket", []jetstream.KeyValueEntry{nil}, nil},
		// a, b and c were there; a was renewed twice during the watch,
		// which made three deliveries before c's: the marker came early.
		{"renewals before the marker", []jetstream.KeyValueEntry{
			entry{"a", 1, 3, put}, entry{"b", 2, 3, put}, entry{"a", 4, 2, put}, nil,
			entry{"c", 3, 1, put}, entry{"a", 5, 0, put},
		}, []string{"b@2", "c@3", "a@5"}},
		{"deleted during the watch", []jetstream.KeyValueEntry{
			entry{"a", 1, 2, put}, entry{"b", 2, 2, put}, nil, entry{"a", 3, 0, del},
		}, []string{"b@2"}},
		{"a delete is the last entry", []jetstream.KeyValueEntry{
			entry{"a", 1, 1, put}, entry{"b", 2, 0, del}, nil,
		}, []string{"a@1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			es, err := drain(ctx, replay(tt.in...))
			if err != nil {
				t.Fatalf("drain: %v", err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Key()+"@"+strconv.FormatUint(e.Revision(), 10))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("drain = %q, want %q", got, tt.want)
			}
		})
	}
}
