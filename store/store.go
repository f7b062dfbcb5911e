// Package store is everything of taskino that speaks Redis: key names, Lua
// scripts, task-set versions, planning claims (leases), stream reads and
// writes, each task's state and history, the namespace's settings. No other library package of the module calls
// go-redis (listeners included): they hand a redis.UniversalClient to a
// constructor, and tests (TestOnlyStoreSpeaksRedis, TestOnlyStoreCallsRedis)
// hold that.
//
// It takes a redis.UniversalClient, so a single server, Sentinel or Cluster
// all work: the keys of one namespace share a hash tag and so one slot.
// Redis types do not leave this package; callers see events types,
// ErrNotFound where Redis says nil, and ErrNoGroup where a consumer group
// is missing.
//
// # What is public
//
// A Store is what an operator or a tool needs, every call safe at any
// time: apply a task set and read it back, trigger, pause and resume a
// task, read its schedule state, run state (TaskState, Status) and history,
// the namespace's settings, list, replay and delete dead letters, and read
// the streams (the events live or through a durable group, the fires, a
// group's lag).
//
// # What is internal, and why
//
// The protocol steps are not on Store: claiming, planning and releasing
// tasks (the planner's), and reading, reclaiming, beginning, heartbeating,
// finishing and handing back fires, moving retries back and trimming (the
// worker's). Each keeps its promise (one fire per slot, at-least-once, no
// fire taken from a live worker) only when called in order by the one
// caller that holds the lease or the claim, so they live in
// store/internal/protocol, which no program outside this module can
// import. PlanningProtocol and WorkerProtocol hand them to packages planner
// and consumer; the data the steps take and return (Delivery, Outcome,
// TaskPlan, ...) is named here. store/internal/core is what both sides
// share. A test (TestStoreKeepsNoProtocolStep) holds the split.
//
// The boundary is as strong as Go allows here, not stronger: planner and
// consumer sit beside store, not under it, so they reach the steps through
// the two accessors, and so can any program, by calling methods on what
// they return (it cannot name the types). Such calls are unsupported and
// outside every promise.
//
// It does not decide when anything fires: the planner computes slots and
// hands the planning protocol the result, which the plan script records
// atomically (see planScript in store/internal/protocol for the
// one-fire-per-slot rule).
package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
	"github.com/taskino/taskino/store/internal/protocol"
)

// LongApplyTasks is the task-set size from which Apply waits for its
// script on a client of its own (see Apply).
const LongApplyTasks = 1000

// forLongCalls returns a client like rdb (same servers, same credentials,
// same TLS) whose reads and writes wait up to 10 minutes and are never
// retried, and its close; for a client of a kind it does not know (a
// Ring), rdb itself.
func forLongCalls(rdb redis.UniversalClient) (redis.UniversalClient, func()) {
	switch c := rdb.(type) {
	case *redis.Client: // a single server, or Sentinel's failover client
		opt := *c.Options()
		opt.ReadTimeout, opt.WriteTimeout, opt.MaxRetries = 10*time.Minute, 10*time.Minute, -1
		l := redis.NewClient(&opt)
		return l, func() { _ = l.Close() }
	case *redis.ClusterClient:
		opt := *c.Options()
		opt.ReadTimeout, opt.WriteTimeout, opt.MaxRetries = 10*time.Minute, 10*time.Minute, -1
		l := redis.NewClusterClient(&opt)
		return l, func() { _ = l.Close() }
	}
	return rdb, func() {}
}

// ErrNotFound is returned where a key or field that was asked for does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrBadVersion is wrapped by an apply whose version is not a whole number
// from 1.
var ErrBadVersion = errors.New("task-set version: want a whole number from 1")

// VersionConflictError is an apply of a version that is already stored with
// a different task set: two programs claim the same version for different
// tasks, and neither may silently win.
type VersionConflictError struct {
	Version int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("task-set version %d is already applied with different tasks; apply these with a higher version", e.Version)
}

// Options tune a Store. The zero value is usable.
type Options struct {
	// EventsMaxLen bounds the events stream, trimmed approximately at each
	// append (default 100,000 entries; planners and workers give the
	// namespace's hard bound, Settings.EventsHardMaxLen, and trim to its
	// settings every second); NoTrim: this store's appends do not trim it
	// at all.
	EventsMaxLen int64
	// HistoryLen is how many entries of each task's history (its outcomes
	// and missed slots, store.Keys.History) this store's appends keep at
	// least (default 100; trimmed approximately, so up to about twice as
	// many stay). Give the planners and workers of a namespace the same.
	HistoryLen int64
}

