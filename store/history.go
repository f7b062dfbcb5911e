package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
)

// Task statuses, as Status reports them.
const (
	StatusIdle    = "idle"    // nothing runs or waits to; the next slot is planned
	StatusRunning = "running" // a live worker runs a fire of it
	StatusPaused  = "paused"  // paused by hand: no slot is planned
	StatusDone    = "done"    // its trigger has no slot left, and nothing runs or waits
	StatusStuck   = "stuck"   // a due fire of it waits, and no live worker can run it
)

// Status is where task stands now, by its spec, its state and the workers
// registry, with the reason in plain words when it is stuck: idle, running
// (by a worker still live: one that died mid-run leaves a record that
// says running, and its fire waits to be reclaimed), paused, done, or
// stuck (its latest fire, due or appended ahead, has no outcome, and no
// live worker reads its queue, or none of those has a handler for it).
func Status(spec events.Spec, ts TaskState, workers []WorkerState) (status, why string) {
	if !ts.Paused.IsZero() {
		return StatusPaused, ""
	}
	live := func(node string) bool {
		for _, w := range workers {
			if w.Node == node {
				return w.Live
			}
		}
		return false
	}
	// (States drops a running record once its run's outcome is recorded:
	// one left is a run in progress, a retry's included.)
	if r := ts.Running; r != nil && live(r.Worker) {
		return StatusRunning, ""
	}
	// A fire appended ahead of its slot (a planner's lookahead) counts
	// too: no worker will take it when it is due either.
	if l := ts.Latest; l != nil && !hasOutcome(ts, l.Fire) && l.Status != events.StatusCompleted {
		queue := spec.WithDefaults().Queue
		readers, capable := 0, 0
		for _, w := range workers {
			if !w.Live || !slices.Contains(w.Queues, queue) {
				continue
			}
			readers++
			if _, ok := slices.BinarySearch(w.Tasks, spec.Name); ok {
				capable++
			}
		}
		switch {
		case readers == 0:
			return StatusStuck, fmt.Sprintf("no live worker reads queue %q", queue)
		case capable == 0:
			return StatusStuck, fmt.Sprintf("none of the %d live workers of queue %q has a handler for %s", readers, queue, spec.Name)
		}
	}
	if ts.Done {
		return StatusDone, ""
	}
	return StatusIdle, ""
}

// hasOutcome reports whether the state records an outcome of fire.
func hasOutcome(ts TaskState, fire string) bool {
	return ts.Outcome != nil && ts.Outcome.Fire == fire
}

// Slot outcomes in a task's history, besides the event types completed,
// failed, cancelled, dead and missed.
const (
	OutcomeRunning = "running" // a worker runs it now
	OutcomeWaiting = "waiting" // fired, not started yet
)

// Slot is one slot of a task's history: its outcome (completed, failed,
// dead, missed, cancelled; running or waiting for the slot in flight), the
// event that recorded it, and its times.
type Slot struct {
	Outcome string
	Fire    string
	// Scheduled is the slot; for a range of missed slots, the first, and
	// Until the last (Count slots in all).
	Scheduled time.Time
	// Due is when a jittered slot's fire was due (Fire.Due); zero
	// otherwise. Late counts from it when set.
	Due time.Time
	// Origin is events.OriginBackfill for a slot a backfill fired (its
	// Late is then how long it waited after it was fired); "" otherwise.
	Origin string
	Until  time.Time
	Count  int64
	// Fired is when its fire entry was appended; Started and Finished, the
	// run's, by its worker's clock (a dead letter without a run: Finished
	// is when it was recorded, Redis time).
	Fired    time.Time
	Started  time.Time
	Finished time.Time
	// Late is how long after the slot its first attempt started (a fire
	// still waiting: how long it has waited so far).
	Late    time.Duration
	Attempt int
	// Attempts is how many runs of the slot the history holds.
	Attempts int
	Worker   string
	CostMs   int64
	Error    string
	// Reason and Policy say why a slot was missed or a fire dead-lettered.
	Reason string
	Policy events.Misfire
	// Event is the id of the history entry of the outcome, and Recorded
	// its time: when the outcome or miss was recorded (Redis time).
	Event    string
	Recorded time.Time
}

