package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// The modes' runs: the ceiling loop, the burst and periodic set-ups with
// their planners and worker, and what they measured.

// namespace returns a fresh namespace and a function that deletes its keys:
// SCAN and UNLINK in batches of 1,000, so a million keys take a few
// seconds and never block Redis long. While Redis answers BUSY (a script
// still running, such as an apply whose call timed out) it waits, up to
// ten minutes.
func (m *Main) namespace() (string, func()) {
	ns := "bench-" + uuid.NewString()[:8]
	return ns, func() {
		ctx := context.Background()
		pattern := "taskino:{" + ns + "}:*"
		for deadline := time.Now().Add(10 * time.Minute); ; {
			err := m.unlinkAll(ctx, pattern)
			if err == nil || !strings.HasPrefix(err.Error(), "BUSY") || time.Now().After(deadline) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (m *Main) unlinkAll(ctx context.Context, pattern string) error {
	var cursor uint64
	for {
		keys, next, err := m.rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := m.rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// ceiling moves N entries through one stream with a bare go-redis loop.
func (m *Main) ceiling(ctx context.Context) (Result, error) {
	ns, drop := m.namespace()
	defer drop()
	stream := "taskino:{" + ns + "}:ceiling"
	if err := m.rdb.XGroupCreateMkStream(ctx, stream, "g", "$").Err(); err != nil {
		return Result{}, fmt.Errorf("ceiling: %w", err)
	}
	start := time.Now()
	prod := make(chan error, 1)
	go func() {
		for i := 0; i < m.N; i += 100 {
			pipe := m.rdb.Pipeline()
			for j := i; j < min(i+100, m.N); j++ {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{events.FieldTask, "t", events.FieldAt, "1"}})
			}
			if _, err := pipe.Exec(ctx); err != nil {
				prod <- err
				return
			}
		}
		prod <- nil
	}()
	acked := 0
	for acked < m.N {
		res, err := m.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 100, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			select {
			case err := <-prod: // the producer stopped short
				if err != nil {
					return Result{}, fmt.Errorf("ceiling: %w", err)
				}
				prod <- nil
			default:
			}
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("ceiling: %w", err)
		}
		ids := make([]string, 0, 100)
		for _, msg := range res[0].Messages {
			ids = append(ids, msg.ID)
		}
		if err := m.rdb.XAck(ctx, stream, "g", ids...).Err(); err != nil {
			return Result{}, fmt.Errorf("ceiling: %w", err)
		}
		acked += len(ids)
	}
	if err := <-prod; err != nil {
		return Result{}, fmt.Errorf("ceiling: %w", err)
	}
	wall := time.Since(start)
	return Result{Mode: "ceiling", N: m.N, WallS: wall.Seconds(), PerSec: float64(m.N) / wall.Seconds()}, nil
}

// runs records each run's lateness and counts runs per fire.
type runs struct {
	mu     sync.Mutex
	bySlot map[int64][]time.Duration // lateness by scheduled time (Unix ms)
	count  map[string]int
	all    chan struct{}
	want   int
}

func (r *runs) add(f events.Fire) {
	d := time.Since(f.At)
	r.mu.Lock()
	defer r.mu.Unlock()
	at := f.At.UnixMilli()
	r.bySlot[at] = append(r.bySlot[at], d)
	r.count[f.ID]++
	if len(r.count) == r.want && r.count[f.ID] == 1 {
		close(r.all)
	}
}

// setup is what burst and periodic share: a store on ns whose events are
// not trimmed during the run, a running worker whose no-op handlers record
// want runs, and k tasks named prefix-0..k-1 with the trigger built from
// the server's time, applied.
type setup struct {
	st         *store.Store
	rs         *runs
	maxLen     int64
	stopWorker func()
}

func (m *Main) setUp(ctx context.Context, ns, prefix string, k, want int, trigger func(now time.Time) events.Trigger) (setup, error) {
	su := setup{maxLen: int64(10*want + 100_000)}
	st, err := store.New(m.rdb, ns, store.Options{EventsMaxLen: su.maxLen})
	if err != nil {
		return su, err
	}
	su.st = st
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%07d", prefix, i)
	}
	su.rs = &runs{count: make(map[string]int, want), bySlot: map[int64][]time.Duration{}, all: make(chan struct{}), want: want}
	if su.stopWorker, err = m.worker(ctx, ns, names, su.rs, su.maxLen); err != nil {
		return su, err
	}
	now, err := st.Time(ctx)
	if err == nil {
		specs := make([]events.Spec, k)
		for i := range specs {
			specs[i] = events.Spec{Name: names[i], Trigger: trigger(now)}
		}
		_, err = planner.Apply(ctx, st, 1, specs)
	}
	if err != nil {
		su.stopWorker()
		return su, fmt.Errorf("%s: apply %d tasks: %w", prefix, k, err)
	}
	return su, nil
}

// burst: N one-shot tasks due at one instant, one planner and one worker.
func (m *Main) burst(ctx context.Context) (Result, error) {
	ns, drop := m.namespace()
	defer drop()
	var due time.Time
	su, err := m.setUp(ctx, ns, "burst", m.N, m.N, func(now time.Time) events.Trigger {
		due = now.Add(m.Lead)
		return events.Once(due)
	})
	if err != nil {
		return Result{}, err
	}
	defer su.stopWorker()
	if now, err := su.st.Time(ctx); err != nil {
		return Result{}, err
	} else if now.After(due) {
		return Result{}, fmt.Errorf("burst: applying %d tasks took past their due time; raise --lead above %s", m.N, m.Lead)
	}
	stop, err := m.planners(ctx, ns, 1, su.maxLen)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	if err := m.awaitRuns(ctx, su.st, su.rs, due); err != nil {
		return Result{}, err
	}
	return m.result(su.rs, "burst", m.N, time.Since(due)), nil
}

// periodic: K tasks every second for a while, two planners and one worker.
func (m *Main) periodic(ctx context.Context) (Result, error) {
	ns, drop := m.namespace()
	defer drop()
	want := m.Tasks * int(m.For/time.Second)
	var end time.Time
	su, err := m.setUp(ctx, ns, "tick", m.Tasks, want, func(now time.Time) events.Trigger {
		start := now.Add(m.Lead).Truncate(time.Second)
		end = start.Add(m.For - time.Millisecond)
		return events.Every(time.Second).From(start).Until(end)
	})
	if err != nil {
		return Result{}, err
	}
	defer su.stopWorker()
	stop, err := m.planners(ctx, ns, 2, su.maxLen)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	if err := m.awaitRuns(ctx, su.st, su.rs, end); err != nil {
		return Result{}, err
	}
	r := m.result(su.rs, "periodic", want, m.For)
	r.Expected = want
	return r, nil
}

// worker starts a worker of ns (concurrency --concurrency) whose no-op
// handlers record their runs, and returns its stop.
func (m *Main) worker(ctx context.Context, ns string, names []string, rs *runs, maxLen int64) (func(), error) {
	hs := dispatcher.Handlers{}
	for _, n := range names {
		hs[n] = dispatcher.HandlerFunc(func(_ context.Context, f events.Fire) error { rs.add(f); return nil })
	}
	d, err := dispatcher.NewWorker(m.rdb, dispatcher.WorkerConfig{Namespace: ns, Logger: zerolog.Nop(), Concurrency: m.Concurrency,
		Stream: consumer.Config{FlushBatch: 512, EventsMaxLen: maxLen, Prefetch: m.Prefetch, NoPrefetch: m.Prefetch == 0, EarlyLimit: m.EarlyLimit}}, hs)
	if err != nil {
		return nil, err
	}
	return m.goRun(ctx, d.Run), nil
}

// planners starts --planners planners of ns (def when the flag is unset)
// and returns their stop.
func (m *Main) planners(ctx context.Context, ns string, def int, maxLen int64) (func(), error) {
	n := m.plannerCount(def)
	var stops []func()
	stopAll := func() {
		for _, stop := range stops {
			stop()
		}
	}
	for i := range n {
		p, err := planner.New(m.rdb, planner.Config{Namespace: ns, Node: fmt.Sprintf("bench-planner-%d", i+1), Logger: zerolog.Nop(),
			EventsMaxLen: maxLen, Lookahead: m.Lookahead, NoLookahead: m.Lookahead == 0})
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, m.goRun(ctx, p.Run))
	}
	return stopAll, nil
}

