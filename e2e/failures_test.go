package e2e

import (
	"context"
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
	if err != nil || !ok || lr.Status != events.StatusDead || lr.Error != "attempt 3: disk full" || lr.Fails != 1 {
		t.Errorf("last run %+v (ok %v, err %v), want dead with the last error, 1 slot failed in a row (its 3 attempts count once)", lr, ok, err)
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
			orig := fields[i+1].(string)
			want := orig
			if len(orig) > events.MaxDeadFieldBytes {
				// Kept in part, the cut named with its full size.
				want = orig[:events.MaxDeadFieldBytes]
				if cut := fmt.Sprint(l.Values[events.DeadCut]); cut != fmt.Sprintf("%s:%d", fields[i], len(orig)) {
					t.Errorf("%s: dead letter cut %q, want %s:%d", name, cut, fields[i], len(orig))
				}
			}
			if got := fmt.Sprint(l.Values[events.DeadFieldPrefix+fields[i].(string)]); got != want {
				t.Errorf("%s: dead letter field %s is %d bytes, want %d bytes of the original", name, fields[i], len(got), len(want))
			}
		}
	}
	w.stop(t)
	assertNothingPending(t, b, "default")
}

// TestHugeMalformedEntry: an entry with 4,000 fields is dead-lettered (its
// first fields copied, the rest counted), and the entry after it runs.
func TestHugeMalformedEntry(t *testing.T) {
	b := setup(t)
	w := startWorker(t, b, consumer.Config{}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"good": func(ctx context.Context, f events.Fire) error { return nil },
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "good"})
	stream := b.st.Keys().Fires("default")
	vals := []any{"task", "good"}
	for i := range 4000 {
		vals = append(vals, fmt.Sprintf("junk%d", i), "v")
	}
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: vals}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "good", "id", "after"}}).Err(); err != nil {
		t.Fatal(err)
	}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		return len(ofType(all, events.TypeDead)) == 1 && countEvents(all, events.TypeCompleted)["after"] == 1
	})
	w.stop(t)
	letters, err := b.rdb.XRange(b.ctx, b.st.Keys().Dead(), "-", "+").Result()
	if err != nil || len(letters) != 1 {
		t.Fatalf("%d dead letters (err %v), want 1", len(letters), err)
	}
	if got := letters[0].Values[events.DeadTruncated]; got != fmt.Sprint(4001-store.MaxDeadFields) {
		t.Errorf("dead letter says %v fields were not copied, want %d", got, 4001-store.MaxDeadFields)
	}
	assertNothingPending(t, b, "default")
}
