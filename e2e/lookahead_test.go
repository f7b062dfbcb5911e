package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// A planner appends a fire up to its lookahead before the slot, and the
// worker that reads it holds it until the slot by the Redis server's clock:
// the handler starts at or after the slot, never before. With the hold
// turned off the same fire runs as soon as it is read, before its slot:
// the hold is what keeps an early fire on time.
func TestEarlyFireStartsAtItsSlot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		noHold bool
		early  bool // the run starts before the slot
	}{{"held", false, false}, {"not-held", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			now, err := b.st.Time(b.ctx)
			if err != nil {
				t.Fatal(err)
			}
			slot := now.Add(3 * time.Second).Truncate(time.Millisecond)
			started := make(chan time.Time, 1)
			startWorker(t, b, consumer.Config{NoHoldEarly: tc.noHold}, dispatcher.Config{},
				map[string]dispatcher.HandlerFunc{"soon": func(ctx context.Context, f events.Fire) error {
					at, err := b.st.Time(ctx)
					if err != nil {
						return err
					}
					started <- at
					return nil
				}})
			startPlanner(t, b, planner.Config{Lookahead: 10 * time.Second}, func(p *planner.Planner) {
				p.SetVersion(1)
				if err := p.Register(events.Spec{Name: "soon", Trigger: events.Once(slot)}); err != nil {
					t.Fatal(err)
				}
			})
			all := awaitEvent(t, b, 30*time.Second, events.TypeFired, nil)
			fired := ofType(all, events.TypeFired)[0]
			if ms, _ := strconv.ParseInt(strings.SplitN(fired.ID, "-", 2)[0], 10, 64); ms >= slot.UnixMilli() {
				t.Fatalf("fired event at %d, want it appended before the slot %d (lookahead 10s)", ms, slot.UnixMilli())
			}
			var at time.Time
			select {
			case at = <-started:
			case <-time.After(30 * time.Second):
				t.Fatal("the fire did not run within 30s")
			}
			if before := at.Before(slot); before != tc.early {
				t.Fatalf("run started at %s (Redis time), slot %s: started before the slot = %v, want %v",
					at.Format(time.RFC3339Nano), slot.Format(time.RFC3339Nano), before, tc.early)
			}
			awaitEvent(t, b, 30*time.Second, events.TypeCompleted, nil)
		})
	}
}

// A worker holds at most EarlyLimit early fires and reads nothing new until
// some are due: with a limit of 2, of six fires appended seconds ahead of
// their slot it reads two, and the rest once runs begin. When the first run
// starts (at the slot; one run at a time, so the worker reads nothing while
// it runs) the group has handed this worker exactly 2; without the limit it
// holds all 6. Every fire still runs once, none before its slot.
func TestEarlyLimitBoundsHeldFires(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit, held int
	}{{2, 2}, {0, 6}} {
		t.Run(fmt.Sprintf("limit-%d", tc.limit), func(t *testing.T) {
			b := setup(t)
			now, err := b.st.Time(b.ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Seconds for the planner to append all six and the worker to
			// read what it may, on a loaded machine.
			slot := now.Add(8 * time.Second).Truncate(time.Millisecond)
			stream := b.st.Keys().FireStream(events.DefaultQueue, events.ModeSingle)
			type pending struct {
				n   int64
				err error
			}
			var mu sync.Mutex
			var starts []time.Time
			held := make(chan pending, 1)
			handler := func(ctx context.Context, f events.Fire) error {
				at, err := b.st.Time(ctx)
				mu.Lock()
				starts = append(starts, at)
				first := len(starts) == 1
				mu.Unlock()
				if first {
					var p *redis.XPending
					if err == nil {
						p, err = b.rdb.XPending(ctx, stream, store.WorkerGroup).Result()
					}
					if err != nil {
						held <- pending{err: err}
						return err
					}
					held <- pending{n: p.Count}
				}
				return err
			}
			startHeldBurst(t, b, consumer.Config{EarlyLimit: tc.limit, NoPrefetch: true}, slot,
				[]string{"e0", "e1", "e2", "e3", "e4", "e5"}, handler)
			select {
			case p := <-held:
				if p.err != nil {
					t.Fatalf("first run: %v", p.err)
				}
				if p.n != int64(tc.held) {
					t.Errorf("at the first run the worker held %d fires, want %d (early limit %d)", p.n, tc.held, tc.limit)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no run within 30s")
			}
			all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeCompleted)) == 6 })
			requireFiredBefore(t, all, slot)
			if n := len(ofType(all, events.TypeStarted)); n != 6 {
				t.Errorf("%d started events, want 6 (each fire once)", n)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, at := range starts {
				if at.Before(slot) {
					t.Errorf("a run started at %s, before the slot %s", at.Format(time.RFC3339Nano), slot.Format(time.RFC3339Nano))
				}
			}
		})
	}
}

