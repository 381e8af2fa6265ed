package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/natsjs"
)

// NATSSource reads a JetStream stream through a durable pull consumer
// shared by every node: each event goes to one of them, and comes back to
// any of them when it was not acknowledged within AckWait.
type NATSSource struct {
	// JS is the engine's JetStream context. Required.
	JS jetstream.JetStream
	// Stream names the stream read. Required. When it does not exist and
	// Subjects are given, it is created on them (file storage, kept until
	// its limits: none by default).
	Stream string
	// Subjects filter the stream's subjects; empty reads them all. More
	// than one needs nats-server 2.10 or later.
	Subjects []string
	// Durable names the durable consumer. Empty means "switchboard-" and
	// the consumer's name.
	Durable string
	// AckWait is how long an event may stay unacknowledged (its node
	// stopped, say) before it is delivered again. Zero means 30s.
	AckWait time.Duration
	// DeadLetter is the subject dead letters are published to, with the
	// reason in the Switchboard-Reason header. Empty means
	// "switchboard.dead." and the consumer's name. When no stream captures
	// it, a stream SWITCHBOARD_DEAD_<name> is created for it.
	DeadLetter string
	// Replicas is how many servers of a NATS cluster hold each stream and
	// bucket the consumer creates: the stream when missing, the dead-letter
	// stream, the idempotency keys. Zero means 1.
	Replicas int
	// Close, when set, is called by the consumer's Close (a connection of
	// the consumer's own).
	Close func()
}

// DefaultAckWait is NATSSource.AckWait's default.
const DefaultAckWait = 30 * time.Second

type natsSource struct {
	o       Options
	s       NATSSource
	cons    jetstream.Consumer
	durable string
}

func startNATS(ctx context.Context, o Options) (source, claims, error) {
	s := *o.NATS
	if s.JS == nil || s.Stream == "" {
		return nil, nil, fmt.Errorf("%w: consumer %s: nats needs a JetStream connection and a stream", ErrConfig, o.Name)
	}
	if s.Replicas < 0 {
		return nil, nil, fmt.Errorf("%w: consumer %s: negative replicas", ErrConfig, o.Name)
	}
	if s.Durable == "" {
		s.Durable = "switchboard-" + o.Name
	}
	if s.AckWait == 0 {
		s.AckWait = DefaultAckWait
	}
	if s.DeadLetter == "" {
		s.DeadLetter = "switchboard.dead." + o.Name
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	fail := func(err error) (source, claims, error) {
		if s.Close != nil {
			s.Close()
		}
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, o.CallTimeout)
	defer cancel()
	_, err := s.JS.Stream(cctx, s.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && len(s.Subjects) > 0 {
		_, err = s.JS.CreateStream(cctx, jetstream.StreamConfig{Name: s.Stream, Subjects: s.Subjects,
			Replicas: s.Replicas, Description: "created by switchboard consumer " + o.Name})
	}
	if err != nil {
		return fail(fmt.Errorf("consumer %s: stream %s: %w", o.Name, s.Stream, err))
	}
	switch dead, err := s.JS.StreamNameBySubject(cctx, s.DeadLetter); {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		_, err := s.JS.CreateOrUpdateStream(cctx, jetstream.StreamConfig{Name: "SWITCHBOARD_DEAD_" + o.Name,
			Subjects: []string{s.DeadLetter}, Replicas: s.Replicas, Description: "dead letters of consumer " + o.Name})
		if err != nil {
			return fail(fmt.Errorf("consumer %s: dead-letter stream for %s: %w", o.Name, s.DeadLetter, err))
		}
	case err != nil:
		return fail(fmt.Errorf("consumer %s: dead-letter subject %s: %w", o.Name, s.DeadLetter, err))
	case dead == s.Stream:
		return fail(fmt.Errorf("%w: consumer %s: dead-letter subject %s is in the stream it reads", ErrConfig, o.Name, s.DeadLetter))
	}
	cc := jetstream.ConsumerConfig{
		Durable:   s.Durable,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   s.AckWait,
		// One delivery more than the consumer's bound: an event whose
		// last attempt's node stopped before dead-lettering it comes back
		// once more, and is dead-lettered then.
		MaxDeliver:    o.MaxDeliver + 1,
		MaxAckPending: max(1000, 10*o.Batch),
		Description:   "switchboard consumer " + o.Name,
	}
	switch len(s.Subjects) {
	case 0:
	case 1:
		cc.FilterSubject = s.Subjects[0]
	default:
		cc.FilterSubjects = s.Subjects
	}
	cons, err := s.JS.CreateOrUpdateConsumer(cctx, s.Stream, cc)
	if err != nil {
		return fail(fmt.Errorf("consumer %s: durable consumer %s on %s: %w", o.Name, s.Durable, s.Stream, err))
	}
	kv, err := s.JS.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: "switchboard_idem_" + o.Name,
		Description: "idempotency keys of consumer " + o.Name, TTL: o.Window, History: 1, Replicas: s.Replicas})
	if err != nil {
		return fail(fmt.Errorf("consumer %s: idempotency keys: %w", o.Name, err))
	}
	return &natsSource{o: o, s: s, cons: cons, durable: s.Durable}, &kvClaims{kv: kv, node: o.Node}, nil
}

