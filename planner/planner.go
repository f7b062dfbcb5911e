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
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Clock is the host clock, asked only to measure sleeps; planning uses
// Redis time. Tests inject skewed clocks.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config tunes a Planner. The zero value (plus a namespace, or the default)
// is usable; WithDefaults fills the rest.
type Config struct {
	// Namespace of the task set (default "default").
	Namespace string
	// Version is the version of the task set this program registers (see
	// SetVersion): any whole number from 1, bumped whenever the set
	// changes. Zero: set it with SetVersion before Run.
	Version int64
	// Logger receives the planner's logs (default: warnings and errors,
	// as JSON lines on stderr; zerolog.Nop() for none).
	Logger zerolog.Logger
	// Clock measures sleeps (default: the system clock).
	Clock Clock
	// Node names this planner in events and logs (default: host-pid-random).
	Node string
	// BatchSize is the most tasks claimed per round trip (default 256).
	BatchSize int
	// Lease is how long a claim holds tasks (default 5s; at least 100ms). A planner that
	// dies holding tasks delays them by up to this long, so keep it below
	// the tasks' MisfireGrace.
	Lease time.Duration
	// Lookahead is how far ahead of its slot (a jittered fire: of its due
	// time) a fire may be appended (default DefaultLookahead; at most
	// MaxLookahead). Workers hold an early fire until it is due (see
	// consumer.Config.HoldEarly), so it starts on time even when planning
	// many slots due at once takes longer than the lateness one can bear
	// (1,000 and 10,000 tasks every second: see cmd/taskino-bench). A
	// task paused, changed or removed after its fire was appended ahead
	// does not run it: the worker records the slot missed (policy stale;
	// paused, changed or removed after it was planned). Keep it below the
	// workers' HoldEarly (default 10s).
	Lookahead time.Duration
	// NoLookahead appends each fire only once it is due (Lookahead must
	// then be 0): a pause or change up to the slot's instant takes effect,
	// at the price of the lateness of planning many slots due at once.
	NoLookahead bool
	// MaxSleep bounds a sleep when nothing is due sooner (default 1s): the
	// longest a task set applied while a wake-up was lost waits.
	MaxSleep time.Duration
	// CatchUpChunk is the most late slots of one task recorded per pass
	// beyond the misfire limit (default 1000).
	CatchUpChunk int
	// EventsMaxLen is the events stream's bound this planner stores as the
	// namespace's when it stores none (store.Settings; 0: none stored). The
	// stored one wins: a planner given another logs it at start.
	EventsMaxLen int64
	// RetainInterval is how often the planner trims the events stream to
	// the namespace's settings (default 1s): about EventsMaxLen entries,
	// never past one a durable listener was not delivered, up to the hard
	// bounds. Its appends keep to the hard length bound.
	RetainInterval time.Duration
	// HistoryLen is how many entries of each task's history its appends
	// keep (default store.DefaultHistoryLen); give the planners and
	// workers of a namespace the same.
	HistoryLen int64
	// AfterClaim, when set, is called after each non-empty claim and before
	// its plan is recorded: for instrumentation and fault tests. Blocking in
	// it holds the claimed tasks, as a planner stopped dead would.
	AfterClaim func(ctx context.Context, tasks []string)
	// Metrics, when set, is told what each recorded plan appended.
	Metrics Metrics
}

// Metrics receives a planner's counts, for instrumentation (Prometheus in
// the binaries). Calls come from the planning goroutine and must not block.
type Metrics interface {
	// Planned is called after each recorded plan with the fires it
	// appended and the missed events (each standing for one or more slots).
	Planned(fires, missed int)
}

// MissedMetrics, when a planner's Metrics implements it too, is told of
// each missed event a recorded plan appended (e.Count slots of e.Task,
// under e.Policy; events.MissedKind says why in a word).
type MissedMetrics interface {
	Missed(e events.Event)
}

// minLease is the shortest lease a planner takes: a claim and its plan must
// fit in it with room to spare.
const minLease = 100 * time.Millisecond

// WithDefaults returns the config with every unset (zero) field at its
// default. It repairs nothing: New first refuses values out of range.
func (c Config) WithDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = store.DefaultNamespace
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Node == "" {
		c.Node = events.NewNode()
	}
	if c.BatchSize == 0 {
		c.BatchSize = 256
	}
	if c.Lease == 0 {
		c.Lease = 5 * time.Second
	}
	if c.MaxSleep == 0 {
		c.MaxSleep = time.Second
	}
	if c.Lookahead == 0 && !c.NoLookahead {
		c.Lookahead = DefaultLookahead
	}
	if c.CatchUpChunk == 0 {
		c.CatchUpChunk = 1000
	}
	if c.RetainInterval == 0 {
		c.RetainInterval = time.Second
	}
	if isZeroLogger(c.Logger) {
		c.Logger = defaultLogger()
	}
	return c
}

// DefaultLookahead is Config.Lookahead's default: fires are appended up
// to 1.5 s before they are due, so that planning 1,000 or 10,000 slots due
// in one second does not make them late. Of the lookaheads measured (1 s,
// 1.5 s, 2 s, 3 s; cmd/taskino-bench periodic), it gave the lowest p99
// lateness at both rates with the worker's default early limit.
const DefaultLookahead = 1500 * time.Millisecond

