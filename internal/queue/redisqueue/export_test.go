package redisqueue

import "time"

// AdvanceForTest moves the store's view of the server's clock forward by
// d (whole milliseconds), so that a test sees timeouts and retention end
// without waiting for them.
func (s *Store) AdvanceForTest(d time.Duration) { s.skew.Add(d.Milliseconds()) }
