package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-gateway/switchboard/internal/config"
	"github.com/switchboard-gateway/switchboard/internal/natsembed"
	"github.com/switchboard-gateway/switchboard/internal/queue"
	"github.com/switchboard-gateway/switchboard/internal/queue/memqueue"
	"github.com/switchboard-gateway/switchboard/internal/queue/natsqueue"
)

// queueStore is the store of a server's queues, and what closes it.
type queueStore interface {
	queue.Store
	Close() error
}

// newQueueStore chooses where a server's queues live: in the cluster's
// engine on a cluster (c non-nil), in embedded JetStream file storage
// under cfg.DataDir for a node alone that has a data directory, else in
// the node's memory.
func newQueueStore(cfg *config.Config, c interface{ Queues() queue.Store }, left func(queue, reason string), log *slog.Logger) queueStore {
	switch {
	case c != nil:
		return unclosed{c.Queues()} // the cluster closes it
	case cfg.DataDir != "":
		return &fileQueues{dir: filepath.Join(cfg.DataDir, "queues"), left: left, log: log}
	default:
		return unclosed{memqueue.New(memqueue.Options{Left: left})}
	}
}

// unclosed is a store its owner closes, or that holds nothing to close.
type unclosed struct{ queue.Store }

func (unclosed) Close() error { return nil }

// queueEngineTimeout bounds the start of the embedded engine of fileQueues.
const queueEngineTimeout = 30 * time.Second

// fileQueues keeps a node's queues in JetStream file storage in dir, on an
// embedded server that accepts no network client. The server starts with
// the first Declare that names a queue, so a gateway without queues runs
// none; until then the store holds no queue.
type fileQueues struct {
	dir  string
	left func(queue, reason string)
	log  *slog.Logger

	mu sync.Mutex
	st *natsqueue.Store // nil until the first queue is declared
	nc *nats.Conn
	ns *natsembed.Server
}

var _ queueStore = (*fileQueues)(nil)

// store is the open store, or nil.
func (f *fileQueues) store() *natsqueue.Store {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// open starts the engine and the store, once.
func (f *fileQueues) open(ctx context.Context) (*natsqueue.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st != nil {
		return f.st, nil
	}
	ns, err := natsembed.Start(natsembed.Options{InProcess: true, StoreDir: f.dir, ReadyTimeout: queueEngineTimeout})
	if err != nil {
		return nil, fmt.Errorf("queues: storage in %s: %w", f.dir, err)
	}
	nc, err := ns.Connect(nats.Name("switchboard queues"))
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("queues: storage in %s: %w", f.dir, err)
	}
	js, err := jetstream.New(nc)
	if err == nil {
		f.st, err = natsqueue.New(ctx, js, natsqueue.Options{Left: f.left, Logger: f.log})
	}
	if err != nil {
		nc.Close()
		ns.Close()
		return nil, fmt.Errorf("queues: storage in %s: %w", f.dir, err)
	}
	f.nc, f.ns = nc, ns
	f.log.Info("queues: messages are kept across restarts", "dir", f.dir)
	return f.st, nil
}

func (f *fileQueues) Declare(ctx context.Context, decls []queue.Declaration) error {
	st := f.store()
	if st == nil {
		if len(decls) == 0 {
			return nil
		}
		var err error
		if st, err = f.open(ctx); err != nil {
			return err
		}
	}
	return st.Declare(ctx, decls)
}

func (f *fileQueues) Send(ctx context.Context, q string, msgs []queue.Outgoing) ([]queue.Sent, error) {
	if st := f.store(); st != nil {
		return st.Send(ctx, q, msgs)
	}
	return nil, queue.ErrNotFound
}

func (f *fileQueues) Receive(ctx context.Context, q string, opts queue.ReceiveOptions) ([]queue.Message, error) {
	if st := f.store(); st != nil {
		return st.Receive(ctx, q, opts)
	}
	return nil, queue.ErrNotFound
}

func (f *fileQueues) Delete(ctx context.Context, q, receipt string) error {
	if st := f.store(); st != nil {
		return st.Delete(ctx, q, receipt)
	}
	return queue.ErrNotFound
}

func (f *fileQueues) ChangeVisibility(ctx context.Context, q, receipt string, timeout time.Duration) error {
	if st := f.store(); st != nil {
		return st.ChangeVisibility(ctx, q, receipt, timeout)
	}
	return queue.ErrNotFound
}

func (f *fileQueues) Info(ctx context.Context, q string) (queue.Info, error) {
	if st := f.store(); st != nil {
		return st.Info(ctx, q)
	}
	return queue.Info{}, queue.ErrNotFound
}

func (f *fileQueues) Queues(ctx context.Context) ([]string, error) {
	if st := f.store(); st != nil {
		return st.Queues(ctx)
	}
	return nil, nil
}

func (f *fileQueues) Peek(ctx context.Context, q string, max int) ([]queue.Message, error) {
	if st := f.store(); st != nil {
		return st.Peek(ctx, q, max)
	}
	return nil, queue.ErrNotFound
}

func (f *fileQueues) Redrive(ctx context.Context, dlq string) (int, error) {
	if st := f.store(); st != nil {
		return st.Redrive(ctx, dlq)
	}
	return 0, queue.ErrNotFound
}

// Close stops the store and its engine; the messages stay in dir.
func (f *fileQueues) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st == nil {
		return nil
	}
	err := f.st.Close()
	f.nc.Close()
	f.ns.Close()
	f.st = nil
	return err
}
