package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// TestPauseAndResume: a paused task fires no slot while a control task goes
// on firing; a reload keeps it paused; resume appends one missed event
// counting the skipped slots and the task fires again from then on.
func TestPauseAndResume(t *testing.T) {
	b := setup(t)
	every := 100 * time.Millisecond
	specs := []events.Spec{
		{Name: "paused", Trigger: events.Every(every)},
		{Name: "control", Trigger: events.Every(every)},
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}
	// No lookahead: the planner's own accounting of the pause is checked
	// here; fires appended ahead of a pause are the worker's to drop
	// (TestLookaheadObeysPauseAndChangeWithBinaries).
	startPlanner(t, b, planner.Config{NoLookahead: true}, nil)
	awaitEvent(t, b, 30*time.Second, events.TypeFired, func(e events.Event) bool { return e.Task == "paused" })

	pausedAt, err := planner.Pause(b.ctx, b.st, "paused", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Pause(b.ctx, b.st, "paused", "test"); !errors.Is(err, store.ErrAlreadyPaused) {
		t.Errorf("a second pause returned %v, want ErrAlreadyPaused", err)
	}
	if _, err := planner.Pause(b.ctx, b.st, "nobody", "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pausing an unknown task returned %v, want ErrNotFound", err)
	}
	if _, err := planner.Resume(b.ctx, b.st, "control", "test"); !errors.Is(err, store.ErrNotPaused) {
		t.Errorf("resuming a running task returned %v, want ErrNotPaused", err)
	}
	// A reload that changes the paused task's schedule keeps it paused.
	specs[0].Trigger = events.Every(2 * every)
	if _, err := planner.Apply(b.ctx, b.st, 2, specs); err != nil {
		t.Fatal(err)
	}
	// While paused, the control task fires 10 more slots.
	controlAfterPause := func(all []events.Event) int {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeFired && e.Task == "control" && e.At.After(pausedAt) {
				n++
			}
		}
		return n
	}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return controlAfterPause(all) >= 10 })
	if ts, err := b.st.State(b.ctx, "paused"); err != nil || !ts.Paused.Equal(pausedAt) {
		t.Errorf("state %+v (err %v), want paused at %s", ts, err, pausedAt)
	}

	if done, err := planner.Resume(b.ctx, b.st, "paused", "test"); err != nil || done {
		t.Fatalf("resume: done %v, %v; want the task planned again", done, err)
	}
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		for _, e := range all {
			if e.Type == events.TypeResumed {
				for _, f := range all {
					if f.Type == events.TypeFired && f.Task == "paused" && f.ID > e.ID {
						return true
					}
				}
			}
		}
		return false
	})
	var resumed, missed events.Event
	for _, e := range all {
		switch {
		case e.Type == events.TypePaused && e.Task == "paused":
			if e.Worker != "test" {
				t.Errorf("paused event %+v does not name who paused", e)
			}
		case e.Type == events.TypeResumed:
			resumed = e
		case e.Type == events.TypeMissed && e.Task == "paused":
			missed = e
		}
	}
	if resumed.ID == "" {
		t.Fatal("no resumed event")
	}
	// The skipped slots: every 200ms (the reloaded schedule) from the
	// reload that rescheduled it (or the pause, if later) to the resume,
	// give or take the slot at either end. Those times come from the
	// events' entry ids, Redis's clock: a loaded machine may reload late.
	var reloadMs int64
	for _, e := range all {
		if e.Type == events.TypeReload && e.Version == 2 {
			reloadMs = entryMs(t, e.ID)
		}
	}
	const step = int64(200)
	from, to := max(pausedAt.UnixMilli(), reloadMs), entryMs(t, resumed.ID)
	want := to/step - from/step // the multiples of 200ms in (from, to]
	if missed.Reason != "paused" || missed.Policy != events.MisfireSkip || missed.Count < max(want-1, 1) || missed.Count > want+1 {
		t.Errorf("missed event %+v, want the paused slots counted: %d (from %d to %d ms), give or take one", missed, want, from, to)
	}
	for _, e := range all {
		// A slot at the pause's very millisecond may have fired just before it.
		if e.Type == events.TypeFired && e.Task == "paused" && e.At.After(pausedAt) && e.ID < resumed.ID {
			t.Errorf("slot %s fired while the task was paused (event %s)", e.At, e.ID)
		}
		if e.Type == events.TypeFired && e.Task == "paused" && e.ID > resumed.ID && !missed.Until.IsZero() && !e.At.After(missed.Until) {
			t.Errorf("slot %s fired after the resume but was counted missed (until %s)", e.At, missed.Until)
		}
	}
}

