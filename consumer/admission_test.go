package consumer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// testAdmission is an admission over a Redis server of its own, with what
// it queued and what it told the outbox of releases.
type testAdmission struct {
	*admission
	rdb       *redis.Client
	queued    []*store.Outcome
	missed    []events.Event // missed events a script recorded (counted)
	releasing []bool
}

func newTestAdmission(t *testing.T, specs ...events.Spec) *testAdmission {
	t.Helper()
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	st, _ := readTestFires(t, rdb, "admit", 0) // the stream and its group

	if len(specs) > 0 {
		apply(t, st, 1, specs...)
	}
	sc := newSpecCache(st, testLog(t), time.Hour, time.Hour)
	if err := sc.load(ctx); err != nil {
		t.Fatal(err)
	}
	clock := &redisClock{}
	ta := &testAdmission{rdb: rdb}
	ta.admission = &admission{st: st, log: testLog(t), node: "w1", maxDeliveries: 3, visibility: time.Minute,
		specs: sc, claims: newClaims(st, testLog(t), "w1", time.Minute, time.Hour, clock), clock: clock,
		early: &earlyHold{window: 10 * time.Second, limit: 100}, local: newLocalOverlap(),
		queue:     func(o *store.Outcome) { ta.queued = append(ta.queued, o) },
		missed:    func(e events.Event) { ta.missed = append(ta.missed, e) },
		releasing: func(r bool) { ta.releasing = append(ta.releasing, r) },
		stopped:   func() bool { return false }}
	return ta
}

// setNow sets the clock to say the Redis server's time is now.
func (ta *testAdmission) setNow(now time.Time) {
	t := time.Now()
	ta.clock.set(t, t, now)
}

// TestAdmitDeadLettersWhatCannotRun: a malformed entry and one handed out
// more than MaxDeliveries times are dead-lettered with their reason, and
// not returned; the others are, with their task's spec.
func TestAdmitDeadLettersWhatCannotRun(t *testing.T) {
	ta := newTestAdmission(t, events.Spec{Name: "t", Trigger: events.Every(time.Second), Attempts: 5})
	at := time.UnixMilli(1_700_000_000_000)
	bad := store.Delivery{Stream: "s", EntryID: "1-0", Err: errors.New("no task field"), Deliveries: 1}
	tired := *fireAt("t", at)
	tired.Deliveries = 4
	ok := *fireAt("t", at.Add(time.Second))
	ok.Deliveries = 3
	got := ta.admit(context.Background(), []store.Delivery{bad, tired, ok})
	if len(got) != 1 || got[0].Fire.ID != ok.Fire.ID || got[0].Spec.Attempts != 5 {
		t.Fatalf("admitted %+v, want only the fire handed out 3 times, with its spec (attempts 5)", got)
	}
	if len(ta.queued) != 2 {
		t.Fatalf("queued %d outcomes, want 2 dead letters", len(ta.queued))
	}
	for i, want := range []string{"malformed entry: no task field", "handed out 4 times with no outcome"} {
		if o := ta.queued[i]; o.Dead == "" || len(o.Dead) < len(want) || o.Dead[:len(want)] != want || o.Events[0].Type != events.TypeDead {
			t.Errorf("outcome %d: dead %q, events %v; want a dead letter starting %q", i, o.Dead, o.Events, want)
		}
	}
}

// TestAdmitHoldsEarlyFiresUntilDue: a fire due within HoldEarly is held,
// not returned; takeDue returns it once due, with its overlap policy
// applied then, and tells the outbox whether more due ones wait.
func TestAdmitHoldsEarlyFiresUntilDue(t *testing.T) {
	ctx := context.Background()
	ta := newTestAdmission(t)
	now := time.UnixMilli(1_700_000_000_000)
	ta.setNow(now)
	ds := []store.Delivery{*fireAt("a", now.Add(2*time.Second)), *fireAt("b", now.Add(time.Second)), *fireAt("far", now.Add(time.Hour))}
	if got := ta.admit(ctx, ds); len(got) != 1 || got[0].Fire.Task != "far" {
		t.Fatalf("admitted %v, want only the fire due after HoldEarly", got)
	}
	if got := ta.takeDue(ctx, 10); len(got) != 0 {
		t.Fatalf("took %d before any was due", len(got))
	}
	ta.setNow(now.Add(3 * time.Second))
	first := ta.takeDue(ctx, 1)
	if len(first) != 1 || first[0].Fire.Task != "b" {
		t.Fatalf("took %v with a limit of 1, want the soonest (b)", first)
	}
	if rel := ta.releasing[len(ta.releasing)-1]; !rel {
		t.Error("one more is due, yet the outbox was told the release is over")
	}
	if next := ta.takeDue(ctx, 1); len(next) != 1 || next[0].Fire.Task != "a" {
		t.Fatalf("took %v, want a", next)
	}
	if rel := ta.releasing[len(ta.releasing)-1]; rel {
		t.Error("none is left, yet the outbox was told a release goes on")
	}
}

// readEntries appends entries with these fields (maps or field-value
// lists) to the default queue's
// stream and reads them as w1, held.
func (ta *testAdmission) readEntries(t *testing.T, fields ...any) []store.Delivery {
	t.Helper()
	ctx := context.Background()
	stream := ta.st.Keys().Fires(events.DefaultQueue)
	for _, f := range fields {
		if err := ta.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: f}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := ta.st.ReadFires(ctx, "w1", []string{stream}, len(fields), 0)
	if err != nil || len(ds) != len(fields) {
		t.Fatalf("read %d (err %v), want %d", len(ds), err, len(fields))
	}
	ta.claims.hold(ds, time.Now())
	return ds
}

