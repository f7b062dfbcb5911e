// Package planner computes when tasks fire and appends their fires to Redis
// streams: the scheduling half of taskino.
//
// Any number of planners run at once, all active. Each loops: claim a batch
// of due tasks (a lease per task, so planners share the work), compute their
// due slots from the Redis server's clock, record fires and misses in one
// atomic script, sleep until the earliest due time or a wake-up (a new task
// set). Two planners can never append the same slot twice: the store refuses
// any slot at or before the task's watermark. A planner that dies holding
// tasks loses nothing: their leases end and another planner takes them.
//
// # Clock
//
// Every decision uses Redis TIME, never the host clock. The host clock
// (Config.Clock) only measures how long to sleep, and how long ago the last
// claim was (to give the next one a deadline in server time), so planners
// whose clocks disagree by minutes still plan every slot once. Next slots come from the
// previous scheduled slot, not from now, so they never drift.
//
// # Catch-up
//
// After an outage the planner catches up from the stored watermark under
// each task's misfire policy (see events.Misfire); every slot not fired is
// recorded as a missed event.
//
// # Registering tasks
//
// Programs register specs and a version, then Apply (or Run, which applies
// first). A higher version replaces the stored set; an older one is adopted
// without writing (see store.Apply).
//
// It does not run tasks: workers (package consumer and dispatcher) do.
package planner

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Planner plans the fires of one namespace. Register, SetVersion and Apply
// are safe to call from any goroutine; Run once at a time.
type Planner struct {
	cfg   Config
	store planningStore
	log   zerolog.Logger

	mu      sync.Mutex
	version int64
	specs   []events.Spec

	// instance and seq make lease tokens unique, even between planners
	// that share a Node name or a restarted one.
	instance  string
	seq       atomic.Int64
	schedules map[string]compiled // by task name; used by Run's goroutine only
	seed      maphash.Seed        // of the spec hashes in schedules
	batch     int                 // current claim size: halved when a plan overruns its lease, grown by BatchSize/16 after one that fits
	// health: whether the planning rounds keep failing (see Health).
	health *store.Health
	// The last claim's server time and our clock at its round trip's
	// midpoint (monotonic, so a stepped host clock does not matter): the
	// next claim's deadline is derived from them.
	anchorRedis, anchorLocal time.Time

	// The fire streams this planner appends to, and those at the
	// namespace's fires max backlog (stream -> fires no worker read):
	// checked every RetainInterval by retainEvents, read by round.
	backlogMu  sync.Mutex
	streams    map[string]bool
	full       map[string]int64
	maxBacklog int64
}

// compiled is a task's schedule, kept while its stored spec is the same:
// a 64-bit hash of the spec's text tells, rather than the text itself
// (about 275 bytes a task, a million tasks on a planner).
type compiled struct {
	sum   uint64
	sched Schedule
	err   error
}

// New returns a planner of cfg.Namespace on rdb (a single server, Sentinel
// or Cluster client) with tasks registered (see Register). It fails,
// naming the problem, on a config field out of range, on tasks without a
// Config.Version, and on an invalid or twice-named task.
func New(rdb redis.UniversalClient, cfg Config, tasks ...events.Spec) (*Planner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(tasks) > 0 && cfg.Version == 0 {
		return nil, fmt.Errorf("planner: Config.Version: 0 with %d tasks; want a whole number from 1, bumped whenever the tasks change", len(tasks))
	}
	cfg = cfg.WithDefaults()
	st, err := store.New(rdb, cfg.Namespace, store.Options{EventsMaxLen: store.DefaultEventsHardMaxLen, HistoryLen: cfg.HistoryLen})
	if err != nil {
		return nil, err
	}
	p := &Planner{
		cfg: cfg, store: newPlanningStore(st), schedules: map[string]compiled{}, seed: maphash.MakeSeed(), instance: uuid.NewString()[:8], batch: cfg.BatchSize,
		log: cfg.Logger.With().Str("component", "planner").Str("node", cfg.Node).Logger(), version: cfg.Version,
		health: store.NewHealth("planning rounds"),
	}
	if err := p.Register(tasks...); err != nil {
		return nil, err
	}
	return p, nil
}

// Store is the planner's store (its namespace on Redis).
func (p *Planner) Store() *store.Store { return p.store.Store }