// DefaultHistoryLen is the per-task history bound used when Options leaves
// it zero.
const DefaultHistoryLen = 100

// DefaultEventsMaxLen is the events stream bound used when Options leaves it zero.
const DefaultEventsMaxLen = protocol.DefaultEventsMaxLen

// NoTrim, as Options.EventsMaxLen, makes a store append events without
// trimming the stream: for an occasional writer (an admin command), which
// then never cuts the history that the processes keep to their own bound;
// their next append trims it.
const NoTrim = -1

// Store is one namespace of taskino on a Redis deployment. It is safe for
// concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	ns   string
	keys Keys
	// eventsMaxLen bounds every append to the events stream, the store's
	// own and its protocols' (a RetainEvents pass sets it to the
	// namespace's hard bound).
	eventsMaxLen *atomic.Int64
	historyLen   int64
	// The protocol steps on the same namespace, for PlanningProtocol and
	// WorkerProtocol.
	planning *protocol.Planning
	worker   *protocol.Worker
}

// New returns the store of namespace ns on rdb.
func New(rdb redis.UniversalClient, ns string, opts Options) (*Store, error) {
	if ns == "" {
		ns = DefaultNamespace
	}
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	switch {
	case opts.EventsMaxLen == NoTrim:
		opts.EventsMaxLen = math.MaxInt64
	case opts.EventsMaxLen < 0:
		return nil, fmt.Errorf("store: Options.EventsMaxLen: %d; want 0 (default %d), a positive bound, or NoTrim", opts.EventsMaxLen, DefaultEventsMaxLen)
	case opts.EventsMaxLen == 0:
		opts.EventsMaxLen = DefaultEventsMaxLen
	}
	switch {
	case opts.HistoryLen < 0:
		return nil, fmt.Errorf("store: Options.HistoryLen: %d; want 0 (default %d) or a positive bound", opts.HistoryLen, DefaultHistoryLen)
	case opts.HistoryLen == 0:
		opts.HistoryLen = DefaultHistoryLen
	}
	keys := NewKeys(ns)
	maxLen := new(atomic.Int64)
	maxLen.Store(opts.EventsMaxLen)
	return &Store{rdb: rdb, ns: ns, keys: keys, eventsMaxLen: maxLen, historyLen: opts.HistoryLen,
		planning: protocol.NewPlanning(rdb, keys, maxLen, opts.HistoryLen),
		worker:   protocol.NewWorker(rdb, keys, maxLen, opts.HistoryLen),
	}, nil
}

// Namespace is the store's namespace.
func (s *Store) Namespace() string { return s.ns }

// Keys is the store's key names.
func (s *Store) Keys() Keys { return s.keys }

// Time is the Redis server's clock, the only clock taskino plans by.
func (s *Store) Time(ctx context.Context) (time.Time, error) {
	return s.rdb.Time(ctx).Result()
}

// ApplyOutcome says what an apply did.
type ApplyOutcome string

// The apply outcomes.
const (
	// Applied: the version was newer (or the store empty) and is now in force.
	Applied ApplyOutcome = "applied"
	// Unchanged: the same version with the same tasks was already in force.
	Unchanged ApplyOutcome = "unchanged"
	// Adopted: a newer version is in force; nothing was written, and the
	// caller goes on with the stored set.
	Adopted ApplyOutcome = "adopted"
)

// ApplyResult reports an apply.
type ApplyResult struct {
	Outcome ApplyOutcome
	// Version is the version in force after the call.
	Version int64
	// Previous is the version replaced (Applied), 0 when there was none.
	Previous int64
	// Added, Changed and Removed name the tasks the apply touched;
	// Rescheduled is the part of Changed whose schedule changed (the others
	// keep their next slot).
	Added, Changed, Rescheduled, Removed []string
}

