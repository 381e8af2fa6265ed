package redisqueue

import "github.com/redis/go-redis/v9"

// Every script starts with ARGV[1] the key prefix and ARGV[2] a shift of
// the server's clock in milliseconds (zero but in tests), and computes its
// keys from the prefix: the store runs on one server, where a script may
// touch any key. A script on a queue whose attributes the server lacks
// (it lost its data) answers 'lost', changing nothing.
//
// A message is known inside a queue by its key: the queue's sequence
// number when it arrived, 12 hex digits, so that keys sort in arrival
// order and the sorted sets break ties of score by it.

// prelude is the Lua every script shares.
const prelude = `
local P = ARGV[1]
local SKEW = tonumber(ARGV[2])
local function key(q, part)
  if part then return P .. 'queue:' .. q .. ':' .. part end
  return P .. 'queue:' .. q
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + SKEW
end
-- known reports whether the server has q's attributes: a queue some
-- node declared, unless the server lost its data since.
local function known(q)
  return redis.call('HEXISTS', key(q), 'vis') == 1
end
local function ms(ns)
  return math.ceil(tonumber(ns) / 1000000)
end
-- attrs reads a queue's attributes: durations in ms; raw keeps them as
-- stored, in ns, for Info.
local function attrs(q)
  local v = redis.call('HMGET', key(q), 'vis', 'delay', 'ret', 'maxbytes', 'dlq', 'maxrc', 'maxmsgs', 'wait', 'created')
  for i = 1, 9 do if not v[i] then v[i] = '' end end
  return {vis = ms(v[1]), delay = ms(v[2]), ret = ms(v[3]), maxbytes = tonumber(v[4]), dlq = v[5],
    maxrc = tonumber(v[6]) or 0, maxmsgs = tonumber(v[7]), wait = v[8], raw = v}
end
local function state(q, k)
  local raw = redis.call('HGET', key(q, 'state'), k)
  if not raw then return nil end
  return cjson.decode(raw)
end
local function drop(q, k)
  redis.call('HDEL', key(q, 'msgs'), k)
  redis.call('HDEL', key(q, 'state'), k)
  redis.call('ZREM', key(q, 'due'), k)
  redis.call('ZREM', key(q, 'recv'), k)
  redis.call('ZREM', key(q, 'sent'), k)
end
-- add stores a message in q, receivable at due, under a new key.
local function add(q, body, st, due)
  local k = string.format('%012x', redis.call('HINCRBY', key(q), 'seq', 1))
  redis.call('HSET', key(q, 'msgs'), k, body)
  redis.call('HSET', key(q, 'state'), k, cjson.encode(st))
  redis.call('ZADD', key(q, 'due'), due, k)
  redis.call('ZADD', key(q, 'sent'), st.s, k)
  return k
end
-- expire drops up to 1000 of q's messages past its retention, the oldest
-- first, and returns how many it dropped.
local function expire(q, a, now)
  local ks = redis.call('ZRANGEBYSCORE', key(q, 'sent'), '-inf', now - a.ret, 'LIMIT', 0, 1000)
  for _, k in ipairs(ks) do drop(q, k) end
  return #ks
end
local function notify(q)
  redis.call('PUBLISH', P .. 'queues:changed', q)
end
`

// declareScript writes the attributes of the queues of ARGV (created is
// kept from a queue's first declaration). ARGV[3]: the count; then per
// queue: name, vis, delay, ret, maxbytes, dlq, maxrc, maxmsgs, wait
// (durations in ns).
var declareScript = redis.NewScript(prelude + `
local now = now_ms()
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local b = 4 + i * 9
  local q = ARGV[b]
  redis.call('HSET', key(q), 'vis', ARGV[b+1], 'delay', ARGV[b+2], 'ret', ARGV[b+3], 'maxbytes', ARGV[b+4],
    'dlq', ARGV[b+5], 'maxrc', ARGV[b+6], 'maxmsgs', ARGV[b+7], 'wait', ARGV[b+8])
  redis.call('HSETNX', key(q), 'created', now)
end
return {'ok'}
`)

