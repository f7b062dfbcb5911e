package protocol

import "github.com/redis/go-redis/v9"

// The planning side's scripts. See the store's scripts.go for the rules
// every script keeps (the server's clock, hash-tagged keys, numbers as
// text, no stream field names).

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
// ARGV[6] -> history key prefix (a task's history is it and the name)
// ARGV[7] -> per-task history approximate MAXLEN
// ARGV[8..] -> per task: name, gen, next slot (ms, or -1 when none is left;
// "slot:due" for a jittered task's, due after its slot: the due score is the
// due time),
// last-run record ("" for none), number of ops (written "L<limit>:<ops>"
// for a task with a fire limit, so a task without one costs no more),
// then the ops. An op is: slot
// (ms; for a range of missed slots, the last one; "slot:due" for a jittered
// fire, whose due time the horizon is checked against), fire stream key ("" when
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
// A task with a fire limit counts its fires in its state hash (fired); the
// fire that reaches the limit is its last (the ops after it are dropped)
// and its next slot becomes none: it is done.
// Missed ops, which come before fires, are recorded (their event goes to
// the task's history too): the claim's clock found them late. A planned task's lease ends (emptied) in the same write
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
-- A task's count of ops when it is not a small number: many ops, or a
-- fire limit ("L<limit>:<ops>"); and the limit (0: none).
local function opsOf(v)
  if string.byte(v) == 76 then
    local lim, ops = string.match(v, '^L(%d+):(%d+)$')
    return tonumber(ops), tonumber(lim)
  end
  return tonumber(v), 0
end
local n = tonumber(A[4])
-- First pass: where each task starts, and every name, to read the
-- watermarks in one call.
local starts, names = {}, {}
local i = 8
for k = 1, n do
  starts[k] = i
  names[k] = A[i]
  local nops = N[A[i+4]] or opsOf(A[i+4])
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
  local name, gen, nxt, lr = A[i], A[i+1], A[i+2], A[i+3]
  local nops, lim = N[A[i+4]], 0
  if not nops then nops, lim = opsOf(A[i+4]) end
  i = i + 5
  local st = A[1] .. name
  local cur = redis.call('HMGET', st, 'lease', 'gen', 'lease_until')
  local mine = cur[1] == A[2] and cur[2] == gen and cur[3] and cur[3] ~= '' and not before(cur[3], snow)
  local w = wm[name]
  local w0 = w
  local fired = false
  local stopAt = nil
  local count, full = 0, false
  if lim > 0 and mine then
    count = tonumber(redis.call('HGET', st, 'fired') or '0')
    full = count >= lim
  end
  for _ = 1, nops do
    local slot, stream, nf = A[i], A[i+1], N[A[i+2]] or tonumber(A[i+2])
    local fstart = i + 3
    local ne = N[A[fstart + nf]] or tonumber(A[fstart + nf])
    local estart = fstart + nf + 1
    i = estart + ne
    -- A jittered fire's slot is "slot:due" (longer than any time in ms):
    -- the horizon goes by its due time, the watermark by its slot.
    local raw, dueAt = slot, slot
    if #slot > 20 then
      local c = string.find(slot, ':', 1, true)
      dueAt = string.sub(slot, c + 1)
      slot = string.sub(slot, 1, c - 1)
    end
    if not mine then
      -- skip
    elseif full then
      dropped = dropped + 1 -- the limit is reached: nothing more, fired or missed
      if stream ~= '' then lr = '' end -- the record names the plan's last fire, not appended
    elseif stopAt or (stream ~= '' and before(horizon, dueAt)) then
      stopAt = stopAt or raw
      dropped = dropped + 1
    elseif not before(w, slot) then
      dropped = dropped + 1
    else
      if stream ~= '' then
        redis.call('XADD', stream, '*', unpack(A, fstart, fstart + nf - 1))
        fires = fires + 1
        fired = true
        if lim > 0 then
          count = count + 1
          full = count >= lim
        end
      end
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', A[3], '*', unpack(A, estart, estart + ne - 1))
      if stream == '' then
        redis.call('XADD', A[6] .. name, 'MAXLEN', '~', A[7], '*', unpack(A, estart, estart + ne - 1))
      end
      evs = evs + 1
      w = slot
    end
  end
  if mine then
    if stopAt then nxt = stopAt end
    if lim > 0 then
      redis.call('HSET', st, 'fired', count)
      if full then nxt = '-1' end
    end
    if string.byte(nxt) == 45 then nxt = '-1' end
    -- A jittered next slot is "slot:due": the due score is its due time.
    local score = nxt
    if #nxt > 20 then
      local c = string.find(nxt, ':', 1, true)
      score = string.sub(nxt, c + 1)
      nxt = string.sub(nxt, 1, c - 1)
    end
    if w ~= w0 then wm[name] = w; moved[name] = true end
    -- The lease ends in the same write that records the next slot.
    redis.call('HSET', st, 'next', nxt, 'lease', '', 'lease_until', '')
    due[name] = nxt ~= '-1' and score
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