// Apply makes specs, at version, the namespace's task set, atomically. A
// higher version than the stored one replaces it: added tasks are scheduled
// from the server's now, changed ones keep their place unless their trigger
// changed, removed ones stop. An older version writes nothing (Adopted). The
// same version is Unchanged, or a *VersionConflictError if its tasks differ.
// A store with no version (new, or flushed) takes any version: empty Redis
// means "republish", never "cancel everything".
//
// The caller validates specs (planner.Validate); Apply refuses only what
// would corrupt the store: a version below 1 and duplicate names.
//
// The apply is one script, seconds long for a few hundred thousand tasks,
// during which Redis serves nothing else. A set of LongApplyTasks or more
// goes through a client of its own that waits for the reply (up to 10
// minutes, never retried), so that a client's usual read timeout does not
// report as failed a set Redis goes on to apply.
func (s *Store) Apply(ctx context.Context, version int64, specs []events.Spec) (ApplyResult, error) {
	if version < 1 {
		return ApplyResult{}, fmt.Errorf("%w; got %d (planner.Config.Version or SetVersion in Go, version: in a tasks file)", ErrBadVersion, version)
	}
	args := []any{
		s.keys.statePrefix(), strconv.FormatInt(version, 10), s.eventsMaxLen.Load(), s.keys.Wake(), len(specs),
		events.FieldV, events.EncodingVersion, events.FieldType, string(events.TypeReload), string(events.TypeRegistered),
		events.FieldVersion, events.FieldPrevious, events.FieldAdded, events.FieldChanged, events.FieldRemoved,
		events.FieldTask, events.FieldChange, events.ChangeAdded, events.ChangeChanged, events.ChangeRemoved,
	}
	longest, longestTask := "", ""
	for _, sp := range specs {
		if len(sp.Payload) > len(longest) {
			longest, longestTask = sp.Payload, sp.Name
		}
	}
	if err := s.checkPayload(ctx, longestTask, longest); err != nil {
		return ApplyResult{}, err
	}
	seen := make(map[string]bool, len(specs))
	for _, sp := range specs {
		if seen[sp.Name] {
			return ApplyResult{}, &events.SpecError{Task: sp.Name, Field: "name", Problem: "appears twice in the task set; want unique names"}
		}
		seen[sp.Name] = true
		raw, err := events.MarshalSpec(sp)
		if err != nil {
			return ApplyResult{}, fmt.Errorf("task %q: %w", sp.Name, err)
		}
		if len(raw) > events.MaxReadBytes {
			// Processes bounded by BoundReplies could not read it back.
			return ApplyResult{}, &events.SpecError{Task: sp.Name, Field: "definition",
				Problem: fmt.Sprintf("%d bytes stored; want at most %d (a long except list?)", len(raw), events.MaxReadBytes)}
		}
		args = append(args, sp.Name, string(raw), events.ScheduleKey(sp))
	}
	keys := []string{s.keys.Version(), s.keys.Specs(), s.keys.Due(), s.keys.Events(), s.keys.Changes(), s.keys.LastRun()}
	rdb := s.rdb
	if len(specs) >= LongApplyTasks {
		long, closeLong := forLongCalls(rdb)
		defer closeLong()
		rdb = long
	}
	res, err := applyScript.Run(ctx, rdb, keys, args...).Slice()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply task set version %d: %w", version, err)
	}
	outcome, _ := res[0].(string)
	cur, _ := strconv.ParseInt(fmt.Sprint(res[1]), 10, 64)
	switch outcome {
	case "adopted":
		return ApplyResult{Outcome: Adopted, Version: cur}, nil
	case "unchanged":
		return ApplyResult{Outcome: Unchanged, Version: cur}, nil
	case "conflict":
		return ApplyResult{}, &VersionConflictError{Version: cur}
	}
	r := ApplyResult{Outcome: Applied, Version: version, Previous: cur}
	nAdded, nChanged := int(res[2].(int64)), int(res[3].(int64))
	for i, v := range res[5:] {
		name := v.(string)
		switch {
		case i < nAdded:
			r.Added = append(r.Added, name)
		case i < nAdded+nChanged:
			if strings.HasPrefix(name, "!") {
				name = name[1:]
				r.Rescheduled = append(r.Rescheduled, name)
			}
			r.Changed = append(r.Changed, name)
		default:
			r.Removed = append(r.Removed, name)
		}
	}
	return r, nil
}

// Version is the task-set version in force, 0 when none is stored.
func (s *Store) Version(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.keys.Version()).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// Specs is the stored task set, sorted by name, without the specs that
// do not decode (SpecsAndBad lists those).
func (s *Store) Specs(ctx context.Context) ([]events.Spec, error) {
	specs, _, err := s.SpecsAndBad(ctx)
	return specs, err
}

// SpecsAndBad is Specs, and the stored specs that do not decode (written
// into Redis by hand, or by a newer taskino), by task name with why: one
// such spec never keeps the others from being read.
func (s *Store) SpecsAndBad(ctx context.Context) ([]events.Spec, map[string]error, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.Specs()).Result()
	if err != nil {
		return nil, nil, err
	}
	out := make([]events.Spec, 0, len(m))
	var bad map[string]error
	for name, raw := range m {
		sp, err := events.UnmarshalSpecString(raw)
		if err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[name] = err
			continue
		}
		out = append(out, sp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, bad, nil
}

