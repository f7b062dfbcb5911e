package consumer

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// The Source side of a Consumer that records: Start, Finish and HandBack,
// and the outcomes they queue on the outbox.

// Start records that the run of d started (a started event).
func (c *Consumer) Start(d *store.Delivery) {
	// Not an outcome: no entry to ack, no condition, so a plain append
	// (see flushOnce), and no allocation per run while thousands start:
	// the queue holds, as values, what varies by run (a quarter of an
	// event's size).
	e := startRec{task: d.Fire.Task, fire: d.Fire.ID, queue: d.Queue, at: d.Fire.At, due: d.Fire.Due, origin: d.Fire.Origin, started: time.Now(), attempt: d.Fire.Attempt}
	c.outbox.start(e)
}

// Finish records how the run of d ended: completed, failed and retried,
// failed and dead-lettered, or handed back unfinished. It does not block:
// outcomes are written in batches, and kept while Redis is unreachable.
func (c *Consumer) Finish(d *store.Delivery, r Result) {
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		c.reader.noteRun(r.Finished.Sub(r.Started))
	}
	overlap := d.Spec.Overlap != events.OverlapAllow && d.Spec.Overlap != ""
	if overlap && d.Broadcast {
		c.local.end(d.Fire.Task) // a fire it kept waiting takes the run
	}
	if r.Next == Replaced {
		c.enqueue(c.replaced(d, r, overlap && !d.Broadcast))
		return
	}
	if r.Next == HandBack || r.Next == Abandon {
		if !r.Started.IsZero() || r.Next == Abandon {
			c.cancelled(d, r)
		}
		switch {
		case d.Broadcast:
		case r.Next == Abandon:
			c.claims.abandon(*d)
		default:
			c.claims.handBack([]store.Delivery{*d})
		}
		return
	}
	// A decision missing its parts still records what it says: a retry
	// or a dead letter is a failure, and a dead letter has a reason (the
	// store writes none without one).
	if r.Next == Retry || r.Next == Dead {
		if r.Err == nil && !r.Started.IsZero() {
			r.Err = errors.New("failed (the source was given no error)")
		}
		if r.Reason == "" {
			r.Reason = "dead-lettered (the source was given no reason)"
			if r.Next == Retry {
				r.Reason = "retried (the source was given no reason)"
			}
		}
	}
	if r.Next == Dead && r.Started.IsZero() {
		lastErr := ""
		if r.Err != nil {
			lastErr = clean(r.Err.Error())
		}
		c.enqueue(deadLetter(c.log, c.cfg.Node, *d, r.Reason, lastErr, overlap && !d.Broadcast))
		return
	}
	// The outcome is built where it is queued, in place: a run's
	// goroutine that copied it and its events through locals would
	// outgrow its first stack, and thousands of runs start at one instant.
	o := &store.Outcome{Delivery: *d, EndOverlap: overlap && !d.Broadcast,
		LastRun: &events.LastRun{Task: d.Fire.Task, Fire: d.Fire.ID, Scheduled: d.Fire.At, Due: d.Fire.Due, Started: r.Started, Finished: r.Finished,
			Attempt: d.Fire.Attempt, Worker: c.cfg.Node}}
	var fired time.Time // when the slot's fire was appended: a retry's entry is younger
	if d.Fire.Attempt <= 1 {
		fired, _ = events.EntryTime(d.EntryID)
	}
	ne := 1 // a failure may add its retried or dead event
	if r.Err != nil {
		ne = 2
	}
	o.Events = make([]events.Event, 1, ne)
	e := &o.Events[0]
	e.Task, e.Fire, e.At, e.Attempt, e.Worker, e.Queue = d.Fire.Task, d.Fire.ID, d.Fire.At, d.Fire.Attempt, c.cfg.Node, d.Queue
	e.CostMs, e.Output, e.Fired, e.Started, e.Due, e.Origin = r.Finished.Sub(r.Started).Milliseconds(), cleanTail(r.Output), fired, r.Started, d.Fire.Due, d.Fire.Origin
	if r.Err == nil {
		e.Type, e.Status = events.TypeCompleted, events.StatusCompleted
		o.LastRun.Status = events.StatusCompleted
	} else {
		msg := clean(r.Err.Error())
		e.Type, e.Status, e.Error = events.TypeFailed, events.StatusFailed, msg
		o.LastRun.Status, o.LastRun.Error = events.StatusFailed, msg
		next := events.Event{Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Attempt: d.Fire.Attempt, Worker: c.cfg.Node, Error: msg, Origin: d.Fire.Origin}
		switch {
		case r.Next == Retry && !d.Broadcast:
			next.Type, next.Attempt, next.Reason = events.TypeRetried, d.Fire.Attempt+1, clean(r.Reason)
			o.Events = append(o.Events, next)
			o.RetryIn = max(r.RetryIn, time.Millisecond)
		case r.Next == Dead:
			next.Type, next.Reason, next.Queue, next.Fired = events.TypeDead, clean(r.Reason), d.Queue, fired
			o.Events = append(o.Events, next)
			o.LastRun.Status = events.StatusDead
			o.Dead, o.DeadError = next.Reason, msg
		}
	}
	c.enqueue(o)
	if o.RetryIn > 0 {
		c.retries.poke()
	}
}

