package lambdaauth

import (
	"container/list"
	"sync"
	"time"
)

// cache holds authorizer results for a fixed TTL, at most max of them.
// Entries are kept in insertion order, which with one TTL is also expiry
// order: the oldest is evicted first and expired ones are dropped from the
// front. It is safe for concurrent use.
type cache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]*list.Element // of *cacheEntry
	order   *list.List               // front: oldest
}

type cacheEntry struct {
	key     string
	expires time.Time
	res     *result
}

func newCache(ttl time.Duration, maxEntries int) *cache {
	return &cache{ttl: ttl, max: maxEntries, entries: make(map[string]*list.Element), order: list.New()}
}

func (c *cache) get(key string, now time.Time) (*result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	return e.res, true
}

func (c *cache) put(key string, res *result, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.remove(el)
	}
	c.entries[key] = c.order.PushBack(&cacheEntry{key: key, expires: now.Add(c.ttl), res: res})
	for c.order.Len() > c.max {
		c.remove(c.order.Front())
	}
	for el := c.order.Front(); el != nil && !now.Before(el.Value.(*cacheEntry).expires); el = c.order.Front() {
		c.remove(el)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *cache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).key)
	c.order.Remove(el)
}
