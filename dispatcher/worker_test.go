package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// workerBundle is a worker's world: its own redis-server, a store of the
// namespace, and the events read so far.
type workerBundle struct {
	rdb   *redis.Client
	st    *store.Store
	after string
}

func setupWorker(t *testing.T, specs ...events.Spec) workerBundle {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	st, err := store.New(rdb, "w", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := planner.Apply(context.Background(), st, 1, specs); err != nil {
		t.Fatal(err)
	}
	return workerBundle{rdb: rdb, st: st, after: "0"}
}

// run starts w and stops it (checking Run returned nil) when the test ends.
func (b *workerBundle) run(t *testing.T, w *dispatcher.Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run returned %v", err)
		}
	})
}

// await reads events until one satisfies stop, returning all read.
func (b *workerBundle) await(t *testing.T, stop func(events.Event) bool) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var seen []events.Event
	for {
		es, next, err := b.st.ReadEvents(ctx, b.after, 100, time.Second)
		if err != nil {
			t.Fatalf("reading events (seen %+v): %v", seen, err)
		}
		b.after = next
		for _, e := range es {
			seen = append(seen, e.Event)
			if stop(e.Event) {
				return seen
			}
		}
	}
}

func testLogger(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

func ofType(es []events.Event, typ events.Type) []events.Event {
	var out []events.Event
	for _, e := range es {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

var errDeclined = errors.New("card declined")

// A handler whose error wraps SkipRetry is dead-lettered at its first
// attempt, with the reason and the error, though attempts are left.
func TestSkipRetryDeadLettersAtOnce(t *testing.T) {
	spec := events.Spec{Name: "charge", Trigger: events.Once(time.Now().Add(time.Hour)), Attempts: 3}
	b := setupWorker(t, spec)
	delays := 0
	w, err := dispatcher.NewWorker(b.rdb, dispatcher.WorkerConfig{Namespace: "w", Tasks: []events.Spec{spec}, Logger: testLogger(t),
		RetryDelay: func(int, error, events.Fire) time.Duration { delays++; return time.Millisecond }},
		dispatcher.Handlers{"charge": dispatcher.HandlerFunc(func(ctx context.Context, f events.Fire) error {
			return fmt.Errorf("order 42: %w: %w", errDeclined, dispatcher.SkipRetry)
		})})
	if err != nil {
		t.Fatal(err)
	}
	b.run(t, w)
	if _, err := b.st.Trigger(context.Background(), "charge", "", ""); err != nil {
		t.Fatal(err)
	}
	seen := b.await(t, func(e events.Event) bool { return e.Type == events.TypeDead })
	dead := ofType(seen, events.TypeDead)[0]
	if dead.Attempt != 1 || !strings.Contains(dead.Reason, "SkipRetry") || !strings.Contains(dead.Error, "card declined") {
		t.Errorf("dead event %+v: want attempt 1, a reason naming SkipRetry and the handler's error", dead)
	}
	if r := ofType(seen, events.TypeRetried); len(r) != 0 || delays != 0 {
		t.Errorf("a SkipRetry failure was retried: %d retried events, RetryDelay asked %d times", len(r), delays)
	}
	dls, err := b.st.ListDead(context.Background(), "-", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Task() != "charge" || !strings.Contains(dls[0].Reason, "attempt 1 of 3") || !strings.Contains(dls[0].Error, "order 42: card declined") {
		t.Errorf("dead letters %+v: want one of charge, at attempt 1 of 3, with the handler's error", dls)
	}
}

type quotaError struct{ wait time.Duration }

func (e *quotaError) Error() string { return "quota exceeded" }

// The retry-delay function sees the attempt, the error and the fire, and
// its delay is the one in the retried event; RetryAfter's own delay wins
// over it.
func TestRetryDelaySeesTheError(t *testing.T) {
	flaky := events.Spec{Name: "flaky", Trigger: events.Once(time.Now().Add(time.Hour)), Attempts: 3}
	limited := events.Spec{Name: "limited", Trigger: events.Once(time.Now().Add(time.Hour)), Attempts: 3}
	b := setupWorker(t, flaky, limited)
	type call struct {
		attempt int
		err     error
		fire    events.Fire
	}
	var mu sync.Mutex
	var calls []call
	var runs sync.Map
	fail := func(task string, err func(n int) error) dispatcher.Handler {
		return dispatcher.HandlerFunc(func(ctx context.Context, f events.Fire) error {
			n, _ := runs.LoadOrStore(task, new(int))
			*n.(*int)++
			return err(*n.(*int))
		})
	}
	w, err := dispatcher.NewWorker(b.rdb, dispatcher.WorkerConfig{Namespace: "w", Tasks: []events.Spec{flaky, limited}, Logger: testLogger(t),
		RetryDelay: func(attempt int, err error, f events.Fire) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{attempt, err, f})
			var q *quotaError
			if errors.As(err, &q) {
				return q.wait
			}
			return time.Hour
		}},
		dispatcher.Handlers{
			"flaky": fail("flaky", func(n int) error {
				if n == 1 {
					return fmt.Errorf("calling the API: %w", &quotaError{wait: 7 * time.Millisecond})
				}
				return nil
			}),
			"limited": fail("limited", func(n int) error {
				if n == 1 {
					return dispatcher.RetryAfter(3*time.Millisecond, errors.New("429 Too Many Requests"))
				}
				return nil
			}),
		})
	if err != nil {
		t.Fatal(err)
	}
	b.run(t, w)
	for _, task := range []string{"flaky", "limited"} {
		if _, err := b.st.Trigger(context.Background(), task, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	done := map[string]bool{}
	seen := b.await(t, func(e events.Event) bool {
		if e.Type == events.TypeCompleted {
			done[e.Task] = true
		}
		return len(done) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 {
		t.Fatalf("RetryDelay called %d times (%+v), want once: for flaky's first failure, not for RetryAfter's", len(calls), calls)
	}
	c := calls[0]
	var q *quotaError
	if c.attempt != 1 || c.fire.Task != "flaky" || !errors.As(c.err, &q) || !strings.Contains(c.err.Error(), "calling the API") {
		t.Errorf("RetryDelay got attempt %d, fire %+v, error %v: want attempt 1 of flaky with its *quotaError", c.attempt, c.fire, c.err)
	}
	reasons := map[string]string{}
	for _, e := range ofType(seen, events.TypeRetried) {
		reasons[e.Task] = e.Reason
	}
	if !strings.Contains(reasons["flaky"], "next in 7ms") || !strings.Contains(reasons["limited"], "next in 3ms") {
		t.Errorf("retried reasons %q: want flaky's next in 7ms (RetryDelay) and limited's in 3ms (RetryAfter)", reasons)
	}
	for _, e := range ofType(seen, events.TypeCompleted) {
		if e.Attempt != 2 {
			t.Errorf("%s completed at attempt %d, want 2", e.Task, e.Attempt)
		}
	}
}

// A program whose handlers and registered tasks do not match fails to
// start, with an error naming both sides.
func TestWorkerRefusesHandlersThatDoNotMatchTasks(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer rdb.Close()
	every := events.Every(time.Minute)
	tasks := []events.Spec{{Name: "report", Trigger: every}, {Name: "hello", Trigger: every}, {Name: "batch", Trigger: every, Queue: "slow"}}
	nop := dispatcher.HandlerFunc(func(context.Context, events.Fire) error { return nil })
	for _, tc := range []struct {
		name     string
		queues   []string
		handlers dispatcher.Handlers
		want     []string // in the error; none: it starts
	}{
		{"a typo", nil, dispatcher.Handlers{"reprot": nop, "hello": nop, "batch": nop},
			[]string{`handler "reprot" is for no registered task`, `task "report" (queue "default") is registered but has no handler`, "registered: batch, hello, report"}},
		{"a missing handler", nil, dispatcher.Handlers{"hello": nop, "report": nop},
			[]string{`task "batch" (queue "slow") is registered but has no handler`}},
		{"a task of a queue not read", []string{"default"}, dispatcher.Handlers{"hello": nop, "report": nop}, nil},
		{"all there", nil, dispatcher.Handlers{"hello": nop, "report": nop, "batch": nop}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dispatcher.NewWorker(rdb, dispatcher.WorkerConfig{Tasks: tasks, Queues: tc.queues, Logger: zerolog.Nop()}, tc.handlers)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A value out of range in a worker's config is an error naming the field,
// never silently replaced by the default.
func TestWorkerConfigOutOfRange(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer rdb.Close()
	nop := dispatcher.Handlers{"t": dispatcher.HandlerFunc(func(context.Context, events.Fire) error { return nil })}
	for field, cfg := range map[string]dispatcher.WorkerConfig{
		"Grace":             {Grace: -time.Second},
		"Concurrency":       {Concurrency: -1},
		"Stream.Node":       {Stream: consumer.Config{Node: "x"}},
		"VisibilityTimeout": {Stream: consumer.Config{VisibilityTimeout: -time.Second}},
		"Version":           {Version: -1},
	} {
		_, err := dispatcher.NewWorker(rdb, cfg, nop)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s out of range: error %v, want one naming the field", field, err)
		}
	}
	if _, err := dispatcher.New(newSource(), dispatcher.Config{Grace: -time.Second}); err == nil || !strings.Contains(err.Error(), "Config.Grace: -1s") {
		t.Errorf("dispatcher.New with a negative Grace: %v", err)
	}
}

type nilHandler struct{}

func (*nilHandler) Run(context.Context, events.Fire) error { return nil }

// A nil handler (a nil func, or a nil pointer of a Handler type) would
// panic at every run: NewWorker refuses it, naming the task.
func TestWorkerRefusesNilHandlers(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer rdb.Close()
	var fn dispatcher.HandlerFunc
	var ptr *nilHandler
	for name, h := range map[string]dispatcher.Handler{"func": fn, "pointer": ptr, "interface": nil} {
		_, err := dispatcher.NewWorker(rdb, dispatcher.WorkerConfig{Logger: zerolog.Nop()}, dispatcher.Handlers{name: h})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("handler %q is nil", name)) {
			t.Errorf("a nil %s handler: %v, want an error naming it", name, err)
		}
	}
}

// A RetryDelay that panics does not end the worker: the default delay
// answers, and the fire is retried.
func TestRetryDelayPanicFallsBackToTheDefault(t *testing.T) {
	src := newSource(fire("f", "fails", 1, events.Spec{Attempts: 3}))
	d := newDispatcher(t, src, dispatcher.Config{Logger: zerolog.Nop(),
		RetryDelay: func(int, error, events.Fire) time.Duration { panic("a bug in the user's delay") }})
	must(t, d.HandleFunc("fails", func(context.Context, events.Fire) error { return errors.New("boom") }))
	stop := start(t, d)
	r := src.await(t, 1)["f"]
	stop()
	if r.Next != consumer.Retry || r.RetryIn < time.Second || r.RetryIn > 1200*time.Millisecond {
		t.Errorf("result %+v: want a retry after the default first delay (1s to 1.2s)", r)
	}
}

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A worker given no Tasks compares its handlers with the stored task set
// when it starts, and warns of a typo there, naming both sides.
func TestWorkerWithoutTasksWarnsOfAMismatch(t *testing.T) {
	spec := events.Spec{Name: "report", Trigger: events.Once(time.Now().Add(time.Hour))}
	b := setupWorker(t, spec)
	var logs lockedBuffer
	nop := dispatcher.HandlerFunc(func(context.Context, events.Fire) error { return nil })
	w, err := dispatcher.NewWorker(b.rdb, dispatcher.WorkerConfig{Namespace: "w", Logger: zerolog.New(&logs)}, dispatcher.Handlers{"reprot": nop})
	if err != nil {
		t.Fatalf("a worker without Tasks refused at New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b.await(t, func(e events.Event) bool { return e.Type == events.TypeNodeUp })
	cancel()
	if err := <-done; err != nil { // Run returns once the check has logged
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{`"level":"warn"`, `handler \"reprot\" is for no registered task`, `task \"report\" (queue \"default\") is registered but has no handler`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs do not say %s:\n%s", want, out)
		}
	}
}

// SetHandlers on a running worker: the fires started after it run the new
// handler, the published state names the new tasks and version, and it
// refuses (changing nothing) a nil handler.
func TestSetHandlersWhileRunning(t *testing.T) {
	b := setupWorker(t, events.Spec{Name: "t", Trigger: events.Once(time.Now().Add(time.Hour))})
	ran := make(chan string, 10)
	handler := func(which string) dispatcher.Handlers {
		return dispatcher.Handlers{"t": dispatcher.HandlerFunc(func(context.Context, events.Fire) error { ran <- which; return nil })}
	}
	w, err := dispatcher.NewWorker(b.rdb, dispatcher.WorkerConfig{Namespace: "w", Node: "w1", Logger: testLogger(t), Version: 1,
		Stream: consumer.Config{VisibilityTimeout: 600 * time.Millisecond}}, handler("old"))
	if err != nil {
		t.Fatal(err)
	}
	b.run(t, w)
	ctx := context.Background()
	if _, err := w.TriggerTask(ctx, "t", ""); err != nil {
		t.Fatal(err)
	}
	if got := <-ran; got != "old" {
		t.Fatalf("first run by %q, want old", got)
	}
	var fn dispatcher.HandlerFunc
	if err := w.SetHandlers(dispatcher.Handlers{"t": fn}, 2, nil); err == nil {
		t.Error("SetHandlers took a nil handler")
	}
	hs := handler("new")
	hs["u"] = hs["t"]
	if err := w.SetHandlers(hs, 2, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.TriggerTask(ctx, "t", ""); err != nil {
		t.Fatal(err)
	}
	if got := <-ran; got != "new" {
		t.Fatalf("run after SetHandlers by %q, want new", got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ws, err := b.st.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 1 && ws[0].Version == 2 && len(ws[0].Tasks) == 2 && ws[0].Live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %+v, want w1 live at version 2 with tasks t and u", ws)
		}
		time.Sleep(10 * time.Millisecond) // a poll: the condition decides
	}
}
