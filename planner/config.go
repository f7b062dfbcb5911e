package planner

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"time"

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
