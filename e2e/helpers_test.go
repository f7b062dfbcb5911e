package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

const ns = "e2e"

type testBundle struct {
	srv *redistest.Server
	rdb *redis.Client
	st  *store.Store
	ctx context.Context
}

func setup(t *testing.T) testBundle {
	t.Helper()
	t.Parallel()
	return setupAlone(t)
}

// setupAlone is setup for a test that does not run in parallel with the
// others: one whose load (500 MB through Redis, three planners of 200
// tasks) would starve them.
func setupAlone(t *testing.T) testBundle {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st, err := store.New(rdb, ns, store.Options{EventsMaxLen: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return testBundle{srv: srv, rdb: rdb, st: st, ctx: context.Background()}
}

// skewedClock is a host clock set off by a fixed offset, as a machine whose
// clock drifted would be.
type skewedClock struct{ off time.Duration }

func (c skewedClock) Now() time.Time { return time.Now().Add(c.off) }

// running is a Run loop (a planner's, a worker's) in its own goroutine.
type running struct {
	what   string
	limit  time.Duration // how long stop waits for Run to return
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// goRun starts run in a goroutine; stop ends it, and the test's cleanup
// does unless stop was called first.
func goRun(t *testing.T, what string, limit time.Duration, run func(ctx context.Context) error) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{what: what, limit: limit, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and checks that it returned nil within the limit.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("%s Run returned %v, want nil after a stop", r.what, err)
			}
		case <-time.After(r.limit):
			t.Errorf("%s did not return within %s of its stop", r.what, r.limit)
		}
	})
}

// runningPlanner is a planner running in its own goroutine.
type runningPlanner struct {
	*running
	p *planner.Planner
}

// startPlanner starts a planner on the bundle's server and stops it (and
// checks it returned nil) when the test ends, unless stop was called first.
func startPlanner(t *testing.T, b testBundle, cfg planner.Config, register func(p *planner.Planner)) *runningPlanner {
	t.Helper()
	cfg.Namespace = ns
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	p, err := planner.New(b.rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if register != nil {
		register(p)
	}
	return &runningPlanner{running: goRun(t, "planner", 30*time.Second, p.Run), p: p}
}

// awaitEvents reads the events stream as it grows (XREAD BLOCK, so the
// wait is on Redis, not a sleep) until cond holds for everything read so far,
// and returns it. It fails the test after limit.
func awaitEvents(t *testing.T, b testBundle, limit time.Duration, cond func(all []events.Event) bool) []events.Event {
	t.Helper()
	all, err := waitEvents(b.ctx, b, limit, cond)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// waitEvents is awaitEvents returning an error instead of failing the test,
// for use off the test's goroutine (in a handler).
func waitEvents(ctx context.Context, b testBundle, limit time.Duration, cond func(all []events.Event) bool) ([]events.Event, error) {
	deadline := time.Now().Add(limit)
	var all []events.Event
	last := "0"
	for {
		if cond(all) {
			return all, nil
		}
		if time.Now().After(deadline) {
			return all, fmt.Errorf("condition not met after %s (%d events read)", limit, len(all))
		}
		res, err := b.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{b.st.Keys().Events(), last}, Block: time.Second, Count: 10_000}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return all, err
		}
		for _, m := range res[0].Messages {
			last = m.ID
			e, err := b.st.RangeEvents(ctx, m.ID, m.ID)
			if err != nil {
				return all, fmt.Errorf("event %s does not decode: %w", m.ID, err)
			}
			all = append(all, e...)
		}
	}
}

// awaitEvent waits until an event of type typ for which match holds has
// been appended (match nil: any of that type), and returns every event read.
func awaitEvent(t *testing.T, b testBundle, limit time.Duration, typ events.Type, match func(e events.Event) bool) []events.Event {
	t.Helper()
	return awaitEvents(t, b, limit, func(all []events.Event) bool {
		for _, e := range all {
			if e.Type == typ && (match == nil || match(e)) {
				return true
			}
		}
		return false
	})
}

// slotKey names one (task, scheduled time) slot.
type slotKey struct {
	task string
	at   int64
}

func (k slotKey) String() string { return fmt.Sprintf("%s@%d", k.task, k.at) }

// ledger is what the streams say happened, per slot.
type ledger struct {
	fires   map[slotKey]int // entries on the fire stream
	fired   map[slotKey]int // fired events
	missed  map[slotKey]int // missed events (ranges expanded by the caller's period)
	firedBy map[slotKey]string
}

// readLedger reads the whole fire stream and events stream of the bundle.
func readLedger(t *testing.T, b testBundle) ledger {
	t.Helper()
	l := ledger{fires: map[slotKey]int{}, fired: map[slotKey]int{}, missed: map[slotKey]int{}, firedBy: map[slotKey]string{}}
	fires, err := b.st.RangeFires(b.ctx, b.st.Keys().Fires("default"), "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fires {
		k := slotKey{f.Task, f.At.UnixMilli()}
		if f.ID != events.FireID(f.Task, f.At) {
			t.Fatalf("fire %s has id %q, want the id derived from task and slot", k, f.ID)
		}
		l.fires[k]++
	}
	evs, err := b.st.RangeEvents(b.ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		k := slotKey{e.Task, e.At.UnixMilli()}
		switch e.Type {
		case events.TypeFired:
			l.fired[k]++
			l.firedBy[k] = e.Worker
		case events.TypeMissed:
			if e.Count != 1 {
				t.Fatalf("missed range %+v: these tests expect single-slot misses", e)
			}
			l.missed[k]++
		}
	}
	return l
}

// safeNames collects task names handed to a hook from a planner goroutine.
type safeNames struct {
	mu    sync.Mutex
	names []string
}

func (s *safeNames) set(n []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append([]string(nil), n...)
}

func (s *safeNames) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names
}
