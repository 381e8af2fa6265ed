// Package natsjs holds what the packages that use NATS JetStream
// (natsreg, natshist, natsqueue, consumer) read the same way from its
// answers.
package natsjs

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WrongLast reports whether err is JetStream refusing a write whose
// expected last sequence (of the stream, of a subject, or of a key) was
// not the last: another writer got there first. A stream answers it with
// one of two codes, the second on replicated streams.
func WrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// SubjectOverlap reports whether err is JetStream refusing a stream whose
// subjects another stream already takes. A 2.9 server may answer so a
// create that loses the race with another's create of the same stream.
func SubjectOverlap(err error) bool {
	return hasCode(err, subjectOverlap)
}

// StoreFailed reports whether err is JetStream failing to make a stream's
// store (its generic create error). A server that has just deleted the
// last stream of an account removes the account's stream directory in
// the background, and a create at that moment fails so ("could not create
// storage directory"): it succeeds when tried again.
func StoreFailed(err error) bool {
	return hasCode(err, storeFailed)
}

// The codes of nats-server's errors that jetstream names no constant for.
const (
	storeFailed    jetstream.ErrorCode = 10049 // JSStreamCreateErrF
	subjectOverlap jetstream.ErrorCode = 10065 // JSStreamSubjectOverlapErr
)

func hasCode(err error, code jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == code
}

// CreateStream makes the stream of cfg as one of several nodes that may
// make it at once, and returns it, made by this call or by another's. A
// create that finds the name taken, or its subjects (a 2.9 server's answer
// to a create that lost the race), looks the stream up by name; one that
// meets the server still removing a deleted stream's directory
// (StoreFailed) is tried again, after 20 ms doubling, at most four more
// times within ctx.
func CreateStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	wait := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		st, err := js.CreateStream(ctx, cfg)
		switch {
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			return js.Stream(ctx, cfg.Name)
		case SubjectOverlap(err):
			if made, serr := js.Stream(ctx, cfg.Name); serr == nil {
				return made, nil
			}
		case attempt < 5 && StoreFailed(err):
			select {
			case <-time.After(wait):
				wait *= 2
				continue
			case <-ctx.Done():
			}
		}
		return st, err
	}
}
