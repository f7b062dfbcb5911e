package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every multi-key transition is one Lua script, documented like a function.
// Scripts read the clock with TIME (Redis 5+ replicates script effects, so
// this is allowed and replicas see the same result): every planning decision
// uses the server's clock. Numbers are written with string.format('%.0f'),
// since Lua's own number-to-text would round 13-digit milliseconds.
// Keys derived inside a script (a task's state hash, a fire stream) carry the
// namespace's hash tag, so they are on the same Cluster slot as KEYS[1].
// Stream field names are never written here: Go passes them in (events owns
// them).

// bulkLua defines bulk(cmd, key, list, extra): redis.call(cmd, key[, extra],
// items...) over list's items in chunks of 1,000 (an even number, so pairs
// stay whole; small enough for unpack), returning the replies' items
// joined. A batch's reads and writes of one shared key (watermarks, due
// scores, last-run records, acks) are one call each this way, not one per
// task.
const bulkLua = `
local function bulk(cmd, key, list, extra)
  local out = {}
  for j = 1, #list, 1000 do
    local last = math.min(j + 999, #list)
    local r
    if extra then
      r = redis.call(cmd, key, extra, unpack(list, j, last))
    else
      r = redis.call(cmd, key, unpack(list, j, last))
    end
    if type(r) == 'table' then
      for k = 1, #r do out[#out + 1] = r[k] end
    end
  end
  return out
end
`

// numLua defines N, small counts by their decimal text, and before(a, b),
// a < b for times in ms as decimal text: Lua's tonumber goes through
// strtod, about 2,000 instructions a call, which made it a sixth of a
// plan's cost. A count outside N falls back to tonumber (N[x] or
// tonumber(x)). before compares the canonical text Go and s() write (no
// plus sign, no leading zero) by length, then byte by byte (equal-length
// digit strings collate alike in every locale; a leading '-' does not, so
// it is found by its byte): -1 (none) is before everything, other negative
// times (before 1970) go through tonumber.
var numLua = func() string {
	var b strings.Builder
	b.WriteString("\nlocal N = {")
	for i := range 64 {
		fmt.Fprintf(&b, "['%d']=%d,", i, i)
	}
	b.WriteString(`}
local function before(a, b)
  if a == b or b == '-1' then return false end
  if a == '-1' then return true end
  if string.byte(a) == 45 or string.byte(b) == 45 then return tonumber(a) < tonumber(b) end
  if #a ~= #b then return #a < #b end
  return a < b
end
`)
	return b.String()
}()

