package natsjs_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsjs"
)

func TestWrongLast(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"wrong last sequence", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
		{"wrong last sequence, constant", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}, true},
		{"wrapped", fmt.Errorf("update: %w", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}), true},
		{"other API error", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNotFound}, false},
		{"timeout", context.DeadlineExceeded, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := natsjs.WrongLast(tt.err); got != tt.want {
			t.Errorf("%s: WrongLast(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
