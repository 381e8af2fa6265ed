package gateway

import (
	"testing"

	"github.com/switchboard-gateway/switchboard/internal/wsconn"
)

func TestDisconnectReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ci   wsconn.CloseInfo
		want string
	}{
		{"socket no longer watched", wsconn.CloseInfo{Code: wsconn.StatusInternalError, Reason: wsconn.ReasonWatchFailed}, "watch_failed"},
		{"ping flood", wsconn.CloseInfo{Code: wsconn.StatusPolicyViolation, Reason: wsconn.ReasonPingFlood}, "ping_flood"},
		{"pong or empty fragment flood", wsconn.CloseInfo{Code: wsconn.StatusPolicyViolation, Reason: wsconn.ReasonFrameFlood}, "frame_flood"},
		{"frame not completed in time", wsconn.CloseInfo{Code: wsconn.StatusPolicyViolation, Reason: wsconn.ReasonFrameTimeout}, "frame_timeout"},
		{"too many fragments", wsconn.CloseInfo{Code: wsconn.StatusMessageTooBig, Reason: wsconn.ReasonFragments}, "too_big"},
		{"peer dropped", wsconn.CloseInfo{Code: wsconn.StatusAbnormal, ByPeer: true}, "abnormal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := disconnectReason(tt.ci); got != tt.want {
				t.Errorf("disconnectReason(%+v) = %q, want %q", tt.ci, got, tt.want)
			}
		})
	}
}