// sendScript adds messages to a queue, all or none. ARGV[3]: the queue;
// ARGV[4]: the count; then per message: ID, body (encoded), size, delay
// (ns, -1 for the queue's). It returns {status, expired, ...}: 'ok',
// 'toolarge' with the size and the limit, 'full' with the
// messages held.
var sendScript = redis.NewScript(prelude + `
local q = ARGV[3]
if not known(q) then return {'lost', 0} end
local a = attrs(q)
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  local size = tonumber(ARGV[5 + i * 4 + 2])
  if size > a.maxbytes then return {'toolarge', 0, size, a.maxbytes} end
end
local now = now_ms()
local ex = expire(q, a, now)
local held = redis.call('HLEN', key(q, 'state'))
if held + n > a.maxmsgs then return {'full', ex, held} end
for i = 0, n - 1 do
  local b = 5 + i * 4
  local d = tonumber(ARGV[b+3])
  if d < 0 then d = a.delay else d = ms(d) end
  add(q, ARGV[b+1], {i = ARGV[b], s = now, f = 0, n = 0, t = '', d = ''}, now + d)
end
notify(q)
return {'ok', ex}
`)

// receiveScript receives up to ARGV[4] of queue ARGV[3]'s due messages,
// the earliest due first, hiding each for ARGV[5] ms (-1: the queue's
// timeout) under the receive token ARGV[6]. A message received
// maxReceiveCount times moves to the dead-letter queue instead, unless
// that is full, where it stays. It returns {status, expired,
// dead-lettered, ms until the next message is due (-1: none), the
// queue's ReceiveWait (ns)}, then per message: key, ID, body, sent,
// first received, receives, dead-letter source.
var receiveScript = redis.NewScript(prelude + `
local q = ARGV[3]
if not known(q) then return {'lost', 0, 0, -1, '0'} end
local max = tonumber(ARGV[4])
local vis = tonumber(ARGV[5])
local token = ARGV[6]
local a = attrs(q)
local now = now_ms()
local ex = expire(q, a, now)
if vis < 0 then vis = a.vis end
local dlq, dmax
if a.dlq ~= '' and a.maxrc > 0 and known(a.dlq) then
  dlq = a.dlq
  dmax = attrs(dlq).maxmsgs
end
local out = {'ok', 0, 0, -1, a.wait}
local taken, dead, skipped, seen = 0, 0, 0, {}
-- Pages of due messages. Those dropped or moved leave the queue, those
-- skipped stay where they were, before every message not yet read; those
-- taken leave the range, or, hidden for 0 ms, are due now and sort among
-- the last. So the next page starts after the skipped ones, and seen
-- passes over the taken ones it meets again (at most max: a page of 50
-- always holds a message not yet read, unless it is the last).
while taken < max do
  local from = skipped
  local ks = redis.call('ZRANGEBYSCORE', key(q, 'due'), '-inf', now, 'LIMIT', from, 50)
  local fresh = 0
  for _, k in ipairs(ks) do
    if taken == max then break end
    if not seen[k] then
      seen[k] = true
      fresh = fresh + 1
      local st = state(q, k)
      if not st then
        drop(q, k)
      elseif st.s <= now - a.ret then
        drop(q, k)
        ex = ex + 1
      elseif dlq and st.n >= a.maxrc then
        if redis.call('HLEN', key(dlq, 'state')) < dmax then
          add(dlq, redis.call('HGET', key(q, 'msgs'), k), {i = st.i, s = st.s, f = 0, n = 0, t = '', d = q}, now)
          drop(q, k)
          dead = dead + 1
        else
          skipped = skipped + 1
        end
      else
        st.n = st.n + 1
        if st.f == 0 then st.f = now end
        st.t = token
        redis.call('HSET', key(q, 'state'), k, cjson.encode(st))
        redis.call('ZADD', key(q, 'due'), now + vis, k)
        redis.call('ZADD', key(q, 'recv'), now + vis, k)
        taken = taken + 1
        local m = {k, st.i, redis.call('HGET', key(q, 'msgs'), k), st.s, st.f, st.n, st.d}
        for _, v in ipairs(m) do out[#out + 1] = v end
      end
    end
  end
  if fresh == 0 or #ks < 50 or skipped >= 1000 then break end
end
if dead > 0 then notify(dlq) end
local nx = redis.call('ZRANGEBYSCORE', key(q, 'due'), '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #nx > 0 then out[4] = tonumber(nx[2]) - now end
out[2] = ex
out[3] = dead
return out
`)

// deleteScript deletes message ARGV[4] of queue ARGV[3] when its receive
// token is ARGV[5]; else nothing.
var deleteScript = redis.NewScript(prelude + `
local q = ARGV[3]
if not known(q) then return {'lost'} end
local st = state(q, ARGV[4])
if st and st.t == ARGV[5] then drop(q, ARGV[4]) end
return {'ok'}
`)