// applyScript replaces the task set with a new version, atomically.
//
// KEYS[1] -> version (string)
// KEYS[2] -> specs (hash name -> spec)
// KEYS[3] -> due (zset)
// KEYS[4] -> events (stream)
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
// then the removed tasks.
var applyScript = redis.NewScript(`
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
    redis.call('HSET', st, 'since', s(now), 'skey', skey, 'gen', '1')
    redis.call('ZADD', KEYS[3], now, name)
    added[#added + 1] = name
  elseif old ~= spec then
    -- A paused task stays paused (out of the due index) across reloads.
    local paused = redis.call('HEXISTS', st, 'paused') == 1
    redis.call('HSET', KEYS[2], name, spec)
    redis.call('HINCRBY', st, 'gen', 1)
    if redis.call('HGET', st, 'skey') ~= skey then
      redis.call('HSET', st, 'since', s(now), 'skey', skey)
      redis.call('HDEL', st, 'next', 'lease', 'lease_until')
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
    removed[#removed + 1] = name
  end
end
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

// claimScript leases up to a batch of due tasks to one planner.
//
// KEYS[1] -> due (zset)
// KEYS[2] -> specs (hash)
// KEYS[3] -> planned (hash)
// ARGV[1] -> state key prefix
// ARGV[2] -> lease token
// ARGV[3] -> lease length, ms
// ARGV[4] -> the most tasks to claim
// ARGV[5] -> deadline, ms of server time (-1: none)
// ARGV[6] -> lookahead, ms
//
// A claim run after its deadline claims nothing and returns {now, earliest
// due score or -1, "late"}. A task is due when its due score is at or
// before the server's now plus the lookahead (its next slot may be planned
// that far ahead). Each
// claimed task gets lease and lease_until in its state hash, and its due
// score moves to the end of the lease, so other planners skip it until then
// (and take it over if this planner dies holding it).
// Specs and watermarks are read, and due scores moved, in one call each
// for the whole batch; each task's state hash takes two (the lease, then the read).
// Returns {now, earliest due score after the claim or -1, then per task:
// name, spec, since, next, gen, planned} with "" for absent values.
var claimScript = redis.NewScript(bulkLua + `
local function s(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = s(now + tonumber(ARGV[3]))
local dl = tonumber(ARGV[5])
if dl >= 0 and now > dl then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {now, first[2] and tonumber(first[2]) or -1, 'late'}
end
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', s(now + tonumber(ARGV[6])), 'LIMIT', 0, tonumber(ARGV[4]))
local out = {now, -1}
if #names > 0 then
  local specs = bulk('HMGET', KEYS[2], names)
  local planned = bulk('HMGET', KEYS[3], names)
  local leased, gone = {}, {}
  local o = 2
  for k, name in ipairs(names) do
    local spec = specs[k]
    if not spec then
      gone[#gone + 1] = name
    else
      local st = ARGV[1] .. name
      leased[#leased + 1] = untl
      leased[#leased + 1] = name
      redis.call('HSET', st, 'lease', ARGV[2], 'lease_until', untl)
      local v = redis.call('HMGET', st, 'since', 'next', 'gen')
      out[o + 1] = name
      out[o + 2] = spec
      out[o + 3] = v[1] or ''
      out[o + 4] = v[2] or ''
      out[o + 5] = v[3] or ''
      out[o + 6] = planned[k] or ''
      o = o + 6
    end
  end
  bulk('ZADD', KEYS[1], leased)
  bulk('ZREM', KEYS[1], gone)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then out[2] = tonumber(first[2]) end
return out
`)

// planScript records the planning of a batch of claimed tasks: fires,
// missed slots and each task's next slot, atomically. It is what makes
// "one fire per slot" true: a slot is appended only when it is later than
// the task's stored watermark (planned), and the watermark moves in the same
// script, so no two planners, however their clocks or leases, can append
// the same slot twice.
//
// KEYS[1] -> due (zset)
// KEYS[2] -> planned (hash)
// KEYS[3] -> lastrun (hash)
// KEYS[4] -> events (stream)
// ARGV[1] -> state key prefix
// ARGV[2] -> lease token
// ARGV[3] -> events stream approximate MAXLEN
// ARGV[4] -> number of tasks
// ARGV[5] -> lookahead, ms: how far after the server's now a fire's slot
// may be
// ARGV[6..] -> per task: name, gen, next slot (ms, or -1 when none is left),
// last-run record ("" for none), number of ops, then the ops. An op is: slot
// (ms; for a range of missed slots, the last one), fire stream key ("" when
// the op fires nothing), number of fire fields, the fire fields, number of
// event fields, the event fields.
//
// A task whose lease is no longer this token's, or has expired, or whose
// gen changed (a reload changed the task) is left alone: it is due again and
// the next claim plans it afresh. An op whose slot is not after the
// watermark is dropped. A fire whose slot is after the server's now plus
// the lookahead (its clock went back since the claim) is dropped with every
// op after it, and becomes the task's next slot, so it is neither lost nor
// fired earlier than the lookahead allows.
// Missed ops, which come before fires, are recorded: the claim's clock
// found them late. A planned task's lease ends (emptied) in the same write
// that records its next slot. Watermarks are read in one call for the
// batch; watermarks, due scores and last-run records are written in one
// call each after the fires, as if each task's were written in turn (a
// task named twice is planned by its first plan, which ends the lease; the
// others are refused). Redis does not undo a script that fails half way,
// which only a key of the wrong type (written by hand) can make it do:
// tasks whose next slot was written before the error keep it, with their
// watermarks and due scores unmoved, so they are planned again, from that
// next slot, once their lease ends.
// Returns {fires appended, events appended, tasks left alone, ops dropped}.
var planScript = redis.NewScript(bulkLua + numLua + `
local function s(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local A = ARGV
local snow = s(now)
local horizon = s(now + tonumber(A[5]))
local n = tonumber(A[4])
-- First pass: where each task starts, and every name, to read the
-- watermarks in one call.
local starts, names = {}, {}
local i = 6
for k = 1, n do
  starts[k] = i
  names[k] = A[i]
  local nops = N[A[i+4]] or tonumber(A[i+4])
  i = i + 5
  for _ = 1, nops do
    i = i + 3 + (N[A[i+2]] or tonumber(A[i+2]))
    i = i + 1 + (N[A[i]] or tonumber(A[i]))
  end
end
-- Watermarks and slots stay text (see before): '-1' is none.
local wm = {}
if n > 0 then
  local r = bulk('HMGET', KEYS[2], names)
  for k = 1, n do wm[names[k]] = r[k] or '-1' end
end
-- The batch's writes to shared keys, by task, last one winning as if each
-- were written in turn: watermarks, due scores (false: out of the index)
-- and last-run records.
local moved, due, lrs = {}, {}, {}
local fires, evs, lost, dropped = 0, 0, 0, 0
for k = 1, n do
  i = starts[k]
  local name, gen, nxt, lr, nops = A[i], A[i+1], A[i+2], A[i+3], N[A[i+4]] or tonumber(A[i+4])
  i = i + 5
  local st = A[1] .. name
  local cur = redis.call('HMGET', st, 'lease', 'gen', 'lease_until')
  local mine = cur[1] == A[2] and cur[2] == gen and cur[3] and cur[3] ~= '' and not before(cur[3], snow)
  local w = wm[name]
  local w0 = w
  local fired = false
  local stopAt = nil
  for _ = 1, nops do
    local slot, stream, nf = A[i], A[i+1], N[A[i+2]] or tonumber(A[i+2])
    local fstart = i + 3
    local ne = N[A[fstart + nf]] or tonumber(A[fstart + nf])
    local estart = fstart + nf + 1
    i = estart + ne
    if not mine then
      -- skip
    elseif stopAt or (stream ~= '' and before(horizon, slot)) then
      stopAt = stopAt or slot
      dropped = dropped + 1
    elseif not before(w, slot) then
      dropped = dropped + 1
    else
      if stream ~= '' then
        redis.call('XADD', stream, '*', unpack(A, fstart, fstart + nf - 1))
        fires = fires + 1
        fired = true
      end
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', A[3], '*', unpack(A, estart, estart + ne - 1))
      evs = evs + 1
      w = slot
    end
  end
  if mine then
    if stopAt then nxt = stopAt end
    if string.byte(nxt) == 45 then nxt = '-1' end
    if w ~= w0 then wm[name] = w; moved[name] = true end
    -- The lease ends in the same write that records the next slot.
    redis.call('HSET', st, 'next', nxt, 'lease', '', 'lease_until', '')
    due[name] = nxt ~= '-1' and nxt
    if fired and lr ~= '' then lrs[name] = lr end
  else
    lost = lost + 1
  end
end
local ws, za, zr, ls, seen = {}, {}, {}, {}, {}
for k = 1, n do
  local name = names[k]
  if not seen[name] then
    seen[name] = true
    if moved[name] then ws[#ws + 1] = name; ws[#ws + 1] = wm[name] end
    local d = due[name]
    if d then za[#za + 1] = d; za[#za + 1] = name
    elseif d == false then zr[#zr + 1] = name end
    if lrs[name] then ls[#ls + 1] = name; ls[#ls + 1] = lrs[name] end
  end
end
bulk('HSET', KEYS[2], ws)
bulk('ZADD', KEYS[1], za)
bulk('ZREM', KEYS[1], zr)
bulk('HSET', KEYS[3], ls)
return {fires, evs, lost, dropped}
`)

// releaseScript hands back claimed tasks that will not be planned (a
// planner stopping), so another planner can take them at once.
//
// KEYS[1] -> due (zset)
// ARGV[1] -> state key prefix
// ARGV[2] -> lease token
// ARGV[3..] -> task names
//
// A task still leased to the token gets its lease removed and its due score
// back to its next slot (now, when that is not computed yet).
// Returns the number of tasks released.
var releaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i = 3, #ARGV do
  local st = ARGV[1] .. ARGV[i]
  if redis.call('HGET', st, 'lease') == ARGV[2] then
    redis.call('HDEL', st, 'lease', 'lease_until')
    local nxt = tonumber(redis.call('HGET', st, 'next') or '')
    if nxt == nil then nxt = now end
    if nxt >= 0 then redis.call('ZADD', KEYS[1], nxt, ARGV[i]) end
    n = n + 1
  end
end
return n
`)

// scriptArgs starts the arguments of a call of a hot-path script on keys,
// with room for n more: EVALSHA, the script's hash and its keys come
// first, so runScript hands the slice to go-redis as it is.
// (redis.Script.Run copies every argument into a new slice once more:
// about 2 KB per fire in a burst.)
func scriptArgs(script *redis.Script, keys []string, n int) []any {
	args := make([]any, 0, 3+len(keys)+n)
	args = append(args, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		args = append(args, k)
	}
	return args
}

// runScript sends a call of script whose arguments scriptArgs started.
// When the server does not have the script (a restart, a failover, SCRIPT
// FLUSH) it sends it again as EVAL with the script's text, which the
// server keeps: as redis.Script.Run does.
func runScript(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, args []any) *redis.Cmd {
	nkeys := args[2].(int)
	cmd := redis.NewCmd(ctx, args...)
	if nkeys > 0 {
		cmd.SetFirstKeyPos(3) // EVALSHA sha numkeys key...: for Cluster routing
	}
	_ = rdb.Process(ctx, cmd)
	if !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return cmd
	}
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = args[3+i].(string)
	}
	return script.Eval(ctx, rdb, keys, args[3+nkeys:]...)
}