// goRun runs run until the returned stop is called, which waits for it.
func (m *Main) goRun(ctx context.Context, run func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = run(ctx); close(done) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// awaitRuns waits until every wanted fire ran and nothing is pending, or
// until 10 minutes after last (the last slot): what has not run by then
// counts as missed.
func (m *Main) awaitRuns(ctx context.Context, st *store.Store, rs *runs, last time.Time) error {
	select {
	case <-rs.all:
	case <-time.After(time.Until(last) + 10*time.Minute):
	case <-ctx.Done():
		return ctx.Err()
	}
	stream := st.Keys().Fires(events.DefaultQueue)
	for {
		pend, err := m.rdb.XPending(ctx, stream, store.WorkerGroup).Result()
		if err != nil {
			return err
		}
		if pend.Count == 0 || time.Since(last) > 10*time.Minute {
			return nil
		}
		time.Sleep(time.Millisecond) // polling Redis, in a bench only
	}
}

// quantile is the q quantile of sorted, in ms.
func quantile(sorted []time.Duration, q float64) float64 {
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
}

// result sums up the runs: n wanted over wall (a run not seen is a miss).
func (m *Main) result(r *runs, mode string, n int, wall time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Mode: mode, N: n, WallS: wall.Seconds(), PerSec: float64(len(r.count)) / wall.Seconds(), LookaheadMs: m.Lookahead.Milliseconds()}
	var all []time.Duration
	for i, at := range slices.Sorted(maps.Keys(r.bySlot)) {
		late := r.bySlot[at]
		all = append(all, late...)
		if mode != "periodic" {
			continue
		}
		slices.Sort(late)
		p := quantile(late, 0.99)
		res.SlotP99Ms = append(res.SlotP99Ms, p)
		if res.WorstSlot == 0 || p > res.SlotP99Ms[res.WorstSlot-1] {
			res.WorstSlot = i + 1
		}
	}
	if len(all) > 0 {
		slices.Sort(all)
		res.P50Ms, res.P99Ms, res.MaxMs = quantile(all, 0.5), quantile(all, 0.99), quantile(all, 1)
	}
	for _, c := range r.count {
		res.Duplicates += c - 1
	}
	res.Misses = n - len(r.count)
	return res
}
