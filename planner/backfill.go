package planner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// MaxBackfillSlots bounds the slots one Backfill covers (a year of
// minutely slots is 525,600).
const MaxBackfillSlots = 1_000_000

// BackfillOptions tunes Backfill.
type BackfillOptions struct {
	// Overlap is how the backfill's fires may overlap one another: allow
	// keeps up to Window of them appended and not yet finished at once;
	// skip, buffer-one and cancel-previous append one at a time, each
	// once the one before has its final outcome, so the task's own overlap
	// policy neither drops nor cuts them. "": the task's policy.
	Overlap events.Overlap
	// Window bounds the fires appended and not yet finished under allow
	// (default 10, at most 10,000).
	Window int
	// Unchecked fires the slots older than the events stream reaches,
	// whose fires (if any) Backfill cannot see: one that fired then runs
	// again. Without it such slots are an error naming the oldest
	// checkable time.
	Unchecked bool
	// DryRun reports what would be fired and appends nothing.
	DryRun bool
	// By names who backfills, in the fired events (default "backfill").
	By string
	// Progress, when set, is called after each fire appended and each
	// outcome read, with the report so far (from Backfill's goroutine).
	Progress func(BackfillReport)
	// Poll bounds each wait for outcomes on the events stream (default
	// 1s); the wait ends as soon as one arrives.
	Poll time.Duration
	// HistoryEvery is how long Backfill waits without an outcome before it
	// looks for outcomes in the task's history too: those the events
	// stream lost (trimmed) before Backfill read them (default 5s).
	HistoryEvery time.Duration
}

// BackfillReport says what a Backfill did (or, DryRun, would do).
type BackfillReport struct {
	// Slots are the trigger's slots in the range.
	Slots int
	// Fired are the slots appended (DryRun: to be appended), in order.
	Fired []time.Time
	// AlreadyFired are slots not fired again: a planner fired them, or
	// an earlier backfill did (Why says which, by slot).
	AlreadyFired []time.Time
	Why          map[time.Time]string
	// Excluded are slots the trigger's except rules exclude.
	Excluded []time.Time
	// Outcomes counts the final outcomes of the fires appended:
	// completed, dead, missed, cancelled, or failed (a broadcast fire).
	Outcomes map[string]int
	// Done counts the fires appended that have their final outcome.
	Done int
}