func (n *natsSource) kind() string { return "nats" }

func (n *natsSource) describe() string {
	if len(n.s.Subjects) == 0 {
		return n.s.Stream
	}
	return n.s.Stream + " " + strings.Join(n.s.Subjects, ",")
}

func (n *natsSource) close() error {
	if n.s.Close != nil {
		n.s.Close()
	}
	return nil
}

func (n *natsSource) lag(ctx context.Context) (int64, error) {
	info, err := n.cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}

func (n *natsSource) run(ctx context.Context, handle func(context.Context, delivery)) {
	for ctx.Err() == nil {
		it, err := n.cons.Messages(jetstream.PullMaxMessages(n.o.Batch))
		if err != nil {
			n.o.Logger.Warn("consumer: cannot read the stream; trying again", "consumer", n.o.Name, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second): // retry pacing
			}
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		for {
			msg, err := it.Next()
			if err != nil {
				break // stopped, or the consumer was deleted: read again
			}
			handle(ctx, n.delivery(msg))
		}
		stop()
		it.Stop()
	}
}

func (n *natsSource) delivery(msg jetstream.Msg) delivery {
	d := delivery{data: msg.Data(), attempt: 1}
	if md, err := msg.Metadata(); err == nil {
		d.id = n.s.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
		d.attempt = int(md.NumDelivered)
	}
	// A plain acknowledgement, not awaited: one lost brings the event back
	// after AckWait, and its idempotency key keeps it from a second publish.
	d.ack = func(context.Context) error { return msg.Ack() }
	d.retry = func(_ context.Context, delay time.Duration) error { return msg.NakWithDelay(delay) }
	d.progress = func() { _ = msg.InProgress() } // best effort: at worst the event comes back after AckWait
	d.deadLetter = func(ctx context.Context, reason string) error {
		dm := nats.NewMsg(n.s.DeadLetter)
		dm.Data = msg.Data()
		for k, v := range msg.Headers() {
			// JetStream acts on its own headers (an expected stream or
			// sequence, a message ID, a TTL, a rollup) and would refuse or
			// alter the dead letter: they are kept under another name.
			if strings.HasPrefix(strings.ToLower(k), "nats-") {
				k = "Switchboard-Original-" + k
			}
			dm.Header[k] = v
		}
		dm.Header.Set("Switchboard-Consumer", n.o.Name)
		dm.Header.Set("Switchboard-Reason", reason)
		dm.Header.Set("Switchboard-Subject", msg.Subject())
		dm.Header.Set("Switchboard-Id", d.id)
		dm.Header.Set("Switchboard-Deliveries", strconv.Itoa(d.attempt))
		if _, err := n.s.JS.PublishMsg(ctx, dm); err != nil {
			return fmt.Errorf("publish to %s: %w", n.s.DeadLetter, err)
		}
		return msg.DoubleAck(ctx)
	}
	return d
}

// kvClaims keeps idempotency keys in a JetStream key-value bucket whose
// entries live for the window. A held key's value is "busy", the holder
// and the end of its lease in Unix milliseconds; a published one's is "done".
type kvClaims struct {
	kv   jetstream.KeyValue
	node string
}

// kvKey turns an idempotency key into a bucket key: its SHA-256, since a
// bucket's keys allow few characters.
func kvKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:16])
}

func (k *kvClaims) claim(ctx context.Context, key string, lease time.Duration) (claimState, error) {
	kk := kvKey(key)
	busy := []byte("busy " + k.node + " " + strconv.FormatInt(time.Now().Add(lease).UnixMilli(), 10))
	for {
		_, err := k.kv.Create(ctx, kk, busy)
		if err == nil {
			return claimTaken, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, err
		}
		e, err := k.kv.Get(ctx, kk)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return 0, err
		}
		v := string(e.Value())
		if v == "done" {
			return claimDone, nil
		}
		if f := strings.Fields(v); len(f) == 3 {
			if end, err := strconv.ParseInt(f[2], 10, 64); err == nil && time.Now().UnixMilli() < end {
				return claimBusy, nil
			}
		}
		// Its holder's lease ended: take it over, unless someone else just did.
		if _, err := k.kv.Update(ctx, kk, busy, e.Revision()); err == nil {
			return claimTaken, nil
		} else if !isWrongRevision(err) {
			return 0, err
		}
	}
}

// isWrongRevision reports whether an update lost to another writer: the
// entry's revision (its subject's last sequence) moved on, or the key
// was created first by another (ErrKeyExists).
func isWrongRevision(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || natsjs.WrongLast(err)
}

func (k *kvClaims) done(ctx context.Context, key string) error {
	_, err := k.kv.Put(ctx, kvKey(key), []byte("done"))
	return err
}

func (k *kvClaims) release(ctx context.Context, key string) error {
	err := k.kv.Delete(ctx, kvKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}