// History is task's history, newest slot first (by slot, not by when it
// was recorded), at most limit slots
// (limit <= 0: all that are kept): the slot in flight (from its state:
// running, or fired and waiting), then one slot per fire with its latest
// outcome (a slot retried counts its attempts), and each missed range. It
// reads the history stream (Keys.History) and the task's state; now is
// for the lateness of a fire still waiting.
func (s *Store) History(ctx context.Context, task string, limit int, now time.Time) ([]Slot, error) {
	count := int64(-1)
	if limit > 0 {
		count = int64(limit) * 4 // a slot has up to three entries (failed, dead; retries more)
	}
	var msgs []redis.XMessage
	var err error
	if count > 0 {
		msgs, err = s.rdb.XRevRangeN(ctx, s.keys.History(task), "+", "-", count).Result()
	} else {
		msgs, err = s.rdb.XRevRange(ctx, s.keys.History(task), "+", "-").Result()
	}
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", task, err)
	}
	var out []Slot
	byFire := map[string]int{}
	for _, m := range msgs {
		fields := make(map[string]string, len(m.Values))
		for k, v := range m.Values {
			fields[k], _ = v.(string)
		}
		id := m.ID
		e, err := events.DecodeHistory(id, fields)
		if err != nil {
			return nil, fmt.Errorf("history of %q: entry %s: %w", task, id, err)
		}
		if e.Fire != "" {
			if k, seen := byFire[e.Fire]; seen {
				// An older entry of a slot already listed: an earlier
				// attempt, or the failure a dead letter follows.
				sl := &out[k]
				sl.Attempts = max(sl.Attempts, e.Attempt, 1)
				if !e.Fired.IsZero() {
					sl.Fired = e.Fired // the first attempt's entry is the slot's fire
				}
				if !e.Started.IsZero() {
					sl.Late = e.Started.Sub(sl.DueAt()) // the first attempt's, as older entries come
				}
				if sl.Outcome == string(events.TypeDead) && sl.Started.IsZero() && !e.Started.IsZero() {
					o := slotOf(e)
					sl.Started, sl.Finished, sl.CostMs, sl.Late, sl.Fired = o.Started, o.Finished, o.CostMs, o.Late, o.Fired
					if sl.Error == "" {
						sl.Error = e.Error
					}
				}
				continue
			}
			byFire[e.Fire] = len(out)
		}
		out = append(out, slotOf(e))
	}
	st, err := s.States(ctx, []string{task})
	if err != nil {
		return nil, err
	}
	if ts, ok := st[task]; ok {
		var head []Slot
		if r := ts.Running; r != nil {
			if k, seen := byFire[r.Fire]; seen {
				// A retry runs: the slot's earlier attempts failed.
				if sl := &out[k]; sl.Attempts < r.Attempt {
					sl.Outcome, sl.Started, sl.Finished, sl.Attempt, sl.Worker, sl.CostMs = OutcomeRunning, r.Started, time.Time{}, r.Attempt, r.Worker, 0
					sl.Attempts = r.Attempt
				}
			} else {
				head = append(head, Slot{Outcome: OutcomeRunning, Fire: r.Fire, Scheduled: r.Scheduled, Due: r.Due, Fired: r.Fired,
					Started: r.Started, Late: r.Started.Sub(r.DueAt()), Attempt: r.Attempt, Worker: r.Worker})
			}
		}
		if l := ts.Latest; l != nil && l.Status == events.StatusFired && (ts.Running == nil || ts.Running.Fire != l.Fire) {
			if _, done := byFire[l.Fire]; !done && !hasOutcome(ts, l.Fire) {
				sl := Slot{Outcome: OutcomeWaiting, Fire: l.Fire, Scheduled: l.Scheduled, Due: l.Due, Fired: l.Fired}
				if now.After(l.DueAt()) {
					sl.Late = now.Sub(l.DueAt())
				}
				head = append([]Slot{sl}, head...)
			}
		}
		out = append(head, out...)
	}
	// Newest slot first: planners with a lookahead, retries and
	// reclaims record slots out of order, and the one in flight may be
	// older than a slot already missed.
	slices.SortStableFunc(out, func(a, b Slot) int { return b.Scheduled.Compare(a.Scheduled) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// at is the time of a stream entry id (zero for none).
func at(id string) time.Time {
	t, _ := events.EntryTime(id)
	return t
}

// slotOf is the slot a history event records.
func slotOf(e events.Event) Slot {
	sl := Slot{Outcome: string(e.Type), Fire: e.Fire, Scheduled: e.At, Due: e.Due, Origin: e.Origin, Until: e.Until, Count: e.Count, Fired: e.Fired,
		Attempt: e.Attempt, Attempts: max(e.Attempt, 1), Worker: e.Worker, CostMs: e.CostMs, Error: e.Error,
		Reason: e.Reason, Policy: e.Policy, Event: e.ID, Recorded: at(e.ID)}
	if e.Type == events.TypeMissed {
		sl.Attempts = 0
		return sl
	}
	sl.Finished = at(e.ID)
	if !e.Started.IsZero() {
		sl.Started = e.Started
		sl.Finished = e.Started.Add(time.Duration(e.CostMs) * time.Millisecond)
		sl.Late = sl.Started.Sub(sl.DueAt())
	}
	return sl
}

// DueAt is when the slot's fire was due: Due, or Scheduled; Late counts
// from it. A backfill's fire was due when it was fired.
func (sl *Slot) DueAt() time.Time {
	if sl.Origin == events.OriginBackfill && !sl.Fired.IsZero() {
		return sl.Fired
	}
	return events.DueTime(sl.Scheduled, sl.Due)
}