// Backfill fires every slot of task's trigger from from to to (both
// included) that has not fired: each once overall, marked as a backfill's
// (origin backfill on the fire and on its events and history entries), in
// order, paced (see BackfillOptions.Overlap) so a long range does not flood
// the queue, and waits for each one's final outcome. A slot a planner
// fired (its fired event, or an outcome in the task's history) or an
// earlier backfill fired is not fired again, and is reported. Slots after
// the task's watermark and not before its registration are the planners'
// to fire: a range reaching them is cut there, with an error naming the
// watermark. Slots older than the events stream reaches are an error
// unless Unchecked. It returns when every fire appended has its final
// outcome, or ctx ends.
func Backfill(ctx context.Context, st *store.Store, task string, from, to time.Time, opts BackfillOptions) (BackfillReport, error) {
	rep := BackfillReport{Why: map[time.Time]string{}, Outcomes: map[string]int{}}
	spec, err := st.Spec(ctx, task)
	if err != nil {
		return rep, fmt.Errorf("backfill %q: %w", task, err)
	}
	spec = spec.WithDefaults()
	if opts.Overlap == "" {
		opts.Overlap = spec.Overlap
	}
	switch {
	case to.Before(from):
		return rep, fmt.Errorf("backfill %q: --to %s is before --from %s", task, to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	case opts.Window < 0 || opts.Window > 10_000:
		return rep, fmt.Errorf("backfill %q: window %d; want 1 to 10000 (0: 10)", task, opts.Window)
	}
	switch opts.Overlap {
	case events.OverlapAllow, events.OverlapSkip, events.OverlapBufferOne, events.OverlapCancelPrevious:
	default:
		return rep, fmt.Errorf("backfill %q: overlap %q; want allow, skip, buffer-one or cancel-previous", task, opts.Overlap)
	}
	if opts.Window == 0 {
		opts.Window = 10
	}
	if opts.Overlap != events.OverlapAllow {
		opts.Window = 1
	}
	if opts.By == "" {
		opts.By = "backfill"
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.HistoryEvery <= 0 {
		opts.HistoryEvery = 5 * time.Second
	}
	sched, err := Compile(spec.Trigger)
	if err != nil {
		return rep, fmt.Errorf("backfill %q: %w", task, err)
	}
	ts, err := st.State(ctx, task)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return rep, fmt.Errorf("backfill %q: %w", task, err)
	}

	// The slots of the range: those a planner will still plan (after the
	// watermark, and not before the registration) are not a backfill's.
	var slots []time.Time
	ex, _ := sched.(Excluder)
	var cut time.Time
	for t, ok := sched.Next(from.Add(-time.Millisecond)); ok && !t.After(to); t, ok = sched.Next(t) {
		if t.After(ts.Planned) && !t.Before(ts.Since) {
			cut = t
			break
		}
		rep.Slots++
		if rep.Slots > MaxBackfillSlots {
			return rep, fmt.Errorf("backfill %q: more than %d slots from %s to %s; backfill a shorter range at a time", task, MaxBackfillSlots, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
		}
		if ex != nil && ex.Excluded(t) != "" {
			rep.Excluded = append(rep.Excluded, t)
			continue
		}
		slots = append(slots, t)
	}
	if !cut.IsZero() {
		return rep, fmt.Errorf("backfill %q: the slot %s (and any after it) is the planners' to fire: the latest slot planned is %s; end --to before it",
			task, cut.UTC().Format(time.RFC3339Nano), planned(ts.Planned))
	}

	// What fired: fired events and outcomes in the history.
	firedSlots, oldest, err := firedSince(ctx, st, task, from.Add(-MaxLookahead))
	if err != nil {
		return rep, fmt.Errorf("backfill %q: %w", task, err)
	}
	if len(slots) > 0 && !opts.Unchecked && !oldest.IsZero() && slots[0].Before(oldest.Add(MaxLookahead)) {
		return rep, fmt.Errorf("backfill %q: the events stream reaches back to %s only, so whether the slots before %s fired cannot be checked; backfill from then on, or pass --unchecked (a slot that fired then runs again)",
			task, oldest.UTC().Format(time.RFC3339), oldest.Add(MaxLookahead).UTC().Format(time.RFC3339))
	}
	todo := slots[:0]
	for _, s := range slots {
		if why, ok := firedSlots[s.UnixMilli()]; ok {
			rep.AlreadyFired = append(rep.AlreadyFired, s)
			rep.Why[s] = why
			continue
		}
		todo = append(todo, s)
	}
	if opts.DryRun {
		rep.Fired = todo
		return rep, nil
	}

	// Append, paced, and wait for the outcomes: on the events stream, and
	// in the task's history for those the stream lost before they were
	// read (trimmed, in a busy namespace with a short events bound),
	// looked up whenever HistoryEvery passes without an outcome. Only
	// history recorded since the start counts.
	started, err := st.Time(ctx)
	if err != nil {
		return rep, fmt.Errorf("backfill %q: %w", task, err)
	}
	after, err := st.LastEntryID(ctx, st.Keys().Events())
	if err != nil {
		return rep, fmt.Errorf("backfill %q: %w", task, err)
	}
	lastOutcome := time.Now()
	outstanding := map[string]bool{} // fire ids appended, no final outcome yet
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(rep)
		}
	}
	for len(todo) > 0 || len(outstanding) > 0 {
		if n := min(opts.Window-len(outstanding), len(todo)); n > 0 {
			batch := todo[:n]
			todo = todo[n:]
			ids, err := st.AppendBackfill(ctx, spec, batch, opts.By)
			if err != nil {
				return rep, err
			}
			for i, s := range batch {
				if ids[i] == "" {
					rep.AlreadyFired = append(rep.AlreadyFired, s)
					rep.Why[s] = "an earlier backfill fired it"
					continue
				}
				rep.Fired = append(rep.Fired, s)
				outstanding[events.FireID(task, s)] = true
			}
			progress()
			continue
		}
		es, next, err := st.ReadEvents(ctx, after, 1000, opts.Poll)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			return rep, fmt.Errorf("backfill %q: read outcomes: %w", task, err)
		}
		after = next
		if time.Since(lastOutcome) >= opts.HistoryEvery {
			lastOutcome = time.Now()
			n := rep.Done
			if err := outcomesFromHistory(ctx, st, spec, started, outstanding, &rep); err != nil {
				return rep, err
			}
			if rep.Done > n {
				progress()
			}
		}
		for _, ee := range es {
			e := ee.Event
			if ee.Err != nil || e.Task != task || e.Origin != events.OriginBackfill || !outstanding[e.Fire] {
				continue
			}
			if final(e, spec.Mode) {
				if err := settle(ctx, st, task, outstanding, &rep, e.Fire, e.Type, e.At); err != nil {
					return rep, err
				}
				lastOutcome = time.Now()
				progress()
			}
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// outcomesFromHistory finds in task's history the final outcomes, recorded
// since since, of the outstanding fires (those the events stream lost
// before Backfill read them), counts them in rep and forgets them.
func outcomesFromHistory(ctx context.Context, st *store.Store, spec events.Spec, since time.Time, outstanding map[string]bool, rep *BackfillReport) error {
	hist, err := st.History(ctx, spec.Name, 0, time.Now())
	if err != nil {
		return fmt.Errorf("backfill %q: read the task's history for outcomes the events stream lost: %w", spec.Name, err)
	}
	for _, h := range hist {
		if !outstanding[h.Fire] || h.Recorded.Before(since) {
			continue
		}
		e := events.Event{Type: events.Type(h.Outcome), Reason: h.Reason}
		if final(e, spec.Mode) {
			if err := settle(ctx, st, spec.Name, outstanding, rep, h.Fire, e.Type, h.Scheduled); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle records the final outcome typ of the backfilled fire of slot at
// in rep, and stops waiting for it.
func settle(ctx context.Context, st *store.Store, task string, outstanding map[string]bool, rep *BackfillReport, fire string, typ events.Type, at time.Time) error {
	delete(outstanding, fire)
	rep.Outcomes[string(typ)]++
	rep.Done++
	if typ == events.TypeMissed || typ == events.TypeCancelled {
		// It did not run (the task's overlap policy dropped it, or a newer
		// fire replaced it): a later backfill may fire the slot again.
		if err := st.ForgetBackfill(ctx, task, at); err != nil {
			return fmt.Errorf("backfill %q: %w", task, err)
		}
	}
	return nil
}

// final says whether e ends a backfilled fire: completed, dead, missed (an
// overlap policy dropped it), cancelled for a newer fire, or failed when
// nothing follows a failure (a broadcast fire). A cancelled event of a
// stop is not final: the fire runs again.
func final(e events.Event, mode events.Mode) bool {
	switch e.Type {
	case events.TypeCompleted, events.TypeDead, events.TypeMissed:
		return true
	case events.TypeFailed:
		return mode == events.ModeBroadcast
	case events.TypeCancelled:
		return strings.HasPrefix(e.Reason, events.ReplacedPrefix)
	}
	return false
}

// planned is a watermark for people: a time, or "none".
func planned(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// firedSince reads what fired of task: the slots of its fired events
// appended since since (a planner's or a backfill's), and of its history's
// outcomes (completed, failed, dead, cancelled: a run; a missed slot did
// not fire), each with why; and the time the events stream reaches back to
// (store.StreamReach: zero when it holds every event ever appended).
func firedSince(ctx context.Context, st *store.Store, task string, since time.Time) (map[int64]string, time.Time, error) {
	out := map[int64]string{}
	oldest, err := st.StreamReach(ctx, st.Keys().Events())
	if err != nil {
		return nil, time.Time{}, err
	}
	after := strconv.FormatInt(max(since.UnixMilli(), 0), 10) + "-0"
	for {
		es, next, err := st.ReadEvents(ctx, after, 10_000, 0)
		if err != nil {
			return nil, time.Time{}, err
		}
		for _, ee := range es {
			e := ee.Event
			if ee.Err == nil && e.Task == task && e.Type == events.TypeFired {
				why := "a planner fired it (fired event " + ee.ID + ")"
				if e.Origin == events.OriginBackfill {
					why = "an earlier backfill fired it (fired event " + ee.ID + ")"
				}
				out[e.At.UnixMilli()] = why
			}
		}
		if len(es) == 0 || next == after {
			break
		}
		after = next
	}
	hist, err := st.History(ctx, task, 0, time.Now())
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, h := range hist {
		switch h.Outcome {
		case string(events.TypeCompleted), string(events.TypeFailed), string(events.TypeDead), string(events.TypeCancelled), store.OutcomeRunning, store.OutcomeWaiting:
			if _, ok := out[h.Scheduled.UnixMilli()]; !ok {
				out[h.Scheduled.UnixMilli()] = "it ran (" + h.Outcome + " in the task's history)"
			}
		}
	}
	return out, oldest, nil
}
