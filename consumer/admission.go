package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// admission decides which of the fires read, reclaimed or released run
// now: it dead-letters what cannot run (malformed, handed out too often),
// gives each fire its task's spec, runs a hand-written trigger's id once,
// holds early fires until their slot (earlyHold), and applies the overlap
// policies (in Redis for single-mode fires; localOverlap for broadcast
// ones). It owns none of that state, only the decision; what it drops is
// recorded through queue (Consumer.enqueue), and released from the claims.
// Fetch's goroutine only.
type admission struct {
	st            workerStore
	log           zerolog.Logger
	node          string
	maxDeliveries int64
	visibility    time.Duration // the running mark's ttl under an overlap policy
	specs         *specCache
	changes       *changeLog // nil: no fire is checked for staleness
	claims        *claims
	clock         *redisClock
	early         *earlyHold
	local         *localOverlap
	queue         func(*store.Outcome)               // records a dead letter or a missed event
	missed        func(events.Event)                 // counts a missed event a script recorded
	releasing     func(bool)                         // tells the outbox whether due early fires wait for runs
	stopped       func() bool                        // the worker is stopping: give up retries
	runs          func(task string) (known, ok bool) // whether the worker advertises a handler for task
	wait          *waitRoom                          // fires of tasks it has none for
}

// admit resolves specs, dead-letters what cannot run and applies the
// overlap policies; it returns what is to run.
func (a *admission) admit(ctx context.Context, ds []store.Delivery) []store.Delivery {
	now := a.clock.now() // for early fires
	out := ds[:0]
	for _, d := range ds {
		if d.Err != nil {
			a.queue(deadLetter(a.log, a.node, d, "malformed entry: "+d.Err.Error(), "", false))
			continue
		}
		var known bool
		d.Spec, known = a.specs.get(ctx, d.Fire.Task)
		if why := wrongStream(d, known); why != "" {
			a.queue(deadLetter(a.log, a.node, d, why, "", false))
			continue
		}
		if why := a.changes.tooBig(&d); why != "" {
			a.queue(deadLetter(a.log, a.node, d, why, "", false))
			continue
		}
		if d.Deliveries > a.maxDeliveries {
			a.queue(deadLetter(a.log, a.node, d, fmt.Sprintf("handed out %d times with no outcome: every worker that took it stopped answering", d.Deliveries), "", false))
			continue
		}
		if !a.firstTrigger(ctx, d) {
			continue
		}
		if o, late := lateSkip(a.node, d, now); late {
			a.queue(o)
			continue
		}
		if a.staleSkip(&d) {
			continue
		}
		if !a.runnable(ctx, d) {
			a.wait.add(d)
			continue
		}
		if a.early.hold(&d, now) {
			// Its overlap policy applies when it is due.
			continue
		}
		if a.overlapAdmits(ctx, &d) {
			out = append(out, d)
		}
	}
	return out
}

// wrongStream says why d, a fire of a task in the task set (known: its
// spec d.Spec is the stored one, defaults applied), came on the wrong kind
// of stream: a broadcast stream for a single-mode task (every worker would
// run it) or a single-mode stream for a broadcast one (one worker would);
// "" when it did not.
func wrongStream(d store.Delivery, known bool) string {
	if !known {
		return ""
	}
	mode := d.Spec.Mode
	switch {
	case d.Broadcast && mode != events.ModeBroadcast:
		return fmt.Sprintf("a broadcast stream entry for task %q, whose mode is %s: every worker would run it; append it to the queue's fires stream (taskino trigger does)", d.Fire.Task, mode)
	case !d.Broadcast && mode == events.ModeBroadcast:
		return fmt.Sprintf("a single-mode stream entry for task %q, whose mode is broadcast: one worker would run it; append it to the queue's broadcast stream (taskino trigger does)", d.Fire.Task)
	}
	return ""
}

// runnable says whether this worker can run d: it advertises a handler
// for d's task, or advertises none at all (nothing to go by), or d is a
// broadcast fire (every worker runs its own copy), or d's task is in no
// task set (the dispatcher dead-letters it). Otherwise d waits for a
// worker that can run it (waitRoom).
func (a *admission) runnable(ctx context.Context, d store.Delivery) bool {
	if d.Broadcast || a.runs == nil || a.wait == nil {
		return true
	}
	if known, ok := a.runs(d.Fire.Task); !known || ok {
		return true
	}
	return !a.specs.has(ctx, d.Fire.Task)
}

// nowRunnable returns the waiting fires this worker can now run (its
// handlers changed), past the early hold and their overlap policies.
func (a *admission) nowRunnable(ctx context.Context) []store.Delivery {
	if a.wait == nil {
		return nil
	}
	ready := a.wait.takeReady()
	if len(ready) == 0 {
		return nil
	}
	now := a.clock.now()
	out := ready[:0]
	for _, d := range ready {
		if a.early.hold(&d, now) || a.staleSkip(&d) {
			continue
		}
		if a.overlapAdmits(ctx, &d) {
			out = append(out, d)
		}
	}
	return out
}

