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
	// stream, historyLen of every append to a task's history.
	eventsMaxLen, historyLen int64
}

// Planning is the planning side's steps on one namespace. It is safe for
// concurrent use.
type Planning struct{ conn }

// Worker is the worker side's steps on one namespace. It is safe for
// concurrent use.
type Worker struct{ conn }

// NewPlanning returns the planning steps on rdb, with the namespace's key
// names, appending events trimmed to about eventsMaxLen entries and each
// task's history to at least historyLen.
func NewPlanning(rdb redis.UniversalClient, keys core.Keys, eventsMaxLen, historyLen int64) *Planning {
	return &Planning{conn{rdb: rdb, keys: keys, eventsMaxLen: eventsMaxLen, historyLen: historyLen}}
}

// NewWorker returns the worker steps on rdb, as NewPlanning.
func NewWorker(rdb redis.UniversalClient, keys core.Keys, eventsMaxLen, historyLen int64) *Worker {
	return &Worker{conn{rdb: rdb, keys: keys, eventsMaxLen: eventsMaxLen, historyLen: historyLen}}
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
	return e.AppendArgs(append(make([]any, 0, 6+24), "xadd", c.keys.Events(), "maxlen", "~", c.eventsMaxLen, "*"))
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
