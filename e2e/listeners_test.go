package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/listeners"
	"github.com/taskino/taskino/store"
)

// recorder is a listener that keeps what it is told (OnLastRun included),
// and signals each event.
type recorder struct {
	mu    sync.Mutex
	calls []string
	evs   []events.Event
	got   chan events.Event
}

func newRecorder() *recorder { return &recorder{got: make(chan events.Event, 10_000)} }

func (r *recorder) note(call string, e events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
	if call == "event" {
		r.evs = append(r.evs, e)
		r.got <- e
	}
}

func (r *recorder) OnEvent(ctx context.Context, e events.Event)   { r.note("event", e) }
func (r *recorder) OnStartup(ctx context.Context, e events.Event) { r.note("startup:"+e.Worker, e) }
func (r *recorder) OnStop(ctx context.Context, e events.Event)    { r.note("stop:"+e.Worker, e) }
func (r *recorder) OnReload(ctx context.Context, e events.Event) {
	r.note(fmt.Sprintf("reload:%d", e.Version), e)
}
func (r *recorder) OnComplete(ctx context.Context, e events.Event) {
	r.note(fmt.Sprintf("complete:%s", e.Task), e)
}

func (r *recorder) OnLastRun(ctx context.Context, e events.Event) {
	r.note(fmt.Sprintf("lastrun:%s:%s", e.Type, e.Task), e)
}

func (r *recorder) snapshot() ([]string, []events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...), append([]events.Event(nil), r.evs...)
}

// await waits until the recorder has been told of n events in all.
func (r *recorder) await(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		have := len(r.evs)
		r.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-r.got:
		case <-timeout:
			t.Fatalf("listener told of %d events after 30s, want %d", have, n)
		}
	}
}

