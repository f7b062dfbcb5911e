// Package listeners delivers the events of a taskino namespace (the stream
// taskino:{ns}:events) to Go callbacks: the seed's OnStartup, OnStop,
// OnReload and OnComplete (with the run's cost in milliseconds), and more.
// A listener implements only the callbacks it wants: each is its own
// one-method interface.
//
// # Live and durable
//
// A live subscription (Config.Durable empty) sees the events appended while
// it runs, from the moment Run starts (or from Config.From). A durable one
// is a Redis consumer group named by the listener: it resumes after a
// restart where it stopped, so a listener stopped cleanly while events
// pass receives exactly those events when it runs again. After a crash the
// event being handled is delivered again (at least once). Two processes
// running the same durable listener share its events.
//
// # Failures
//
// A listener that panics is contained: the panic and its stack are logged
// and given to Config.OnError, and delivery goes on with the next event. An
// entry that does not decode is reported the same way and skipped.
//
// The events stream is bounded (approximately 100,000 entries by default);
// a durable listener stopped for longer than the stream holds misses the
// trimmed events, and Run reports that through Config.OnError when it
// starts.
package listeners

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// StartupListener is told when a planner or worker starts (node_up).
type StartupListener interface {
	OnStartup(ctx context.Context, e events.Event)
}

// StopListener is told when a planner or worker stops (node_down).
type StopListener interface {
	OnStop(ctx context.Context, e events.Event)
}

// ReloadListener is told when a new task-set version is applied.
type ReloadListener interface {
	OnReload(ctx context.Context, e events.Event)
}

// CompleteListener is told when a run succeeds; e.CostMs is its cost in
// milliseconds.
type CompleteListener interface {
	OnComplete(ctx context.Context, e events.Event)
}

// LastRunListener is told of each outcome (completed, failed, dead) that
// became its task's last outcome in the per-task state (the
// event's LastRun is set; an outcome of an older slot that finished after
// a newer one's is not told), after the listener interface of its type.
// A completed one is also the task's last success.
type LastRunListener interface {
	OnLastRun(ctx context.Context, e events.Event)
}

// FiredListener is told when a planner fires a task.
type FiredListener interface {
	OnFired(ctx context.Context, e events.Event)
}

// StartedListener is told when a worker starts a run.
type StartedListener interface {
	OnStarted(ctx context.Context, e events.Event)
}

// FailedListener is told when a run fails (e.Error says why).
type FailedListener interface {
	OnFailed(ctx context.Context, e events.Event)
}

// CancelledListener is told when a worker's stop cuts a run (e.Reason
// says why); the fire is handed back and runs again.
type CancelledListener interface {
	OnCancelled(ctx context.Context, e events.Event)
}

// StuckListener is told when a task's fires wait because no live worker
// of their queue runs the task (e.Reason says so), once per task and
// worker until one does.
type StuckListener interface {
	OnStuck(ctx context.Context, e events.Event)
}

// RetriedListener is told when a failed fire is scheduled again.
type RetriedListener interface {
	OnRetried(ctx context.Context, e events.Event)
}

// DeadListener is told when a fire or a bad entry is dead-lettered.
type DeadListener interface {
	OnDead(ctx context.Context, e events.Event)
}

// MissedListener is told of slots not fired (misfire or overlap policy).
type MissedListener interface {
	OnMissed(ctx context.Context, e events.Event)
}

// EventListener is told of every event, whatever its type.
type EventListener interface {
	OnEvent(ctx context.Context, e events.Event)
}

// Config says which events a Subscription reads and how.
type Config struct {
	// Namespace of the events (default "default").
	Namespace string
	// Durable, when set, names a durable subscription: a consumer group of
	// that name on the events stream (letters, digits and . _ - : /).
	Durable string
	// From is where a subscription starts: "$" (default) for events
	// appended after Run starts, "0" for the whole stream, or a stream
	// entry id. For a durable subscription it applies only when its group
	// is created, the first time it runs.
	From string
	// Block bounds one blocking read (default 1s): the longest a stop waits.
	Block time.Duration
	// Consumer names this process in a durable subscription's group
	// (default host-pid-random, events.NewNode): every process of one
	// durable listener has its own, so each event goes to one of them, and
	// a restart is a new consumer.
	Consumer string
	// ClaimIdle is how long an event delivered to another process of a
	// durable subscription waits unacked before this one takes it over,
	// that process having died (default 1m; at least 1s). A listener call
	// that runs longer than this may see its event delivered again.
	ClaimIdle time.Duration
	// Logger receives the subscription's logs (default: warnings and
	// errors, as JSON lines on stderr; zerolog.Nop() for none).
	Logger zerolog.Logger
	// OnError, when set, is given every listener panic, undecodable entry
	// and detected gap, besides the log.
	OnError func(err error)
}

