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

func TestCreateErrors(t *testing.T) {
	overlap := &jetstream.APIError{Code: 400, ErrorCode: 10065, Description: "subjects overlap with an existing stream"}
	store := &jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"}
	tests := []struct {
		name                  string
		err                   error
		overlaps, storeFailed bool
	}{
		{"subjects overlap", overlap, true, false},
		{"store failed, wrapped", fmt.Errorf("create: %w", store), false, true},
		{"name in use", jetstream.ErrStreamNameAlreadyInUse, false, false},
		{"timeout", context.DeadlineExceeded, false, false},
		{"nil", nil, false, false},
	}
	for _, tt := range tests {
		if got := natsjs.SubjectOverlap(tt.err); got != tt.overlaps {
			t.Errorf("%s: SubjectOverlap(%v) = %v, want %v", tt.name, tt.err, got, tt.overlaps)
		}
		if got := natsjs.StoreFailed(tt.err); got != tt.storeFailed {
			t.Errorf("%s: StoreFailed(%v) = %v, want %v", tt.name, tt.err, got, tt.storeFailed)
		}
	}
}
