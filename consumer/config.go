package consumer

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Config tunes a Consumer. The zero value (plus a namespace, or the
// default) is usable: a zero field means its default, which WithDefaults
// fills in. A value out of range (a negative duration or count) is not
// repaired: New refuses it, naming the field. Features that can be turned
// off have a field of their own saying so (NoHoldEarly, NoPrefetch).
type Config struct {
	// Namespace of the task set (default "default").
	Namespace string
	// Queues this worker reads, single and broadcast (default: "default").
	Queues []string
	// Node names this worker in the group, in events and logs (default:
	// host-pid-random). Two live workers must not share one.
	Node string
	// Logger receives the consumer's logs (default: warnings and errors,
	// as JSON lines on stderr; zerolog.Nop() for none).
	Logger zerolog.Logger
	// VisibilityTimeout is how long a fire whose worker stopped answering
	// waits before another worker takes it (default 30s; from 1ms to store.MaxVisibility, 1h).
	// Claims of held fires are extended every third of it.
	VisibilityTimeout time.Duration
	// Block bounds one blocking read (default 1s): the longest a stop waits
	// for a read under way.
	Block time.Duration
	// MaxDeliveries is how often an entry may be handed out with no
	// outcome before it is dead-lettered (default 10).
	MaxDeliveries int64
	// FireRetention is how long acked fire entries stay on their streams
	// for inspection (default 10m); entries not yet acked are never trimmed.
	FireRetention time.Duration
	// TrimInterval is how often the streams are trimmed (default 1m).
	TrimInterval time.Duration
	// EventsMaxLen is the events stream's bound this worker stores as the
	// namespace's when it stores none (store.Settings; 0: none stored). The
	// stored one wins: a worker given another logs it at start.
	EventsMaxLen int64
	// RetainInterval is how often the worker trims the events stream to
	// the namespace's settings (default 1s): about EventsMaxLen entries,
	// never past one a durable listener was not delivered, up to the hard
	// bounds. Its appends keep to the hard length bound.
	RetainInterval time.Duration
	// EventsMaxAge, when positive, also bounds it by age: every
	// TrimInterval the worker removes events older than this (in whole
	// stream nodes, so a few older ones may wait for the next trim). Zero:
	// by EventsMaxLen alone.
	EventsMaxAge time.Duration
	// HistoryLen is how many entries of each task's history its appends
	// keep (default store.DefaultHistoryLen); give the planners and
	// workers of a namespace the same.
	HistoryLen int64
	// FlushBatch is the most outcomes recorded per round trip (default 256).
	FlushBatch int
	// HoldEarly: a fire read before its scheduled time (planners append
	// fires up to their lookahead ahead of the slot) and due within
	// HoldEarly is held until then, by the Redis server's clock (default
	// 10s). One due later (a hand-written entry with a distant "at") runs
	// at once, as does every fire with NoHoldEarly.
	HoldEarly time.Duration
	// NoHoldEarly runs every fire as soon as it is read, early ones
	// included (HoldEarly must then be 0).
	NoHoldEarly bool
	// EarlyLimit bounds the early fires held at once (default 10,000):
	// with that many, no new fires are read until some are due.
	EarlyLimit int
	// Prefetch is the most fires read beyond the free runs (default 200;
	// NoPrefetch: none), so the next runs do not each wait for a round trip
	// to Redis. It applies only while the recent runs took under
	// PrefetchRunLimit on average, so fires of long runs are left on the
	// stream for workers with free runs; a fire read ahead then waits for
	// a run about Prefetch / concurrency x that long. Fires read ahead are
	// held like running ones (claims extended); a dispatcher hands back
	// those that found no run within dispatcher.ReadAheadWait (runs that
	// turned long), and all of them when it stops.
	Prefetch int
	// NoPrefetch reads no fires beyond the free runs (Prefetch must then
	// be 0).
	NoPrefetch bool
	// SpecCheckInterval is how often the worker compares the stored
	// task-set version with the specs it holds (default 30s), besides the
	// wake-up every apply publishes: it catches an apply whose wake-up it
	// missed, and reads the whole set only when the version moved.
	SpecCheckInterval time.Duration
	// Metrics, when set, is told of reclaims and dead letters.
	Metrics Metrics

	// timing holds the intervals that are not fields above (tests in this
	// package set them).
	timing timing
}

// timing holds the consumer's intervals that are not Config fields: each
// is derived from one that is, or fixed in production. Tests in this
// package set them (Config.timing), so none waits on a production default;
// zero means the default, filled in by WithDefaults.
type timing struct {
	heartbeat   time.Duration // pulse and claim extensions: every VisibilityTimeout/6
	reclaim     time.Duration // least time between reclaim sweeps: VisibilityTimeout/4
	releaseHold time.Duration // longest outcome writes wait for a release: min(releaseHold, VisibilityTimeout/4)
	specMiss    time.Duration // a task with no stored spec is looked up again after: 1s
	retryPoll   time.Duration // longest wait between two moves of due retries: 1s
	pruneIdle   time.Duration // a group consumer idle this long holding nothing is removed: 1h
	drain       time.Duration // longest a stop waits for the outcomes to be recorded: 5s
	routeLook   time.Duration // least time between two looks at the workers registry for fires this worker cannot run: 1s
	earlyWait   time.Duration // longest a due early fire waits for a free run before it is handed back: dispatcher's ReadAheadWait, 1s
	// forgetWorkers: a worker unseen this long leaves the workers registry
	// (0: store.ForgetWorkers, which the heartbeat fills in).
	forgetWorkers time.Duration
}

// withDefaults fills the unset intervals, visibility being the
// VisibilityTimeout in force.
func (t timing) withDefaults(visibility time.Duration) timing {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&t.heartbeat, visibility/6)
	set(&t.reclaim, visibility/4)
	set(&t.releaseHold, min(releaseHold, visibility/4))
	set(&t.specMiss, time.Second)
	set(&t.retryPoll, time.Second)
	set(&t.pruneIdle, time.Hour)
	set(&t.drain, 5*time.Second)
	set(&t.routeLook, time.Second)
	set(&t.earlyWait, time.Second)
	return t
}

