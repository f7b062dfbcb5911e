package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// manualTasks applies tasks that only run when triggered.
func manualTasks(t *testing.T, b testBundle, specs ...events.Spec) {
	t.Helper()
	for i := range specs {
		specs[i].Trigger = events.Once(time.Now().Add(24 * time.Hour))
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}
}

func entryMs(t *testing.T, id string) int64 {
	t.Helper()
	var ms, seq int64
	if _, err := fmt.Sscanf(id, "%d-%d", &ms, &seq); err != nil {
		t.Fatalf("entry id %q: %v", id, err)
	}
	return ms
}

// TestFailingHandlerRetriedThenDeadLettered: a handler that always fails is
// tried Attempts times, each retry after its backoff, with a started and a
// failed event for every attempt, a retried event for each retry, then a
// dead event and a dead letter with the reason and the last error.
func TestFailingHandlerRetriedThenDeadLettered(t *testing.T) {
	b := setup(t)
	backoff := func(attempt int, _ error, _ events.Fire) time.Duration {
		return time.Duration(attempt) * 300 * time.Millisecond
	}
	var tries atomic.Int32
	w := startWorker(t, b, consumer.Config{}, dispatcher.Config{RetryDelay: backoff}, map[string]dispatcher.HandlerFunc{
		"flaky": func(ctx context.Context, f events.Fire) error {
			tries.Add(1)
			return fmt.Errorf("attempt %d: disk full", f.Attempt)
		},
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "flaky", Attempts: 3, Payload: "p"})
	if _, err := b.st.Trigger(b.ctx, "flaky", "", "job-1"); err != nil {
		t.Fatal(err)
	}
	all := awaitEvent(t, b, 30*time.Second, events.TypeDead, nil)
	w.stop(t)
	all = append(all, mustRange(t, b, nextID(all))...)

	if n := tries.Load(); n != 3 {
		t.Errorf("handler tried %d times, want 3", n)
	}
	var started, failed, retried, dead []events.Event
	for _, e := range all {
		if e.Fire != "job-1" {
			continue
		}
		switch e.Type {
		case events.TypeStarted:
			started = append(started, e)
		case events.TypeFailed:
			failed = append(failed, e)
		case events.TypeRetried:
			retried = append(retried, e)
		case events.TypeDead:
			dead = append(dead, e)
		case events.TypeCompleted:
			t.Errorf("a failing fire completed: %+v", e)
		}
	}
	if len(started) != 3 || len(failed) != 3 || len(retried) != 2 || len(dead) != 1 {
		t.Fatalf("events: %d started, %d failed, %d retried, %d dead; want 3, 3, 2, 1", len(started), len(failed), len(retried), len(dead))
	}
	for i := range 3 {
		if started[i].Attempt != i+1 || failed[i].Attempt != i+1 {
			t.Errorf("attempt %d: started says %d, failed says %d", i+1, started[i].Attempt, failed[i].Attempt)
		}
		if want := fmt.Sprintf("attempt %d: disk full", i+1); failed[i].Error != want {
			t.Errorf("failed event %d error %q, want %q", i+1, failed[i].Error, want)
		}
	}
	for i := range 2 {
		if retried[i].Attempt != i+2 {
			t.Errorf("retried event %d names attempt %d, want %d", i+1, retried[i].Attempt, i+2)
		}
		// The retry did not run before its backoff (Redis clock, entry ids).
		gap := entryMs(t, started[i+1].ID) - entryMs(t, failed[i].ID)
		if min := backoff(i+1, nil, events.Fire{}).Milliseconds(); gap < min {
			t.Errorf("attempt %d started %dms after attempt %d failed, want at least the backoff %dms", i+2, gap, i+1, min)
		}
	}
	if d := dead[0]; d.Attempt != 3 || d.Error != "attempt 3: disk full" || !strings.Contains(d.Reason, "3 of 3") {
		t.Errorf("dead event %+v, want attempt 3 with the last error and the reason", d)
	}
	letters, err := b.rdb.XRange(b.ctx, b.st.Keys().Dead(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	v := letters[0].Values
	if v[events.DeadReason] == "" || v[events.DeadError] != "attempt 3: disk full" || v[events.DeadFieldPrefix+events.FieldTask] != "flaky" ||
		v[events.DeadFieldPrefix+events.FieldID] != "job-1" || v[events.DeadFieldPrefix+events.FieldPayload] != "p" || v[events.DeadFieldPrefix+events.FieldAttempt] != "3" {
		t.Errorf("dead letter %v lacks the reason, the last error or the fire's fields", v)
	}
	lr, ok, err := b.st.LastRun(b.ctx, "flaky")
	if err != nil || !ok || lr.Status != events.StatusFailed || lr.Error != "attempt 3: disk full" {
		t.Errorf("last run %+v (ok %v, err %v), want failed with the last error", lr, ok, err)
	}
	assertNothingPending(t, b, "default")
	if n, err := b.rdb.ZCard(b.ctx, b.st.Keys().Retry()).Result(); err != nil || n != 0 {
		t.Errorf("%d retries still waiting (err %v), want none", n, err)
	}
}

// TestBadEntriesAreDeadLettered: entries a worker cannot run go to the
// dead-letter stream with their reason and fields, and the good entry
// after them still runs.
func TestBadEntriesAreDeadLettered(t *testing.T) {
	b := setup(t)
	var ran atomic.Int32
	w := startWorker(t, b, consumer.Config{}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"good": func(ctx context.Context, f events.Fire) error { ran.Add(1); return nil },
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "good"})
	stream := b.st.Keys().Fires("default")
	bad := []struct {
		name   string
		fields []any
		reason string
	}{
		{"no task field", []any{"payload", "x"}, `"task": missing`},
		{"unknown task", []any{"task", "nobody-handles-this"}, "no handler for task"},
		{"wrong field types", []any{"task", "good", "attempt", "two", "at", "yesterday"}, "want"},
		{"unknown field", []any{"task", "good", "colour", "blue"}, `"colour"`},
		{"1 MiB payload", []any{"task", "good", "payload", strings.Repeat("x", 1<<20)}, `"payload"`},
		{"invalid UTF-8", []any{"task", "good", "payload", "caf\xe9"}, "UTF-8"},
		{"invalid UTF-8 task", []any{"task", "go\xffod"}, `"task"`},
	}
	ids := map[string]string{}
	for _, e := range bad {
		id, err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: e.fields}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = e.name
	}
	goodID, err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "good", "id", "after-the-bad-ones"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		return len(ofType(all, events.TypeDead)) == len(bad) && countEvents(all, events.TypeCompleted)["after-the-bad-ones"] == 1
	})
	if ran.Load() != 1 {
		t.Errorf("the good entry ran %d times, want 1", ran.Load())
	}
	for _, e := range ofType(all, events.TypeDead) {
		if e.Reason == "" {
			t.Errorf("dead event without a reason: %+v", e)
		}
	}
	letters, err := b.rdb.XRange(b.ctx, b.st.Keys().Dead(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(letters), len(bad))
	}
	for _, l := range letters {
		src := fmt.Sprint(l.Values[events.DeadEntry])
		name, ok := ids[src]
		if !ok {
			t.Errorf("dead letter %v is not of a bad entry (good one was %s)", l.Values, goodID)
			continue
		}
		var want string
		var fields []any
		for _, e := range bad {
			if e.name == name {
				want, fields = e.reason, e.fields
			}
		}
		if r := fmt.Sprint(l.Values[events.DeadReason]); !strings.Contains(r, want) {
			t.Errorf("%s: dead letter reason %q, want it to mention %q", name, r, want)
		}
		for i := 0; i < len(fields); i += 2 {
			if got := fmt.Sprint(l.Values[events.DeadFieldPrefix+fields[i].(string)]); got != fields[i+1] {
				t.Errorf("%s: dead letter field %s is %d bytes, want the original %d bytes", name, fields[i], len(got), len(fields[i+1].(string)))
			}
		}
	}
	w.stop(t)
	assertNothingPending(t, b, "default")
}

