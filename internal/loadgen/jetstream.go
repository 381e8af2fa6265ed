package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsPublisher publishes fanout's messages as events to a JetStream
// subject, asynchronously: JetStream's acknowledgements are awaited by
// close, and a refused event fails the run.
type jsPublisher struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix []byte
	msg    []byte
	fail   func(error)
	subj   string
}

// jsMaxPending bounds the events awaiting JetStream's acknowledgement.
const jsMaxPending = 1000

func newJetStreamPublisher(url, subject, topic string, fail func(error)) (*jsPublisher, error) {
	nc, err := nats.Connect(url, nats.Name("switchboard bench"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("--nats-url: %w", err)
	}
	p := &jsPublisher{nc: nc, subj: subject, fail: fail}
	p.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(jsMaxPending),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			fail(fmt.Errorf("JetStream did not take an event: %w", err))
		}))
	if err != nil {
		nc.Close()
		return nil, err
	}
	t, _ := json.Marshal(topic)
	p.prefix = []byte(`{"topic":` + string(t) + `,"data":"`)
	return p, nil
}

func (p *jsPublisher) publish(ctx context.Context, payload []byte) error {
	// A message of its own each time: the client keeps it until acknowledged.
	p.msg = append(append(append(make([]byte, 0, len(p.prefix)+len(payload)+2), p.prefix...), payload...), `"}`...)
	// Waits up to 5s for room among the pending events: the publishing
	// goes at the pace JetStream takes it.
	_, err := p.js.PublishAsync(p.subj, p.msg, jetstream.WithStallWait(5*time.Second))
	return err
}

// fatal: a publish the client refused (too many pending, a closed
// connection) ends the publishing.
func (p *jsPublisher) fatal(error) bool { return true }

// close waits for JetStream's acknowledgements, at most 10s, then closes
// the connection.
func (p *jsPublisher) close() {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		p.fail(errors.New("JetStream did not acknowledge every event within 10s"))
	}
	p.nc.Close()
}