// While early fires due now wait for a run, the worker holds its outcome
// writes back so that starting them has the CPU, but only for a moment: a
// release that lasts (here three fires due at once on a worker that runs
// one at a time, the second waiting for the first's completed event) still
// sees the first outcome written. A hold that lasted as long as the
// release would never let the second run end.
func TestOutcomesAreWrittenDuringALongRelease(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	slot := now.Add(3 * time.Second).Truncate(time.Millisecond)
	var mu sync.Mutex
	var order []string
	waited := make(chan error, 1)
	handler := func(ctx context.Context, f events.Fire) error {
		mu.Lock()
		order = append(order, f.ID)
		first, n := order[0], len(order)
		mu.Unlock()
		if n == 2 {
			_, err := waitEvents(ctx, b, 30*time.Second, func(all []events.Event) bool {
				return slices.ContainsFunc(all, func(e events.Event) bool { return e.Type == events.TypeCompleted && e.Fire == first })
			})
			mu.Lock()
			if err == nil && len(order) != 2 {
				err = fmt.Errorf("runs %v: the third started before the second ended (concurrency 1)", order)
			}
			mu.Unlock()
			waited <- err
			return err
		}
		return nil
	}
	startHeldBurst(t, b, consumer.Config{}, slot, []string{"r1", "r2", "r3"}, handler)
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("second run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the second run did not end within 60s")
	}
	requireFiredBefore(t, awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeCompleted)) == 3 }), slot)
}

// startHeldBurst registers a once task at slot for each name, all run by
// handler, on a worker running one fire at a time (consumer config cc) and
// a planner that looks 10 s ahead, so that their fires are appended early.
func startHeldBurst(t *testing.T, b testBundle, cc consumer.Config, slot time.Time, names []string, handler dispatcher.HandlerFunc) {
	t.Helper()
	handlers := map[string]dispatcher.HandlerFunc{}
	var specs []events.Spec
	for _, name := range names {
		handlers[name] = handler
		specs = append(specs, events.Spec{Name: name, Trigger: events.Once(slot)})
	}
	startWorker(t, b, cc, dispatcher.Config{Concurrency: 1}, handlers)
	startPlanner(t, b, planner.Config{Lookahead: 10 * time.Second}, func(p *planner.Planner) {
		p.SetVersion(1)
		if err := p.Register(specs...); err != nil {
			t.Fatal(err)
		}
	})
}

// requireFiredBefore fails the test unless every fired event in all was
// appended (its stream id's time) before slot: what the test needs for
// its fires to have been held early.
func requireFiredBefore(t *testing.T, all []events.Event, slot time.Time) {
	t.Helper()
	for _, e := range ofType(all, events.TypeFired) {
		if ms, _ := strconv.ParseInt(strings.SplitN(e.ID, "-", 2)[0], 10, 64); ms >= slot.UnixMilli() {
			t.Fatalf("fired event of %s at %d, want it before the slot %d: the test needs its fires appended early", e.Task, ms, slot.UnixMilli())
		}
	}
}
