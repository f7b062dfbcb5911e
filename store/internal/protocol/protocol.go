// Package protocol is the steps of taskino's two protocols on Redis, each
// one atomic where it must be (a script, documented like a function):
//
//   - Planning, taken by package planner: claim due tasks (a lease), then
//     plan them (fires, missed slots and next slots, checked against the
//     watermark) or release them, before the lease ends.
//   - Worker, taken by package consumer: create the group, read or reclaim
//     fires, begin a run under its overlap policy, heartbeat while it runs,
//     finish it (the outcome with the ack) or hand it back; move due
//     retries back, trim what every worker is done with.
//
// The promises (one fire per slot, at-least-once execution, no fire taken
// from a live worker) hold when the steps are called in that order, by the
// one caller that keeps its leases, claims and heartbeats. So they are
// here, under store/internal, and not on store.Store: store.PlanningProtocol
// and store.WorkerProtocol hand them to planner and consumer (and to the
// benchmarks and end-to-end tests of this module); no program outside the
// module can import this package or name its types. The data the steps
// take and return (Delivery, Outcome, TaskPlan, ...) is defined here and
// named in store, where the callers name it.
//
// Like store's, these scripts read the clock with TIME, derive only keys
// that carry the namespace's hash tag, and never spell a stream field: Go
// passes every event and entry in as field lists (events owns the names).
package protocol

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// conn is one namespace on a Redis deployment, as both protocols use it.
type conn struct {
	rdb  redis.UniversalClient
	keys core.Keys
	// eventsMaxLen is the approximate MAXLEN of every append to the events
	// stream (RetainEvents sets it to the namespace's hard bound), historyLen
	// of every append to a task's history.
	eventsMaxLen *atomic.Int64
	historyLen   int64
}

// maxLen is the events stream's bound at each append.
func (c *conn) maxLen() int64 { return c.eventsMaxLen.Load() }

func newConn(rdb redis.UniversalClient, keys core.Keys, eventsMaxLen *atomic.Int64, historyLen int64) conn {
	return conn{rdb: rdb, keys: keys, eventsMaxLen: eventsMaxLen, historyLen: historyLen}
}

// Planning is the planning side's steps on one namespace. It is safe for
// concurrent use.
type Planning struct{ conn }

// Worker is the worker side's steps on one namespace. It is safe for
// concurrent use.
type Worker struct{ conn }

// NewPlanning returns the planning steps on rdb, with the namespace's key
// names, appending events trimmed to about *eventsMaxLen entries (shared
// with the store and the other side: RetainEvents sets it) and each task's
// history to at least historyLen.
func NewPlanning(rdb redis.UniversalClient, keys core.Keys, eventsMaxLen *atomic.Int64, historyLen int64) *Planning {
	return &Planning{newConn(rdb, keys, eventsMaxLen, historyLen)}
}

// NewWorker returns the worker steps on rdb, as NewPlanning.
func NewWorker(rdb redis.UniversalClient, keys core.Keys, eventsMaxLen *atomic.Int64, historyLen int64) *Worker {
	return &Worker{newConn(rdb, keys, eventsMaxLen, historyLen)}
}

