package protocol

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// The worker side's scripts. Like the planner's, they read the clock with
// TIME, derive keys that carry the namespace's hash tag, and never write
// stream field names of their own: Go passes every event and entry in as
// field lists. (The last-run op of finishScript matches members of the
// last-run record's JSON, "fire", "scheduled" and "fails", and marks an
// outcome event with the field "lastrun": events' AppendLastRun writes
// that record, and events names that field.)

// finishScript records the outcomes of a batch of fires, each atomically
// with the ack of its entry, and the per-task state and history they
// change.
//
// KEYS[1] -> events (stream)
// KEYS[2] -> dead (stream)
// KEYS[3] -> retry (zset)
// KEYS[4] -> lastrun (hash: the per-task state, see store.Keys.LastRun)
// ARGV[1] -> consumer group
// ARGV[2] -> events stream approximate MAXLEN
// ARGV[3] -> dead stream approximate MAXLEN
// ARGV[4] -> number of items
// ARGV[5] -> per-task history approximate MAXLEN
// ARGV[6] -> history key prefix (a task's history is it and the name)
// ARGV[7] -> number of streams with entries to ack, then per stream: the
// stream, its lowest and highest entry id in the batch, and how many
// ARGV[...] -> number of tasks with an L op, then their names
// ARGV[...] -> per item: stream, entry id ("" when there is nothing to ack:
// a broadcast fire, or an event alone), number of ops, then the ops. An op
// is a code, its number of arguments, and the arguments:
//
//	L task record fire scheduled ok
//	                    the run's record (JSON). It becomes the task's last
//	                    outcome unless the stored one is of another fire
//	                    (the stored text holds fire, the JSON member
//	                    "fire":"id",) and a later scheduled time: a success
//	                    (ok "1") as the last success, the last outcome
//	                    emptied (the last success is the last outcome); a
//	                    failure as the last outcome, with "fails" (failed
//	                    slots since the last success) one more than the
//	                    stored one's, or as many when that was of this fire. An outcome that does not become
//	                    the last ends the task's running record if that is of
//	                    this fire (the reader takes a running record whose
//	                    fire has the last outcome as ended). Comes before the
//	                    item's O ops.
//	E fields...         XADD the fields to the events stream
//	O task entry fields...
//	                    XADD the fields (an outcome event of task) to the
//	                    events stream, with lastrun=1 first when the item's L
//	                    op made it the last outcome, and entry (its compact
//	                    form, events.AppendHistory) to the task's history
//	                    stream as the field "e"
//	D fields...         XADD the fields to the dead-letter stream
//	R delay_ms member   add member to the retry set, due delay_ms from now
//	U running buffer id end the run of fire id for the overlap policy: delete
//	                    the running key if it holds id, and move a buffered
//	                    fire (if any, and no other run holds the key) to its
//	                    stream
//
// JSON escapes every quote inside a string, so the plain matches of members
// only ever find the members themselves.
//
// An item whose entry id is set does its ops only if the entry is still
// pending in the group (and no earlier item of the batch had it), and is
// acked after them: a fire already acked (by the worker that reclaimed it
// from this one) has its outcome recorded once, by whoever finished it
// first. Whether entries are pending is read with one XPENDING range per
// stream (paged when other entries lie between; past four pages, the
// batch's later entries are checked one XPENDING each, so one old
// reclaimed fire among new ones does not make the script walk a long
// pending list), the state records in one
// HMGET before the items and written in one HSET after them, and the acks
// (one call per stream) come last of all: Redis does not undo a script
// that fails half way, so a failure leaves every entry of the batch pending
// and the batch is written again (its events may then repeat; a fire is
// never acked without its outcome). Items without an entry id (broadcast
// outcomes) may likewise repeat after a failed or timed out call. (A
// worker's started events are not items: AppendStarted writes them,
// plainly.)
// Returns the number of items whose ops were done.
var finishScript = redis.NewScript(bulkLua + numLua + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local A = ARGV
local n = tonumber(A[4])
-- idAfter: a > b for stream ids ms-seq.
local function idAfter(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if am ~= bm then return before(bm, am) end
  return before(bs, as)
end
local byStream, streams = {}, {}
local i = 8
for _ = 1, tonumber(A[7]) do
  local stream, hi, page = A[i], A[i+2], tonumber(A[i+3]) + 100
  local s = {pending = {}, seen = {}, ids = {}}
  byStream[stream] = s
  streams[#streams + 1] = stream
  local from = A[i+1]
  for pages = 1, 4 do
    local r = redis.call('XPENDING', stream, A[1], from, hi, page)
    for _, e in ipairs(r) do s.pending[e[1]] = true end
    if #r < page then break end
    from = '(' .. r[#r][1]
    -- Other entries lie between (an old reclaimed fire among new ones):
    -- past four pages, the rest of the batch is checked one by one.
    if pages == 4 then s.covered = r[#r][1] end
  end
  i = i + 4
end
local lrec, lnames = {}, {}
local nl = tonumber(A[i])
for k = 1, nl do
  lnames[2*k - 1] = A[i+k] .. '@out'
  lnames[2*k] = A[i+k] .. '@ok'
end
i = i + nl + 1
if nl > 0 then
  local r = bulk('HMGET', KEYS[4], lnames)
  for k, name in ipairs(lnames) do lrec[name] = r[k] or false end
end
local ls = {}
local done = 0
for _ = 1, n do
  local stream, id, nops = A[i], A[i+1], N[A[i+2]] or tonumber(A[i+2])
  i = i + 3
  local ok = true
  if id ~= '' then
    local s = byStream[stream]
    ok = not s.seen[id] and (s.pending[id] or (s.covered ~= nil and idAfter(id, s.covered) and
      #redis.call('XPENDING', stream, A[1], id, id, 1) == 1))
    if ok then
      s.seen[id] = true
      s.ids[#s.ids + 1] = id
    end
  end
  if ok then done = done + 1 end
  local last = false
  for _ = 1, nops do
    local code, c = A[i], N[A[i+1]] or tonumber(A[i+1])
    local a = i + 2
    i = a + c
    if ok then
      if code == 'O' then
        if last then
          redis.call('XADD', KEYS[1], 'MAXLEN', '~', A[2], '*', 'lastrun', '1', unpack(A, a + 2, a + c - 1))
        else
          redis.call('XADD', KEYS[1], 'MAXLEN', '~', A[2], '*', unpack(A, a + 2, a + c - 1))
        end
        redis.call('XADD', A[6] .. A[a], 'MAXLEN', '~', A[5], '*', 'e', A[a+1])
      elseif code == 'L' then
        local name, rec, fire, sched = A[a], A[a+1], A[a+2], A[a+3]
        local fo, fk = name .. '@out', name .. '@ok'
        local out = lrec[fo]
        local cur = out
        if not cur or cur == '' then cur = lrec[fk] end
        last = not (cur and cur ~= '' and not string.find(cur, fire, 1, true) and before(sched, string.match(cur, '"scheduled":(%-?%d+)') or '0'))
        if last then
          if A[a+4] == '1' then
            lrec[fk] = rec
            ls[#ls + 1] = fk
            ls[#ls + 1] = rec
            if out and out ~= '' then
              lrec[fo] = ''
              ls[#ls + 1] = fo
              ls[#ls + 1] = ''
            end
          else
            -- Failed slots: another attempt of the slot already counted
            -- adds none.
            local fails, same = 0, false
            if out and out ~= '' then
              fails = tonumber(string.match(out, '"fails":(%d+)') or '0')
              same = string.find(out, fire, 1, true) ~= nil
            end
            if not same then fails = fails + 1 end
            local o = string.sub(rec, 1, -2) .. ',"fails":' .. fails .. '}'
            lrec[fo] = o
            ls[#ls + 1] = fo
            ls[#ls + 1] = o
          end
        else
          local fr = name .. '@run'
          local run = redis.call('HGET', KEYS[4], fr)
          if run and string.find(run, fire, 1, true) then
            ls[#ls + 1] = fr
            ls[#ls + 1] = ''
          end
        end
      elseif code == 'E' then
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', A[2], '*', unpack(A, a, a + c - 1))
      elseif code == 'D' then
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', A[3], '*', unpack(A, a, a + c - 1))
      elseif code == 'R' then
        redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(A[a])), A[a+1])
      elseif code == 'U' then
        local cur = redis.call('GET', A[a])
        if cur == A[a+2] then redis.call('DEL', A[a]); cur = false end
        if not cur then
          local b = redis.call('GET', A[a+1])
          if b then
            redis.call('DEL', A[a+1])
            local e = cjson.decode(b)
            redis.call('XADD', e[1], '*', unpack(e, 2))
          end
        end
      end
    end
  end
end
bulk('HSET', KEYS[4], ls)
for _, stream in ipairs(streams) do
  bulk('XACK', stream, byStream[stream].ids, A[1])
end
return done
`)

// beginScript starts a run under the overlap policy skip, buffer-one or
// cancel-previous.
//
// KEYS[1] -> the task's running key (string)
// KEYS[2] -> the task's buffer key (string)
// KEYS[3] -> events (stream)
// KEYS[4] -> the task's history (stream)
// KEYS[5] -> the cancel channel
// ARGV[1] -> fire id
// ARGV[2] -> how long the running key lives unless extended, ms
// ARGV[3] -> policy: "skip", "buffer-one" or "cancel-previous"
// ARGV[4] -> the fire's stream
// ARGV[5] -> consumer group
// ARGV[6] -> the fire's entry id
// ARGV[7] -> events stream approximate MAXLEN
// ARGV[8] -> the fire as a Retry member (what a buffer holds)
// ARGV[9] -> the task's history approximate MAXLEN
// ARGV[10] -> the task's name
// ARGV[11] -> "1" when the fire comes late (a retry, or delivered again),
// else ""
// ARGV[12..] -> the fields of the missed event recorded (on the events
// stream and in the history) when the fire is dropped
//
// When no other fire of the task runs (or this one does: a reclaim), the
// running key is set to this fire and the result is "run". Otherwise, under
// cancel-previous, the running key is set to this fire and "previous new"
// published on the cancel channel (the worker running the previous one
// cancels it): "replaced"; unless this fire comes late (a retry, a reclaim
// or a hand-back), both are of planned slots (ids "<task>@<slot ms>") and
// this one's slot is the older: then it is dropped as under skip, and the
// newer run goes on. Otherwise, under buffer-one with an empty buffer, the fire goes to the buffer and its entry
// is acked: "buffered". Otherwise the entry is acked and the missed event
// appended: "skipped". An entry no longer pending (acked elsewhere) is left
// alone: "gone".
var beginScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 'run'
end
local function slot(id)
  local p = ARGV[10] .. '@'
  if string.sub(id, 1, #p) ~= p then return nil end
  local ms = string.sub(id, #p + 1)
  if not string.match(ms, '^%d+$') then return nil end
  return tonumber(ms)
end
if ARGV[3] == 'cancel-previous' then
  local old, new = slot(cur), ARGV[11] == '1' and slot(ARGV[1])
  if not (old and new and new < old) then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    redis.call('PUBLISH', KEYS[5], cur .. ' ' .. ARGV[1])
    return 'replaced'
  end
end
if redis.call('XACK', ARGV[4], ARGV[5], ARGV[6]) == 0 then return 'gone' end
if ARGV[3] == 'buffer-one' and redis.call('SET', KEYS[2], ARGV[8], 'NX') then
  return 'buffered'
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, 12))
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*', unpack(ARGV, 12))
return 'skipped'
`)

// heartbeatScript records the worker's pulse (see pulseLua) and extends its
// hold on the fires it is running, so a live worker's long run is never
// reclaimed by another. It records in the workers registry that the
// worker was seen, and its state when given; it forgets (at most 100 at a
// time) the workers not seen for long.
//
// KEYS[1] -> pulse (hash)
// KEYS[2] -> visibility timeouts (zset)
// KEYS[3] -> workers (hash: node -> state JSON)
// KEYS[4] -> workers seen (zset: node -> Unix ms)
// ARGV[1] -> consumer group
// ARGV[2] -> consumer (this worker)
// ARGV[3] -> this worker's visibility timeout, ms: also how long a running
// key lives unless extended
// ARGV[4] -> this worker's state (JSON), or "" when unchanged
// ARGV[5] -> how long a worker not seen is kept, ms
// ARGV[6..] -> per fire: stream, entry id ("" for a broadcast fire),
// running key ("" when the task has no overlap policy), fire id
//
// An entry still pending for this consumer has its idle time reset (XCLAIM
// to itself, JUSTID, so its delivery count does not grow); a running key
// that still holds the fire id has its expiry pushed back.
// Returns {ms of quiet period left (<= 0: none), the server time (Unix
// ms), the namespace's visibility timeout (ms), 1 when the registry has no
// state of this worker (else 0), then the positions (from 0) of the fires
// whose entries are no longer this consumer's (another worker reclaimed
// them, or they were acked)}.
var heartbeatScript = redis.NewScript(pulseLua + `
local p = pulse(KEYS[1], KEYS[2], tonumber(ARGV[3]))
redis.call('ZADD', KEYS[4], p[3], ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. (p[3] - tonumber(ARGV[5])), 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('HDEL', KEYS[3], unpack(gone))
  redis.call('ZREM', KEYS[4], unpack(gone))
end
local missing = 0
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
elseif redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then
  missing = 1
end
local lost = {p[1], p[3], p[2], missing}
for i = 6, #ARGV, 4 do
  local stream, id, rk, fire = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]
  if id ~= '' then
    local p = redis.call('XPENDING', stream, ARGV[1], id, id, 1)
    if p[1] and p[1][2] == ARGV[2] then
      redis.call('XCLAIM', stream, ARGV[1], ARGV[2], 0, id, 'JUSTID')
    else
      lost[#lost + 1] = (i - 6) / 4
    end
  end
  if rk ~= '' then
    local cur = redis.call('GET', rk)
    if cur == fire then
      redis.call('PEXPIRE', rk, ARGV[3])
    elseif not cur then
      -- It expired while Redis was out of reach: mark the run again.
      redis.call('SET', rk, fire, 'PX', ARGV[3])
    end
  end
end
return lost
`)

// MaxVisibility bounds a worker's visibility timeout: a longer one would
// leave a dead worker's fires unrun for longer than anyone waits for a
// schedule, and the pulse ignores any recorded above it.
const MaxVisibility = time.Hour

// maxVisibilityMs is MaxVisibility in the scripts' unit.
const maxVisibilityMs = "3600000"

// pulseLua is the pulse, shared by heartbeatScript and reclaimScript. It
// records that a worker reached Redis and the visibility timeout it works
// with, and returns {ms of quiet period left, the namespace's visibility
// timeout, the server time}. The visibility timeout is the longest of
// those recorded in the last 10 minutes, so a worker with a short timeout
// never takes a fire from a live worker whose claims are extended at the
// pace of a long one. It starts a quiet period of that length when no
// worker had reached Redis for more than half of it: Redis was frozen,
// restarted or failed over, or the network was cut, and the fires pending
// then look idle although their workers are alive and only waiting to
// extend their claims. A server clock that stepped back counts as a
// silence, and never makes the quiet period longer than its length.
//
// An entry no worker can have written is removed, not counted: a timeout
// over MaxVisibility (workers refuse one), one that is not a number, or
// one recorded more than a minute in the future (a failover to a server
// whose clock is a little behind leaves entries a few seconds ahead). One
// forged entry would otherwise stop every reclaim of the namespace, for
// ten minutes or, dated in the future, for good.
const pulseLua = `
local function pulse(key, vkey, own)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', vkey, now, own)
  redis.call('ZREMRANGEBYSCORE', vkey, '-inf', '(' .. (now - 600000))
  redis.call('ZREMRANGEBYSCORE', vkey, '(' .. (now + 60000), '+inf')
  local len = own
  for _, v in ipairs(redis.call('ZRANGE', vkey, 0, -1)) do
    local ms = tonumber(v)
    if ms == nil or ms > ` + maxVisibilityMs + ` or ms < 0 then
      redis.call('ZREM', vkey, v)
    else
      len = math.max(len, ms)
    end
  end
  local last = tonumber(redis.call('HGET', key, 'last') or '0')
  local quiet = tonumber(redis.call('HGET', key, 'quiet') or '0')
  if quiet - now > len then
    quiet = now + len
    redis.call('HSET', key, 'quiet', quiet)
  end
  if (now - last > len / 2 or last > now) and now + len > quiet then
    quiet = now + len
    redis.call('HSET', key, 'quiet', quiet)
  end
  redis.call('HSET', key, 'last', now)
  return {quiet - now, len, now}
end
`

// reclaimScript runs the pulse and, unless a quiet period is on, takes
// over entries idle for the namespace's visibility timeout, in one step: a
// reclaim that Redis runs only once it is back from a freeze sees the
// silence and takes nothing. It lists the idle entries from the cursor on
// with XPENDING IDLE (a plain walk of the group's pending list, which also
// gives each one's holder and delivery count) and starts XAUTOCLAIM at the
// first: XAUTOCLAIM looks at only ten entries per one it may take, so
// behind the tens of thousands of fires live workers hold with a
// lookahead, a sweep that found nothing took a call per few hundred
// entries, one after another, while those workers' runs waited.
//
// KEYS[1] -> pulse (hash)
// KEYS[2] -> visibility timeouts (zset)
// KEYS[3] -> fire stream
// ARGV[1] -> this worker's visibility timeout, ms
// ARGV[2] -> consumer group
// ARGV[3] -> consumer
// ARGV[4] -> cursor
// ARGV[5] -> count
// Returns {ms of quiet left (0: none), next cursor, then per entry: id,
// fields, delivery count, the consumer that held it}. Fires routed to this
// worker (held by its name plus routeSuffix, see giveUpScript) are taken
// first, idle or not. A fire handed back cleanly was held by its worker's
// name plus handBackSuffix. In a quiet period only
// those two kinds are taken (they were given up, not left idle by an
// outage), and the cursor is returned as given.
var reclaimScript = redis.NewScript(pulseLua + `
local p = pulse(KEYS[1], KEYS[2], tonumber(ARGV[1]))
local out = {math.max(p[1], 0), ARGV[4]}
local room = tonumber(ARGV[5])
local function take(name)
  if room <= 0 then return end
  for _, e in ipairs(redis.call('XPENDING', KEYS[3], ARGV[2], '-', '+', room, name)) do
    for _, m in ipairs(redis.call('XCLAIM', KEYS[3], ARGV[2], ARGV[3], 0, e[1])) do
      out[#out + 1] = m[1]
      out[#out + 1] = m[2]
      out[#out + 1] = e[4] + 1
      out[#out + 1] = name
      room = room - 1
    end
  end
end
take(ARGV[3] .. '` + routeSuffix + `')
if p[1] > 0 then
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[3], ARGV[2])) do
    local name, pending = '', 0
    for i = 1, #c, 2 do
      if c[i] == 'name' then name = c[i+1] elseif c[i] == 'pending' then pending = c[i+1] end
    end
    if pending > 0 and string.sub(name, -` + handBackSuffixLen + `) == '` + handBackSuffix + `' then take(name) end
  end
  return out
end
if room <= 0 then return out end
local idle = redis.call('XPENDING', KEYS[3], ARGV[2], 'IDLE', p[2], ARGV[4], '+', room)
if #idle == 0 then
  out[2] = '0-0'
  return out
end
local before = {}
for _, e in ipairs(idle) do before[e[1]] = e end
local r = redis.call('XAUTOCLAIM', KEYS[3], ARGV[2], ARGV[3], p[2], idle[1][1], 'COUNT', room)
out[2] = r[1]
for _, e in ipairs(r[2]) do
  local b = before[e[1]]
  out[#out + 1] = e[1]
  out[#out + 1] = e[2]
  if b then
    out[#out + 1] = b[4] + 1
    out[#out + 1] = b[2]
  else
    local pe = redis.call('XPENDING', KEYS[3], ARGV[2], e[1], e[1], 1)
    out[#out + 1] = pe[1] and pe[1][4] or 2
    out[#out + 1] = ''
  end
end
return out
`)

// handBackSuffix ends the consumer name that a hand-back (giveUpScript)
// gives the fires a worker hands back: a reclaim that takes one learns it was handed
// back, and by whom, and the consumer, holding nothing once they are
// taken, is pruned like a stopped worker.
const handBackSuffix = "~handback"

// handBackSuffixLen is len(handBackSuffix), for the scripts.
const handBackSuffixLen = "9"

// routeSuffix ends the consumer name that a route (giveUpScript) gives a
// fire routed to a worker: that worker's reclaims take it first.
const routeSuffix = "~route"

// pruneScript removes a consumer from a fire stream's group if it holds
// nothing (checked in the same step: XGROUP DELCONSUMER drops the entries
// a consumer holds, unacked, from the group).
//
// KEYS[1] -> fire stream
// ARGV[1] -> consumer group
// ARGV[2] -> consumer
// Returns 1 when it was removed, else 0.
var pruneScript = redis.NewScript(`
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// giveUpScript gives fires this worker holds to another holder in the
// group, and tells the workers on the hand-back channel: a stopping
// worker's hand-back (to <node>~handback, idle past any visibility
// timeout, so the next reclaim by any worker takes them at once instead
// of after the visibility timeout) and a route of fires this worker has
// no handler for (to <target>~route, idle 0: the target's reclaims take
// them first, any other's only once they have been idle the visibility
// timeout, as when the target died).
//
// KEYS[1] -> the hand-back channel (pub/sub)
// ARGV[1] -> consumer group
// ARGV[2] -> consumer (this worker)
// ARGV[3] -> the new holder
// ARGV[4] -> idle time to set, ms
// ARGV[5] -> the name published (the worker handing back, or the target)
// ARGV[6..] -> pairs: stream, entry id
//
// Entries still pending for this consumer move (XCLAIM with IDLE, JUSTID)
// with their delivery count lowered by one, so the reclaim that takes them
// (which adds one) does not count a clean hand-back or a route as a worker
// that stopped answering; others are left. When any moved, ARGV[5] is
// published. Returns the number moved.
var giveUpScript = redis.NewScript(`
local n = 0
for i = 6, #ARGV, 2 do
  local stream, id = ARGV[i], ARGV[i+1]
  local p = redis.call('XPENDING', stream, ARGV[1], id, id, 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', stream, ARGV[1], ARGV[3], 0, id, 'IDLE', ARGV[4], 'RETRYCOUNT', math.max(p[1][4] - 1, 0), 'JUSTID')
    n = n + 1
  end
end
if n > 0 then redis.call('PUBLISH', KEYS[1], ARGV[5]) end
return n
`)

// promoteScript moves retries that are due back to their streams.
//
// KEYS[1] -> retry (zset)
// ARGV[1] -> the most to move
//
// Returns {moved, the earliest due score left or -1}.
var promoteScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local e = cjson.decode(m)
  redis.call('XADD', e[1], '*', unpack(e, 2))
  redis.call('ZREM', KEYS[1], m)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local next = -1
if first[2] then next = tonumber(first[2]) end
return {#due, next}
`)

// triggerIDScript makes a manual trigger with an id idempotent, when it is
// read: the first entry that gives the id runs, any later one is dropped.
//
// KEYS[1] -> the id's trigger key (string)
// KEYS[2] -> events (stream)
// ARGV[1] -> this entry id
// ARGV[2] -> how long the id is remembered, ms
// ARGV[3] -> the entry's stream
// ARGV[4] -> consumer group
// ARGV[5] -> events stream approximate MAXLEN
// ARGV[6..] -> the fields of the missed event recorded for a repeat
//
// Returns 1 when the entry is the first with its id (or a redelivery of
// it): run it. Returns 0 when another entry had the id: this one is acked
// and the missed event appended.
var triggerIDScript = redis.NewScript(`
local first = redis.call('GET', KEYS[1])
if not first then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if first == ARGV[1] then return 1 end
if redis.call('XACK', ARGV[3], ARGV[4], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
end
return 0
`)
