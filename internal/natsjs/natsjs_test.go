package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsjs"
	"github.com/switchboard-gateway/switchboard/internal/testutil"
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

// CreateStream returns the stream another node made under the same name,
// whatever its limits, and leaves a real clash of subjects an error, on
// both engines (Debian's nats-server answers a clash as the module's does).
func TestCreateStream(t *testing.T) {
	for name, engine := range testutil.NATSEngines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			js := testutil.JetStream(t, engine(t))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := jetstream.StreamConfig{Name: "s", Subjects: []string{"s.*"}, MaxAge: time.Hour}
			if _, err := natsjs.CreateStream(ctx, js, cfg); err != nil {
				t.Fatal(err)
			}
			other := cfg
			other.MaxAge = time.Minute // made by another node, with other limits
			st, err := natsjs.CreateStream(ctx, js, other)
			if err != nil || st.CachedInfo().Config.MaxAge != time.Hour {
				t.Errorf("CreateStream of a name taken = %v; want the stream already made", err)
			}
			clash := jetstream.StreamConfig{Name: "t", Subjects: []string{"s.x"}}
			if _, err := natsjs.CreateStream(ctx, js, clash); !natsjs.SubjectOverlap(err) {
				t.Errorf("CreateStream of another stream's subjects = %v; want the overlap", err)
			}
			if _, err := js.Stream(ctx, "t"); !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("the clashing stream exists: %v", err)
			}
		})
	}
}
