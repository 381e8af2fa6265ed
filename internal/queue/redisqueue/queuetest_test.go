package redisqueue_test

import (
	"fmt"
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/queuetest"
	"github.com/switchboard-gateway/switchboard/internal/queue/redisqueue"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
)

// TestConformance runs the store suite against one real redis-server,
// each subtest on a prefix of its own; RunShared's two nodes are two
// stores, each with a client of its own, on one prefix.
func TestConformance(t *testing.T) {
	t.Parallel()
	r := testutil.StartRedis(t)
	open := func(t *testing.T, n int, decls ...queue.Declaration) []queue.Store {
		prefix := fmt.Sprintf("conf%d:", prefixSeq.Add(1))
		var out []queue.Store
		for range n {
			s := node(t, r.Addr, prefix, redisqueue.Options{})
			declare(t, s, decls...)
			out = append(out, s)
		}
		return out
	}
	t.Run("Store", func(t *testing.T) {
		t.Parallel()
		queuetest.Run(t, func(t *testing.T, decls ...queue.Declaration) queue.Store {
			return open(t, 1, decls...)[0]
		})
	})
	t.Run("Shared", func(t *testing.T) {
		t.Parallel()
		queuetest.RunShared(t, func(t *testing.T, decls ...queue.Declaration) (queue.Store, queue.Store) {
			s := open(t, 2, decls...)
			return s[0], s[1]
		})
	})
}