// Spec is the stored spec of task, or ErrNotFound.
func (s *Store) Spec(ctx context.Context, task string) (events.Spec, error) {
	raw, err := s.rdb.HGet(ctx, s.keys.Specs(), task).Bytes()
	if errors.Is(err, redis.Nil) {
		return events.Spec{}, ErrNotFound
	}
	if err != nil {
		return events.Spec{}, err
	}
	sp, err := events.UnmarshalSpec(raw)
	if err != nil {
		return events.Spec{}, fmt.Errorf("task %q: %w", task, err)
	}
	return sp, nil
}

// TaskState is where a task stands in the schedule.
type TaskState struct {
	// Since is when the task was registered, rescheduled or resumed: its
	// first slot is not earlier, but for a once instant within the misfire
	// grace before it.
	Since time.Time
	// Next is the next slot not yet planned; zero when it is not computed
	// yet (just scheduled) or Done.
	Next time.Time
	// Done is true when the trigger has no slot left.
	Done bool
	// Gen counts changes of the task's spec.
	Gen int64
	// Planned is the latest slot fired or recorded missed; zero when none.
	Planned time.Time
	// Paused is when the task was paused; zero when it is not.
	Paused time.Time
	// PausedWhy is the pause's reason in short ("by hand", or "after 3
	// failed slots in a row (pause_after_failures: 3)"); Fired counts the fires of a task with a
	// limit since it was registered or rescheduled (0 without a limit).
	PausedWhy string
	Fired     int64
	// FailsBase is the failures in a row a pause after failures counted
	// (store.PauseAfterFailures): the task counts the ones after it.
	FailsBase int
	// The task's runs, as its per-task state holds them (Keys.LastRun);
	// nil when there is none: Latest, its latest fire (planned or run);
	// Running, the run a worker started and has not finished (it may have
	// died since: see Status); Outcome, its last outcome (Fails counts the
	// slots failed since the last success); Success, its last success.
	Latest, Running, Outcome, Success *events.LastRun
}

// State is the schedule state of a task, or ErrNotFound.
func (s *Store) State(ctx context.Context, task string) (TaskState, error) {
	m, err := s.States(ctx, []string{task})
	if err != nil {
		return TaskState{}, err
	}
	ts, ok := m[task]
	if !ok {
		return TaskState{}, ErrNotFound
	}
	return ts, nil
}

// States is the state of each of tasks that has one (a schedule or a run),
// read in one round trip.
func (s *Store) States(ctx context.Context, tasks []string) (map[string]TaskState, error) {
	if len(tasks) == 0 {
		return map[string]TaskState{}, nil
	}
	pipe := s.rdb.Pipeline()
	sts := make([]*redis.SliceCmd, len(tasks))
	for i, task := range tasks {
		sts[i] = pipe.HMGet(ctx, s.keys.State(task), "since", "next", "gen", "paused", "fails_base", "paused_why", "fired")
	}
	pl := pipe.HMGet(ctx, s.keys.Planned(), tasks...)
	fields := make([]string, 0, 4*len(tasks))
	for _, task := range tasks {
		fields = append(fields, task, task+StateRunning, task+StateOutcome, task+StateSuccess)
	}
	lr := pipe.HMGet(ctx, s.keys.LastRun(), fields...)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	planned, runs := pl.Val(), lr.Val()
	out := make(map[string]TaskState, len(tasks))
	for i, task := range tasks {
		v := sts[i].Val()
		if v[0] == nil && runs[4*i] == nil && runs[4*i+1] == nil && runs[4*i+2] == nil && runs[4*i+3] == nil {
			continue
		}
		var ts TaskState
		ts.Since = core.MsTime(v[0])
		if n, _ := v[1].(string); n == "-1" {
			ts.Done = true
		} else {
			ts.Next = core.MsTime(v[1])
		}
		ts.Gen, _ = strconv.ParseInt(fmt.Sprint(v[2]), 10, 64)
		ts.Paused = core.MsTime(v[3])
		ts.FailsBase, _ = strconv.Atoi(fmt.Sprint(v[4]))
		ts.PausedWhy, _ = v[5].(string)
		ts.Fired, _ = strconv.ParseInt(fmt.Sprint(v[6]), 10, 64)
		ts.Planned = core.MsTime(planned[i])
		var err error
		for k, p := range []**events.LastRun{&ts.Latest, &ts.Running, &ts.Outcome, &ts.Success} {
			if *p, err = runRecord(runs[4*i+k]); err != nil {
				return nil, fmt.Errorf("task %q: %s: %w", task, fields[4*i+k], err)
			}
		}
		if ts.Outcome == nil {
			ts.Outcome = ts.Success // emptied: the last success is the last outcome
		}
		for _, r := range []*events.LastRun{ts.Outcome, ts.Success, ts.Running} {
			if l := ts.Latest; r != nil && r.Fired.IsZero() && l != nil && l.Fire == r.Fire {
				r.Fired = l.Fired // a retry's, or a broadcast run's: the planner's
			}
		}
		if r, o := ts.Running, ts.Outcome; r != nil && o != nil && o.Fire == r.Fire && o.Attempt >= r.Attempt {
			ts.Running = nil // it ended
		}
		out[task] = ts
	}
	return out, nil
}