// Metrics receives a worker's stream-side counts, for instrumentation
// (Prometheus in the binaries). Calls must not block.
type Metrics interface {
	// Reclaimed counts fires taken over from workers that stopped answering.
	Reclaimed(stream string, n int)
	// DeadLettered counts an entry sent to the dead-letter stream; task is
	// "" for an entry that names none.
	DeadLettered(task string)
}

// MissedMetrics, when a consumer's Metrics implements it too, is told of
// each missed event the consumer records (a fire skipped by its task's
// overlap policy, a repeated trigger id, a fire that waited past its
// misfire grace): e.Count slots of e.Task, under e.Policy.
type MissedMetrics interface {
	Missed(e events.Event)
}

// WithDefaults returns the config with every unset (zero) field at its
// default. It leaves a value out of range as it is, for New to refuse.
func (c Config) WithDefaults() Config {
	if reflect.ValueOf(c.Logger).IsZero() {
		c.Logger = zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	}
	if c.Namespace == "" {
		c.Namespace = store.DefaultNamespace
	}
	if len(c.Queues) == 0 {
		c.Queues = []string{events.DefaultQueue}
	}
	if c.Node == "" {
		c.Node = events.NewNode()
	}
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&c.VisibilityTimeout, 30*time.Second)
	set(&c.Block, time.Second)
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = 10
	}
	set(&c.FireRetention, 10*time.Minute)
	set(&c.TrimInterval, time.Minute)
	set(&c.RetainInterval, time.Second)
	if c.FlushBatch == 0 {
		c.FlushBatch = 256
	}
	if !c.NoHoldEarly {
		set(&c.HoldEarly, 10*time.Second)
	}
	if c.EarlyLimit == 0 {
		c.EarlyLimit = 10_000
	}
	if c.Prefetch == 0 && !c.NoPrefetch {
		c.Prefetch = 200
	}
	if c.SpecCheckInterval == 0 {
		c.SpecCheckInterval = 30 * time.Second
	}
	c.timing = c.timing.withDefaults(c.VisibilityTimeout)
	return c
}

