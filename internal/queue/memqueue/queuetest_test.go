package memqueue_test

import (
	"context"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/memqueue"
	"github.com/switchboard-gateway/switchboard/internal/queue/queuetest"
)

// TestConformance runs the store suite on the real clock. A node's own
// store has no second node to share its queues with: RunShared does not
// apply.
func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(t *testing.T, decls ...queue.Declaration) queue.Store {
		s := memqueue.New(memqueue.Options{})
		if err := s.Declare(context.Background(), decls); err != nil {
			t.Fatalf("Declare: %v", err)
		}
		return s
	})
}
