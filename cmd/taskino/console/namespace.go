package console

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
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
	set      *taskSet
	count    int64 // specs in the hash when set was read
	specsAt  time.Time
	views    []inspect.View // of viewsOf, read at viewsAt (Redis time viewsNow)
	viewsOf  *taskSet
	viewsNow time.Time
	viewsAt  time.Time

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

// taskSet is a snapshot of the stored task set: specs sorted by name
// (with defaults), byName their index, the specs that do not decode, and
// the version. A snapshot is never changed: a new one replaces it.
type taskSet struct {
	specs   []events.Spec
	byName  map[string]int
	bad     []badSpec
	version int64
}

// tasks is the stored task set: one round trip (the version, and the
// number of specs) while neither changes, the whole set (one HGETALL) when
// one did or SpecsTTL passed (a spec changed by hand in place).
func (n *namespace) tasks(ctx context.Context) (*taskSet, error) {
	pipe := n.rdb.Pipeline()
	vc := pipe.Get(ctx, n.st.Keys().Version())
	lc := pipe.HLen(ctx, n.st.Keys().Specs())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	v, _ := vc.Int64()
	count := lc.Val()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.set != nil && v == n.set.version && count == n.count && time.Since(n.specsAt) < n.cfg.SpecsTTL {
		return n.set, nil
	}
	raw, err := n.rdb.HGetAll(ctx, n.st.Keys().Specs()).Result()
	if err != nil {
		return nil, err
	}
	ts := &taskSet{specs: make([]events.Spec, 0, len(raw)), version: v}
	for name, r := range raw {
		sp, err := events.UnmarshalSpecString(r)
		if err == nil && sp.Name != name {
			err = fmt.Errorf("stored under %q but names %q", name, sp.Name)
		}
		if err != nil {
			ts.bad = append(ts.bad, badSpec{Name: name, Error: err.Error()})
			continue
		}
		ts.specs = append(ts.specs, sp.WithDefaults())
	}
	sort.Slice(ts.specs, func(i, j int) bool { return ts.specs[i].Name < ts.specs[j].Name })
	sort.Slice(ts.bad, func(i, j int) bool { return ts.bad[i].Name < ts.bad[j].Name })
	ts.byName = make(map[string]int, len(ts.specs))
	for i, s := range ts.specs {
		ts.byName[s.Name] = i
	}
	n.set, n.count, n.specsAt = ts, count, time.Now()
	n.views = nil
	return ts, nil
}

// spec is one task's spec, or store.ErrNotFound.
func (n *namespace) spec(ctx context.Context, task string) (events.Spec, error) {
	ts, err := n.tasks(ctx)
	if err != nil {
		return events.Spec{}, err
	}
	i, ok := ts.byName[task]
	if !ok {
		return events.Spec{}, store.ErrNotFound
	}
	return ts.specs[i], nil
}

// allViews is every task's view, read again after StateTTL: for the
// overview's counts and the lists filtered or sorted by state. The slice
// is shared: callers only read it.
func (n *namespace) allViews(ctx context.Context, ts *taskSet) ([]inspect.View, time.Time, error) {
	fresh := func() ([]inspect.View, time.Time, bool) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.views != nil && n.viewsOf == ts && time.Since(n.viewsAt) < n.cfg.StateTTL {
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
	vs, now, err := viewsOf(ctx, n.st, ts.specs)
	if err != nil {
		return nil, time.Time{}, err
	}
	n.mu.Lock()
	n.views, n.viewsNow, n.viewsAt, n.viewsOf = vs, now, time.Now(), ts
	n.mu.Unlock()
	return vs, now, nil
}

// forget drops the views kept, after an action changed a task.
func (n *namespace) forget() {
	n.mu.Lock()
	n.views = nil
	n.mu.Unlock()
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
// or dead), how many completed, and the p99 of their lateness (how long
// after its slot each one's first run started: retries and replays wait
// on purpose, and are not late).
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
	first := map[string]time.Duration{} // each slot's first attempt's lateness
	seen := map[string]bool{}
	for _, e := range es { // newest first: a slot's newest entry is its outcome
		switch e.Type {
		case events.TypeCompleted, events.TypeFailed, events.TypeDead:
		default:
			continue
		}
		if !e.Started.IsZero() && !e.At.IsZero() && e.Attempt <= 1 && e.Origin == "" {
			first[e.Fire] = e.Started.Sub(e.DueAt()) // older entries come later: the first run wins
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
	if len(first) > 0 {
		lates := make([]time.Duration, 0, len(first))
		for _, d := range first {
			lates = append(lates, d)
		}
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

// maxQueues bounds the queues the overview reads the backlog of.
const maxQueues = 50

// groupLags reads the workers' group of each stream in one pipeline: its
// lag (entries not yet read; -1 when Redis cannot tell) and pending (read,
// not acked). A stream without the group (no worker read it yet) is left
// out.
func (n *namespace) groupLags(ctx context.Context, streams []string) (map[string][2]int64, error) {
	out := make(map[string][2]int64, len(streams))
	if len(streams) == 0 {
		return out, nil
	}
	pipe := n.rdb.Pipeline()
	cmds := make([]*redis.XInfoGroupsCmd, len(streams))
	for i, s := range streams {
		cmds[i] = pipe.XInfoGroups(ctx, s)
	}
	_, _ = pipe.Exec(ctx) // each command's own error is read below
	for i, s := range streams {
		groups, err := cmds[i].Result()
		if err != nil {
			if strings.Contains(err.Error(), "no such key") {
				continue
			}
			return nil, fmt.Errorf("the workers' group of %s: %w", s, err)
		}
		for _, g := range groups {
			if g.Name == store.WorkerGroup {
				out[s] = [2]int64{g.Lag, g.Pending}
			}
		}
	}
	return out, nil
}
