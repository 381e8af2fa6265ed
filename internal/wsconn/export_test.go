package wsconn

import "errors"

// UnwatchForTest takes c's socket out of the poller's set, as a kernel that
// lost the registration would: the writer's next ArmWrite fails.
func (c *Conn) UnwatchForTest() error {
	c.mu.Lock()
	w := c.watch
	c.mu.Unlock()
	if w == nil {
		return errors.New("wsconn: connection not watched")
	}
	return w.UnregisterForTest()
}