// Subscription delivers events to listeners.
type Subscription struct {
	st        *store.Store
	cfg       Config
	log       zerolog.Logger
	listeners []any
}

// New returns a subscription of cfg.Namespace's events for listeners, each
// of which must implement at least one of this package's interfaces.
func New(rdb redis.UniversalClient, cfg Config, listeners ...any) (*Subscription, error) {
	if cfg.Block < 0 {
		return nil, fmt.Errorf("listeners: Config.Block: %s; want 0 (default 1s) or more", cfg.Block)
	}
	if cfg.From == "" {
		cfg.From = "$"
	}
	if cfg.Block == 0 {
		cfg.Block = time.Second
	}
	if cfg.Consumer == "" {
		cfg.Consumer = events.NewNode()
	}
	switch {
	case cfg.ClaimIdle == 0:
		cfg.ClaimIdle = time.Minute
	case cfg.ClaimIdle < time.Second:
		return nil, fmt.Errorf("listeners: Config.ClaimIdle %s: want 0 (default 1m) or 1s or more", cfg.ClaimIdle)
	}
	if reflect.ValueOf(cfg.Logger).IsZero() {
		// Unset: warnings and errors to stderr, so a failing listener says so.
		cfg.Logger = zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	}
	st, err := store.New(rdb, cfg.Namespace, store.Options{})
	if err != nil {
		return nil, err
	}
	if cfg.Durable != "" {
		if err := events.ValidateName(cfg.Durable); err != nil {
			return nil, fmt.Errorf("durable listener name: %w", err)
		}
	}
	if len(listeners) == 0 {
		return nil, errors.New("listeners: no listener given")
	}
	for i, l := range listeners {
		if !isListener(l) {
			return nil, fmt.Errorf("listeners: listener %d (%T) implements none of the listener interfaces", i, l)
		}
	}
	log := cfg.Logger.With().Str("component", "listeners").Str("durable", cfg.Durable).Logger()
	return &Subscription{st: st, cfg: cfg, log: log, listeners: listeners}, nil
}

// callback is one listener interface: whether l implements it, and a call
// of its method when it does.
type callback struct {
	implements func(l any) bool
	call       func(l any, ctx context.Context, e events.Event)
}

func on[L any](method func(L, context.Context, events.Event)) callback {
	return callback{
		implements: func(l any) bool { _, ok := l.(L); return ok },
		call: func(l any, ctx context.Context, e events.Event) {
			if x, ok := l.(L); ok {
				method(x, ctx, e)
			}
		},
	}
}

// callbacks maps each event type to the listener interface told of it.
var callbacks = map[events.Type]callback{
	events.TypeNodeUp:    on(StartupListener.OnStartup),
	events.TypeNodeDown:  on(StopListener.OnStop),
	events.TypeReload:    on(ReloadListener.OnReload),
	events.TypeCompleted: on(CompleteListener.OnComplete),
	events.TypeFired:     on(FiredListener.OnFired),
	events.TypeStarted:   on(StartedListener.OnStarted),
	events.TypeFailed:    on(FailedListener.OnFailed),
	events.TypeCancelled: on(CancelledListener.OnCancelled),
	events.TypeStuck:     on(StuckListener.OnStuck),
	events.TypeRetried:   on(RetriedListener.OnRetried),
	events.TypeDead:      on(DeadListener.OnDead),
	events.TypeMissed:    on(MissedListener.OnMissed),
}

var every = on(EventListener.OnEvent)

// lastRun is told of the outcomes marked as their task's last.
var lastRun = on(LastRunListener.OnLastRun)

func isListener(l any) bool {
	if every.implements(l) || lastRun.implements(l) {
		return true
	}
	for _, cb := range callbacks {
		if cb.implements(l) {
			return true
		}
	}
	return false
}

// Run delivers events until ctx is cancelled, then returns nil after the
// event being delivered (a durable subscription acks every event it
// delivered). Redis errors are logged and retried with backoff.
func (s *Subscription) Run(ctx context.Context) error {
	if s.cfg.Durable != "" {
		return s.runDurable(ctx)
	}
	return s.runLive(ctx)
}

func (s *Subscription) runLive(ctx context.Context) error {
	after := s.cfg.From
	b := store.NewBackoff()
	for ctx.Err() == nil {
		es, next, err := s.st.ReadEvents(ctx, after, 100, s.cfg.Block)
		after = next
		if err != nil {
			if ctx.Err() == nil {
				s.retry(ctx, b, err, "read events")
			}
			continue
		}
		b.Reset()
		for _, e := range es {
			s.deliverEntry(ctx, e)
		}
	}
	return nil
}