// TestBroadcastRunsOnEveryWorker: each broadcast fire runs once on each of
// three workers.
func TestBroadcastRunsOnEveryWorker(t *testing.T) {
	b := setup(t)
	runs := newRunLog()
	var ws []*runningWorker
	for w := range 3 {
		node := fmt.Sprintf("w%d", w)
		ws = append(ws, startWorker(t, b, consumer.Config{Node: node}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
			"refresh-cache": func(ctx context.Context, f events.Fire) error { runs.add(node, f); return nil },
		}))
	}
	awaitNodesUp(t, b, ws...)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := now.Add(300 * time.Millisecond).Truncate(time.Millisecond)
	spec := events.Spec{Name: "refresh-cache", Mode: events.ModeBroadcast,
		Trigger: events.Every(200 * time.Millisecond).From(start).Until(start.Add(time.Second))}
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{spec}); err != nil {
		t.Fatal(err)
	}
	startPlanner(t, b, planner.Config{}, nil)
	if _, err := b.st.Trigger(b.ctx, "refresh-cache", "", "by-hand"); err != nil {
		t.Fatal(err)
	}
	const fires = 7 // the slots start, +200ms ... +1s, and one by hand
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		c := countEvents(all, events.TypeCompleted)
		if len(c) < fires {
			return false
		}
		for _, n := range c {
			if n < 3 {
				return false
			}
		}
		return true
	})
	for _, w := range ws {
		w.stop(t)
	}
	all = append(all, mustRange(t, b, nextID(all))...)
	got, by := runs.snapshot()
	if len(got) != fires {
		t.Errorf("%d broadcast fires ran, want %d: %v", len(got), fires, got)
	}
	for id, n := range got {
		seen := map[string]int{}
		for _, w := range by[id] {
			seen[w]++
		}
		if n != 3 || len(seen) != 3 {
			t.Errorf("broadcast fire %s ran %d times on %v, want once on each of 3 workers", id, n, seen)
		}
	}
	for id, n := range countEvents(all, events.TypeCompleted) {
		if n != 3 {
			t.Errorf("broadcast fire %s has %d completed events, want 3", id, n)
		}
	}
}

