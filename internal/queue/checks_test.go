package queue_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gateway/switchboard/internal/queue"
)

func dur(d time.Duration) *time.Duration { return &d }

// TestChecks: every store refuses a receive's options, a delay and a
// visibility timeout with these checks, and the SQS API shows their
// messages to clients.
func TestChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string // empty: no error
	}{
		{"receive zero value", queue.ReceiveOptions{}.Check(), ""},
		{"receive at the limits", queue.ReceiveOptions{Max: queue.MaxBatch, Visibility: dur(queue.MaxVisibilityTimeout), Wait: queue.MaxWait}.Check(), ""},
		{"receive Max 1, no timeout", queue.ReceiveOptions{Max: 1, Visibility: dur(0)}.Check(), ""},
		{"receive Max 11", queue.ReceiveOptions{Max: 11}.Check(), "MaxNumberOfMessages 11 is not within 1 and 10"},
		{"receive Max -1", queue.ReceiveOptions{Max: -1}.Check(), "MaxNumberOfMessages -1 is not within 1 and 10"},
		{"receive Visibility 13h", queue.ReceiveOptions{Visibility: dur(13 * time.Hour)}.Check(), "VisibilityTimeout 13h0m0s is not within 0s and 12h"},
		{"receive Visibility -1s", queue.ReceiveOptions{Visibility: dur(-time.Second)}.Check(), "VisibilityTimeout -1s is not within 0s and 12h"},
		{"receive Wait 21s", queue.ReceiveOptions{Wait: 21 * time.Second}.Check(), "WaitTimeSeconds 21s is not within 0s and 20s"},
		{"receive Wait -1s with QueueWait", queue.ReceiveOptions{Wait: -time.Second, QueueWait: true}.Check(), "WaitTimeSeconds -1s is not within 0s and 20s"},
		{"delay 0", queue.CheckDelay(0), ""},
		{"delay 15m", queue.CheckDelay(queue.MaxDelay), ""},
		{"delay 15m1s", queue.CheckDelay(queue.MaxDelay + time.Second), "DelaySeconds 15m1s is not within 0s and 15m"},
		{"delay -1s", queue.CheckDelay(-time.Second), "DelaySeconds -1s is not within 0s and 15m"},
		{"visibility 0", queue.CheckVisibility(0), ""},
		{"visibility 12h", queue.CheckVisibility(queue.MaxVisibilityTimeout), ""},
		{"visibility 12h1s", queue.CheckVisibility(queue.MaxVisibilityTimeout + time.Second), "VisibilityTimeout 12h0m1s is not within 0s and 12h"},
		{"visibility -1ns", queue.CheckVisibility(-1), "VisibilityTimeout -1ns is not within 0s and 12h"},
		{"attributes delay", queue.Attributes{Delay: time.Hour}.Check(), "DelaySeconds 1h0m0s is not within 0s and 15m"},
		{"attributes visibility first", queue.Attributes{VisibilityTimeout: -time.Second, Delay: time.Hour}.Check(), "VisibilityTimeout -1s is not within 0s and 12h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.want == "" {
				if tt.err != nil {
					t.Errorf("err = %v, want nil", tt.err)
				}
				return
			}
			if !errors.Is(tt.err, queue.ErrInvalid) || !strings.HasSuffix(tt.err.Error(), ": "+tt.want) {
				t.Errorf("err = %v, want ErrInvalid with %q", tt.err, tt.want)
			}
		})
	}
}
