package memhist_test

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/history"
	"github.com/switchboard-gateway/switchboard/internal/history/histtest"
	"github.com/switchboard-gateway/switchboard/internal/history/memhist"
)

// TestConformance runs the store suite against a node's own store; the
// cases that need a history shared between nodes skip.
func TestConformance(t *testing.T) {
	t.Parallel()
	histtest.Run(t, func(t *testing.T, rules []history.Rule, n int) []history.Store {
		if n > 1 {
			return nil
		}
		s, err := memhist.New(memhist.Options{Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		return []history.Store{s}
	})
}