// TestDeadLetterReplay: a fire that failed its attempts is listed on the
// dead-letter stream; a replay runs it again as a first attempt with the
// same fire id, removes the dead letter, and a second replay of it does
// nothing. An entry that never decoded goes back byte for byte.
func TestDeadLetterReplay(t *testing.T) {
	b := setup(t)
	var healthy atomic.Bool
	w := startWorker(t, b, consumer.Config{}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"fragile": func(ctx context.Context, f events.Fire) error {
			if !healthy.Load() {
				return fmt.Errorf("attempt %d: down", f.Attempt)
			}
			return nil
		},
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "fragile", Attempts: 1, Payload: "p"})
	if _, err := b.st.Trigger(b.ctx, "fragile", "", "job-7"); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires("default"), Values: []any{"tsk", "typo"}}).Err(); err != nil {
		t.Fatal(err)
	}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeDead)) == 2 })

	letters, err := b.st.ListDead(b.ctx, "-", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want 2", len(letters))
	}
	// Which one was dead-lettered first depends on the read batch.
	fire, bad := letters[0], letters[1]
	if bad.Task() != "" {
		fire, bad = bad, fire
	}
	if fire.Task() != "fragile" || fire.Error != "attempt 1: down" || fire.Source != b.st.Keys().Fires("default") || fire.Fields[events.FieldID] != "job-7" {
		t.Errorf("dead letter %+v, want the fire of fragile with its error, source and fields", fire)
	}
	if bad.Fields["tsk"] != "typo" || bad.Task() != "" {
		t.Errorf("dead letter %+v, want the malformed entry's fields", bad)
	}

	healthy.Store(true)
	if _, err := b.st.Replay(b.ctx, fire, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Replay(b.ctx, fire, "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a second replay returned %v, want ErrNotFound", err)
	}
	all := awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "job-7" })
	var replayed bool
	for _, e := range all {
		if e.Type == events.TypeRetried && e.Fire == "job-7" && e.Attempt == 1 && e.Worker == "test" {
			replayed = true
		}
		if e.Type == events.TypeCompleted && e.Fire == "job-7" && e.Attempt != 1 {
			t.Errorf("the replayed fire ran as attempt %d, want 1", e.Attempt)
		}
	}
	if !replayed {
		t.Error("no retried event records the replay")
	}

	// The malformed entry goes back as it was, and is dead-lettered again.
	if _, err := b.st.Replay(b.ctx, bad, "test"); err != nil {
		t.Fatal(err)
	}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeDead)) == 3 })
	letters, err = b.st.ListDead(b.ctx, "-", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].Fields["tsk"] != "typo" || letters[0].ID == bad.ID {
		t.Errorf("dead letters after the replays: %+v, want only the malformed entry, dead-lettered anew", letters)
	}
	assertNothingPending(t, b, "default")

	// A broadcast fire's dead letter is not replayed: every worker ran the
	// fire, and a replay would run it on all of them again.
	bc := store.DeadLetter{ID: "1-1", Source: b.st.Keys().Broadcast("default"), Entry: "1-1",
		Fields: map[string]string{events.FieldTask: "fragile"}}
	if _, err := b.st.Replay(b.ctx, bc, "test"); !errors.Is(err, store.ErrNotReplayable) {
		t.Errorf("replaying a broadcast dead letter returned %v, want ErrNotReplayable", err)
	}
}