// MaxLookahead bounds Config.Lookahead: the workers' default early hold
// (consumer.Config.HoldEarly, 10s; a fire due further ahead is not held,
// and would run early), well within the hour a worker can check a fire
// planned ahead against its task's changes (store.ChangesKeep).
const MaxLookahead = 10 * time.Second

// validate refuses values out of range, naming the field: a negative
// duration is a bug to report at start, not to turn into a default.
func (c Config) validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("planner: Config.%s: %v; want %s", field, v, want)
	}
	switch {
	case c.Version < 0:
		return bad("Version", c.Version, "a whole number from 1 (0: set later with SetVersion)")
	case c.BatchSize < 0:
		return bad("BatchSize", c.BatchSize, "0 (default 256) or more")
	case c.Lease < 0 || (c.Lease > 0 && c.Lease < minLease):
		return bad("Lease", c.Lease, "0 (default 5s) or at least "+minLease.String())
	case c.Lookahead < 0 || c.Lookahead > MaxLookahead:
		return bad("Lookahead", c.Lookahead, "0 (default "+DefaultLookahead.String()+") to "+MaxLookahead.String()+"; NoLookahead appends fires once due")
	case c.NoLookahead && c.Lookahead != 0:
		return bad("Lookahead", c.Lookahead, "0 with NoLookahead")
	case c.MaxSleep < 0:
		return bad("MaxSleep", c.MaxSleep, "0 (default 1s) or more")
	case c.CatchUpChunk < 0:
		return bad("CatchUpChunk", c.CatchUpChunk, "0 (default 1000) or more")
	case c.EventsMaxLen < 0:
		return bad("EventsMaxLen", c.EventsMaxLen, "0 (none stored) or more")
	case c.RetainInterval < 0:
		return bad("RetainInterval", c.RetainInterval, "0 (default 1s) or more")
	case c.HistoryLen < 0:
		return bad("HistoryLen", c.HistoryLen, "0 (default 100) or more")
	}
	if c.Namespace != "" {
		if err := store.ValidateNamespace(c.Namespace); err != nil {
			return fmt.Errorf("planner: Config.Namespace: %w", err)
		}
	}
	return nil
}

// isZeroLogger reports whether l is the zero zerolog.Logger (unset), as
// opposed to one a caller chose, zerolog.Nop() included.
func isZeroLogger(l zerolog.Logger) bool { return reflect.ValueOf(l).IsZero() }

