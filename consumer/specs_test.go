package consumer

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

func newTestStore(t *testing.T, ns string) workerStore {
	t.Helper()
	st, err := store.New(redistest.Start(t).Client(t), ns, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return newWorkerStore(st)
}

func apply(t *testing.T, st workerStore, version int64, specs ...events.Spec) {
	t.Helper()
	if _, err := st.Apply(context.Background(), version, specs); err != nil {
		t.Fatal(err)
	}
}

// TestSpecCacheLooksUpMissingTasks: a task the cache lacks is read from
// Redis (a set applied a moment ago); one not stored gets the defaults and
// is not looked up again before missAfter.
func TestSpecCacheLooksUpMissingTasks(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t, "specs")
	c := newSpecCache(st, zerolog.New(zerolog.NewTestWriter(t)), time.Hour, time.Hour)
	apply(t, st, 1, events.Spec{Name: "a", Trigger: events.Every(time.Second), Attempts: 3})
	if err := c.load(ctx); err != nil {
		t.Fatal(err)
	}
	if sp, known := c.get(ctx, "a"); !known || sp.Attempts != 3 || sp.Queue != events.DefaultQueue {
		t.Errorf("a: %+v (known %v), want the stored spec with its defaults", sp, known)
	}
	if sp, known := c.get(ctx, "late"); known || sp.Name != "late" || sp.Attempts != (events.Spec{}).WithDefaults().Attempts {
		t.Errorf("late, not stored: %+v (known %v), want the defaults, not known", sp, known)
	}
	apply(t, st, 2, events.Spec{Name: "a", Trigger: events.Every(time.Second), Attempts: 3},
		events.Spec{Name: "late", Trigger: events.Every(time.Second), Attempts: 7})
	if sp, _ := c.get(ctx, "late"); sp.Attempts == 7 {
		t.Errorf("late was looked up again before missAfter: %+v", sp)
	}
	c.missAfter = 0
	if sp, _ := c.get(ctx, "late"); sp.Attempts != 7 {
		t.Errorf("late after missAfter: %+v, want the stored spec (attempts 7)", sp)
	}
}

// TestSpecCacheReloads: the cache reloads on a wake-up, and at a version
// check when the stored version moved (a wake-up missed).
func TestSpecCacheReloads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := newTestStore(t, "specs")
	for _, tc := range []struct {
		name       string
		checkEvery time.Duration
		wake       bool
	}{{"wake-up", time.Hour, true}, {"version check", time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newSpecCache(st, zerolog.New(zerolog.NewTestWriter(t)), tc.checkEvery, time.Hour)
			if err := c.load(ctx); err != nil {
				t.Fatal(err)
			}
			loaded := make(chan int64, 100)
			c.loaded = func(v int64) { loaded <- v }
			wake := make(chan struct{}, 1)
			wctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); c.watch(wctx, wake) }()
			defer func() { stop(); <-done }()
			v := c.version + 1
			apply(t, st, v, events.Spec{Name: tc.name, Trigger: events.Every(time.Second), Attempts: 4})
			if tc.wake {
				wake <- struct{}{}
			}
			select {
			case got := <-loaded:
				if got != v {
					t.Errorf("reloaded version %d, want %d", got, v)
				}
			case <-time.After(time.Minute):
				t.Fatal("no reload within a minute")
			}
			c.mu.Lock()
			sp, ok := c.specs[tc.name]
			c.mu.Unlock()
			if !ok || sp.Attempts != 4 {
				t.Errorf("after the reload the cache has %+v (%v), want the applied spec", sp, ok)
			}
		})
	}
}
