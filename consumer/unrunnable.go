package consumer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// waitRoom holds the fires this worker read of tasks it has no handler
// for but that are in the namespace's task set (a deploy applied a task
// before the workers had it). Each goes to a live worker of its queue that
// advertises the task (store.Route: that worker reclaims it at once), or
// waits here, held and extended like any fire, until one does, or until
// this worker gets a handler for it (a reload). While it waits, a stuck
// event says why, once per task, and once its slot is past the task's
// misfire grace its misfire policy applies: skip records it missed,
// fire-once records it missed when a newer fire of the task waits too,
// fire-all keeps it waiting. A stop hands the waiting fires back, as any
// held fire not started. Admission adds fires (add) and Fetch takes those
// this worker can now run (takeReady); its own loop (run) does the rest,
// so fires wait no longer for a worker whose runs are all busy.
type waitRoom struct {
	st     workerStore
	log    zerolog.Logger
	node   string
	claims *claims
	clock  *redisClock
	runs   func(task string) (known, ok bool) // the worker's advertised handlers
	queue  func(*store.Outcome)               // records a missed fire
	every  time.Duration                      // the least time between two looks at the workers registry

	kick chan struct{} // capacity 1: a fire was added

	mu    sync.Mutex
	fires []store.Delivery // waiting
	ready []store.Delivery // this worker can run them now, for Fetch

	stuck map[string]bool // run's: tasks whose stuck event was appended, until they run or are routed
}

// add keeps d waiting; run looks at it at once.
func (w *waitRoom) add(d store.Delivery) {
	w.mu.Lock()
	w.fires = append(w.fires, d)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// takeReady returns the waiting fires this worker can now run.
func (w *waitRoom) takeReady() []store.Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.ready
	w.ready = nil
	return out
}

// run checks the waiting fires when one is added and every w.every,
// until ctx ends.
func (w *waitRoom) run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-t.C:
		}
		w.mu.Lock()
		fires := w.fires
		w.fires = nil
		w.mu.Unlock()
		if len(fires) == 0 {
			continue
		}
		keep, ready := w.check(ctx, fires)
		w.mu.Lock()
		w.fires = append(keep, w.fires...)
		w.ready = append(w.ready, ready...)
		w.mu.Unlock()
	}
}

// check routes the waiting fires a live worker can run, applies the
// misfire policies and appends the stuck events; it returns the fires
// still waiting and those this worker can now run itself.
func (w *waitRoom) check(ctx context.Context, fires []store.Delivery) (keep, ready []store.Delivery) {
	keep = fires[:0]
	for _, d := range fires {
		if !w.claims.holding(d) {
			continue // another worker took it over (this one's heartbeats failed), or a route went through unanswered
		}
		if _, ok := w.runs(d.Fire.Task); ok {
			delete(w.stuck, d.Fire.Task)
			ready = append(ready, d)
		} else {
			keep = append(keep, d)
		}
	}
	fires = keep
	if len(fires) == 0 {
		return nil, ready
	}
	ws, err := w.st.Workers(ctx)
	if err != nil {
		w.log.Warn().Err(err).Int("fires", len(fires)).Msg("read the workers registry to route fires this worker cannot run")
		return fires, ready
	}
	now := w.clock.now()
	newest := map[string]time.Time{} // per task, its newest waiting slot
	for _, d := range fires {
		if d.Fire.At.After(newest[d.Fire.Task]) {
			newest[d.Fire.Task] = d.Fire.At
		}
	}
	route := map[string][]store.Delivery{}
	keep = fires[:0]
	for _, d := range fires {
		if target := capable(ws, w.node, d); target != "" {
			route[target] = append(route[target], d)
			continue
		}
		if w.misfired(d, now, newest[d.Fire.Task]) {
			continue
		}
		keep = append(keep, d)
		w.stuckEvent(ctx, d, ws)
	}
	for target, ds := range route {
		hs := make([]store.Held, len(ds))
		for i, d := range ds {
			hs[i] = store.Held{Stream: d.Stream, EntryID: d.EntryID, Task: d.Fire.Task, FireID: d.Fire.ID}
		}
		n, err := w.st.Route(ctx, w.node, target, hs)
		if err != nil {
			w.log.Warn().Err(err).Str("to", target).Msg("route fires this worker cannot run")
			keep = append(keep, ds...)
			continue
		}
		for _, d := range ds {
			w.claims.release(d)
			delete(w.stuck, d.Fire.Task)
		}
		w.log.Info().Int("fires", n).Str("to", target).Str("task", ds[0].Fire.Task).Msg("routed fires this worker has no handler for to a worker that has")
	}
	return keep, ready
}

