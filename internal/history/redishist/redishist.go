// Package redishist keeps topic history in one Redis server, for a
// cluster: every node appends to and reads from the same keys, so a client
// that resumes on another node than the one it left finds what it missed.
//
// Keys, under Options.Prefix (default "switchboard:"):
//
//	hist:epoch        string, the epoch: created with SET NX, so every node
//	                  agrees, and a server that lost its data makes a new one
//	hist:seq          the last offset given (INCR), over every topic
//	hist:last:<t>     a topic's last offset, what its next publication's Prev is
//	hist:t:<t>        a stream per topic, entry IDs <offset>-0, fields d (data),
//	                  p (prev), t (when, ms): its kept publications, MAXLEN size
//	hist:log          a stream of every publication, in offset order, read by
//	                  every node (XREAD) for live delivery; MAXLEN ~ LogSize
//
// <t> is the topic in base64url. One Lua script makes an append atomic:
// the offset, the topic's previous one, both streams, the trim by size and
// by age (entries older than the rule's TTL are deleted, and the keys
// expire with it once the topic is idle). One Redis is one order.
//
// Live delivery reads the log rather than a pub/sub channel, so that a node
// whose connection dropped for a moment goes on from where it was, missing
// nothing; a node that fell further behind than LogSize logs it.
package redishist

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gateway/switchboard/internal/history"
)

// Defaults of Options.
const (
	// DefaultLogSize is how many publications the log keeps, at least, for
	// nodes reading behind: a node further behind misses publications, and
	// logs it.
	DefaultLogSize = 10000
	// DefaultBlock is how long one read of the log waits for publications.
	DefaultBlock = time.Second
)

// Options configures a Store. Rules is what it keeps; the zero value of
// every other field works.
type Options struct {
	// Rules choose the topics that keep history; the first that matches a
	// topic sets its size and TTL.
	Rules []history.Rule
	// Prefix starts every key, so several clusters can share one server.
	// Empty means "switchboard:".
	Prefix string
	// LogSize is how many publications the log of live deliveries keeps,
	// at least. Zero means DefaultLogSize.
	LogSize int
	// Block is how long one read of the log waits, and how often a node
	// with nothing to read checks the epoch. Zero means DefaultBlock.
	Block time.Duration
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "switchboard:"
	}
	if o.LogSize <= 0 {
		o.LogSize = DefaultLogSize
	}
	if o.Block <= 0 {
		o.Block = DefaultBlock
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Store keeps topic history in Redis. Safe for concurrent use; Close stops
// its reader. The client is the caller's.
type Store struct {
	rdb   redis.UniversalClient
	opts  Options
	rules []history.Rule

	mu      sync.Mutex
	waiters map[string]chan int // by token: Appends waiting for their delivery here

	stop context.CancelFunc
	done chan struct{}
}

var _ history.Store = (*Store)(nil)

// New returns a store on rdb for o, or an error naming a bad rule.
func New(rdb redis.UniversalClient, o Options) (*Store, error) {
	o = o.withDefaults()
	s := &Store{rdb: rdb, opts: o, waiters: make(map[string]chan int)}
	for _, r := range o.Rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		s.rules = append(s.rules, r.WithDefaults())
	}
	return s, nil
}

func (s *Store) rule(topic string) (history.Rule, bool) {
	for _, r := range s.rules {
		if history.Match(r.Topics, topic) {
			return r, true
		}
	}
	return history.Rule{}, false
}

// Keeps implements history.Store.
func (s *Store) Keeps(topic string) bool {
	_, ok := s.rule(topic)
	return ok
}

var enc = base64.RawURLEncoding

