package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/bus/natsbus"
	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/consumer"
	"github.com/switchboard-gateway/switchboard/internal/eventbridge"
	"github.com/switchboard-gateway/switchboard/internal/gateway"
	"github.com/switchboard-gateway/switchboard/internal/metrics"
	"github.com/switchboard-gateway/switchboard/internal/redisurl"
)

// consumerStartTimeout bounds the start of each consumer: connecting its
// engine when it has its own, and preparing its stream.
const consumerStartTimeout = 30 * time.Second

// startConsumers starts the consumers of cfg on hub; they read from the
// cluster's engine unless they name their own. On error, those started are
// closed.
func (s *Server) startConsumers(cfg *config.Config, hub *gateway.Hub) error {
	if len(cfg.Consumers) == 0 {
		return nil
	}
	m := metrics.NewConsumers(s.metricsReg)
	node, _ := os.Hostname()
	if s.cluster != nil {
		node = s.cluster.Node()
	}
	for _, cc := range cfg.Consumers {
		c, err := s.startConsumer(cc, hub, node, m)
		if err != nil {
			_ = s.closeConsumers()
			return fmt.Errorf("consumer %q: %w", cc.Name, err)
		}
		c.Run()
		s.consumers = append(s.consumers, c)
	}
	return nil
}

func (s *Server) startConsumer(cc config.Consumer, hub *gateway.Hub, node string, m *metrics.Consumers) (*consumer.Consumer, error) {
	o := consumer.Options{Name: cc.Name, Hub: hub, Node: node, Metrics: m, Logger: s.log,
		Window: componentDuration(cc.Window), MaxDeliver: cc.MaxDeliver,
		PublishTimeout: componentDuration(cc.PublishTimeout), Batch: cc.Batch}
	for _, d := range cc.Backoff {
		o.Backoff = append(o.Backoff, time.Duration(d))
	}
	var err error
	for _, t := range []struct {
		field, src string
		dst        **eventbridge.Template
	}{{"topic", cc.Topic, &o.Topic}, {"data", cc.Data, &o.Data}, {"idempotencyKey", cc.IdempotencyKey, &o.Key}} {
		if t.src == "" {
			continue
		}
		if *t.dst, err = eventbridge.ParseTemplate(t.src); err != nil {
			return nil, fmt.Errorf("%s: %w", t.field, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), consumerStartTimeout)
	defer cancel()
	switch {
	case cc.NATS != nil:
		n := cc.NATS
		src := &consumer.NATSSource{Stream: n.Stream, Subjects: n.Subjects, Durable: n.Durable,
			AckWait: componentDuration(n.AckWait), DeadLetter: n.DeadLetter}
		nc := s.clusterNATS()
		if nc != nil && n.URL == "" {
			src.Replicas = s.cluster.Replicas() // replicated as the cluster's own buckets
		}
		if n.URL != "" {
			if nc, err = natsbus.Connect(n.URL, natsbus.ConnectOptions{Name: "switchboard consumer " + cc.Name}); err != nil {
				return nil, err
			}
			src.Close = nc.Close
		}
		if nc == nil {
			return nil, errors.New("nats.url is required: the cluster's engine is not NATS")
		}
		if src.JS, err = jetstream.New(nc); err != nil {
			if src.Close != nil {
				src.Close()
			}
			return nil, err
		}
		o.NATS = src
	case cc.Redis != nil:
		r := cc.Redis
		src := &consumer.RedisSource{Stream: r.Stream, Group: r.Group, Field: r.Field,
			MinIdle: componentDuration(r.MinIdle), DeadLetter: r.DeadLetter}
		if s.cluster != nil && s.cluster.Redis() != nil {
			src.Client = s.cluster.Redis()
		}
		if r.URL != "" {
			ro, err := redisurl.Parse(r.URL)
			if err != nil {
				return nil, err
			}
			rdb := redis.NewClient(ro)
			src.Client, src.Close = rdb, rdb.Close
		}
		if src.Client == nil {
			return nil, errors.New("redis.url is required: the cluster's engine is not Redis")
		}
		o.Redis = src
	}
	return consumer.Start(ctx, o)
}

// clusterNATS is the cluster's NATS connection, nil when the engine is
// another or there is no cluster.
func (s *Server) clusterNATS() *nats.Conn {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.NATS()
}

// closeConsumers stops the consumers, each finishing the event in progress.
func (s *Server) closeConsumers() error {
	var errs []error
	for _, c := range s.consumers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// consumerStats reports each consumer's counts, for the dashboard.
func (s *Server) consumerStats() []consumer.Stats {
	out := make([]consumer.Stats, 0, len(s.consumers))
	for _, c := range s.consumers {
		out = append(out, c.Stats())
	}
	return out
}
