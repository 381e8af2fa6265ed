package wsconn

import (
	"testing"
	"time"
)

// FrameTimeout follows the convention of every limit: zero means the
// default, negative disables it, and a disabled one arms nothing.
func TestFrameTimeoutOption(t *testing.T) {
	t.Parallel()
	if got := (Options{}).withDefaults().FrameTimeout; got != 30*time.Second {
		t.Errorf("default FrameTimeout = %v, want 30s", got)
	}
	off := Options{FrameTimeout: -1}.withDefaults()
	if off.FrameTimeout != -1 {
		t.Errorf("FrameTimeout -1 became %v", off.FrameTimeout)
	}
	c := &Conn{opts: &off}
	c.frameStarted()
	if c.frameSince.Load() != 0 || c.timer != nil {
		t.Error("a disabled FrameTimeout still armed a deadline")
	}
	on := Options{FrameTimeout: time.Hour}.withDefaults()
	c = &Conn{opts: &on}
	c.frameStarted()
	if c.frameSince.Load() == 0 || c.timer == nil {
		t.Error("a frame begun armed no deadline")
	}
	c.timer.Stop()
	c.frameDone()
	if c.frameSince.Load() != 0 {
		t.Error("frameDone left the deadline")
	}
}