func (s *Store) key(parts ...string) string {
	return s.opts.Prefix + "hist:" + strings.Join(parts, ":")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// appendScript appends one publication. KEYS: epoch, seq, last, topic
// stream, log. ARGV: data, size, ttl (ms, 0 for none), a new epoch, the
// topic (base64url), the token, the log's size. It returns {epoch, offset,
// prev}.
var appendScript = redis.NewScript(`
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[4])
  epoch = ARGV[4]
end
local off = redis.call('INCR', KEYS[2])
local prev = redis.call('GET', KEYS[3]) or '0'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[3], off)
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[2], off .. '-0', 'd', ARGV[1], 'p', prev, 't', now)
if ttl > 0 then
  local head = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 100)
  for _, e in ipairs(head) do
    local f = e[2]
    local at = 0
    for i = 1, #f, 2 do if f[i] == 't' then at = tonumber(f[i+1]) end end
    if now - at < ttl then break end
    redis.call('XDEL', KEYS[4], e[1])
  end
  redis.call('PEXPIRE', KEYS[3], ttl)
  redis.call('PEXPIRE', KEYS[4], ttl)
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], off .. '-0', 'e', epoch, 'k', ARGV[5], 'p', prev, 'o', ARGV[6], 'd', ARGV[1])
return {epoch, off, prev}
`)

// Watch implements history.Store: a reader of the log, from its end.
func (s *Store) Watch(deliver history.Deliver) error {
	ctx, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	rctx, cancel := context.WithTimeout(ctx, s.opts.Block+5*time.Second)
	defer cancel()
	last := "0-0"
	es, err := s.rdb.XRevRangeN(rctx, s.key("log"), "+", "-", 1).Result()
	if err != nil {
		stop()
		return fmt.Errorf("redishist: read the log: %w", err)
	}
	if len(es) > 0 {
		last = es[0].ID
	}
	epoch, err := s.epoch(rctx)
	if err != nil {
		stop()
		return err
	}
	go s.read(ctx, deliver, last, epoch)
	return nil
}

// epoch returns the epoch in force, making one if there is none.
func (s *Store) epoch(ctx context.Context) (string, error) {
	if err := s.rdb.SetNX(ctx, s.key("epoch"), randomHex(8), 0).Err(); err != nil {
		return "", fmt.Errorf("redishist: epoch: %w", err)
	}
	e, err := s.rdb.Get(ctx, s.key("epoch")).Result()
	if err != nil {
		return "", fmt.Errorf("redishist: epoch: %w", err)
	}
	return e, nil
}

// read delivers the log's publications after last, in order, until ctx
// ends. When the epoch changed (the server lost its data), it reads the
// new log from its start.
func (s *Store) read(ctx context.Context, deliver history.Deliver, last, epoch string) {
	defer close(s.done)
	next := offsetOf(last) + 1
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, s.opts.Block+5*time.Second)
		res, err := s.rdb.XRead(rctx, &redis.XReadArgs{Streams: []string{s.key("log"), last}, Count: 256, Block: s.opts.Block}).Result()
		if errors.Is(err, redis.Nil) || (err == nil && len(res) == 0) {
			// Nothing new: check that the epoch is still the one read.
			e, eerr := s.rdb.Get(rctx, s.key("epoch")).Result()
			cancel()
			if eerr == nil && e != epoch {
				s.opts.Logger.Warn("redishist: the history's epoch changed: a new epoch", "old", epoch, "new", e)
				last, next, epoch = "0-0", 1, e
			}
			continue
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.opts.Logger.Debug("redishist: read of the log failed; trying again", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(s.opts.Block / 4): // retry pacing
				}
			}
			continue
		}
		for _, m := range res[0].Messages {
			off := offsetOf(m.ID)
			e, _ := m.Values["e"].(string)
			if e == epoch && off > next {
				s.opts.Logger.Warn("redishist: publications trimmed from the log before this node read them",
					"from", next, "to", off-1)
			}
			// An entry of another epoch starts the log again from 1.
			last, next, epoch = m.ID, off+1, e
			s.handle(m, e, off, deliver)
		}
	}
}

func offsetOf(id string) uint64 {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseUint(ms, 10, 64)
	return n
}

func (s *Store) handle(m redis.XMessage, epoch string, off uint64, deliver history.Deliver) {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	topic, err := enc.DecodeString(str("k"))
	if err != nil {
		s.opts.Logger.Warn("redishist: a log entry that names no topic", "id", m.ID)
		return
	}
	prev, _ := strconv.ParseUint(str("p"), 10, 64)
	n := deliver(string(topic), history.Entry{Epoch: epoch, Offset: off, Prev: prev, Data: []byte(str("d"))})
	s.mu.Lock()
	w := s.waiters[str("o")]
	delete(s.waiters, str("o"))
	s.mu.Unlock()
	if w != nil {
		w <- n // buffered
	}
}