// TestOverlapSkipAcrossWorkers: a task slower than its period, with overlap
// skip, never runs twice at once across three workers; the fires that come
// while it runs are recorded missed.
func TestOverlapSkipAcrossWorkers(t *testing.T) {
	b := setup(t)
	var running, maxRunning, runs atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	h := func(ctx context.Context, f events.Fire) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		runs.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	var ws []*runningWorker
	for w := range 3 {
		ws = append(ws, startWorker(t, b, consumer.Config{Node: fmt.Sprintf("w%d", w)}, dispatcher.Config{},
			map[string]dispatcher.HandlerFunc{"slow": h}))
	}
	awaitNodesUp(t, b, ws...)
	manualTasks(t, b, events.Spec{Name: "slow", Overlap: events.OverlapSkip})
	// The first fire runs and holds; the next five come while it runs.
	if _, err := b.st.Trigger(b.ctx, "slow", "", "first"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Fire == "first" })
	for i := range 5 {
		if _, err := b.st.Trigger(b.ctx, "slow", "", fmt.Sprintf("during-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeMissed)) == 5 })
	releaseAll()
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "first" })
	// Free again: the next fire runs.
	if _, err := b.st.Trigger(b.ctx, "slow", "", "after"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "after" })
	for _, w := range ws {
		w.stop(t)
	}
	if m := maxRunning.Load(); m != 1 {
		t.Errorf("up to %d runs of the task at once, want 1", m)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("%d runs, want 2 (the first and the one after)", n)
	}
	for _, e := range ofType(all, events.TypeMissed) {
		if !strings.HasPrefix(e.Fire, "during-") || e.Policy != "overlap-skip" {
			t.Errorf("missed event %+v, want one per fire during the run, policy overlap-skip", e)
		}
	}
	assertNothingPending(t, b, "default")
	if err := b.rdb.Get(b.ctx, b.st.Keys().Running("slow")).Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("the running mark is still set after the runs ended (err %v)", err)
	}
}

// TestOverlapBufferOneAcrossWorkers: with buffer-one, fires that come while
// the task runs on any worker keep one waiting (the first of them) and drop
// the rest as missed; the waiting one runs when the run ends.
func TestOverlapBufferOneAcrossWorkers(t *testing.T) {
	b := setup(t)
	var running, maxRunning atomic.Int32
	runs := newRunLog()
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	var ws []*runningWorker
	for w := range 3 {
		node := fmt.Sprintf("w%d", w)
		ws = append(ws, startWorker(t, b, consumer.Config{Node: node}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
			"sync": func(ctx context.Context, f events.Fire) error {
				if n := running.Add(1); n > maxRunning.Load() {
					maxRunning.Store(n)
				}
				defer running.Add(-1)
				runs.add(node, f)
				if f.ID == "first" {
					<-release
				}
				return nil
			},
		}))
	}
	awaitNodesUp(t, b, ws...)
	manualTasks(t, b, events.Spec{Name: "sync", Overlap: events.OverlapBufferOne})
	if _, err := b.st.Trigger(b.ctx, "sync", "", "first"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Fire == "first" })
	for i := range 3 {
		if _, err := b.st.Trigger(b.ctx, "sync", "", fmt.Sprintf("during-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeMissed)) == 2 })
	// The three reached different workers at once: whichever began first
	// took the buffer; the other two were dropped.
	missed := map[string]bool{}
	for _, e := range ofType(all, events.TypeMissed) {
		missed[e.Fire] = e.Policy == "overlap-buffer-one"
	}
	kept := ""
	for i := range 3 {
		if id := fmt.Sprintf("during-%d", i); !missed[id] {
			kept = id
		}
	}
	if len(missed) != 2 || kept == "" {
		t.Fatalf("missed %v, want two of during-0..2 under overlap-buffer-one", missed)
	}
	releaseAll()
	all = awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == kept })
	for _, w := range ws {
		w.stop(t)
	}
	all = append(all, mustRange(t, b, nextID(all))...)
	got, _ := runs.snapshot()
	if len(got) != 2 || got["first"] != 1 || got[kept] != 1 {
		t.Errorf("runs %v, want first and %s (the buffered one) once each", got, kept)
	}
	for _, e := range ofType(all, events.TypeMissed) {
		if !missed[e.Fire] {
			t.Errorf("missed event %+v after the release, want none", e)
		}
	}
	for _, e := range ofType(all, events.TypeStarted) {
		if e.Fire == kept && e.ID < ofType(all, events.TypeCompleted)[0].ID {
			t.Errorf("the buffered fire %s started before the running one completed", kept)
		}
	}
	if m := maxRunning.Load(); m != 1 {
		t.Errorf("up to %d runs at once, want 1", m)
	}
	assertNothingPending(t, b, "default")
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
	again, err := b.st.Trigger(b.ctx, "pay", "", "invoice-7")
	if err != nil || again != first {
		t.Errorf("second Trigger with the same id returned %q (err %v), want the first entry %q", again, err, first)
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