// AppendEvents appends evs to the events stream, in order, all or none:
// plain XADDs in one MULTI/EXEC round trip. Events that need no condition
// cost Redis less so than from a script (a worker's started events: about
// 60% less per entry). They are what the protocols record of themselves (a
// node up or down, a run started); an operator's actions append theirs in
// the script that does them.
func (c *conn) AppendEvents(ctx context.Context, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	pipe := c.rdb.TxPipeline()
	for i := range evs {
		args, err := c.eventXAdd(evs[i])
		if err != nil {
			return fmt.Errorf("event %s of fire %s: %w", evs[i].Type, evs[i].Fire, err)
		}
		pipe.Do(ctx, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("append %d events: %w", len(evs), err)
	}
	return nil
}

// AppendStarted appends the started events evs, in order, and makes
// runs[i] (the run evs[i] is of, status running) its task's running record
// (store.Keys.LastRun, task+"@run"), which the outcome of the same fire
// ends: all or none, in one MULTI/EXEC round trip, the records in one HSET.
func (w *Worker) AppendStarted(ctx context.Context, evs []events.Event, runs []events.LastRun) error {
	if len(evs) == 0 {
		return nil
	}
	pipe := w.rdb.TxPipeline()
	for i := range evs {
		args, err := w.eventXAdd(evs[i])
		if err != nil {
			return fmt.Errorf("event %s of fire %s: %w", evs[i].Type, evs[i].Fire, err)
		}
		pipe.Do(ctx, args...)
	}
	if len(runs) > 0 {
		args := make([]any, 0, 2+2*len(runs))
		args = append(args, "hset", w.keys.LastRun())
		var buf []byte
		for i := range runs {
			from := len(buf)
			buf = events.AppendLastRun(buf, runs[i])
			args = append(args, runs[i].Task+"@run", string(buf[from:]))
		}
		pipe.Do(ctx, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("append %d started events: %w", len(evs), err)
	}
	return nil
}

// AppendOutcome appends e, an outcome recorded without an entry to ack (a
// run cut by a stop: cancelled), to the events stream and to its task's
// history, in one MULTI/EXEC round trip. It does not change the task's
// state: the fire runs again.
func (c *conn) AppendOutcome(ctx context.Context, e events.Event) error {
	args, err := c.eventXAdd(e)
	if err != nil {
		return err
	}
	h, _ := e.AppendArgs(append(make([]any, 0, 6+24), "xadd", c.keys.History(e.Task), "maxlen", "~", c.historyLen, "*"))
	pipe := c.rdb.TxPipeline()
	pipe.Do(ctx, args...)
	pipe.Do(ctx, h...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("append %s event of fire %s: %w", e.Type, e.Fire, err)
	}
	return nil
}

// eventXAdd is the XADD of e to the events stream, trimmed as the scripts
// trim it.
func (c *conn) eventXAdd(e events.Event) ([]any, error) {
	return e.AppendArgs(append(make([]any, 0, 6+24), "xadd", c.keys.Events(), "maxlen", "~", c.maxLen(), "*"))
}

// AppendEvent appends one event to the events stream.
func (c *conn) AppendEvent(ctx context.Context, e events.Event) error {
	args, err := c.eventXAdd(e)
	if err != nil {
		return err
	}
	return c.rdb.Do(ctx, args...).Err()
}

// cutID is the stream id of keep ago by the Redis clock: entries before it
// are older than keep.
func (c *conn) cutID(ctx context.Context, keep time.Duration) (string, error) {
	now, err := c.rdb.Time(ctx).Result()
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(now.Add(-keep).UnixMilli(), 10) + "-0", nil
}

// The namespace's events bounds when it stores none (store.Settings).
const (
	DefaultEventsMaxLen     = 100_000
	DefaultEventsHardMaxLen = 1_000_000
)

// retainScript trims the events stream to the namespace's settings: to
// about events_max_len entries, but never past an entry a consumer group
// (a durable listener) was not yet delivered, up to events_hard_max_len;
// and, with events_hard_max_age_ms, the entries older than that, delivered
// or not.
//
// KEYS[1] -> events (stream)
// KEYS[2] -> settings (hash)
// KEYS[3] -> events lost (hash: group -> "after upTo")
// ARGV[1] -> default events max len
// ARGV[2] -> default events hard max len
//
// A group whose undelivered count Redis cannot tell (XINFO GROUPS' lag is
// null after deletions past its position, or before Redis 7.0) is taken as
// behind by the hard bound. MAXLEN ~ keeps at least as many entries as it
// is given, so the undelivered ones (the newest) stay. A group the hard
// bounds cut, here or at an append (more entries undelivered than are left; with its lag unknown, its
// last delivered id before the first entry left) gets its lost range
// recorded (its last delivered id, the first entry left), extended when
// one is recorded already.
// Returns {entries trimmed, max len, hard max len, the most entries a group
// was not delivered}.
var retainScript = redis.NewScript(`
local s = redis.call('HMGET', KEYS[2], 'events_max_len', 'events_hard_max_len', 'events_hard_max_age_ms')
local soft = tonumber(s[1] or ARGV[1])
local hard = math.max(tonumber(s[2] or ARGV[2]), soft)
local age = tonumber(s[3] or '0')
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, soft, hard, 0} end
local behind = 0
local groups = {}
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local gr = {lag = false}
  for i = 1, #g, 2 do
    if g[i] == 'name' then gr.name = g[i+1]
    elseif g[i] == 'last-delivered-id' then gr.last = g[i+1]
    elseif g[i] == 'lag' then gr.lag = g[i+1] end
  end
  groups[#groups + 1] = gr
  if not gr.lag then
    behind = hard
  elseif gr.lag > behind then
    behind = gr.lag
  end
end
local n = redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', math.min(math.max(soft, behind), hard))
if age > 0 then
  local t = redis.call('TIME')
  local cut = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - age
  n = n + redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', cut))
end
if #groups > 0 then
  -- This trim or the appends' (which keep to the hard bound) may have cut.
  local left = redis.call('XLEN', KEYS[1])
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  local function less(a, b)
    local am, as = string.match(a, '^(%d+)-(%d+)$')
    local bm, bs = string.match(b, '^(%d+)-(%d+)$')
    am, bm = tonumber(am), tonumber(bm)
    if am ~= bm then return am < bm end
    return tonumber(as) < tonumber(bs)
  end
  for _, g in ipairs(groups) do
    -- Cut: more entries undelivered than are left, or (lag unknown) its
    -- position before the first entry left.
    local cut = first and g.last and ((g.lag and g.lag > left) or (not g.lag and less(g.last, first[1])))
    if cut then
      local prev = redis.call('HGET', KEYS[3], g.name)
      local from = g.last
      if prev then from = string.match(prev, '^(%S+)') end
      redis.call('HSET', KEYS[3], g.name, from .. ' ' .. first[1])
    end
  end
end
return {n, soft, hard, behind}
`)

// Retention is what a RetainEvents pass found and did.
type Retention struct {
	// Trimmed counts the entries it removed.
	Trimmed int64
	// MaxLen and HardMaxLen are the namespace's bounds it applied.
	MaxLen, HardMaxLen int64
	// Behind is the most entries a durable listener's group was not yet
	// delivered (the hard bound when Redis cannot tell).
	Behind int64
}

// RetainEvents trims the events stream to the namespace's settings (see
// retainScript), and makes their hard bound the bound of this side's
// appends from now on. Planners and workers call it every second.
func (c *conn) RetainEvents(ctx context.Context) (Retention, error) {
	res, err := retainScript.Run(ctx, c.rdb, []string{c.keys.Events(), c.keys.Settings(), c.keys.EventsLost()}, DefaultEventsMaxLen, DefaultEventsHardMaxLen).Int64Slice()
	if err != nil {
		return Retention{}, fmt.Errorf("trim the events stream: %w", err)
	}
	r := Retention{Trimmed: res[0], MaxLen: res[1], HardMaxLen: res[2], Behind: res[3]}
	c.eventsMaxLen.Store(r.HardMaxLen)
	return r, nil
}
