package store_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// TestTrimKeepsWhatTheGroupHolds: trimming removes acked entries older than
// the retention, but never one still pending or not yet delivered.
func TestTrimKeepsWhatTheGroupHolds(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	stream := b.st.Keys().Fires("q")
	if err := b.worker.EnsureGroup(b.ctx, stream); err != nil {
		t.Fatal(err)
	}
	// Old entries (explicit ids in the past): 300 acked, then 1 pending,
	// then 300 acked, then 50 never delivered.
	ms := time.Now().Add(-time.Hour).UnixMilli()
	var ids []string
	for i := range 651 {
		id, err := rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, ID: strconv.FormatInt(ms+int64(i), 10) + "-0", Values: []any{"task", "a"}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ds, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, 601, 0)
	if err != nil || len(ds) != 601 {
		t.Fatalf("read %d (err %v), want 601", len(ds), err)
	}
	for i, d := range ds {
		if i == 300 {
			continue // stays pending
		}
		if err := rdb.XAck(b.ctx, stream, store.WorkerGroup, d.EntryID).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.worker.TrimFires(b.ctx, stream, time.Minute); err != nil {
		t.Fatal(err)
	}
	left, err := rdb.XRange(b.ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) == 651 {
		t.Error("nothing trimmed: acked entries before the pending one are older than the retention")
	}
	if len(left) == 0 || store.LessID(ids[300], left[0].ID) {
		t.Fatalf("trimmed past the pending entry %s (first left: %v)", ids[300], left)
	}
	if last := left[len(left)-1].ID; last != ids[650] {
		t.Errorf("the undelivered entries were trimmed (last left %s, want %s)", last, ids[650])
	}
	// Once the pending one is acked, the cut moves to the undelivered ones.
	if err := rdb.XAck(b.ctx, stream, store.WorkerGroup, ids[300]).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.worker.TrimFires(b.ctx, stream, time.Minute); err != nil {
		t.Fatal(err)
	}
	left, err = rdb.XRange(b.ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) < 50 || store.LessID(ids[601], left[len(left)-50].ID) {
		t.Errorf("%d entries left; the 50 undelivered must all stay", len(left))
	}
}

// TestTrimEventsByAge: events older than the age given go (whole stream
// nodes, so at most one node of them may stay), every newer one stays; and
// all of them in one call, past the 10,000 entries an approximate trim
// removes per call by default.
func TestTrimEventsByAge(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	stream := b.st.Keys().Events()
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := func(from time.Time, n int) {
		pipe := rdb.Pipeline()
		for i := range n {
			id := strconv.FormatInt(from.UnixMilli(), 10) + "-" + strconv.Itoa(i+1)
			pipe.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, ID: id, Values: []any{"type", "test"}})
		}
		if _, err := pipe.Exec(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	const old = 25_000
	add(now.Add(-2*time.Hour), old)
	add(now.Add(-time.Minute), 50) // within the hour: kept
	n, err := b.worker.TrimEvents(b.ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	left, err := rdb.XRange(b.ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n < old-200 || len(left) != old+50-int(n) {
		t.Errorf("trimmed %d, %d left; want all but a node of the %d old ones gone, and the count to match", n, len(left), old)
	}
	if len(left) < 50 || store.LessID(left[len(left)-50].ID, strconv.FormatInt(now.Add(-time.Minute).UnixMilli(), 10)+"-0") {
		t.Errorf("%d entries left; the 50 newer than an hour must all stay", len(left))
	}
}

// TestFinishKeepsTheLatestLastRun: an outcome of an older fire (a retry
// finishing late) does not overwrite the last run of a newer one, and an
// outcome keeps the fired time its planner recorded.
func TestFinishKeepsTheLatestLastRun(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	at := time.UnixMilli(1_700_000_000_000).UTC()
	fired := at.Add(3 * time.Millisecond)
	raw, err := events.MarshalLastRun(events.LastRun{Task: "a", Fire: "a@2", Scheduled: at.Add(time.Minute), Fired: fired, Status: events.StatusFired})
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(b.ctx, b.st.Keys().LastRun(), "a", raw).Err(); err != nil {
		t.Fatal(err)
	}
	old := store.Outcome{Delivery: store.Delivery{Broadcast: true, Fire: events.Fire{ID: "a@1", Task: "a", At: at}},
		LastRun: &events.LastRun{Task: "a", Fire: "a@1", Scheduled: at, Started: at, Finished: at, Status: events.StatusCompleted}}
	if _, err := b.worker.Finish(b.ctx, "w", []*store.Outcome{&old}); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.st.LastRun(b.ctx, "a")
	if err != nil || r.Fire != "a@2" || r.Status != events.StatusFired {
		t.Fatalf("last run %+v (err %v): an older fire's outcome replaced the newer fire's record", r, err)
	}
	started := at.Add(time.Minute + 10*time.Millisecond)
	cur := store.Outcome{Delivery: store.Delivery{Broadcast: true, Fire: events.Fire{ID: "a@2", Task: "a", At: at.Add(time.Minute)}},
		LastRun: &events.LastRun{Task: "a", Fire: "a@2", Scheduled: at.Add(time.Minute), Started: started, Finished: started.Add(time.Second), Status: events.StatusFailed, Error: "no disk"}}
	if _, err := b.worker.Finish(b.ctx, "w", []*store.Outcome{&cur}); err != nil {
		t.Fatal(err)
	}
	r, _, err = b.st.LastRun(b.ctx, "a")
	if err != nil || r.Status != events.StatusFailed || r.Error != "no disk" || !r.Fired.Equal(fired) || !r.Started.Equal(started) || !r.Finished.Equal(started.Add(time.Second)) {
		t.Errorf("last run %+v (err %v), want failed with the error, the planner's fired time and the run's times", r, err)
	}
	// Text that looks like the record's own members, in a fire id and an
	// error, fools neither check: a later fire replaces the record, an
	// older one whose id the error quotes does not.
	later := at.Add(2 * time.Minute)
	odd := store.Outcome{Delivery: store.Delivery{Broadcast: true, Fire: events.Fire{ID: `a@"3"`, Task: "a", At: later}},
		LastRun: &events.LastRun{Task: "a", Fire: `a@"3"`, Scheduled: later, Started: later, Finished: later, Status: events.StatusFailed,
			Error: `"fire":"a@1","fired":42,"scheduled":9999999999999`}}
	quoted := old
	if _, err := b.worker.Finish(b.ctx, "w", []*store.Outcome{&odd, &quoted}); err != nil {
		t.Fatal(err)
	}
	r, _, err = b.st.LastRun(b.ctx, "a")
	if err != nil || r.Fire != `a@"3"` || !r.Fired.IsZero() || r.Error != odd.LastRun.Error {
		t.Errorf("last run %+v (err %v), want the record of fire a@\"3\" with its error as written and no fired time", r, err)
	}
}

// TestTriggerUnknownTask: a manual trigger of a task not in the set is
// refused with an error naming it.
func TestTriggerUnknownTask(t *testing.T) {
	b := setup(t)
	_, err := b.st.Trigger(b.ctx, "ghost", "", "")
	if !errors.Is(err, store.ErrUnknownTask) {
		t.Errorf("trigger of an unknown task: %v, want ErrUnknownTask", err)
	}
}

// TestReadFiresWithoutGroup: a read of a stream whose group is gone (a
// flush) fails with ErrNoGroup, which the consumer matches to set the
// group up again; after EnsureGroup the read works.
func TestReadFiresWithoutGroup(t *testing.T) {
	b := setup(t)
	stream := b.st.Keys().Fires("default")
	if _, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, 1, 0); !errors.Is(err, store.ErrNoGroup) {
		t.Fatalf("read with no group: %v, want ErrNoGroup", err)
	}
	if err := b.worker.EnsureGroup(b.ctx, stream); err != nil {
		t.Fatal(err)
	}
	if _, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, 1, 0); err != nil {
		t.Errorf("read after EnsureGroup: %v", err)
	}
}

// TestReclaimOfNothing: a reclaim asked for no entries takes none (Redis
// would take its default 100 for COUNT 0).
func TestReclaimOfNothing(t *testing.T) {
	b := setup(t)
	_, stream := fireStream(t, b, 5)
	if _, err := b.worker.ReadFires(b.ctx, "ghost", []string{stream}, 5, 0); err != nil {
		t.Fatal(err)
	}
	ds, _, _, err := b.worker.Reclaim(b.ctx, "w", stream, 0, "0-0", 0)
	if err != nil || len(ds) != 0 {
		t.Errorf("reclaim of 0 took %d (err %v), want none", len(ds), err)
	}
	ds, _, _, err = b.worker.Reclaim(b.ctx, "w", stream, 0, "0-0", 2)
	if err != nil || len(ds) != 2 || ds[0].Deliveries != 2 {
		t.Errorf("reclaim of 2 took %d (err %v), want 2 delivered twice each", len(ds), err)
	}
}

// TestHandBackTakenInAQuietPeriod: in the quiet period after an outage
// (here the namespace's first pulse), reclaims take no idle fire of a
// worker that may be alive, but do take fires handed back: those were
// given up. Fires of a silent worker wait.
func TestHandBackTakenInAQuietPeriod(t *testing.T) {
	b := setup(t)
	rdb, stream := fireStream(t, b, 2)
	ds, err := b.worker.ReadFires(b.ctx, "stopping", []string{stream}, 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	silent, err := b.worker.ReadFires(b.ctx, "silent", []string{stream}, 1, 0)
	if err != nil || len(silent) != 1 {
		t.Fatalf("read %d (err %v)", len(silent), err)
	}
	if err := rdb.Do(b.ctx, "XCLAIM", stream, store.WorkerGroup, "silent", 0, silent[0].EntryID, "IDLE", time.Hour.Milliseconds(), "JUSTID").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.worker.HandBack(b.ctx, "stopping", time.Hour, []store.Held{{Stream: stream, EntryID: ds[0].EntryID}}); err != nil || n != 1 {
		t.Fatalf("handed back %d (err %v), want 1", n, err)
	}
	got, next, wait, err := b.worker.Reclaim(b.ctx, "other", stream, 30*time.Second, "0-0", 10)
	if err != nil || wait <= 0 || next != "0-0" {
		t.Fatalf("reclaim: quiet %s, cursor %q (err %v); want a quiet period, the cursor unchanged", wait, next, err)
	}
	if len(got) != 1 || got[0].EntryID != ds[0].EntryID || got[0].HandedBackBy != "stopping" || got[0].Deliveries != 1 {
		t.Fatalf("reclaim in a quiet period took %+v; want only the fire handed back by stopping, delivered once", got)
	}
}

// TestHandBackIsNotADeliveryLost: a fire handed back by a stopping worker
// is reclaimed at once, and the hand-back does not count as a worker that
// stopped answering.
func TestHandBackIsNotADeliveryLost(t *testing.T) {
	b := setup(t)
	_, stream := fireStream(t, b, 1)
	ds, err := b.worker.ReadFires(b.ctx, "stopping", []string{stream}, 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	n, err := b.worker.HandBack(b.ctx, "stopping", time.Hour, []store.Held{{Stream: stream, EntryID: ds[0].EntryID}})
	if err != nil || n != 1 {
		t.Fatalf("handed back %d (err %v), want 1", n, err)
	}
	// Workers are alive (a fresh pulse), so no quiet period holds it up.
	if _, err := pulse(b, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Client(t).HSet(b.ctx, b.st.Keys().Pulse(), "quiet", 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, _, _, err := b.worker.Reclaim(b.ctx, "other", stream, 30*time.Second, "0-0", 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("reclaimed %d (err %v), want the handed-back fire at once", len(got), err)
	}
	if got[0].Deliveries != 1 || got[0].HandedBackBy != "stopping" {
		t.Errorf("delivery count %d, handed back by %q after a hand-back, want 1 and \"stopping\"", got[0].Deliveries, got[0].HandedBackBy)
	}
}

// TestReclaimSkipsLiveClaims: behind 3,000 fires a live worker holds, a
// reclaim of one fire finds the one a dead worker left idle in a single
// call, and a sweep that finds nothing idle ends at once (cursor "0-0")
// instead of paging through the live claims a few hundred at a time.
func TestReclaimSkipsLiveClaims(t *testing.T) {
	b := setup(t)
	rdb, stream := fireStream(t, b, 3001)
	if ds, err := b.worker.ReadFires(b.ctx, "live", []string{stream}, 3000, 0); err != nil || len(ds) != 3000 {
		t.Fatalf("read %d (err %v), want 3000", len(ds), err)
	}
	// Workers are alive (a fresh pulse), so no quiet period holds it up.
	if _, err := pulse(b, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(b.ctx, b.st.Keys().Pulse(), "quiet", 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, next, wait, err := b.worker.Reclaim(b.ctx, "other", stream, 30*time.Second, "0-0", 1)
	if err != nil || wait > 0 || len(got) != 0 || next != "0-0" {
		t.Fatalf("sweep over live claims only: took %d, cursor %q, quiet %s (err %v); want nothing and the sweep over", len(got), next, wait, err)
	}
	ds, err := b.worker.ReadFires(b.ctx, "dead", []string{stream}, 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	if err := rdb.Do(b.ctx, "XCLAIM", stream, store.WorkerGroup, "dead", 0, ds[0].EntryID, "IDLE", time.Hour.Milliseconds(), "JUSTID").Err(); err != nil {
		t.Fatal(err)
	}
	got, _, _, err = b.worker.Reclaim(b.ctx, "other", stream, 30*time.Second, "0-0", 1)
	if err != nil || len(got) != 1 || got[0].EntryID != ds[0].EntryID {
		t.Fatalf("reclaim of 1 took %v (err %v), want the dead worker's %s in one call", got, err, ds[0].EntryID)
	}
	if got[0].Deliveries != 2 || got[0].HandedBackBy != "" {
		t.Errorf("a dead worker's fire: delivery count %d, handed back by %q; want 2 and none", got[0].Deliveries, got[0].HandedBackBy)
	}
}

// TestPruneConsumers: consumers that hold nothing go; one holding a fire
// stays.
func TestPruneConsumers(t *testing.T) {
	b := setup(t)
	rdb, stream := fireStream(t, b, 2)
	if _, err := b.worker.ReadFires(b.ctx, "holder", []string{stream}, 1, 0); err != nil {
		t.Fatal(err)
	}
	ds, err := b.worker.ReadFires(b.ctx, "empty", []string{stream}, 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	if err := rdb.XAck(b.ctx, stream, store.WorkerGroup, ds[0].EntryID).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := b.worker.PruneConsumers(b.ctx, stream, -1)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (err %v), want 1", n, err)
	}
	cs, err := rdb.XInfoConsumers(b.ctx, stream, store.WorkerGroup).Result()
	if err != nil || len(cs) != 1 || cs[0].Name != "holder" {
		t.Errorf("consumers left %+v (err %v), want only the one holding a fire", cs, err)
	}
}

// TestHeldFiresInManyCalls: a heartbeat and a hand-back over more fires
// than one call takes (sent in calls of a few hundred, so Redis serves
// others in between) cover every one of them: the heartbeat resets each
// claim and names exactly the fires another worker took, and the
// hand-back gives back all the others.
func TestHeldFiresInManyCalls(t *testing.T) {
	b := setup(t)
	rdb, stream := fireStream(t, b, 1203)
	ds, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, 1203, 0)
	if err != nil || len(ds) != 1203 {
		t.Fatalf("read %d (err %v), want 1203", len(ds), err)
	}
	held := make([]store.Held, len(ds))
	ids := make([]string, len(ds))
	for i, d := range ds {
		held[i], ids[i] = store.Held{Stream: stream, EntryID: d.EntryID}, d.EntryID
	}
	// Every claim an hour idle, and three taken by another worker: one in
	// the first call's share, one in the second's, the last one.
	if err := rdb.Do(b.ctx, append([]any{"XCLAIM", stream, store.WorkerGroup, "w", 0}, append(anys(ids), "IDLE", time.Hour.Milliseconds(), "JUSTID")...)...).Err(); err != nil {
		t.Fatal(err)
	}
	taken := []string{ids[7], ids[600], ids[1202]}
	if err := rdb.XClaimJustID(b.ctx, &redis.XClaimArgs{Stream: stream, Group: store.WorkerGroup, Consumer: "other",
		Messages: taken}).Err(); err != nil {
		t.Fatal(err)
	}
	hb, err := b.worker.Heartbeat(b.ctx, "w", 30*time.Second, held, store.Self{})
	if err != nil {
		t.Fatal(err)
	}
	var lost []string
	for _, h := range hb.Lost {
		if h.Stream != stream {
			t.Errorf("lost %+v: not of stream %s", h, stream)
		}
		lost = append(lost, h.EntryID)
	}
	if strings.Join(lost, " ") != strings.Join(taken, " ") {
		t.Errorf("lost %v, want %v", lost, taken)
	}
	old, err := rdb.XPendingExt(b.ctx, &redis.XPendingExtArgs{Stream: stream, Group: store.WorkerGroup, Idle: time.Minute,
		Start: "-", End: "+", Count: 2000, Consumer: "w"}).Result()
	if err != nil || len(old) != 0 {
		t.Errorf("%d of w's claims still idle a minute after the heartbeat (err %v), want none", len(old), err)
	}
	n, err := b.worker.HandBack(b.ctx, "w", time.Hour, held)
	if err != nil || n != 1200 {
		t.Errorf("handed back %d (err %v), want 1200", n, err)
	}
	// Handed back: held by "w~handback", idle an hour, so the next
	// reclaim takes them and learns who handed them back.
	back, err := rdb.XPendingExt(b.ctx, &redis.XPendingExtArgs{Stream: stream, Group: store.WorkerGroup, Idle: 59 * time.Minute,
		Start: "-", End: "+", Count: 2000, Consumer: "w~handback"}).Result()
	if err != nil || len(back) != 1200 {
		t.Errorf("%d of w's fires handed back (idle an hour) (err %v), want 1200", len(back), err)
	}
	if err := rdb.HSet(b.ctx, b.st.Keys().Pulse(), "quiet", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rec, _, _, err := b.worker.Reclaim(b.ctx, "x", stream, 30*time.Second, "0-0", 2000)
	if err != nil || len(rec) != 1200 {
		t.Fatalf("reclaimed %d (err %v), want the 1200 handed back", len(rec), err)
	}
	for _, d := range rec {
		if d.HandedBackBy != "w" {
			t.Fatalf("reclaimed %+v: HandedBackBy %q, want w", d, d.HandedBackBy)
		}
	}
}

// anys is ss as a list of values for rdb.Do.
func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// fireStream makes the fire stream of queue q, with the worker group and n
// entries of task a.
func fireStream(t *testing.T, b testBundle, n int) (*redis.Client, string) {
	t.Helper()
	rdb := b.srv.Client(t)
	stream := b.st.Keys().Fires("q")
	if err := b.worker.EnsureGroup(b.ctx, stream); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "a"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return rdb, stream
}

// Pulse lets reclaims go ahead while workers keep reaching Redis, and
// makes them wait one visibility timeout after a silence longer than half
// of it (every worker was cut off: their pending fires only look idle).
func TestPulseQuietAfterSilence(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	const vis = 10 * time.Second
	key := b.st.Keys().Pulse()
	setLast := func(ago time.Duration) {
		t.Helper()
		now, err := rdb.Time(b.ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(b.ctx, key, "last", now.Add(-ago).UnixMilli(), "quiet", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// No worker was ever heard of: a first worker waits too, since the
	// ones before it may have been cut off rather than dead.
	if wait, err := pulse(b, vis); err != nil || wait <= 0 || wait > vis {
		t.Fatalf("first pulse: wait %s, %v; want a quiet period of at most %s", wait, err, vis)
	}

	setLast(vis / 10) // a worker reached Redis a moment ago
	if wait, err := pulse(b, vis); err != nil || wait != 0 {
		t.Fatalf("pulse right after another: wait %s, %v; want none", wait, err)
	}
	if wait, err := pulse(b, vis); err != nil || wait != 0 {
		t.Fatalf("second pulse: wait %s, %v; want none", wait, err)
	}

	setLast(vis/2 + vis/10) // nobody for more than half the visibility timeout
	wait, err := pulse(b, vis)
	if err != nil || wait <= vis/2 || wait > vis {
		t.Fatalf("pulse after a silence: wait %s, %v; want a quiet period of about %s", wait, err, vis)
	}
	// The quiet period holds for every worker, though pulses go on.
	if again, err := pulse(b, vis); err != nil || again <= 0 || again > wait {
		t.Fatalf("pulse in the quiet period: wait %s, %v; want what is left of %s", again, err, wait)
	}
}

// A reclaim after a silence of every worker takes nothing (its holder may
// be alive, about to extend its claim); the same reclaim once workers are
// heard from again takes the idle fire. A server clock stepped back does
// not stretch the quiet period.
func TestReclaimWaitsAfterSilence(t *testing.T) {
	b := setup(t)
	rdb, stream, d, idle := heldFire(t, b, "holder")
	idle(time.Minute) // as after a long outage
	const vis = 10 * time.Second
	now, err := rdb.Time(b.ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	pulseKey := b.st.Keys().Pulse()
	if err := rdb.HSet(b.ctx, pulseKey, "last", now.Add(-time.Minute).UnixMilli(), "quiet", 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, _, wait, err := b.worker.Reclaim(b.ctx, "other", stream, vis, "0-0", 10)
	if err != nil || len(got) != 0 || wait <= 0 || wait > vis {
		t.Fatalf("reclaim after a silence: took %d, wait %s, %v; want none and a quiet period of at most %s", len(got), wait, err, vis)
	}

	// The clock stepped back an hour: the quiet period is still at most vis.
	if err := rdb.HSet(b.ctx, pulseKey, "last", now.Add(time.Hour).UnixMilli(), "quiet", now.Add(time.Hour).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if wait, err := pulse(b, vis); err != nil || wait <= 0 || wait > vis {
		t.Fatalf("pulse after a clock step back: wait %s, %v; want at most %s", wait, err, vis)
	}

	// Workers heard from a moment ago, no quiet period: the fire is taken.
	if err := rdb.HSet(b.ctx, pulseKey, "last", now.UnixMilli(), "quiet", 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, _, wait, err = b.worker.Reclaim(b.ctx, "other", stream, vis, "0-0", 10)
	if err != nil || wait != 0 || len(got) != 1 || got[0].EntryID != d.EntryID || got[0].Deliveries != 2 || got[0].Fire.Task != "a" {
		t.Fatalf("reclaim with workers alive: %+v, wait %s, %v; want the idle fire, delivered twice", got, wait, err)
	}
}

// A worker with a short visibility timeout does not take a fire from a
// live worker that extends its claims at the pace of a longer one: the
// longest timeout seen among the workers governs every reclaim.
func TestReclaimUsesTheLongestVisibility(t *testing.T) {
	b := setup(t)
	rdb, stream, _, idle := heldFire(t, b, "slow-heart")
	// The holder works with 60s, and was heard from just now.
	if _, err := pulse(b, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(b.ctx, b.st.Keys().Pulse(), "quiet", 0).Err(); err != nil {
		t.Fatal(err)
	}
	idle(5 * time.Second) // over the reclaimer's 1s, well within the holder's 60s
	got, _, wait, err := b.worker.Reclaim(b.ctx, "quick", stream, time.Second, "0-0", 10)
	if err != nil || wait != 0 || len(got) != 0 {
		t.Fatalf("reclaim with 1s of a fire idle 5s under a 60s worker: took %d, wait %s, %v; want none", len(got), wait, err)
	}
	idle(2 * time.Minute) // the holder is gone
	got, _, wait, err = b.worker.Reclaim(b.ctx, "quick", stream, time.Second, "0-0", 10)
	if err != nil || wait != 0 || len(got) != 1 {
		t.Fatalf("reclaim of a fire idle 2m: took %d, wait %s, %v; want it", len(got), wait, err)
	}
}

// pulse is a heartbeat of a worker holding nothing: it records the pulse
// and returns what is left of the quiet period.
func pulse(b testBundle, visibility time.Duration) (time.Duration, error) {
	hb, err := b.worker.Heartbeat(b.ctx, "pulse", visibility, nil, store.Self{})
	return hb.Quiet, err
}

// heldFire reads the one fire of a fresh stream as holder, and returns
// the stream, the delivery, and a way to make it look idle for a while
// (as if its holder had not extended its claim).
func heldFire(t *testing.T, b testBundle, holder string) (*redis.Client, string, store.Delivery, func(time.Duration)) {
	t.Helper()
	rdb, stream := fireStream(t, b, 1)
	ds, err := b.worker.ReadFires(b.ctx, holder, []string{stream}, 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	idle := func(d time.Duration) {
		t.Helper()
		if err := rdb.Do(b.ctx, "XCLAIM", stream, store.WorkerGroup, holder, 0, ds[0].EntryID, "IDLE", d.Milliseconds(), "JUSTID").Err(); err != nil {
			t.Fatal(err)
		}
	}
	return rdb, stream, ds[0], idle
}

// TestFinishOfOneFireTwiceInABatch: a batch whose acks all come at its end
// still records a fire's outcome once when the fire is in it twice (a run
// and a rerun of the same entry): the second finds it taken.
func TestFinishOfOneFireTwiceInABatch(t *testing.T) {
	b := setup(t)
	rdb, stream := fireStream(t, b, 2)
	ds, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, 2, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	outcome := func(d store.Delivery) *store.Outcome {
		return &store.Outcome{Delivery: d, Events: []events.Event{{Type: events.TypeCompleted, Task: "a", Fire: d.EntryID, At: time.UnixMilli(1_700_000_000_000), Attempt: 1,
			Worker: "w", Status: events.StatusCompleted, Queue: "q"}}}
	}
	n, err := b.worker.Finish(b.ctx, "w", []*store.Outcome{outcome(ds[0]), outcome(ds[1]), outcome(ds[0])})
	if err != nil || n != 2 {
		t.Fatalf("finish recorded %d (err %v), want 2: the repeat of the first fire is not recorded", n, err)
	}
	evs, err := rdb.XRange(b.ctx, b.st.Keys().Events(), "-", "+").Result()
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d events (err %v), want one completed per fire", len(evs), err)
	}
	if p, err := rdb.XPending(b.ctx, stream, store.WorkerGroup).Result(); err != nil || p.Count != 0 {
		t.Fatalf("pending after the batch: %+v (err %v), want none", p, err)
	}
}

// TestHotPathsLoadTheirScriptsAgain: the plan and finish calls send
// EVALSHA themselves; a server without the scripts (restarted, failed
// over, SCRIPT FLUSH) gets them loaded again and the call goes through.
func TestHotPathsLoadTheirScriptsAgain(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{every("a", time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := b.worker.EnsureGroup(b.ctx, b.st.Keys().Fires("default")); err != nil {
		t.Fatal(err)
	}
	c := claimAll(t, b, "p1")
	if len(c.Tasks) != 1 {
		t.Fatalf("claimed %d tasks, want 1", len(c.Tasks))
	}
	if err := rdb.ScriptFlush(b.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	slot := c.Now.Add(-time.Second).Truncate(time.Millisecond)
	res, err := b.planning.Plan(b.ctx, "p1", []store.TaskPlan{firePlan(c.Tasks[0], slot)}, 0)
	if err != nil || res.Fires != 1 {
		t.Fatalf("plan after SCRIPT FLUSH: %+v, %v; want 1 fire", res, err)
	}
	ds, err := b.worker.ReadFires(b.ctx, "w", []string{b.st.Keys().Fires("default")}, 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	if err := rdb.ScriptFlush(b.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	o := &store.Outcome{Delivery: ds[0], Events: []events.Event{{Type: events.TypeCompleted, Task: "a", Fire: ds[0].Fire.ID, At: slot, Attempt: 1,
		Worker: "w", Status: events.StatusCompleted, Queue: "default"}}}
	if n, err := b.worker.Finish(b.ctx, "w", []*store.Outcome{o}); err != nil || n != 1 {
		t.Fatalf("finish after SCRIPT FLUSH recorded %d (err %v), want 1", n, err)
	}
	if p, err := rdb.XPending(b.ctx, b.st.Keys().Fires("default"), store.WorkerGroup).Result(); err != nil || p.Count != 0 {
		t.Fatalf("pending after the finish: %+v (err %v), want none: the fire is acked", p, err)
	}
}

// AppendEvents writes its events in order, or none: a bad one is refused
// before anything is sent.
func TestAppendEventsInOrderOrNone(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	at := time.UnixMilli(1_700_000_000_000).UTC()
	started := func(fire string) events.Event {
		return events.Event{Type: events.TypeStarted, Task: "a", Fire: fire, At: at, Attempt: 1, Worker: "w", Queue: "q"}
	}
	bad := started("f3")
	bad.Status = events.StatusCompleted // a started event carries no status
	if err := b.worker.AppendEvents(b.ctx, []events.Event{started("f1"), bad}); err == nil || !strings.Contains(err.Error(), "f3") {
		t.Fatalf("a batch with a bad event: %v, want an error naming its fire", err)
	}
	if n, err := rdb.XLen(b.ctx, b.st.Keys().Events()).Result(); err != nil || n != 0 {
		t.Fatalf("%d events after a refused batch (err %v), want none", n, err)
	}
	if err := b.worker.AppendEvents(b.ctx, []events.Event{started("f1"), started("f2")}); err != nil {
		t.Fatal(err)
	}
	got, err := b.st.RangeEvents(b.ctx, "-", "+")
	if err != nil || len(got) != 2 || got[0].Fire != "f1" || got[1].Fire != "f2" || got[0].Type != events.TypeStarted {
		t.Fatalf("events %+v (err %v), want started f1 then f2", got, err)
	}
}

// A visibility timeout no worker can have recorded (over MaxVisibility,
// not a number, or dated in the future) does not hold off reclaims: the
// pulse removes it and goes by the real workers' timeouts.
func TestReclaimIgnoresForgedVisibility(t *testing.T) {
	b := setup(t)
	rdb, stream, _, idle := heldFire(t, b, "dead")
	now, err := rdb.Time(b.ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	vkey := b.st.Keys().Visibility()
	forged := []redis.Z{
		{Score: float64(now.UnixMilli()), Member: (1000 * time.Hour).Milliseconds()},                     // over the bound
		{Score: float64(now.Add(24 * time.Hour).UnixMilli()), Member: (30 * time.Minute).Milliseconds()}, // in the future
		{Score: float64(now.UnixMilli()), Member: "forever"},                                             // not a number
	}
	if err := rdb.ZAdd(b.ctx, vkey, forged...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(b.ctx, b.st.Keys().Pulse(), "last", now.UnixMilli(), "quiet", 0).Err(); err != nil {
		t.Fatal(err)
	}
	idle(5 * time.Second) // past the reclaimer's 1s
	got, _, wait, err := b.worker.Reclaim(b.ctx, "other", stream, time.Second, "0-0", 10)
	if err != nil || wait != 0 || len(got) != 1 {
		t.Fatalf("reclaim of a dead worker's fire idle 5s, with 1s and forged entries: took %d, wait %s, %v; want it", len(got), wait, err)
	}
	left, err := rdb.ZRange(b.ctx, vkey, 0, -1).Result()
	if err != nil || len(left) != 1 || left[0] != "1000" {
		t.Errorf("visibility entries left: %v (%v), want only the reclaimer's 1000", left, err)
	}
}

// TestRouteGivesAFireToItsTarget: a fire routed to a worker is taken by
// that worker's next reclaim, quiet period or not, and by no other's
// (until it goes idle for the visibility timeout, as when the target died).
func TestRouteGivesAFireToItsTarget(t *testing.T) {
	b := setup(t)
	_, stream := fireStream(t, b, 1)
	ds, err := b.worker.ReadFires(b.ctx, "cannot", []string{stream}, 1, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("read %d (err %v)", len(ds), err)
	}
	if n, err := b.worker.Route(b.ctx, "cannot", "can", []store.Held{{Stream: stream, EntryID: ds[0].EntryID}}); err != nil || n != 1 {
		t.Fatalf("routed %d (err %v), want 1", n, err)
	}
	got, _, wait, err := b.worker.Reclaim(b.ctx, "other", stream, 30*time.Second, "0-0", 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("another worker's reclaim took %+v (quiet %s, err %v), want nothing", got, wait, err)
	}
	got, _, _, err = b.worker.Reclaim(b.ctx, "can", stream, 30*time.Second, "0-0", 10)
	if err != nil || len(got) != 1 || got[0].EntryID != ds[0].EntryID || !got[0].Routed || got[0].Deliveries != 1 {
		t.Fatalf("the target's reclaim took %+v (err %v); want the routed fire, delivered once", got, err)
	}
}

// TestChangesRecordPausesChangesAndRemovals: an apply notes each changed
// and removed task (not an added or unchanged one) in the changes set and
// publishes a resync; a pause notes the task and publishes it; a watcher
// gets a resync when its subscription is confirmed, then the notes; old
// entries (past ChangesKeep) are dropped by the next write.
func TestChangesRecordPausesChangesAndRemovals(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	notes, closeNotes := b.worker.WatchChanges(b.ctx)
	defer closeNotes()
	next := func() store.ChangeNote {
		t.Helper()
		select {
		case n := <-notes:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no note within 10s")
		}
		return store.ChangeNote{}
	}
	if n := next(); !n.Resync {
		t.Fatalf("first note %+v, want the subscription's resync", n)
	}
	old := time.Now().Add(-2 * store.ChangesKeep).UnixMilli()
	if err := rdb.ZAdd(b.ctx, b.st.Keys().Changes(), redis.Z{Score: float64(old), Member: "changed ancient"}).Err(); err != nil {
		t.Fatal(err)
	}
	spec := func(name string, period time.Duration) events.Spec {
		return events.Spec{Name: name, Trigger: events.Every(period)}
	}
	if _, err := b.st.Apply(b.ctx, 1, []events.Spec{spec("a", time.Second), spec("b", time.Second), spec("c", time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Apply(b.ctx, 2, []events.Spec{spec("a", 2*time.Second), spec("c", time.Second), spec("d", time.Second)}); err != nil {
		t.Fatal(err)
	}
	if n := next(); !n.Resync {
		t.Fatalf("note after an apply that changed tasks: %+v, want a resync", n)
	}
	pausedAt, err := b.st.Pause(b.ctx, "c", "test")
	if err != nil {
		t.Fatal(err)
	}
	if n := next(); n.Resync || n.Change.Task != "c" || n.Change.Kind != store.ChangePaused || !n.Change.At.Equal(pausedAt) {
		t.Fatalf("note after the pause: %+v, want c paused at %s", n, pausedAt)
	}
	cs, err := b.worker.Changes(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.Kind+" "+c.Task)
	}
	slices.Sort(got) // an apply's changes share its millisecond
	if strings.Join(got, ",") != "changed a,paused c,removed b" {
		t.Errorf("changes %v; want changed a, removed b, paused c (added d and unchanged c not noted, the ancient entry dropped)", got)
	}
}

// Under cancel-previous a fire replaces the run under way, unless it comes
// late (a retry, a reclaim) for an older slot than the one running: that
// one is dropped, recorded missed, and the newer run goes on. A first
// delivery (a jittered slot may arrive after the next one's), a backfill's
// fire and a manual one always replace.
func TestCancelPreviousKeepsTheNewerSlot(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	stream := b.st.Keys().Fires("q")
	if err := b.worker.EnsureGroup(b.ctx, stream); err != nil {
		t.Fatal(err)
	}
	ids := []string{"a@2000", "a@1000", "a@1500", "a@3000", "a@2500", "by-hand"}
	for _, id := range ids {
		if err := rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: stream, Values: []any{"task", "a", "id", id}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := b.worker.ReadFires(b.ctx, "w", []string{stream}, len(ids), 0)
	if err != nil || len(ds) != len(ids) {
		t.Fatalf("read %d fires (%v), want %d", len(ds), err, len(ids))
	}
	ds[1].Fire.Attempt = 2                                // a retry of an older slot
	ds[2].Fire.Attempt, ds[2].Fire.Origin = 2, "backfill" // a backfill's, retried
	subscribed := rdb.Subscribe(b.ctx, b.st.Keys().Cancel())
	defer subscribed.Close()
	if _, err := subscribed.Receive(b.ctx); err != nil {
		t.Fatal(err)
	}
	begin := func(d store.Delivery) store.BeginResult {
		t.Helper()
		missed := events.Event{Type: events.TypeMissed, Task: "a", Fire: d.Fire.ID, At: d.Fire.At, Count: 1, Policy: "overlap-cancel-previous", Reason: "older"}
		res, err := b.worker.Begin(b.ctx, d, events.OverlapCancelPrevious, time.Minute, missed)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	replaces := func(d store.Delivery, running string) {
		t.Helper()
		if res := begin(d); res != store.BeginReplaced {
			t.Fatalf("%s while %s runs: %s, want replaced", d.Fire.ID, running, res)
		}
		m, err := subscribed.ReceiveMessage(b.ctx)
		if want := running + " " + d.Fire.ID; err != nil || m.Payload != want {
			t.Fatalf("cancel message %v (%v), want %q", m, err, want)
		}
	}
	if res := begin(ds[0]); res != store.BeginRun {
		t.Fatalf("a@2000 with nothing running: %s, want run", res)
	}
	if res := begin(ds[1]); res != store.BeginSkipped {
		t.Fatalf("a retry of a@1000 while a@2000 runs: %s, want skipped (the newer slot goes on)", res)
	}
	if n := rdb.XPending(b.ctx, stream, "workers").Val().Count; n != int64(len(ids)-1) {
		t.Errorf("%d entries pending after the older slot was dropped, want %d (it is acked)", n, len(ids)-1)
	}
	evs, err := rdb.XRange(b.ctx, b.st.Keys().Events(), "-", "+").Result()
	if err != nil || len(evs) != 1 || evs[0].Values["fire"] != "a@1000" || evs[0].Values["type"] != "missed" {
		t.Errorf("events %v (%v), want one missed event for a@1000", evs, err)
	}
	replaces(ds[2], "a@2000") // a backfill's fire of an older slot
	replaces(ds[3], "a@1500")
	replaces(ds[4], "a@3000") // first delivered after a newer slot
	replaces(ds[5], "a@2500")
}