// validate refuses a value out of range, naming the field and the form
// expected (river's Config.validate: validate, don't repair). It is run
// on the config WithDefaults returns, whose zeros are defaults already.
func (c Config) validate() error {
	for _, f := range []struct {
		name, want string
		d          time.Duration // the field's value: a duration...
		n          int64         // ...or a count
		dur        bool
	}{
		{name: "VisibilityTimeout", want: "0 (default 30s) or 1ms or more", d: c.VisibilityTimeout, dur: true},
		{name: "Block", want: "0 (default 1s) or more", d: c.Block, dur: true},
		{name: "MaxDeliveries", want: "0 (default 10) or more", n: c.MaxDeliveries},
		{name: "FireRetention", want: "0 (default 10m) or more", d: c.FireRetention, dur: true},
		{name: "TrimInterval", want: "0 (default 1m) or more", d: c.TrimInterval, dur: true},
		{name: "EventsMaxLen", want: "0 (none stored) or more", n: c.EventsMaxLen},
		{name: "RetainInterval", want: "0 (default 1s) or more", d: c.RetainInterval, dur: true},
		{name: "EventsMaxAge", want: "0 (by EventsMaxLen alone) or more", d: c.EventsMaxAge, dur: true},
		{name: "HistoryLen", want: fmt.Sprintf("0 (default %d) or more", store.DefaultHistoryLen), n: c.HistoryLen},
		{name: "FlushBatch", want: "0 (default 256) or more", n: int64(c.FlushBatch)},
		{name: "HoldEarly", want: "0 (default 10s) or more; NoHoldEarly runs early fires at once", d: c.HoldEarly, dur: true},
		{name: "EarlyLimit", want: "0 (default 10000) or more", n: int64(c.EarlyLimit)},
		{name: "Prefetch", want: "0 (default 200) or more; NoPrefetch reads none ahead", n: int64(c.Prefetch)},
		{name: "SpecCheckInterval", want: "0 (default 30s) or more", d: c.SpecCheckInterval, dur: true},
	} {
		switch {
		case f.dur && f.d < 0:
			return fmt.Errorf("consumer: Config.%s: %s is negative; want %s", f.name, f.d, f.want)
		case !f.dur && f.n < 0:
			return fmt.Errorf("consumer: Config.%s: %d is negative; want %s", f.name, f.n, f.want)
		}
	}
	if c.VisibilityTimeout > store.MaxVisibility {
		return fmt.Errorf("consumer: Config.VisibilityTimeout: %s is over %s; want 0 (default 30s) or up to %s", c.VisibilityTimeout, store.MaxVisibility, store.MaxVisibility)
	}
	if c.VisibilityTimeout < time.Millisecond {
		// Claims are extended every sixth of it: too short to be kept.
		return fmt.Errorf("consumer: Config.VisibilityTimeout: %s is under 1ms; want 0 (default 30s) or 1ms or more", c.VisibilityTimeout)
	}
	if c.NoHoldEarly && c.HoldEarly != 0 {
		return fmt.Errorf("consumer: Config.HoldEarly: %s with NoHoldEarly; want 0 with NoHoldEarly, or NoHoldEarly false", c.HoldEarly)
	}
	if c.NoPrefetch && c.Prefetch != 0 {
		return fmt.Errorf("consumer: Config.Prefetch: %d with NoPrefetch; want 0 with NoPrefetch, or NoPrefetch false", c.Prefetch)
	}
	seen := map[string]bool{}
	for _, q := range c.Queues {
		sp := events.Spec{Name: "x", Queue: q, Trigger: events.Every(time.Second)}.WithDefaults()
		if err := sp.Validate(); err != nil {
			var se *events.SpecError
			if errors.As(err, &se) && se.Field == "queue" {
				return fmt.Errorf("consumer: Config.Queues: queue %q: %s", q, se.Problem)
			}
		}
		if seen[q] {
			return fmt.Errorf("consumer: Config.Queues: queue %q is listed twice", q)
		}
		seen[q] = true
	}
	if strings.ContainsAny(c.Node, " \n") || c.Node == "" {
		return fmt.Errorf("consumer: Config.Node: %q: want a name without spaces", c.Node)
	}
	return nil
}