// replaced is the outcome of a run cut for a newer fire of its task
// (overlap cancel-previous): a cancelled event, final (the entry is
// acked); endOverlap ends its hold, which the newer fire has taken over
// already, so the running mark stays the newer one's.
func (c *Consumer) replaced(d *store.Delivery, r Result, endOverlap bool) *store.Outcome {
	e := events.Event{Type: events.TypeCancelled, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Due: d.Fire.Due, Origin: d.Fire.Origin, Attempt: d.Fire.Attempt,
		Worker: c.cfg.Node, Queue: d.Queue, Reason: clean(r.Reason), Output: cleanTail(r.Output), Started: r.Started}
	if e.Reason == "" {
		e.Reason = events.ReplacedPrefix + "a newer fire (overlap: cancel-previous)"
	}
	if r.Err != nil {
		e.Error = clean(r.Err.Error())
	}
	if d.Fire.Attempt <= 1 {
		e.Fired, _ = events.EntryTime(d.EntryID)
	}
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		e.CostMs = max(r.Finished.Sub(r.Started), 0).Milliseconds()
	}
	return &store.Outcome{Delivery: *d, Events: []events.Event{e}, EndOverlap: endOverlap}
}

// cancelled records a run cut by a stop (a cancelled event), before its
// fire is handed back or abandoned: at once, not through the outbox, which
// could write it after the hand-back. A stop cuts few runs.
func (c *Consumer) cancelled(d *store.Delivery, r Result) {
	e := events.Event{Type: events.TypeCancelled, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Due: d.Fire.Due, Origin: d.Fire.Origin, Attempt: d.Fire.Attempt,
		Worker: c.cfg.Node, Queue: d.Queue, Reason: clean(r.Reason), Output: cleanTail(r.Output)}
	if e.Reason == "" {
		e.Reason = "the worker stopped"
	}
	if d.Fire.Attempt <= 1 {
		e.Fired, _ = events.EntryTime(d.EntryID)
	}
	if !r.Started.IsZero() {
		e.Started = r.Started
		end := r.Finished
		if end.IsZero() { // abandoned: still running
			end = time.Now()
		}
		e.CostMs = max(end.Sub(r.Started), 0).Milliseconds()
	}
	if r.Err != nil {
		e.Error = clean(r.Err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.st.AppendOutcome(ctx, e); err != nil {
		c.log.Warn().Err(err).Str("fire", d.Fire.ID).Msg("record a cancelled run")
	}
}

func (c *Consumer) enqueue(o *store.Outcome) {
	if o.Dead != "" && c.cfg.Metrics != nil {
		c.cfg.Metrics.DeadLettered(o.Delivery.Fire.Task)
	}
	for _, e := range o.Events {
		if e.Type == events.TypeMissed {
			c.missed(e)
		}
	}
	// Marked before it is queued: a stop hands back every held fire not
	// marked, and one with its outcome queued must not run again.
	c.claims.markQueued(o.Delivery)
	c.outbox.add(o)
}

// missed tells the metrics, when they count misses, of a missed event
// recorded.
func (c *Consumer) missed(e events.Event) {
	if mm, ok := c.cfg.Metrics.(MissedMetrics); ok {
		mm.Missed(e)
	}
}

// deadLetter is d's dead letter, logged; endOverlap also ends its overlap
// hold (a fire that began under skip or buffer-one).
func deadLetter(log zerolog.Logger, node string, d store.Delivery, reason, lastErr string, endOverlap bool) *store.Outcome {
	e := events.Event{Type: events.TypeDead, Reason: clean(reason), Worker: node, Queue: d.Queue, Error: clean(lastErr)}
	if d.Err == nil {
		e.Task, e.Fire, e.At, e.Attempt, e.Origin = d.Fire.Task, d.Fire.ID, d.Fire.At, d.Fire.Attempt, d.Fire.Origin
	}
	log.Warn().Str("entry", d.EntryID).Str("stream", d.Stream).Str("reason", e.Reason).Msg("dead-lettered")
	o := &store.Outcome{Delivery: d, Events: []events.Event{e}, Dead: e.Reason, DeadError: e.Error, EndOverlap: endOverlap}
	if d.Err == nil && d.Fire.Task != "" {
		// A fire of a known task: its slot's outcome.
		errText := e.Error
		if errText == "" {
			errText = e.Reason
		}
		o.LastRun = &events.LastRun{Task: d.Fire.Task, Fire: d.Fire.ID, Scheduled: d.Fire.At, Due: d.Fire.Due, Status: events.StatusDead,
			Error: errText, Attempt: d.Fire.Attempt, Worker: node}
	}
	return o
}

// maxText bounds an error text kept in an event (a panic's stack included).
const maxText = 8 << 10

// clean makes text fit an event field: valid UTF-8, at most maxText bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxText {
		s = strings.ToValidUTF8(s[:maxText], "") + "..."
	}
	return s
}

