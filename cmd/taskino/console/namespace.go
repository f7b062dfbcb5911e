package console

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// namespace is what the console keeps of one namespace: its store, the
// task set (read again when its version changes), the states of all tasks
// for a few seconds, and its events reader.
type namespace struct {
	name string
	st   *store.Store
	rdb  redis.UniversalClient
	cfg  Config

	mu       sync.Mutex
	version  int64
	count    int64 // specs in the hash when read
	specsAt  time.Time
	specs    []events.Spec // sorted by name, with defaults
	byName   map[string]int
	bad      []badSpec
	views    []inspect.View
	viewsNow time.Time
	viewsAt  time.Time
	viewsVer int64

	refresh sync.Mutex // held while all views are read

	hubOnce sync.Once
	hub     *hub
}

// badSpec is a stored spec that does not decode: listed, never hidden.
type badSpec struct {
	Name, Error string
}

func newNamespace(name string, st *store.Store, cfg Config) *namespace {
	return &namespace{name: name, st: st, rdb: cfg.Redis, cfg: cfg}
}

// taskSet is the stored task set: one round trip (the version, and the
// number of specs) while neither changes, the whole set (one HGETALL) when
// one did or SpecsTTL passed (a spec changed by hand in place).
func (n *namespace) taskSet(ctx context.Context) ([]events.Spec, []badSpec, int64, error) {
	pipe := n.rdb.Pipeline()
	vc := pipe.Get(ctx, n.st.Keys().Version())
	lc := pipe.HLen(ctx, n.st.Keys().Specs())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, 0, err
	}
	v, _ := vc.Int64()
	count := lc.Val()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.specs != nil && v == n.version && count == n.count && time.Since(n.specsAt) < n.cfg.SpecsTTL {
		return n.specs, n.bad, v, nil
	}
	raw, err := n.rdb.HGetAll(ctx, n.st.Keys().Specs()).Result()
	if err != nil {
		return nil, nil, 0, err
	}
	specs := make([]events.Spec, 0, len(raw))
	var bad []badSpec
	for name, r := range raw {
		sp, err := events.UnmarshalSpecString(r)
		if err == nil && sp.Name != name {
			err = fmt.Errorf("stored under %q but names %q", name, sp.Name)
		}
		if err != nil {
			bad = append(bad, badSpec{Name: name, Error: err.Error()})
			continue
		}
		specs = append(specs, sp.WithDefaults())
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	sort.Slice(bad, func(i, j int) bool { return bad[i].Name < bad[j].Name })
	n.specs, n.bad, n.version, n.count, n.specsAt = specs, bad, v, count, time.Now()
	n.byName = make(map[string]int, len(specs))
	for i, s := range specs {
		n.byName[s.Name] = i
	}
	n.views = nil
	return specs, bad, v, nil
}

// spec is one task's spec from the task set, or store.ErrNotFound.
func (n *namespace) spec(ctx context.Context, task string) (events.Spec, error) {
	specs, _, _, err := n.taskSet(ctx)
	if err != nil {
		return events.Spec{}, err
	}
	n.mu.Lock()
	i, ok := n.byName[task]
	n.mu.Unlock()
	if !ok {
		return events.Spec{}, store.ErrNotFound
	}
	return specs[i], nil
}

// allViews is every task's view, read again after StateTTL: for the
// overview's counts and the lists filtered or sorted by state.
func (n *namespace) allViews(ctx context.Context) ([]inspect.View, time.Time, error) {
	specs, _, v, err := n.taskSet(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	fresh := func() ([]inspect.View, time.Time, bool) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.views != nil && n.viewsVer == v && time.Since(n.viewsAt) < n.cfg.StateTTL {
			return n.views, n.viewsNow.Add(time.Since(n.viewsAt)), true
		}
		return nil, time.Time{}, false
	}
	if vs, now, ok := fresh(); ok {
		return vs, now, nil
	}
	// One reader at a time: viewers that come meanwhile take its result.
	n.refresh.Lock()
	defer n.refresh.Unlock()
	if vs, now, ok := fresh(); ok {
		return vs, now, nil
	}
	vs, now, err := viewsOf(ctx, n.st, specs)
	if err != nil {
		return nil, time.Time{}, err
	}
	n.mu.Lock()
	n.views, n.viewsNow, n.viewsAt, n.viewsVer = vs, now, time.Now(), v
	n.mu.Unlock()
	return vs, now, nil
}

// viewsOf reads the views of specs in chunks (a pipeline each).
func viewsOf(ctx context.Context, st *store.Store, specs []events.Spec) ([]inspect.View, time.Time, error) {
	const chunk = 5000
	if len(specs) <= chunk {
		return inspect.ViewsOf(ctx, st, specs)
	}
	out := make([]inspect.View, 0, len(specs))
	var now time.Time
	for i := 0; i < len(specs); i += chunk {
		vs, t, err := inspect.ViewsOf(ctx, st, specs[i:min(i+chunk, len(specs))])
		if err != nil {
			return nil, time.Time{}, err
		}
		out, now = append(out, vs...), t
	}
	return out, now, nil
}

// recentOutcomes reads up to count history entries of each task, newest
// first, in one pipeline.
func (n *namespace) recentOutcomes(ctx context.Context, tasks []string, count int64) (map[string][]events.Event, error) {
	out := make(map[string][]events.Event, len(tasks))
	if len(tasks) == 0 {
		return out, nil
	}
	pipe := n.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(tasks))
	for i, t := range tasks {
		cmds[i] = pipe.XRevRangeN(ctx, n.st.Keys().History(t), "+", "-", count)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i, t := range tasks {
		for _, m := range cmds[i].Val() {
			f := make(map[string]string, len(m.Values))
			for k, v := range m.Values {
				f[k], _ = v.(string)
			}
			e, err := events.DecodeHistory(m.ID, f)
			if err != nil {
				continue // shown by the task's own page
			}
			out[t] = append(out[t], e)
		}
	}
	return out, nil
}

// outcomeStats is a task's recent record: of the slots of its last
// history entries that ended (completed, or failed and not retried yet,
// or dead), how many completed, and the p99 of its runs' lateness (how
// long after its slot each attempt started).
type outcomeStats struct {
	Runs, OK int
	P99Late  time.Duration
	HasLate  bool
}

// Rate is the success rate in percent, or -1 with no outcome.
func (s outcomeStats) Rate() int {
	if s.Runs == 0 {
		return -1
	}
	return s.OK * 100 / s.Runs
}

func statsOf(es []events.Event) outcomeStats {
	var s outcomeStats
	var lates []time.Duration
	seen := map[string]bool{}
	for _, e := range es { // newest first: a slot's newest entry is its outcome
		switch e.Type {
		case events.TypeCompleted, events.TypeFailed, events.TypeDead:
		default:
			continue
		}
		if !e.Started.IsZero() && !e.At.IsZero() {
			lates = append(lates, e.Started.Sub(e.At))
		}
		if e.Fire != "" && seen[e.Fire] {
			continue // an earlier attempt of a slot counted
		}
		seen[e.Fire] = true
		s.Runs++
		if e.Type == events.TypeCompleted {
			s.OK++
		}
	}
	if len(lates) > 0 {
		s.P99Late, s.HasLate = percentile(lates, 99), true
	}
	return s
}

// percentile is the p-th percentile of ds (nearest rank); ds is sorted.
func percentile(ds []time.Duration, p int) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	k := (len(ds)*p + 99) / 100
	return ds[max(k-1, 0)]
}