// visibilityScript makes message ARGV[4] of queue ARGV[3], in flight
// under receive token ARGV[5], receivable ARGV[6] ns from now, and wakes
// the waiting receives when that is sooner than before. 'notinflight'
// when it is not in flight under that token.
var visibilityScript = redis.NewScript(prelude + `
local q = ARGV[3]
if not known(q) then return {'lost'} end
local k = ARGV[4]
local st = state(q, k)
if not st or st.t ~= ARGV[5] then return {'notinflight'} end
local now = now_ms()
local due = tonumber(redis.call('ZSCORE', key(q, 'due'), k))
if due <= now then return {'notinflight'} end
local at = now + ms(ARGV[6])
redis.call('ZADD', key(q, 'due'), at, k)
redis.call('ZADD', key(q, 'recv'), at, k)
if at < due then notify(q) end
return {'ok'}
`)

// infoScript describes queue ARGV[3]: {status, expired, its nine raw
// attributes (vis, delay, ret, maxbytes, dlq, maxrc, maxmsgs, wait,
// created), visible, in flight, delayed}.
var infoScript = redis.NewScript(prelude + `
local q = ARGV[3]
if not known(q) then return {'lost', 0} end
local a = attrs(q)
local now = now_ms()
local ex = expire(q, a, now)
local total = redis.call('HLEN', key(q, 'state'))
local visible = redis.call('ZCOUNT', key(q, 'due'), '-inf', now)
local inflight = redis.call('ZCOUNT', key(q, 'recv'), '(' .. now, '+inf')
local out = {'ok', ex}
for i = 1, 9 do out[#out + 1] = a.raw[i] end
out[#out + 1] = visible
out[#out + 1] = inflight
out[#out + 1] = total - visible - inflight
return out
`)

// peekScript returns up to ARGV[4] of queue ARGV[3]'s messages, the
// earliest sent first: {status, expired}, then per message: key, ID,
// body, sent, first received, receives, dead-letter source.
var peekScript = redis.NewScript(prelude + `
local q = ARGV[3]
if not known(q) then return {'lost', 0} end
local a = attrs(q)
local now = now_ms()
local out = {'ok', expire(q, a, now)}
local max = tonumber(ARGV[4])
if max < 1 then return out end
for _, k in ipairs(redis.call('ZRANGE', key(q, 'sent'), 0, max - 1)) do
  local st = state(q, k)
  if st then
    local m = {k, st.i, redis.call('HGET', key(q, 'msgs'), k), st.s, st.f, st.n, st.d}
    for _, v in ipairs(m) do out[#out + 1] = v end
  end
end
return out
`)

// redriveScript moves up to ARGV[5] messages of dead-letter queue ARGV[3],
// from the ARGV[4]th earliest sent on, back to their source queues,
// receivable at once and never received; a message whose source is not
// one of ARGV[6...] (the queues the node serves), or is full, stays. It
// returns {status, expired, moved, the position to go on from, 1 when it
// read the last}.
var redriveScript = redis.NewScript(prelude + `
local q = ARGV[3]
if not known(q) then return {'lost', 0} end
local served = {}
for i = 6, #ARGV do served[ARGV[i]] = true end
local a = attrs(q)
local now = now_ms()
local ex = expire(q, a, now)
local from = tonumber(ARGV[4])
local batch = tonumber(ARGV[5])
local ks = redis.call('ZRANGE', key(q, 'sent'), from, from + batch - 1)
local moved, limits, touched = 0, {}, {}
for _, k in ipairs(ks) do
  local st = state(q, k)
  local src = st and st.d or ''
  local ok = served[src] and known(src)
  if ok then
    if not limits[src] then limits[src] = attrs(src).maxmsgs end
    ok = redis.call('HLEN', key(src, 'state')) < limits[src]
  end
  if ok then
    add(src, redis.call('HGET', key(q, 'msgs'), k), {i = st.i, s = st.s, f = 0, n = 0, t = '', d = ''}, now)
    drop(q, k)
    moved = moved + 1
    touched[src] = true
  else
    from = from + 1
  end
end
for src in pairs(touched) do notify(src) end
local last = 0
if #ks < batch then last = 1 end
return {'ok', ex, moved, from, last}
`)
