package consumer

// SetBeforeAckForTest makes c run f after each publish and before the
// acknowledgement; an error from f leaves the event unacknowledged, as a
// node that stopped then would. Call it before Run.
func (c *Consumer) SetBeforeAckForTest(f func(id string, attempt int) error) {
	c.beforeAck = func(d delivery) error { return f(d.id, d.attempt) }
}

// IsWrongRevisionForTest reports whether err is a key-value update that
// lost to another writer.
var IsWrongRevisionForTest = isWrongRevision