// cleanTail is clean keeping the end of s, where a run's last words are.
func cleanTail(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxText {
		s = "..." + strings.ToValidUTF8(s[len(s)-maxText:], "")
	}
	return s
}

// Unhandled takes back d, returned by Fetch, whose task the dispatcher
// found no handler for (one removed after d was read): while the task is
// in the task set, d waits with the fires of tasks this worker has no
// handler for (routed to a worker that has one; see the package doc) and
// Unhandled reports true; otherwise (a broadcast fire, or a task in no
// task set) it reports false, and the dispatcher dead-letters d.
func (c *Consumer) Unhandled(d *store.Delivery) bool {
	if d.Broadcast || !c.specs.has(context.Background(), d.Fire.Task) {
		return false
	}
	c.claims.markIn(*d)
	c.adm.wait.add(*d)
	return true
}

// HandBack gives up fires returned by Fetch that will not be started (read
// ahead and still waiting, or a stopping dispatcher's): the single-mode
// ones in one round trip, so the next reclaim by any worker takes them at
// once; a broadcast one is not run here, as Finish with HandBack does.
func (c *Consumer) HandBack(ds []store.Delivery) {
	var single []store.Delivery
	for i, d := range ds {
		if d.Broadcast {
			c.Finish(&ds[i], Result{Next: HandBack}) // ends its overlap state here
		} else {
			single = append(single, d)
		}
	}
	c.claims.handBack(single)
}