// TestResumeCountsOverdueSlots: slots already due when a task was paused
// (no planner ran) are recorded as missed on resume, with the paused ones.
func TestResumeCountsOverdueSlots(t *testing.T) {
	b := setup(t)
	applied, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	applied = applied.Truncate(time.Millisecond) // as the registration is kept
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{{Name: "t", Trigger: events.Every(100 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	// No planner runs: wait on Redis's clock for 5 slots to be overdue.
	for {
		now, err := b.st.Time(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now.Sub(applied) > 600*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	pausedAt, err := planner.Pause(b.ctx, b.st, "t", "test")
	if err != nil {
		t.Fatal(err)
	}
	if done, err := planner.Resume(b.ctx, b.st, "t", "test"); err != nil || done {
		t.Fatalf("resume: done %v, %v; want the task planned again", done, err)
	}
	all := awaitEvent(t, b, 30*time.Second, events.TypeResumed, nil)
	missed := ofType(all, events.TypeMissed)
	if len(missed) != 1 {
		t.Fatalf("%d missed events, want 1", len(missed))
	}
	m := missed[0]
	if m.Count < 5 || !m.At.Before(pausedAt) || m.At.Before(applied) {
		t.Errorf("missed %+v: want the overdue slots from the apply (%s) on, before the pause (%s), counted", m, applied, pausedAt)
	}
	if ts, err := b.st.State(b.ctx, "t"); err != nil || !ts.Paused.IsZero() {
		t.Errorf("state after resume %+v (err %v), want not paused", ts, err)
	}
}

// A task whose window ended while it was paused: the resume records its
// paused slots, says that none is left, and the task is done, with no
// second missed event from a planner.
func TestResumeAfterTheWindowEnded(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Room for the apply and the pause to land within the window on a
	// loaded machine (with 500ms, a CI run under load registered the task
	// after its window had ended, and it had no slot to pause).
	end := now.Add(2 * time.Second).Truncate(time.Millisecond)
	short := events.Spec{Name: "short", Trigger: events.Every(100 * time.Millisecond).Until(end)}
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{short}); err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Pause(b.ctx, b.st, short.Name, "test"); err != nil {
		t.Fatal(err)
	}
	// No planner runs: wait on Redis's clock for the window to end.
	now = end.Add(50 * time.Millisecond)
	waitRedisTime(t, b, now)
	out := mustCLI(t, buildBinary(t, "cmd/taskino"), "resume", short.Name, "--redis", "redis://"+b.srv.Addr+"/0", "--namespace", ns)
	if !strings.Contains(out, "resumed short: it has no slot left, so it is done") {
		t.Errorf("taskino resume printed %q; want it to say the task is done", out)
	}
	marker := events.Spec{Name: "marker", Trigger: events.Once(now)}
	if _, err := planner.Apply(b.ctx, b.st, 2, []events.Spec{short, marker}); err != nil {
		t.Fatal(err)
	}
	startPlanner(t, b, planner.Config{Node: "p"}, nil)
	all := awaitEvent(t, b, 30*time.Second, events.TypeFired, func(e events.Event) bool { return e.Task == marker.Name })
	var missed []events.Event
	for _, e := range ofType(all, events.TypeMissed) {
		if e.Task == short.Name {
			missed = append(missed, e)
		}
	}
	if len(missed) != 1 || missed[0].Count < 4 || !strings.Contains(missed[0].Reason, "paused; no slot is left after the resume: its window ends at "+end.Format(time.RFC3339Nano)) || missed[0].Worker == "test" {
		t.Errorf("missed events %+v; want one, for the paused slots, saying no slot is left and when the window ended", missed)
	}
	for _, e := range ofType(all, events.TypeFired) {
		if e.Task == short.Name {
			t.Errorf("fired %+v; want no fire of a task paused through its window", e)
		}
	}
	if st, err := b.st.State(b.ctx, short.Name); err != nil || !st.Done || !st.Paused.IsZero() {
		t.Errorf("state after the resume %+v (%v); want it done, not paused", st, err)
	}
}

// A reload that lands while a resume computes its missed event (from the
// spec it read) makes the resume start over with the new spec: the old
// spec's "no slot left" does not end a task the new one gives slots.
func TestResumeOvertakenByAReload(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	over := events.Spec{Name: "t", Trigger: events.Every(time.Second).Until(now.Add(-time.Hour))}
	open := events.Spec{Name: "t", Trigger: events.Every(time.Second)}
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{over}); err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Pause(b.ctx, b.st, "t", "test"); err != nil {
		t.Fatal(err)
	}
	var seen []events.Spec
	done, err := b.st.Resume(b.ctx, "t", "test", func(spec events.Spec, after, now time.Time) (events.Event, bool, error) {
		seen = append(seen, spec)
		if len(seen) == 1 {
			// The deploy lands now, between the read and the write.
			if _, err := planner.Apply(b.ctx, b.st, 2, []events.Spec{open}); err != nil {
				t.Fatal(err)
			}
			return events.Event{Type: events.TypeMissed, Task: "t", At: now.Add(-time.Hour), Count: 1,
				Policy: events.MisfireSkip, Reason: "paused; no slot is left"}, true, nil
		}
		return events.Event{}, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || !seen[1].Trigger.End.IsZero() || done {
		t.Fatalf("missed was called with %d specs (%+v), done %v; want twice, the second time with the reloaded spec (no end), and not done", len(seen), seen, done)
	}
	st, err := b.st.State(b.ctx, "t")
	if err != nil || st.Done || !st.Paused.IsZero() {
		t.Errorf("state after the resume %+v (%v); want it resumed and not done", st, err)
	}
	evs, err := b.st.RangeEvents(b.ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == events.TypeMissed && e.Task == "t" {
			t.Errorf("missed event %+v from the resume overtaken by the reload; want none written", e)
		}
	}
}

// TestTriggerIDIsIdempotent: a manual trigger that gives an id runs once,
// however often it is sent, by the Go API or by a raw XADD; without an id
// every trigger runs.
func TestTriggerIDIsIdempotent(t *testing.T) {
	b := setup(t)
	runs := newRunLog()
	w := startWorker(t, b, consumer.Config{}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"pay": func(ctx context.Context, f events.Fire) error { runs.add("w", f); return nil },
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "pay"})
	first, err := b.st.Trigger(b.ctx, "pay", "", "invoice-7")
	if err != nil {
		t.Fatal(err)
	}
	again, appended, err := b.st.TriggerOnce(b.ctx, "pay", "", "invoice-7")
	if err != nil || again != first || appended {
		t.Errorf("second Trigger with the same id returned %q, appended %v (err %v), want the first entry %q, not appended", again, appended, err, first)
	}
	stream := b.st.Keys().Fires("default")
	for range 2 {
		if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "pay", "id", "invoice-7"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "pay"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.st.Trigger(b.ctx, "pay", "", "last"); err != nil {
		t.Fatal(err)
	}
	all := awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "last" })
	w.stop(t)
	got, _ := runs.snapshot()
	if got["invoice-7"] != 1 {
		t.Errorf("the trigger with id invoice-7 ran %d times, want once", got["invoice-7"])
	}
	anon := 0
	for id, n := range got {
		if strings.HasPrefix(id, "m-") {
			anon += n
		}
	}
	if anon != 2 {
		t.Errorf("%d runs of triggers without an id, want 2", anon)
	}
	dups := 0
	for _, e := range ofType(all, events.TypeMissed) {
		if e.Fire == "invoice-7" && e.Policy == "duplicate-id" {
			dups++
		}
	}
	if dups != 2 {
		t.Errorf("%d missed events for the repeated raw triggers, want 2", dups)
	}
	assertNothingPending(t, b, "default")
}
