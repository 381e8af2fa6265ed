// Package natsjs holds what the packages that use NATS JetStream
// (natsreg, natshist, consumer) read the same way from its answers.
package natsjs

import (
	"errors"

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