// defaultLogger writes warnings and errors to stderr, so a misconfigured
// program says so even when nobody gave it a logger.
func defaultLogger() zerolog.Logger {
	return zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

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

// maxOpsPerPlan bounds the slots one plan call records.
const maxOpsPerPlan = 20_000

// splitByOps keeps the leading plans whose ops add up to at most max (and
// at least one plan), so a catch-up of many frequent tasks does not block
// Redis for long; it names the rest, to be handed back and claimed again at
// once.
func splitByOps(plans []store.TaskPlan, max int) (keep []store.TaskPlan, handBack []string) {
	ops := 0
	for i, pl := range plans {
		if ops += len(pl.Ops); ops > max && i > 0 {
			for _, rest := range plans[i:] {
				handBack = append(handBack, rest.Name)
			}
			return plans[:i], handBack
		}
	}
	return plans, nil
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

// round claims one batch, plans it, and says how long to sleep before the
// next (0: at once, more may be due) and how many tasks it planned.
//
// A round is not interrupted by ctx: once tasks are claimed they are
// planned (or their leases run out), so a stop never strands them for a
// lease. It is bounded by the lease instead.
func (p *Planner) round(ctx context.Context) (sleep time.Duration, planned int, err error) {
	token := p.cfg.Node + "/" + p.instance + "/" + strconv.FormatInt(p.seq.Add(1), 10)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Lease)
	defer cancel()
	start := p.cfg.Clock.Now()
	// A claim Redis runs more than half a lease after we sent it is one we
	// have given up on (Redis was frozen, and ran the queued call once
	// back): it must claim nothing, or its tasks would wait out a lease.
	if p.anchorRedis.IsZero() {
		// The first round takes its anchor from TIME, so that even its
		// claim has a deadline.
		now, err := p.store.Time(rctx)
		if err != nil {
			return 0, 0, err
		}
		p.anchorRedis, p.anchorLocal = now, p.cfg.Clock.Now()
	}
	deadline := p.anchorRedis.Add(start.Sub(p.anchorLocal) + p.cfg.Lease/2)
	claim, err := p.store.Claim(rctx, token, p.cfg.Lease, p.batch, deadline, p.cfg.Lookahead)
	if err != nil {
		return 0, 0, err
	}
	end := p.cfg.Clock.Now()
	p.anchorRedis, p.anchorLocal = claim.Now, start.Add(end.Sub(start)/2)
	if claim.Late {
		p.log.Info().Msg("a claim reached Redis after its deadline and took nothing; claiming again")
		return 0, 0, nil
	}
	// The server's clock minus ours, measured at the round trip's midpoint:
	// only used to turn a due time into a sleep.
	offset := claim.Now.Sub(start.Add(end.Sub(start) / 2))
	sleepUntil := func(due time.Time) time.Duration {
		d := p.cfg.MaxSleep
		if !due.IsZero() {
			if until := due.Add(-p.cfg.Lookahead).Sub(p.cfg.Clock.Now().Add(offset)); until < d {
				d = until
			}
		}
		return d
	}
	if len(claim.Tasks) == 0 {
		return sleepUntil(claim.NextDue), 0, nil
	}

	if p.cfg.AfterClaim != nil {
		names := make([]string, len(claim.Tasks))
		for i, t := range claim.Tasks {
			names[i] = t.Name
		}
		p.cfg.AfterClaim(ctx, names)
	}
	plans := make([]store.TaskPlan, 0, len(claim.Tasks))
	for _, t := range claim.Tasks {
		sched, err := p.schedule(t)
		if err != nil {
			// A stored spec this build cannot read (written by a newer
			// version?): keep the lease, so the task comes back once per
			// lease (to a planner that can read it, perhaps) rather than
			// in a hot loop, and say so each time.
			p.log.Error().Err(err).Str("task", t.Name).Dur("retry_in", p.cfg.Lease).Msg("cannot plan task")
			continue
		}
		plan := planTask(t, sched, claim.Now, p.cfg.Lookahead, p.cfg.Node, p.cfg.CatchUpChunk)
		p.holdBackFull(&plan)
		plans = append(plans, plan)
	}
	plans, handBack := splitByOps(plans, maxOpsPerPlan)
	// The lease is trusted until start + lease - margin, measured from
	// before the claim's round trip. Past that another planner may hold the
	// tasks; the store would refuse our plan anyway, so do not send it.
	// Hand the tasks back instead (release only touches tasks still leased
	// to this token, and makes them due at once) and claim half as many next
	// time. At one task there is nothing left to halve: send the plan, and
	// let the store's own lease check decide.
	margin := p.cfg.Lease / 5
	overran := p.cfg.Clock.Now().After(start.Add(p.cfg.Lease - margin))
	if overran && p.batch > 1 {
		names := make([]string, len(plans))
		for i, pl := range plans {
			names[i] = pl.Name
		}
		relctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Lease)
		defer cancel()
		n, err := p.store.Release(relctx, token, append(names, handBack...))
		p.batch = max(1, p.batch/2)
		p.log.Warn().Err(err).Int("tasks", len(plans)).Int("released", n).Int("next_batch", p.batch).
			Msg("lease ran out before the plan was recorded; tasks handed back")
		return 0, 0, nil
	}
	res, err := p.store.Plan(rctx, token, plans, p.cfg.Lookahead)
	if err != nil {
		// A plan still unanswered when the lease ran out (Redis or this
		// host too loaded to plan the batch in time) is as much an overrun
		// as one sent too late: its tasks come back when the lease expires
		// (the store refuses the plan should it run after), and the next
		// claim takes half as many, or a loaded planner would fail every
		// round at the same size.
		if rctx.Err() != nil && p.batch > 1 {
			p.batch = max(1, p.batch/2)
			p.log.Warn().Err(err).Int("tasks", len(plans)).Int("next_batch", p.batch).
				Msg("lease ran out before the plan was answered")
		}
		return 0, 0, err
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.Planned(res.Fires, res.Events-res.Fires)
		// The ops of a plan the store took in full (none dropped, no task
		// lost: the usual case) are what it recorded.
		if mm, ok := p.cfg.Metrics.(MissedMetrics); ok && res.Lost == 0 && res.Dropped == 0 {
			for i := range plans {
				for _, op := range plans[i].Ops {
					if op.Fire == nil && op.Event.Type == events.TypeMissed {
						mm.Missed(op.Event)
					}
				}
			}
		}
	}
	if len(handBack) > 0 {
		relctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Lease)
		defer cancel()
		if _, err := p.store.Release(relctx, token, handBack); err != nil {
			p.log.Warn().Err(err).Int("tasks", len(handBack)).Msg("hand back tasks over the plan size")
		}
	}
	full := len(claim.Tasks) == p.batch || len(handBack) > 0
	// Grow back additively after a halving, so the size settles below the
	// one that overran instead of swinging between the two.
	if !overran {
		p.batch = min(p.cfg.BatchSize, p.batch+max(1, p.cfg.BatchSize/16))
	}
	p.log.Debug().Int("tasks", len(plans)).Int("fires", res.Fires).Int("events", res.Events).
		Int("lost", res.Lost).Int("dropped", res.Dropped).Msg("planned")
	if full {
		return 0, len(plans), nil
	}
	// Planned tasks may now be due before claim.NextDue; claim again soon
	// after the earliest next slot this batch produced.
	due := claim.NextDue
	for _, pl := range plans {
		if !pl.Next.IsZero() && (due.IsZero() || pl.Next.Before(due)) {
			due = pl.Next
		}
	}
	return sleepUntil(due), len(plans), nil
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