// capable names a live worker other than self that reads d's queue and
// advertises its task, chosen at random; "" when there is none.
func capable(ws []store.WorkerState, self string, d store.Delivery) string {
	var can []string
	for _, s := range ws {
		if s.Live && s.Node != self && slices.Contains(s.Queues, d.Queue) && slices.Contains(s.Tasks, d.Fire.Task) {
			can = append(can, s.Node)
		}
	}
	if len(can) == 0 {
		return ""
	}
	return can[rand.IntN(len(can))]
}

// misfired applies d's misfire policy once its slot is past the misfire
// grace, and reports whether d was recorded missed.
func (w *waitRoom) misfired(d store.Delivery, now, newest time.Time) bool {
	late := now.Sub(d.Fire.DueAt())
	if !planned(d) || late <= d.Spec.MisfireGrace {
		return false
	}
	var reason string
	switch d.Spec.Misfire {
	case events.MisfireSkip:
		reason = fmt.Sprintf("waited %s for a worker of queue %q that runs the task, past its %s misfire grace (misfire: skip)",
			late.Round(time.Millisecond), d.Queue, d.Spec.MisfireGrace)
	case events.MisfireFireOnce:
		if !newest.After(d.Fire.At) {
			return false // the newest late fire waits on, to run once a worker can
		}
		reason = fmt.Sprintf("waited %s for a worker of queue %q that runs the task, past its %s misfire grace, and a newer fire of the task waits too (misfire: fire-once)",
			late.Round(time.Millisecond), d.Queue, d.Spec.MisfireGrace)
	default:
		return false
	}
	w.queue(&store.Outcome{Delivery: d, Events: []events.Event{missedEvent(w.node, d, d.Spec.Misfire, reason)}})
	return true
}

// stuckEvent appends, once per task until it runs or is routed, a stuck
// event saying why d's task's fires wait.
func (w *waitRoom) stuckEvent(ctx context.Context, d store.Delivery, ws []store.WorkerState) {
	if w.stuck[d.Fire.Task] {
		return
	}
	var live []string
	for _, s := range ws {
		if s.Live && slices.Contains(s.Queues, d.Queue) {
			live = append(live, s.Node)
		}
	}
	who := "none"
	if len(live) > 0 {
		who = strings.Join(live, ", ")
	}
	reason := fmt.Sprintf("no live worker of queue %q has a handler for the task (live workers of the queue: %s); its fires wait, under its misfire policy %s",
		d.Queue, who, d.Spec.Misfire)
	e := events.Event{Type: events.TypeStuck, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Queue: d.Queue, Worker: w.node, Reason: reason}
	if err := w.st.AppendEvent(ctx, e); err != nil {
		w.log.Warn().Err(err).Str("task", d.Fire.Task).Msg("append a stuck event")
		return
	}
	w.stuck[d.Fire.Task] = true
	w.log.Warn().Str("task", d.Fire.Task).Str("queue", d.Queue).Msg("fires of a task no live worker runs wait: " + reason)
}

// planned says whether d is a planner's fire of a slot, first attempt (not
// a manual trigger, nor a retry, whose times are not slots, nor a
// backfill's, which runs however late its slot is).
func planned(d store.Delivery) bool {
	return d.Fire.Attempt <= 1 && d.Fire.Origin == "" && d.Fire.ID == events.FireID(d.Fire.Task, d.Fire.At)
}

// lateSkip records missed, under misfire skip, a planned single-mode fire
// read for the first time later than its task's misfire grace (its queue
// had no worker for that long), instead of running it late; it reports
// whether it did. A fire taken over from a worker that stopped answering,
// handed back by a stopping one or routed by one without its handler was
// on time when first read, and runs.
//
// Misfire fire-once is not applied at a first read: a fire read late
// because Redis itself was frozen or failing past the grace looks the
// same, and it runs (the planners apply fire-once to the slots they plan
// late).
func lateSkip(node string, d store.Delivery, now time.Time) (*store.Outcome, bool) {
	if d.Broadcast || d.Spec.Misfire != events.MisfireSkip || d.Deliveries > 1 || d.HandedBackBy != "" || d.Routed || !planned(d) {
		return nil, false
	}
	late := now.Sub(d.Fire.DueAt())
	if late <= d.Spec.MisfireGrace {
		return nil, false
	}
	reason := fmt.Sprintf("read %s after its slot, past its %s misfire grace (misfire: skip): no worker of queue %q took it in time",
		late.Round(time.Millisecond), d.Spec.MisfireGrace, d.Queue)
	return &store.Outcome{Delivery: d, Events: []events.Event{missedEvent(node, d, events.MisfireSkip, reason)}}, true
}