// Health is nil while the planner plans, and an error naming the last
// failure while its planning rounds keep failing: from the
// store.HealthThreshold-th failed round in a row (a fraction of a second
// to a few seconds: failed rounds are retried 50ms after the first, doubling to 1s)
// until one succeeds. A planner whose Redis user may not run a command
// its rounds need, or whose Redis is down, so reports itself. Safe to call
// from any goroutine, at any time.
func (p *Planner) Health() error { return p.health.Err() }

// Register adds tasks to the set this process applies. Each spec is
// validated at once, and a name registered before (in this call or an
// earlier one) is an error naming the task; on any error nothing of this
// call is kept.
func (p *Planner) Register(specs ...events.Spec) error {
	for _, s := range specs {
		if err := Validate(s); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := make(map[string]bool, len(p.specs)+len(specs))
	for _, s := range p.specs {
		seen[s.Name] = true
	}
	for _, s := range specs {
		if seen[s.Name] {
			return fmt.Errorf("planner: task %q is registered twice; task names are unique in a namespace", s.Name)
		}
		seen[s.Name] = true
	}
	p.specs = append(p.specs, specs...)
	return nil
}

// SetVersion sets the version of the registered task set. Bump it whenever
// the set changes: a process with an older version adopts the newer one
// instead of overwriting it.
func (p *Planner) SetVersion(v int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.version = v
}

// Apply stores the registered tasks at the set version (see Apply).
func (p *Planner) Apply(ctx context.Context) (store.ApplyResult, error) {
	p.mu.Lock()
	version, specs := p.version, append([]events.Spec(nil), p.specs...)
	p.mu.Unlock()
	return Apply(ctx, p.store.Store, version, specs)
}

// Apply validates every spec, then makes them the task set at version (see
// store.Apply for what that changes). Invalid specs are all reported,
// joined, and nothing is written.
func Apply(ctx context.Context, st *store.Store, version int64, specs []events.Spec) (store.ApplyResult, error) {
	var errs []error
	for _, s := range specs {
		if err := Validate(s); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return store.ApplyResult{}, errors.Join(errs...)
	}
	return st.Apply(ctx, version, specs)
}

// TriggerTask runs task once now, on the cluster: whichever worker of its
// queue takes the fire (every worker, for a broadcast task), with the
// task's payload. It returns the fire's stream entry id; a task not in the
// stored set is an error wrapping store.ErrUnknownTask. (The seed ran the
// task in the caller's goroutine only.)
func (p *Planner) TriggerTask(ctx context.Context, task string) (string, error) {
	return p.store.Trigger(ctx, task, "", "")
}

// LastRun is what is known of a task's latest fire; ok is false when it
// never fired, which is not an error.
func (p *Planner) LastRun(ctx context.Context, task string) (run events.LastRun, ok bool, err error) {
	return p.store.LastRun(ctx, task)
}

// LastRunTime is the scheduled time of the task's latest fire (the seed's
// GetLastRunTime); ok is false when it never fired.
func (p *Planner) LastRunTime(ctx context.Context, task string) (t time.Time, ok bool, err error) {
	r, ok, err := p.store.LastRun(ctx, task)
	return r.Scheduled, ok, err
}

// LastRunTimes is the scheduled time of the latest fire of every task that
// fired (the seed's GetAllLastRunTimes).
func (p *Planner) LastRunTimes(ctx context.Context) (map[string]time.Time, error) {
	runs, err := p.store.LastRuns(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(runs))
	for name, r := range runs {
		out[name] = r.Scheduled
	}
	return out, nil
}

// Run applies the registered tasks, if any, then plans until ctx is
// cancelled, and returns nil then. The round under way when ctx ends (a
// claim and its plan, milliseconds) is finished first, so the planner holds
// nothing when Run returns. It appends node_up and node_down events. Redis
// errors are logged and retried with backoff; only an invalid task set or a
// version conflict ends Run early, with that error.
func (p *Planner) Run(ctx context.Context) error {
	backoff := store.NewBackoff()
	if err := p.applyRegistered(ctx, backoff); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}

	// Wake-ups make a new task set plan at once; without them (pub/sub
	// lost) it waits at most MaxSleep.
	wake, closeWake, err := p.store.Wake(ctx)
	if err != nil {
		p.log.Warn().Err(err).Dur("max_sleep", p.cfg.MaxSleep).Msg("no wake-ups yet; new task sets wait up to max_sleep")
	}
	defer func() { _ = closeWake() }()
	retained := make(chan struct{})
	rctx, stopRetain := context.WithCancel(ctx)
	go func() { defer close(retained); p.retainEvents(rctx) }()
	defer func() { stopRetain(); <-retained }()
	p.announce(ctx, events.TypeNodeUp)
	defer p.announce(ctx, events.TypeNodeDown)
	p.log.Info().Msg("planner started")
	defer p.log.Info().Msg("planner stopped")

	for ctx.Err() == nil {
		sleep, _, err := p.round(ctx)
		if err != nil {
			p.health.Failed(err)
			d := backoff.Next()
			if backoff.Report() {
				p.log.Warn().Err(err).Int("failures", backoff.Failures()).Dur("retry_in", d).Msg("planning round failed")
			}
			sleep = d
		} else {
			p.health.Succeeded()
			backoff.Reset()
		}
		if sleep <= 0 {
			continue
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
	return nil
}

// retainEvents stores Config.EventsMaxLen as the namespace's events bound
// if it has none, then, every RetainInterval until ctx ends, trims the
// events stream to the namespace's settings and publishes the planner in
// the planners registry (taskino workers), which it leaves at the end.
// Errors are logged (the next pass tries again).
func (p *Planner) retainEvents(ctx context.Context) {
	if n := p.cfg.EventsMaxLen; n > 0 {
		if stored, err := p.store.InitEventsMaxLen(ctx, n); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("store the events bound")
		} else if err == nil && stored != n {
			p.log.Warn().Int64("stored", stored).Int64("given", n).Msg("the namespace stores another events max len (taskino settings), which this planner keeps to")
		}
	}
	t := time.NewTicker(p.cfg.RetainInterval)
	defer t.Stop()
	adv := store.PlannerAdvert{Node: p.cfg.Node, LookaheadMs: p.cfg.Lookahead.Milliseconds(), EveryMs: p.cfg.RetainInterval.Milliseconds(), Build: events.Build()}
	defer func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := p.store.Leave(lctx, p.cfg.Node); err != nil {
			p.log.Warn().Err(err).Msg("leave the planners registry")
		}
	}()
	for {
		if _, err := p.store.RetainEvents(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("trim the events stream")
		}
		p.checkBacklogs(ctx)
		if err := p.store.Seen(ctx, adv); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("publish this planner in the registry")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// applyRegistered applies the registered task set, if any, retrying while
// Redis is unreachable. An invalid set or a version conflict is returned:
// retrying cannot fix it.
func (p *Planner) applyRegistered(ctx context.Context, backoff *store.Backoff) error {
	p.mu.Lock()
	registered := p.version != 0 || len(p.specs) > 0
	p.mu.Unlock()
	for registered && ctx.Err() == nil {
		res, err := p.Apply(ctx)
		if err == nil {
			p.log.Info().Str("outcome", string(res.Outcome)).Int64("version", res.Version).
				Int("added", len(res.Added)).Int("changed", len(res.Changed)).Int("removed", len(res.Removed)).Msg("task set")
			backoff.Reset()
			return nil
		}
		var spec *events.SpecError
		var conflict *store.VersionConflictError
		if errors.As(err, &spec) || errors.As(err, &conflict) || errors.Is(err, store.ErrBadVersion) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		d := backoff.Next()
		if backoff.Report() {
			p.log.Warn().Err(err).Int("failures", backoff.Failures()).Dur("retry_in", d).Msg("apply task set failed")
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	return nil
}

// announce appends a node_up or node_down event for this planner; a failure
// is logged, never fatal.
func (p *Planner) announce(ctx context.Context, typ events.Type) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	e := events.Event{Type: typ, Worker: p.cfg.Node, Status: "planner"}
	if err := p.store.AppendEvent(actx, e); err != nil {
		p.log.Warn().Err(err).Str("event", string(typ)).Msg("announce")
	}
}

func (p *Planner) schedule(t store.ClaimedTask) (Schedule, error) {
	if t.SpecErr != nil {
		return nil, t.SpecErr
	}
	sum := maphash.String(p.seed, t.Raw)
	if c, ok := p.schedules[t.Name]; ok && c.sum == sum {
		return c.sched, c.err
	}
	sched, err := Compile(t.Spec.Trigger)
	p.schedules[t.Name] = compiled{sum: sum, sched: sched, err: err}
	return sched, err
}