// takeDue returns up to limit (at least one) early fires now due that are
// to run (their overlap policy admits them); the others stay held for the
// next Fetch, so a release of thousands at one instant is not copied out
// at once.
func (a *admission) takeDue(ctx context.Context, limit int) []store.Delivery {
	if a.early.len() == 0 {
		return nil
	}
	now := a.clock.now()
	limit = min(a.early.len(), max(limit, 1))
	out := make([]store.Delivery, 0, limit)
	for len(out) < limit {
		d, ok := a.early.popDue(now)
		if !ok {
			break
		}
		if a.staleSkip(d) {
			continue
		}
		if a.overlapAdmits(ctx, d) {
			out = append(out, *d)
		}
	}
	a.releasing(a.early.dueBy(now))
	return out
}

// staleSkip records missed a fire planned ahead whose task was paused,
// changed or removed after it was appended (changeLog.stale), instead of
// running it; it reports whether it did.
func (a *admission) staleSkip(d *store.Delivery) bool {
	reason := a.changes.stale(d)
	if reason == "" {
		return false
	}
	a.queue(&store.Outcome{Delivery: *d, Events: []events.Event{missedEvent(a.node, *d, PolicyStale, reason)}})
	return true
}

// overlapAdmits applies the task's overlap policy, if it has one.
func (a *admission) overlapAdmits(ctx context.Context, d *store.Delivery) bool {
	return d.Spec.Overlap == events.OverlapAllow || a.beginOverlap(ctx, d)
}

// firstTrigger makes a hand-written single-mode entry with an id field
// idempotent: only the first entry with that id runs. Entries taskino
// writes (planned fires, retries, buffered fires) carry the encoding
// version and are unique already.
func (a *admission) firstTrigger(ctx context.Context, d store.Delivery) bool {
	if d.Broadcast || d.Raw[events.FieldID] == "" || d.Raw[events.FieldV] != "" {
		return true
	}
	missed := missedEvent(a.node, d, "duplicate-id", "a trigger with this id was run already (ids are remembered for 24h)")
	var first bool
	if !a.retry(ctx, d, "trigger id check", func() (err error) {
		first, err = a.st.FirstTrigger(ctx, d, missed)
		return err
	}) {
		return false
	}
	if !first {
		a.claims.release(d)
		a.missed(missed)
	}
	return first
}

// beginOverlap applies the task's overlap policy; it reports whether the
// fire is to run now.
func (a *admission) beginOverlap(ctx context.Context, d *store.Delivery) bool {
	reason := "the previous run of the task was still running"
	if d.Spec.Overlap == events.OverlapCancelPrevious {
		// The only fire cancel-previous drops: an older slot than the one
		// running (a retry or a reclaim coming late).
		reason = "a newer slot of the task was running (overlap: cancel-previous runs the newest)"
	}
	missed := missedEvent(a.node, *d, events.Misfire("overlap-"+string(d.Spec.Overlap)), reason)
	if d.Broadcast {
		run, kept := a.local.begin(d, d.Spec.Overlap == events.OverlapBufferOne)
		if !run && !kept {
			a.queue(&store.Outcome{Delivery: *d, Events: []events.Event{missed}})
		}
		return run
	}
	var res store.BeginResult
	if !a.retry(ctx, *d, "overlap check", func() (err error) {
		res, err = a.st.Begin(ctx, *d, d.Spec.Overlap, a.visibility, missed)
		return err
	}) {
		return false
	}
	if res != store.BeginRun && res != store.BeginReplaced {
		a.claims.release(*d)
		if res == store.BeginSkipped {
			a.missed(missed)
		}
		return false
	}
	a.claims.markOverlap(*d)
	return true
}

// retry calls f until it succeeds, pacing the tries, and reports false
// when the worker stops first: d stays held, and the hand-back at stop
// gives it to another worker.
func (a *admission) retry(ctx context.Context, d store.Delivery, what string, f func() error) bool {
	b := store.NewBackoff()
	for {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil || a.stopped() {
			return false
		}
		wait := b.Next()
		if b.Report() {
			a.log.Warn().Err(err).Str("fire", d.Fire.ID).Int("failures", b.Failures()).Msg(what + " failed; retrying")
		}
		sleep(ctx, wait)
	}
}

// missedEvent is the missed event of a fire dropped under policy.
func missedEvent(node string, d store.Delivery, policy events.Misfire, reason string) events.Event {
	return events.Event{Type: events.TypeMissed, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Count: 1,
		Policy: policy, Worker: node, Queue: d.Queue, Reason: reason, Origin: d.Fire.Origin}
}