// Append implements history.Store. Once kept, it waits for this node's
// delivery within ctx; when ctx ends first, the publication is kept all the
// same, and Append returns 0, nil.
func (s *Store) Append(ctx context.Context, topic string, data []byte) (int, error) {
	r, ok := s.rule(topic)
	if !ok {
		return 0, fmt.Errorf("append to %q: %w", topic, history.ErrNoHistory)
	}
	t := enc.EncodeToString([]byte(topic))
	token := randomHex(12)
	w := make(chan int, 1)
	s.mu.Lock()
	s.waiters[token] = w
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, token)
		s.mu.Unlock()
	}()
	ttl := int64(0)
	if r.TTL > 0 {
		ttl = max(1, r.TTL.Milliseconds())
	}
	keys := []string{s.key("epoch"), s.key("seq"), s.key("last", t), s.key("t", t), s.key("log")}
	res, err := appendScript.Run(ctx, s.rdb, keys, data, r.Size, ttl, randomHex(8), t, token, s.opts.LogSize).Slice()
	if err != nil {
		return 0, fmt.Errorf("append to %q: %w", topic, err)
	}
	if len(res) != 3 {
		return 0, fmt.Errorf("append to %q: unexpected answer %v", topic, res)
	}
	select {
	case n := <-w:
		return n, nil
	case <-ctx.Done():
		// Kept: every node delivers it once its reader catches up; none
		// was reached here yet.
		return 0, nil
	}
}

// Since implements history.Store: one transaction reads the epoch, the
// topic's last entry and what it kept after from, and the server's time
// to leave out what is older than the TTL. A from of another epoch costs a
// second read, of all the topic kept.
func (s *Store) Since(ctx context.Context, topic string, from *history.Position) (history.Backlog, error) {
	r, ok := s.rule(topic)
	if !ok {
		return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, history.ErrNoHistory)
	}
	stream := s.key("t", enc.EncodeToString([]byte(topic)))
	after, start := uint64(0), "-"
	if from != nil {
		after = from.Offset
	}
	if after > 0 && after < math.MaxUint64 {
		// Read only what follows the position, as when its epoch is the
		// store's; when it is not, the stream is read again whole.
		start = strconv.FormatUint(after+1, 10) + "-0"
	}
	var epoch *redis.StringCmd
	var lasts *redis.SliceCmd
	var lastE, kept *redis.XMessageSliceCmd
	var now *redis.TimeCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, s.key("epoch"), randomHex(8), 0)
		epoch = p.Get(ctx, s.key("epoch"))
		lastE = p.XRevRangeN(ctx, stream, "+", "-", 1)
		if from != nil {
			kept = p.XRange(ctx, stream, start, "+") // at most the rule's size
			// The topic's last offset and the store's, nil when missing.
			lasts = p.MGet(ctx, s.key("last", enc.EncodeToString([]byte(topic))), s.key("seq"))
		}
		now = p.Time(ctx)
		return nil
	})
	if err != nil {
		return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, err)
	}
	pos := history.Position{Epoch: epoch.Val()}
	if l := lastE.Val(); len(l) > 0 {
		pos.Offset = offsetOf(l[0].ID)
	}
	if from == nil {
		return history.Backlog{Now: pos}, nil
	}
	gap := history.Gap("")
	ms := kept.Val()
	if from.Epoch != pos.Epoch {
		gap, after = history.GapEpoch, 0
		if start != "-" {
			if ms, err = s.rdb.XRange(ctx, stream, "-", "+").Result(); err != nil {
				return history.Backlog{}, fmt.Errorf("history of %q: %w", topic, err)
			}
		}
	}
	var entries []history.Entry
	for _, m := range ms {
		off := offsetOf(m.ID)
		at, _ := strconv.ParseInt(fmt.Sprint(m.Values["t"]), 10, 64)
		if off <= after || (r.TTL > 0 && now.Val().Sub(time.UnixMilli(at)) >= r.TTL) {
			continue
		}
		prev, _ := strconv.ParseUint(fmt.Sprint(m.Values["p"]), 10, 64)
		d, _ := m.Values["d"].(string)
		entries = append(entries, history.Entry{Epoch: pos.Epoch, Offset: off, Prev: prev, Data: []byte(d)})
	}
	if gap == "" {
		var first *history.Entry
		if len(entries) > 0 {
			first = &entries[0]
		}
		last := pos.Offset
		if first == nil && last == 0 {
			// Nothing of the topic is kept: its last offset while the TTL
			// has not passed since its last publication, else the last
			// offset given to any topic, which bounds it.
			for _, v := range lasts.Val() {
				if v, ok := v.(string); ok && last == 0 {
					last, _ = strconv.ParseUint(v, 10, 64)
				}
			}
		}
		gap = history.GapAfter(after, first, last)
	}
	return history.Backlog{Entries: entries, Gap: gap, Now: pos}, nil
}

// Close stops the reader. The keys stay in the server.
func (s *Store) Close() error {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	return nil
}
