package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// fakeSource hands out a fixed list of fires and keeps the results. It
// tests the execution side alone; the Redis side is tested in e2e.
type fakeSource struct {
	mu      sync.Mutex
	pending []store.Delivery
	started []string
	results map[string]consumer.Result
	done    chan string
}

func newSource(ds ...store.Delivery) *fakeSource {
	return &fakeSource{pending: ds, results: map[string]consumer.Result{}, done: make(chan string, 100)}
}

// newDispatcher is dispatcher.New, failing the test on an error.
func newDispatcher(tb testing.TB, src dispatcher.Source, cfg dispatcher.Config) *dispatcher.Dispatcher {
	tb.Helper()
	d, err := dispatcher.New(src, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func (s *fakeSource) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (s *fakeSource) Fetch(ctx context.Context, max int) ([]store.Delivery, error) {
	s.mu.Lock()
	n := min(max, len(s.pending))
	out := s.pending[:n]
	s.pending = s.pending[n:]
	s.mu.Unlock()
	if n == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return out, nil
}

func (s *fakeSource) Start(d *store.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = append(s.started, d.Fire.ID)
}

func (s *fakeSource) Finish(d *store.Delivery, r consumer.Result) {
	s.mu.Lock()
	s.results[d.Fire.ID] = r
	s.mu.Unlock()
	s.done <- d.Fire.ID
}

func (s *fakeSource) await(t *testing.T, n int) map[string]consumer.Result {
	t.Helper()
	for range n {
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatal("no result after 10s")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]consumer.Result{}
	for k, v := range s.results {
		out[k] = v
	}
	return out
}

func fire(id, task string, attempt int, spec events.Spec) store.Delivery {
	spec.Name = task
	return store.Delivery{Fire: events.Fire{ID: id, Task: task, Attempt: attempt}, Spec: spec.WithDefaults(), Queue: "default"}
}

func start(t *testing.T, d *dispatcher.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	}
}

func TestOutcomes(t *testing.T) {
	src := newSource(
		fire("ok", "ok", 1, events.Spec{}),
		fire("fails-early", "fails", 1, events.Spec{Attempts: 3}),
		fire("fails-last", "fails", 3, events.Spec{Attempts: 3}),
		fire("slow", "slow", 1, events.Spec{Timeout: 20 * time.Millisecond, Attempts: 1}),
		fire("panics", "panics", 1, events.Spec{Attempts: 1}),
		fire("orphan", "nobody", 1, events.Spec{}),
		fire("talks", "talks", 1, events.Spec{Attempts: 1}),
	)
	d := newDispatcher(t, src, dispatcher.Config{RetryDelay: func(a int, _ error, _ events.Fire) time.Duration { return time.Duration(a) * time.Second }})
	must(t, d.HandleFunc("ok", func(ctx context.Context, f events.Fire) error { return nil }))
	must(t, d.HandleFunc("fails", func(ctx context.Context, f events.Fire) error { return errors.New("boom") }))
	must(t, d.HandleFunc("slow", func(ctx context.Context, f events.Fire) error { <-ctx.Done(); return ctx.Err() }))
	must(t, d.HandleFunc("panics", func(ctx context.Context, f events.Fire) error { panic("bad index") }))
	must(t, d.HandleFunc("talks", func(ctx context.Context, f events.Fire) error {
		dispatcher.SetOutput(ctx, "first")
		dispatcher.SetOutput(ctx, "last words")
		return errors.New("then failed")
	}))
	if err := d.HandleFunc("bad name!", func(ctx context.Context, f events.Fire) error { return nil }); err == nil {
		t.Error("a handler for an impossible task name was accepted")
	}
	stop := start(t, d)
	res := src.await(t, 7)
	stop()

	if r := res["ok"]; r.Err != nil || r.Started.IsZero() || r.Finished.Before(r.Started) {
		t.Errorf("ok: %+v", r)
	}
	if r := res["fails-early"]; r.Err == nil || r.Next != consumer.Retry || r.RetryIn != time.Second || r.Reason != "attempt 1 of 3 failed; next in 1s" {
		t.Errorf("a first failure of 3 attempts: %+v, want a retry in 1s (the backoff of attempt 1)", r)
	}
	if r := res["fails-last"]; r.Err == nil || r.Next != consumer.Dead || r.RetryIn != 0 || !strings.Contains(r.Reason, "3 of 3") {
		t.Errorf("the last attempt's failure: %+v, want it dead", r)
	}
	if r := res["slow"]; r.Err == nil || !strings.Contains(r.Err.Error(), "timed out after 20ms") {
		t.Errorf("a run past its timeout: %+v, want a timed-out failure", r)
	}
	var pe *dispatcher.PanicError
	if r := res["panics"]; !errors.As(r.Err, &pe) || pe.Value != "bad index" || !strings.Contains(string(pe.Stack), "dispatcher_test.go") {
		t.Errorf("a panic: %+v, want a PanicError with its value and stack", r)
	}
	if r := res["orphan"]; r.Next != consumer.Dead || !strings.Contains(r.Reason, `no handler for task "nobody"`) || !r.Started.IsZero() {
		t.Errorf("a fire with no handler: %+v, want it dead-lettered unstarted", r)
	}
	if r := res["talks"]; r.Output != "last words" || r.Err == nil {
		t.Errorf("a failed run that set its output: %+v, want output %q kept with the failure", r, "last words")
	}
	if r := res["ok"]; r.Output != "" {
		t.Errorf("a silent run has output %q", r.Output)
	}
	if len(src.started) != 6 {
		t.Errorf("%d runs started, want 6 (not the one with no handler)", len(src.started))
	}
}

func TestConcurrencyBound(t *testing.T) {
	var ds []store.Delivery
	for i := range 20 {
		ds = append(ds, fire(string(rune('a'+i)), "work", 1, events.Spec{}))
	}
	src := newSource(ds...)
	var mu sync.Mutex
	running, peak := 0, 0
	d := newDispatcher(t, src, dispatcher.Config{Concurrency: 3})
	must(t, d.HandleFunc("work", func(ctx context.Context, f events.Fire) error {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // the work
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}))
	stop := start(t, d)
	src.await(t, 20)
	stop()
	if peak != 3 {
		t.Errorf("peak concurrency %d, want 3", peak)
	}
}

func TestStopWaitsAndStopAndCancelCancels(t *testing.T) {
	release := make(chan struct{})
	src := newSource(fire("graceful", "wait", 1, events.Spec{}))
	d := newDispatcher(t, src, dispatcher.Config{})
	entered := make(chan struct{})
	must(t, d.HandleFunc("wait", func(ctx context.Context, f events.Fire) error {
		close(entered)
		<-release
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(context.Background()) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a run was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := src.results["graceful"]; r.Err != nil || r.Next != consumer.Record {
		t.Errorf("the run under way at Stop: %+v, want it finished", r)
	}

	src2 := newSource(fire("cancelled", "block", 1, events.Spec{}))
	d2 := newDispatcher(t, src2, dispatcher.Config{})
	entered2 := make(chan struct{})
	must(t, d2.HandleFunc("block", func(ctx context.Context, f events.Fire) error {
		close(entered2)
		<-ctx.Done()
		return ctx.Err()
	}))
	go func() { done <- d2.Run(context.Background()) }()
	<-entered2
	if err := d2.StopAndCancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := src2.results["cancelled"]; r.Next != consumer.HandBack {
		t.Errorf("a run cancelled by StopAndCancel: %+v, want it handed back, not failed", r)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Runs go to goroutines kept from one run to the next; once Run returns,
// none is left behind, not even one whose handler ignored the cancel of a
// hard stop, once that handler returns.
func TestRunsLeaveNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	var ds []store.Delivery
	for i := range 300 {
		ds = append(ds, fire(fmt.Sprintf("f%d", i), "work", 1, events.Spec{}))
	}
	ds = append(ds, fire("stuck", "stuck", 1, events.Spec{}))
	src := newSource(ds...)
	d := newDispatcher(t, src, dispatcher.Config{Concurrency: 8, CancelWait: 50 * time.Millisecond})
	var mu sync.Mutex
	runs := map[string]int{}
	must(t, d.HandleFunc("work", func(ctx context.Context, f events.Fire) error {
		mu.Lock()
		runs[f.ID]++
		mu.Unlock()
		return nil
	}))
	entered, release := make(chan struct{}), make(chan struct{})
	must(t, d.HandleFunc("stuck", func(ctx context.Context, f events.Fire) error {
		close(entered)
		<-release // ignores ctx
		return nil
	}))
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	res := src.await(t, 300)
	<-entered
	if err := d.StopAndCancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i := range 300 {
		if id := fmt.Sprintf("f%d", i); runs[id] != 1 || res[id].Err != nil {
			t.Errorf("fire %s ran %d times (result %+v); want once, completed", id, runs[id], res[id])
		}
	}
	mu.Unlock()
	// Still running: abandoned, not handed back, so no other worker runs
	// the fire beside it.
	if r := src.await(t, 1)["stuck"]; r.Next != consumer.Abandon || r.Started.IsZero() || !strings.Contains(r.Reason, "StopAndCancel") {
		t.Errorf("the run that ignored the hard stop: %+v, want it abandoned, with its start and the reason", r)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Run returned and the stuck handler ended, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond) // awaiting goroutine exits, which nothing signals
	}
}

// A handler that ends its goroutine (runtime.Goexit, as t.FailNow does)
// fails its run, which is retried or dead-lettered like any other, and the
// runs after it go on.
func TestGoexitInAHandler(t *testing.T) {
	src := newSource(fire("exit-1", "exit", 1, events.Spec{Attempts: 2}), fire("exit-2", "exit", 2, events.Spec{Attempts: 2}),
		fire("after-1", "work", 1, events.Spec{}), fire("after-2", "work", 1, events.Spec{}))
	d := newDispatcher(t, src, dispatcher.Config{Concurrency: 1})
	must(t, d.HandleFunc("exit", func(ctx context.Context, f events.Fire) error {
		runtime.Goexit()
		return nil
	}))
	must(t, d.HandleFunc("work", func(ctx context.Context, f events.Fire) error { return nil }))
	stop := start(t, d)
	res := src.await(t, 4)
	stop()
	for _, id := range []string{"after-1", "after-2"} {
		if r, ok := res[id]; !ok || r.Err != nil {
			t.Errorf("fire %s after two handlers that ended their goroutines: %+v (recorded %v); want it run", id, r, ok)
		}
	}
	if r := res["exit-1"]; !errors.Is(r.Err, dispatcher.ErrGoexit) || r.Next != consumer.Retry || r.RetryIn <= 0 || r.Started.IsZero() {
		t.Errorf("first attempt of a handler that called Goexit: %+v; want ErrGoexit, retried", r)
	}
	if r := res["exit-2"]; !errors.Is(r.Err, dispatcher.ErrGoexit) || r.Next != consumer.Dead {
		t.Errorf("last attempt of a handler that called Goexit: %+v; want ErrGoexit, dead-lettered", r)
	}
}

// A run's context ends when its handler returns, though the goroutine
// that ran it is kept for the next run.
func TestRunContextEndsWithTheRun(t *testing.T) {
	src := newSource(fire("a", "keep", 1, events.Spec{}), fire("b", "keep", 1, events.Spec{}))
	d := newDispatcher(t, src, dispatcher.Config{Concurrency: 1})
	ctxs := make(chan context.Context, 2)
	must(t, d.HandleFunc("keep", func(ctx context.Context, f events.Fire) error {
		if ctx.Err() != nil {
			t.Errorf("fire %s: its context ended before its run: %v", f.ID, ctx.Err())
		}
		ctxs <- ctx
		return nil
	}))
	stop := start(t, d)
	src.await(t, 2)
	for range 2 {
		select {
		case <-(<-ctxs).Done():
		case <-time.After(10 * time.Second):
			t.Error("a run's context is still live 10s after its handler returned")
		}
	}
	stop()
}

// A run that outlasts the grace of a stop is cancelled; once its handler
// has returned, its fire is handed back with the run's start, output and
// error, and a reason naming the grace (the cancelled event's), not
// recorded as the handler's failure. One that ends within the grace is
// recorded as usual.
func TestStopCutsRunsAtTheGrace(t *testing.T) {
	src := newSource(fire("slow", "slow", 1, events.Spec{}), fire("quick", "quick", 1, events.Spec{}))
	d := newDispatcher(t, src, dispatcher.Config{Concurrency: 2, Grace: 20 * time.Millisecond})
	running, quickEnd := make(chan struct{}), make(chan struct{})
	must(t, d.HandleFunc("slow", func(ctx context.Context, f events.Fire) error {
		dispatcher.SetOutput(ctx, "cleaning up")
		close(running)
		<-ctx.Done()
		return ctx.Err()
	}))
	must(t, d.HandleFunc("quick", func(ctx context.Context, f events.Fire) error {
		<-quickEnd
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-running
	cancel()
	close(quickEnd)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res := src.await(t, 2)
	slow := res["slow"]
	if slow.Next != consumer.HandBack || slow.Started.IsZero() || slow.Finished.Before(slow.Started) ||
		slow.Output != "cleaning up" || !errors.Is(slow.Err, context.Canceled) || !strings.Contains(slow.Reason, "20ms grace") {
		t.Errorf("cut run: %+v; want it handed back with its start, end, output, error and the grace as the reason", slow)
	}
	if q := res["quick"]; q.Next != consumer.Record || q.Err != nil {
		t.Errorf("run that ended within the grace: %+v; want it recorded", q)
	}
}

// unhandlingSource takes back fires of tasks in its set that have no
// handler, as a consumer does for tasks in the task set.
type unhandlingSource struct {
	*fakeSource
	known map[string]bool
	mu    sync.Mutex
	taken []string
}

func (s *unhandlingSource) Unhandled(d *store.Delivery) bool {
	if !s.known[d.Fire.Task] {
		return false
	}
	s.mu.Lock()
	s.taken = append(s.taken, d.Fire.ID)
	s.mu.Unlock()
	s.fakeSource.done <- d.Fire.ID
	return true
}

// A fire whose task has no handler here goes back to a source that takes
// it (a task in the task set: the consumer routes it), with no outcome;
// one the source does not take is dead-lettered.
func TestNoHandlerGoesBackToTheSource(t *testing.T) {
	src := &unhandlingSource{fakeSource: newSource(fire("r", "removed", 1, events.Spec{}), fire("u", "unknown", 1, events.Spec{})),
		known: map[string]bool{"removed": true}}
	d := newDispatcher(t, src, dispatcher.Config{Concurrency: 2})
	must(t, d.HandleFunc("other", func(context.Context, events.Fire) error { return nil }))
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	res := src.await(t, 2)
	if err := d.StopAndCancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, finished := res["r"]; finished || len(src.taken) != 1 || src.taken[0] != "r" {
		t.Errorf("fire of a known task without handler: result %+v, taken back %v; want it taken back, no result", res["r"], src.taken)
	}
	if u := res["u"]; u.Next != consumer.Dead || !strings.Contains(u.Reason, "no handler") {
		t.Errorf("fire of an unknown task: %+v; want it dead-lettered", u)
	}
}
