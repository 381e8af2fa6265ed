package memhist

// TopicsForTest returns how many topics the store holds.
func (s *Store) TopicsForTest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.topics)
}