func (s *Subscription) runDurable(ctx context.Context) error {
	group := s.cfg.Durable
	b := store.NewBackoff()
	for ctx.Err() == nil {
		err := s.st.EnsureEventGroup(ctx, group, s.cfg.From)
		if err == nil {
			break
		}
		s.retry(ctx, b, err, "create the listener's group")
	}
	s.checkGap(ctx, group)
	// What this consumer was delivered and did not ack first (none, for a
	// new name), then new events; every ClaimIdle, the events another
	// process of the subscription was delivered and left unacked that long.
	cursor := "0"
	claimAt, claimFrom := time.Time{}, "0-0"
	for ctx.Err() == nil {
		var es []store.EventEntry
		var err error
		claimed := false
		if now := time.Now(); cursor == ">" && !now.Before(claimAt) {
			claimed = true
			es, claimFrom, err = s.st.ClaimEvents(ctx, group, s.cfg.Consumer, s.cfg.ClaimIdle, claimFrom, 100)
			if err != nil || claimFrom == "0-0" {
				claimFrom, claimAt = "0-0", now.Add(s.cfg.ClaimIdle/2)
			}
			if err == nil && len(es) > 0 {
				s.log.Warn().Int("events", len(es)).Msg("took over events another process of this listener left unacked")
			}
		} else {
			es, err = s.st.ReadEventGroup(ctx, group, s.cfg.Consumer, cursor, 100, s.cfg.Block)
		}
		if err != nil {
			if ctx.Err() == nil {
				if errors.Is(err, store.ErrNoGroup) {
					_ = s.st.EnsureEventGroup(ctx, group, "0")
				}
				s.retry(ctx, b, err, "read events")
			}
			continue
		}
		b.Reset()
		if cursor != ">" && len(es) == 0 {
			cursor = ">"
			continue
		}
		if cursor == ">" && len(es) > 0 && !claimed {
			s.checkLost(ctx, group)
		}
		var acks []string
		for _, e := range es {
			if ctx.Err() != nil {
				break
			}
			if !e.Deleted {
				s.deliverEntry(ctx, e)
			}
			acks = append(acks, e.ID)
			if cursor != ">" {
				cursor = e.ID
			}
		}
		if len(acks) > 0 {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.st.AckEvents(actx, group, acks...); err != nil {
				s.log.Warn().Err(err).Int("events", len(acks)).Msg("ack events; they are delivered again")
			}
			cancel()
		}
	}
	return nil
}

// checkLost reports the events the retention's hard bounds trimmed before
// the group was delivered them, as the trim recorded them.
func (s *Subscription) checkLost(ctx context.Context, group string) {
	after, upTo, err := s.st.TakeEventsLost(ctx, group)
	if err != nil || after == "" {
		return
	}
	s.report(fmt.Errorf("durable listener %q lost events: those after %s and before %s were trimmed before it was delivered them (the events stream's hard bounds: taskino settings)",
		group, after, upTo))
}

// checkGap reports events trimmed before a durable listener read them.
func (s *Subscription) checkGap(ctx context.Context, group string) {
	past, upTo, err := s.st.EventGroupGap(ctx, group)
	if err != nil || past == "" {
		return
	}
	s.report(fmt.Errorf("durable listener %q missed events: the stream was trimmed past %s while it was stopped (it had read up to %s)",
		group, past, upTo))
}

// deliverEntry hands one event to every listener; one that does not decode
// is reported instead.
func (s *Subscription) deliverEntry(ctx context.Context, e store.EventEntry) {
	if e.Err != nil {
		s.report(fmt.Errorf("event %s does not decode: %w", e.ID, e.Err))
		return
	}
	for _, l := range s.listeners {
		s.call(ctx, l, e.Event)
	}
}

func (s *Subscription) call(ctx context.Context, l any, e events.Event) {
	defer func() {
		if v := recover(); v != nil {
			s.report(fmt.Errorf("listener %T panicked on event %s (%s): %v\n%s", l, e.ID, e.Type, v, debug.Stack()))
		}
	}()
	every.call(l, ctx, e)
	if cb, ok := callbacks[e.Type]; ok {
		cb.call(l, ctx, e)
	}
	if e.LastRun {
		lastRun.call(l, ctx, e)
	}
}

func (s *Subscription) report(err error) {
	s.log.Error().Err(err).Msg("listener")
	if s.cfg.OnError != nil {
		s.cfg.OnError(err)
	}
}

func (s *Subscription) retry(ctx context.Context, b *store.Backoff, err error, what string) {
	d := b.Next()
	if b.Report() {
		s.log.Warn().Err(err).Int("failures", b.Failures()).Dur("retry_in", d).Msg(what)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