// TestAdmitRunsATriggerIDOnce: a hand-written entry with an id runs once;
// a second entry with that id is dropped (recorded missed by the store)
// and its claim released.
func TestAdmitRunsATriggerIDOnce(t *testing.T) {
	ta := newTestAdmission(t)
	trigger := map[string]any{"task": "t", "id": "once", "at": "1700000000000"}
	ds := ta.readEntries(t, trigger, trigger)
	got := ta.admit(context.Background(), append([]store.Delivery(nil), ds...))
	if len(got) != 1 || got[0].EntryID != ds[0].EntryID {
		t.Fatalf("admitted %v, want the first entry alone", got)
	}
	if fresh := ta.claims.notHeld(ds[1:]); len(fresh) != 1 {
		t.Error("the duplicate's claim was not released")
	}
	if len(ta.missed) != 1 || events.MissedKind(ta.missed[0]) != "duplicate_id" {
		t.Errorf("missed events counted: %+v, want the duplicate's (reason duplicate_id)", ta.missed)
	}
}

// TestAdmitAppliesOverlapPolicies: a single-mode fire of a skip task is
// dropped while another runs (the store records it missed) and its claim
// released; the running one's heartbeats extend the task's running mark.
// A broadcast fire is held to the policy here, its missed event queued.
func TestAdmitAppliesOverlapPolicies(t *testing.T) {
	ctx := context.Background()
	ta := newTestAdmission(t, events.Spec{Name: "s", Trigger: events.Every(time.Second), Overlap: events.OverlapSkip},
		events.Spec{Name: "bs", Trigger: events.Every(time.Second), Overlap: events.OverlapSkip, Mode: events.ModeBroadcast})
	at := time.UnixMilli(1_700_000_000_000)
	var ds []store.Delivery
	for i := range 2 {
		f := events.Fire{ID: events.FireID("s", at.Add(time.Duration(i)*time.Second)), Task: "s", At: at.Add(time.Duration(i) * time.Second), Attempt: 1}
		ds = append(ds, ta.readEntries(t, f.Fields())...)
	}
	got := ta.admit(ctx, append([]store.Delivery(nil), ds...))
	if len(got) != 1 || got[0].EntryID != ds[0].EntryID {
		t.Fatalf("admitted %v, want the first fire alone", got)
	}
	if fresh := ta.claims.notHeld(append([]store.Delivery(nil), ds...)); len(fresh) != 1 || fresh[0].EntryID != ds[1].EntryID {
		t.Errorf("not held: %v, want the skipped fire released and the first held", fresh)
	}
	if len(ta.missed) != 1 || ta.missed[0].Fire != ds[1].Fire.ID || ta.missed[0].Policy != "overlap-skip" {
		t.Errorf("missed events counted: %+v, want the skipped fire's, policy overlap-skip", ta.missed)
	}
	ta.claims.mu.Lock()
	marked := ta.claims.held[heldKey(ds[0].Stream, ds[0].EntryID)].Overlap
	ta.claims.mu.Unlock()
	if !marked {
		t.Error("the running fire is not marked: heartbeats would let its task's running mark expire")
	}

	b1, b2 := *fireAt("bs", at), *fireAt("bs", at.Add(time.Second))
	b1.Broadcast, b2.Broadcast = true, true
	if got := ta.admit(ctx, []store.Delivery{b1, b2}); len(got) != 1 || got[0].Fire.ID != b1.Fire.ID {
		t.Fatalf("broadcast: admitted %v, want the first alone", got)
	}
	if len(ta.queued) != 1 || ta.queued[0].Events[0].Type != events.TypeMissed || ta.queued[0].Events[0].Fire != b2.Fire.ID ||
		ta.queued[0].Events[0].Policy != "overlap-skip" {
		t.Errorf("queued %v, want the second broadcast fire's missed event (overlap-skip)", ta.queued)
	}
}

// TestAdmitDeadLettersTheWrongStream: a broadcast stream entry for a
// single-mode task, and a single-mode one for a broadcast task, are
// dead-lettered with the reason; a task not in the set is left to the
// dispatcher.
func TestAdmitDeadLettersTheWrongStream(t *testing.T) {
	ctx := context.Background()
	ta := newTestAdmission(t, events.Spec{Name: "single", Trigger: events.Every(time.Second)},
		events.Spec{Name: "all", Trigger: events.Every(time.Second), Mode: events.ModeBroadcast})
	at := time.UnixMilli(1_700_000_000_000)
	onBroadcast, onSingle, unknown := *fireAt("single", at), *fireAt("all", at), *fireAt("nobody", at)
	onBroadcast.Broadcast, unknown.Broadcast = true, true
	got := ta.admit(ctx, []store.Delivery{onBroadcast, onSingle, unknown})
	if len(got) != 1 || got[0].Fire.Task != "nobody" {
		t.Fatalf("admitted %v, want the unknown task's fire alone", got)
	}
	if len(ta.queued) != 2 || !strings.Contains(ta.queued[0].Dead, `a broadcast stream entry for task "single", whose mode is single`) ||
		!strings.Contains(ta.queued[1].Dead, `a single-mode stream entry for task "all", whose mode is broadcast`) {
		t.Errorf("queued %+v; want both dead-lettered with the reason", ta.queued)
	}
}
