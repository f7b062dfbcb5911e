package store

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// changeLua defines noteChange(key, now, kind, name): it records in the
// changes sorted set (Keys.Changes) that task name was paused, changed or
// removed at now (ms, a number), and drops up to 100 entries older than
// ChangesKeep. ZRANGEBYSCORE and ZREM, not ZREMRANGEBYSCORE: every role
// that changes tasks is granted them already (see acl.go).
var changeLua = `
local function noteChange(key, now, kind, name)
  redis.call('ZADD', key, now, kind .. ' ' .. name)
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. string.format('%.0f', now - ` + strconv.FormatInt(ChangesKeep.Milliseconds(), 10) + `), 'LIMIT', 0, 100)
  if #old > 0 then redis.call('ZREM', key, unpack(old)) end
end
`

// Every multi-key transition is one Lua script, documented like a function:
// the operator's here and beside the calls that run them (admin.go,
// trigger.go), the protocol steps' in store/internal/protocol.
// Scripts read the clock with TIME (Redis 5+ replicates script effects, so
// this is allowed and replicas see the same result): every planning decision
// uses the server's clock. Numbers are written with string.format('%.0f'),
// since Lua's own number-to-text would round 13-digit milliseconds.
// Keys derived inside a script (a task's state hash, a fire stream) carry the
// namespace's hash tag, so they are on the same Cluster slot as KEYS[1].
// Stream field names are never written here: Go passes them in (events owns
// them).

// applyScript replaces the task set with a new version, atomically.
//
// KEYS[1] -> version (string)
// KEYS[2] -> specs (hash name -> spec)
// KEYS[3] -> due (zset)
// KEYS[4] -> events (stream)
// KEYS[5] -> changes (zset and channel)
// KEYS[6] -> last runs (hash)
// ARGV[1] -> state key prefix
// ARGV[2] -> the new version, decimal (compared as text, so any int64 is exact)
// ARGV[3] -> events stream approximate MAXLEN
// ARGV[4] -> wake channel
// ARGV[5] -> n, the number of tasks
// ARGV[6..20] -> stream field names and values, in this order: v, "1", type,
// reload, registered, version, previous, added, changed, removed, task,
// change, and the change values for added, changed and removed
// ARGV[21..] -> n triples: name, encoded spec, schedule key
//
// Returns {"adopted", current} when a newer version is stored (nothing
// written), {"unchanged", current} when this version is stored with the same
// specs, {"conflict", current} when it is stored with other specs, or
// {"applied", previous, nadded, nchanged, nremoved, names...} where names
// lists the added, then the changed (each prefixed "!" when rescheduled),
// then the removed tasks. Each changed and removed task is noted in the
// changes set, and, when there is any, "now reload" is published on the
// changes channel.
var applyScript = redis.NewScript(changeLua + `
local function s(x) return string.format('%.0f', x) end
-- Versions are decimal text without leading zeros: compare length, then text.
local function vcmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local A = ARGV
local ver = A[2]
local n = tonumber(A[5])
local base = 21
local cur = redis.call('GET', KEYS[1])
if cur then
  local c = vcmp(cur, ver)
  if c > 0 then return {'adopted', cur} end
  if c == 0 then
    local stored = redis.call('HLEN', KEYS[2])
    if stored > 0 then
      if stored ~= n then return {'conflict', cur} end
      for i = 0, n - 1 do
        if redis.call('HGET', KEYS[2], A[base + i*3]) ~= A[base + i*3 + 1] then
          return {'conflict', cur}
        end
      end
      return {'unchanged', cur}
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = {}
local added, changed, removed = {}, {}, {}
for i = 0, n - 1 do
  local name, spec, skey = A[base + i*3], A[base + i*3 + 1], A[base + i*3 + 2]
  seen[name] = true
  local st = A[1] .. name
  local old = redis.call('HGET', KEYS[2], name)
  if not old then
    redis.call('HSET', KEYS[2], name, spec)
    redis.call('DEL', st)
    -- A task added again starts afresh: a last run of its former self
    -- (and the failures in a row it counts) is not its own.
    redis.call('HDEL', KEYS[6], name)
    redis.call('HSET', st, 'since', s(now), 'skey', skey, 'gen', '1')
    redis.call('ZADD', KEYS[3], now, name)
    added[#added + 1] = name
  elseif old ~= spec then
    noteChange(KEYS[5], now, 'changed', name)
    -- A paused task stays paused (out of the due index) across reloads.
    local paused = redis.call('HEXISTS', st, 'paused') == 1
    redis.call('HSET', KEYS[2], name, spec)
    redis.call('HINCRBY', st, 'gen', 1)
    if redis.call('HGET', st, 'skey') ~= skey then
      redis.call('HSET', st, 'since', s(now), 'skey', skey)
      redis.call('HDEL', st, 'next', 'lease', 'lease_until', 'fired')
      if not paused then redis.call('ZADD', KEYS[3], now, name) end
      changed[#changed + 1] = '!' .. name
    else
      -- Same schedule: keep the next slot, but end any lease (its holder's
      -- plan is refused by the new gen) so the task is planned on time.
      redis.call('HDEL', st, 'lease', 'lease_until')
      local nx = redis.call('HGET', st, 'next')
      if nx ~= '-1' and not paused then redis.call('ZADD', KEYS[3], nx or s(now), name) end
      changed[#changed + 1] = name
    end
  end
end
for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not seen[name] then
    redis.call('HDEL', KEYS[2], name)
    redis.call('DEL', A[1] .. name)
    redis.call('ZREM', KEYS[3], name)
    noteChange(KEYS[5], now, 'removed', name)
    removed[#removed + 1] = name
  end
end
if #changed + #removed > 0 then redis.call('PUBLISH', KEYS[5], s(now) .. ' reload') end
redis.call('SET', KEYS[1], ver)
local prev = cur or '0'
local ev = {A[6], A[7], A[8], A[9], A[11], ver}
if prev ~= '0' then ev[#ev+1] = A[12]; ev[#ev+1] = prev end
if #added > 0 then ev[#ev+1] = A[13]; ev[#ev+1] = tostring(#added) end
if #changed > 0 then ev[#ev+1] = A[14]; ev[#ev+1] = tostring(#changed) end
if #removed > 0 then ev[#ev+1] = A[15]; ev[#ev+1] = tostring(#removed) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', A[3], '*', unpack(ev))
local function registered(list, change)
  for _, name in ipairs(list) do
    if string.sub(name, 1, 1) == '!' then name = string.sub(name, 2) end
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', A[3], '*', A[6], A[7], A[8], A[10],
      A[16], name, A[17], change, A[11], ver)
  end
end
registered(added, A[18])
registered(changed, A[19])
registered(removed, A[20])
redis.call('PUBLISH', A[4], ver)
local out = {'applied', prev, #added, #changed, #removed}
for _, l in ipairs({added, changed, removed}) do
  for _, name in ipairs(l) do out[#out + 1] = name end
end
return out
`)
