package consumer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// specCache is the worker's copy of the stored task set: the spec of each
// task, and the task-set version it is of. It owns the cache and its
// reload loop; admission asks it for the spec of each fire. Safe for
// concurrent use.
type specCache struct {
	st  workerStore
	log zerolog.Logger
	// checkEvery is how often run compares the stored version with the
	// cached one (a wake-up missed); missAfter is how long a task with no
	// stored spec is not looked up again.
	checkEvery, missAfter time.Duration

	mu      sync.Mutex
	specs   map[string]events.Spec
	version int64                // the task-set version specs is of
	unknown map[string]time.Time // tasks with no stored spec, when last looked up
	loaded  func(version int64)  // tests: called after each load (nil: none)
	onLoad  func(version int64)  // the advert's stale check: called after each load (nil: none)
}

func newSpecCache(st workerStore, log zerolog.Logger, checkEvery, missAfter time.Duration) *specCache {
	return &specCache{st: st, log: log, checkEvery: checkEvery, missAfter: missAfter,
		specs: map[string]events.Spec{}, unknown: map[string]time.Time{}}
}

// all is the cached task set, by name.
func (c *specCache) all() []events.Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]events.Spec, 0, len(c.specs))
	for _, s := range c.specs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b events.Spec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// has says whether task is in the stored task set (looking it up, as get
// does, when it is not cached).
func (c *specCache) has(ctx context.Context, task string) bool {
	_, ok := c.get(ctx, task)
	return ok
}

// load reads the stored task set into the cache, and the version it is of
// (read first: an apply in between makes the next check reload).
func (c *specCache) load(ctx context.Context) error {
	v, err := c.st.Version(ctx)
	if err != nil {
		return err
	}
	specs, bad, err := c.st.SpecsAndBad(ctx)
	if err != nil {
		return err
	}
	for name, why := range bad {
		// Its fires run with the defaults (or wait for a worker that
		// knows it); the others are not held back.
		c.log.Warn().Str("task", name).Err(why).Msg("stored spec does not decode; skipped")
	}
	m := make(map[string]events.Spec, len(specs))
	for _, s := range specs {
		m[s.Name] = s.WithDefaults()
	}
	c.mu.Lock()
	c.specs, c.unknown, c.version = m, map[string]time.Time{}, v
	loaded, onLoad := c.loaded, c.onLoad
	c.mu.Unlock()
	if onLoad != nil {
		onLoad(v)
	}
	if loaded != nil {
		loaded(v)
	}
	return nil
}

// get is task's spec, and whether it is in the stored task set: from the
// cache, which every task-set apply refreshes, or read from Redis when the
// cache lacks it (a set applied a moment ago); a task not in the set gets
// the defaults (a task run only by manual triggers), and is looked up
// again after missAfter.
func (c *specCache) get(ctx context.Context, task string) (events.Spec, bool) {
	c.mu.Lock()
	sp, ok := c.specs[task]
	missAt, missed := c.unknown[task]
	c.mu.Unlock()
	if ok {
		return sp, true
	}
	if !missed || time.Since(missAt) > c.missAfter {
		got, err := c.st.Spec(ctx, task)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err == nil:
			sp = got.WithDefaults()
			c.specs[task] = sp
			delete(c.unknown, task)
			return sp, true
		case errors.Is(err, store.ErrNotFound):
			c.unknown[task] = time.Now()
		default:
			c.log.Warn().Err(err).Str("task", task).Msg("read task spec")
		}
	}
	return events.Spec{Name: task}.WithDefaults(), false
}

// run reloads the specs when a task set is applied, and when the stored
// version differs from the cached one at a check every checkEvery (30s in
// production: a wake-up missed): the whole set is read only when it
// changed, not at every check (for 10,000 tasks, a read that made one
// second's runs late; for a million, hundreds of MB).
func (c *specCache) run(ctx context.Context) {
	wake, closeWake, err := c.st.Wake(ctx)
	if err != nil {
		c.log.Warn().Err(err).Dur("every", c.checkEvery).Msg("no task-set wake-ups yet; specs reload at each version check")
	}
	defer func() { _ = closeWake() }()
	c.watch(ctx, wake)
}

// watch is run's loop, on wake-ups from wake.
func (c *specCache) watch(ctx context.Context, wake <-chan struct{}) {
	t := time.NewTicker(c.checkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
			v, err := c.st.Version(ctx)
			c.mu.Lock()
			same := err == nil && v == c.version
			c.mu.Unlock()
			if same {
				continue
			}
		}
		if err := c.load(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("reload task specs")
		}
	}
}