func subscribe(t *testing.T, b testBundle, cfg listeners.Config, ls ...any) *running {
	t.Helper()
	cfg.Namespace = ns
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	s, err := listeners.New(b.rdb, cfg, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return goRun(t, "subscription", 30*time.Second, s.Run)
}

func appendMarks(t *testing.T, b testBundle, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := store.WorkerProtocol(b.st).AppendEvent(b.ctx, events.Event{Type: events.TypeNodeUp, Worker: fmt.Sprintf("%s-%d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDurableListenerResumesExactly: a durable listener stopped while 100
// events pass receives exactly those 100, in order, when it restarts.
func TestDurableListenerResumesExactly(t *testing.T) {
	b := setup(t)
	first := newRecorder()
	sub := subscribe(t, b, listeners.Config{Durable: "audit"}, first)
	// The group exists once the listener has seen an event appended after
	// it started; keep appending until it has.
	for i := 0; ; i++ {
		appendMarks(t, b, fmt.Sprintf("before%d", i), 1)
		select {
		case <-first.got:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	appendMarks(t, b, "before", 10)
	first.await(t, 11)
	sub.stop(t)

	appendMarks(t, b, "during", 100)

	second := newRecorder()
	subscribe(t, b, listeners.Config{Durable: "audit"}, second)
	second.await(t, 100)
	appendMarks(t, b, "after", 1)
	second.await(t, 101)
	_, got := second.snapshot()
	if len(got) != 101 {
		t.Fatalf("restarted listener got %d events, want the 100 that passed and 1 after", len(got))
	}
	for i, e := range got[:100] {
		if want := fmt.Sprintf("during-%d", i); e.Worker != want {
			t.Errorf("event %d after the restart is %s %q, want %q", i, e.Type, e.Worker, want)
		}
	}
	if got[100].Worker != "after-0" {
		t.Errorf("last event %q, want after-0", got[100].Worker)
	}
}

type panicky struct{ seen chan string }

func (p *panicky) OnStartup(ctx context.Context, e events.Event) {
	if e.Worker == "boom" {
		panic("listener bug")
	}
	p.seen <- e.Worker
}

// TestListenerCallbacksAndPanic: a live listener is told of startups,
// reloads, completions with their cost, and stops; a panicking listener is
// contained and reported, and the events after it still arrive.
func TestListenerCallbacksAndPanic(t *testing.T) {
	b := setup(t)
	rec := newRecorder()
	p := &panicky{seen: make(chan string, 10)}
	reported := make(chan error, 10)
	subscribe(t, b, listeners.Config{OnError: func(err error) { reported <- err }}, rec, p)
	// A live subscription starts at the end of the stream once running:
	// wait until it sees a mark.
	for i := 0; ; i++ {
		appendMarks(t, b, "ping", 1)
		select {
		case <-p.seen:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	if err := store.WorkerProtocol(b.st).AppendEvent(b.ctx, events.Event{Type: events.TypeNodeUp, Worker: "boom"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reported:
		if !strings.Contains(err.Error(), "listener bug") || !strings.Contains(err.Error(), "goroutine") {
			t.Errorf("reported %q, want the panic value and its stack", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the panic was not reported")
	}
	w := startWorker(t, b, consumer.Config{Node: "w"}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"nap": func(ctx context.Context, f events.Fire) error { time.Sleep(30 * time.Millisecond); return nil },
	})
	manualTasks(t, b, events.Spec{Name: "nap"})
	if _, err := b.st.Trigger(b.ctx, "nap", "", ""); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, nil)
	w.stop(t)
	awaitEvent(t, b, 30*time.Second, events.TypeNodeDown, func(e events.Event) bool { return e.Worker == "w" })
	// The node_down is the last event: once the listener has it, it has all.
	_, all := rec.snapshot()
	for {
		if n := len(all); n > 0 && all[n-1].Type == events.TypeNodeDown {
			break
		}
		select {
		case <-rec.got:
		case <-time.After(30 * time.Second):
			t.Fatal("listener was not told of the worker's stop")
		}
		_, all = rec.snapshot()
	}
	calls, evs := rec.snapshot()
	has := func(c string) bool {
		for _, x := range calls {
			if x == c {
				return true
			}
		}
		return false
	}
	for _, c := range []string{"startup:boom", "startup:w", "reload:1", "complete:nap", "lastrun:completed:nap", "stop:w"} {
		if !has(c) {
			t.Errorf("listener was not told %s; calls: %v", c, calls)
		}
	}
	for _, e := range evs {
		if e.Type == events.TypeCompleted && e.CostMs < 30 {
			t.Errorf("completion cost %dms, want at least the handler's 30ms", e.CostMs)
		}
	}
}

// TestDurableListenerProcessesShareTheWork: two processes of one durable
// listener (each its own consumer name) together receive every event
// once, none of them both; and the events a dead process was delivered
// and never acked go, after ClaimIdle, to a live one.
func TestDurableListenerProcessesShareTheWork(t *testing.T) {
	b := setup(t)
	if err := b.st.EnsureEventGroup(b.ctx, "shared", "$"); err != nil {
		t.Fatal(err)
	}
	// A process that read 5 events and died before acking them.
	appendMarks(t, b, "orphan", 5)
	if es, err := b.st.ReadEventGroup(b.ctx, "shared", "dead-process", ">", 5, 0); err != nil || len(es) != 5 {
		t.Fatalf("the dead process's read: %d events, %v", len(es), err)
	}
	one, two := newRecorder(), newRecorder()
	subscribe(t, b, listeners.Config{Durable: "shared", ClaimIdle: time.Second}, one)
	subscribe(t, b, listeners.Config{Durable: "shared", ClaimIdle: time.Second}, two)
	appendMarks(t, b, "share", 300)
	// Every event reaches one of them: 300 new and the 5 orphans.
	deadline := time.After(30 * time.Second)
	for {
		_, a := one.snapshot()
		_, c := two.snapshot()
		if len(a)+len(c) >= 305 {
			break
		}
		select {
		case <-one.got:
		case <-two.got:
		case <-deadline:
			t.Fatalf("the two processes got %d and %d events after 30s, want 305 in all", len(a), len(c))
		}
	}
	_, a := one.snapshot()
	_, c := two.snapshot()
	seen := map[string]int{}
	for _, e := range append(a, c...) {
		seen[e.Worker]++
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times across the two processes", name, n)
		}
	}
	for i := range 300 {
		if seen[fmt.Sprintf("share-%d", i)] != 1 {
			t.Errorf("share-%d not delivered", i)
		}
	}
	for i := range 5 {
		if seen[fmt.Sprintf("orphan-%d", i)] != 1 {
			t.Errorf("orphan-%d, left unacked by the dead process, was not taken over", i)
		}
	}
	if len(a) == 0 || len(c) == 0 {
		t.Errorf("one process got all the events (%d and %d): want each its own consumer, sharing them", len(a), len(c))
	}
}

// lengthOf is the events stream's length.
func lengthOf(t *testing.T, b testBundle) int64 {
	t.Helper()
	n, err := b.rdb.XLen(b.ctx, b.st.Keys().Events()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startDurable subscribes rec as the durable listener name, and returns
// once it is delivered an event appended after it started.
func startDurable(t *testing.T, b testBundle, name string, rec *recorder, onErr func(error)) *running {
	t.Helper()
	sub := subscribe(t, b, listeners.Config{Durable: name, OnError: onErr}, rec)
	for i := 0; ; i++ {
		appendMarks(t, b, fmt.Sprintf("%s-start%d", name, i), 1)
		select {
		case <-rec.got:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		return sub
	}
}

// TestDurableListenerKeepsItsEventsThroughTheTrim: with the namespace's
// events bound at 100, a durable listener stopped while 600 events pass
// receives every one of them when it restarts: the trim (as planners and
// workers run it every second) removes the 1,000 older events and keeps
// the 600 it was not delivered. With the hard bound at 1,000, a listener
// that falls 3,000 behind is told which events it lost, when it restarts
// after a stop and while it runs.
func TestDurableListenerKeepsItsEventsThroughTheTrim(t *testing.T) {
	b := setup(t)
	if err := b.st.SetSettings(b.ctx, store.Settings{EventsMaxLen: 100, EventsHardMaxLen: 1000}); err != nil {
		t.Fatal(err)
	}
	appendMarks(t, b, "filler", 1000)
	rec := newRecorder()
	sub := startDurable(t, b, "keeper", rec, nil)
	sub.stop(t)
	appendMarks(t, b, "during", 600)
	r, err := store.WorkerProtocol(b.st).RetainEvents(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Behind < 600 || r.MaxLen != 100 || r.HardMaxLen != 1000 {
		t.Errorf("retention pass %+v: want keeper 600 behind, the bounds 100 and 1000", r)
	}
	if n := lengthOf(t, b); n < 600 || n > 900 {
		t.Fatalf("events stream %d entries after the trim: want the 600 keeper was not delivered kept, the 1,000 older ones gone (600 to 900)", n)
	}
	again := newRecorder()
	subscribe(t, b, listeners.Config{Durable: "keeper"}, again)
	again.await(t, 600)
	_, got := again.snapshot()
	for i, e := range got[:600] {
		if want := fmt.Sprintf("during-%d", i); e.Worker != want {
			t.Fatalf("event %d after the restart is %q, want %q: the trim cut what keeper was not delivered", i, e.Worker, want)
		}
	}
	// Delivered now: the next pass trims to about 100.
	if _, err := store.WorkerProtocol(b.st).RetainEvents(b.ctx); err != nil {
		t.Fatal(err)
	}
	if n := lengthOf(t, b); n > 300 {
		t.Errorf("events stream %d entries once every listener was delivered them; want about 100", n)
	}

	// Past the hard bound, stopped: told at its start.
	lost := make(chan error, 10)
	slow := newRecorder()
	startDurable(t, b, "slow", slow, nil).stop(t)
	appendMarks(t, b, "flood", 3000)
	if _, err := store.WorkerProtocol(b.st).RetainEvents(b.ctx); err != nil {
		t.Fatal(err)
	}
	subscribe(t, b, listeners.Config{Durable: "slow", OnError: func(err error) { lost <- err }}, newRecorder())
	select {
	case err := <-lost:
		if !strings.Contains(err.Error(), `"slow" lost events`) {
			t.Errorf("slow listener told %q; want the range of events it missed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a listener 3,000 behind a hard bound of 1,000 was not told it lost events")
	}

	// Past the hard bound while running: a listener held in its first
	// event while 3,000 pass is told when it reads on.
	held := &holder{release: make(chan struct{}), in: make(chan struct{}, 1)}
	lostRunning := make(chan error, 10)
	subscribe(t, b, listeners.Config{Durable: "held", From: "$", OnError: func(err error) { lostRunning <- err }}, held)
	for i := 0; ; i++ {
		appendMarks(t, b, fmt.Sprintf("hold%d", i), 1)
		select {
		case <-held.in:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	appendMarks(t, b, "torrent", 3000)
	if _, err := store.WorkerProtocol(b.st).RetainEvents(b.ctx); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	select {
	case err := <-lostRunning:
		if !strings.Contains(err.Error(), `"held" lost events`) {
			t.Errorf("held listener told %q; want the range of events it lost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a running listener 3,000 behind a hard bound of 1,000 was not told it lost events")
	}
}

// holder blocks in its first event until released.
type holder struct {
	once    sync.Once
	in      chan struct{}
	release chan struct{}
}

func (h *holder) OnEvent(ctx context.Context, e events.Event) {
	h.once.Do(func() {
		h.in <- struct{}{}
		<-h.release
	})
}