// Last is the task's most recent run as its state knows it: of the
// records of its latest fire, its running run and its last outcome, the
// one of the latest slot (on a tie, the outcome, then the running run);
// nil when it never fired.
func (ts TaskState) Last() *events.LastRun {
	var best *events.LastRun
	for _, r := range []*events.LastRun{ts.Outcome, ts.Running, ts.Latest} {
		if r != nil && (best == nil || r.Scheduled.After(best.Scheduled)) {
			best = r
		}
	}
	return best
}

// runRecord decodes a per-task state record as HMGET gave it: nil for
// none (absent, or emptied).
func runRecord(v any) (*events.LastRun, error) {
	raw, _ := v.(string)
	if raw == "" {
		return nil, nil
	}
	r, err := events.UnmarshalLastRun([]byte(raw))
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// LastRun is what is known of a task's most recent run (TaskState.Last);
// ok is false when it never fired, or is not in the task set (not an
// error).
func (s *Store) LastRun(ctx context.Context, task string) (run events.LastRun, ok bool, err error) {
	m, err := s.States(ctx, []string{task})
	if err != nil {
		return events.LastRun{}, false, err
	}
	if r := m[task].Last(); r != nil {
		return *r, true, nil
	}
	return events.LastRun{}, false, nil
}

// LastRuns is the most recent run (TaskState.Last) of every task of the
// task set that has one.
func (s *Store) LastRuns(ctx context.Context) (map[string]events.LastRun, error) {
	names, err := s.rdb.HKeys(ctx, s.keys.Specs()).Result()
	if err != nil {
		return nil, err
	}
	m, err := s.States(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]events.LastRun, len(m))
	for name, ts := range m {
		if r := ts.Last(); r != nil {
			out[name] = *r
		}
	}
	return out, nil
}

// Wake subscribes to the namespace's wake-up channel: a value arrives on the
// returned channel (capacity 1, never blocking the sender) whenever a task
// set is applied. close ends the subscription. It returns once Redis has
// confirmed the subscription; err says it could not (the subscription is
// still retried in the background, but wake-ups before it succeeds are
// lost: pub/sub keeps nothing).
func (s *Store) Wake(ctx context.Context) (wake <-chan struct{}, close func() error, err error) {
	ps := s.rdb.Subscribe(ctx, s.keys.Wake())
	if _, err = ps.Receive(ctx); err != nil {
		err = fmt.Errorf("subscribe to wake-ups: %w", err)
	}
	return core.Signals(ps), ps.Close, err
}

// RangeEvents decodes the events stream from start to end (stream ids, "-"
// and "+" for the ends). An entry that does not decode is an error naming
// its id.
func (s *Store) RangeEvents(ctx context.Context, start, end string) ([]events.Event, error) {
	return xrange(ctx, s, s.keys.Events(), start, end, "event", events.DecodeEvent)
}

// RangeFires decodes a fire stream (Keys.Fires or Keys.Broadcast) from start
// to end. An entry that does not decode is an error naming its id.
func (s *Store) RangeFires(ctx context.Context, stream, start, end string) ([]events.Fire, error) {
	return xrange(ctx, s, stream, start, end, "fire", events.DecodeFire)
}

// xrange reads stream entries from start to end and decodes each with decode.
func xrange[T any](ctx context.Context, s *Store, stream, start, end, what string, decode func(id string, f map[string]string) (T, error)) ([]T, error) {
	msgs, err := s.rdb.XRange(ctx, stream, start, end).Result()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(msgs))
	for _, m := range msgs {
		v, err := decode(m.ID, core.StringFields(m.Values))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, m.ID, err)
		}
		out = append(out, v)
	}
	return out, nil
}
