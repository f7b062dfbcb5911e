package consumer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// changeLog is the worker's copy of the namespace's recent pauses,
// definition changes and removals of tasks (store.Changes): what makes a
// fire planned ahead stale. A planner with a lookahead appends a fire
// before its slot; if the task is paused, changed or removed after that
// append, the fire was planned from what no longer holds, and is recorded
// missed instead of run (stale). The copy is read at set-up, kept current
// by the changes channel (a pause arrives within a round trip), and read
// again when the channel resubscribes, an apply changed tasks, or every
// checkEvery: so the check costs no Redis call per fire. It owns the copy.
// Safe for concurrent use.
type changeLog struct {
	st         workerStore
	log        zerolog.Logger
	checkEvery time.Duration

	mu   sync.Mutex
	last map[string]store.Change // the latest change of each task

	// payloadMax is the namespace's payload bound (store.Settings), read
	// with the changes: 0 until read.
	payloadMax atomic.Int64
}

func newChangeLog(st workerStore, log zerolog.Logger, checkEvery time.Duration) *changeLog {
	return &changeLog{st: st, log: log, checkEvery: checkEvery, last: map[string]store.Change{}}
}

// load reads the stored changes into the copy (keeping a newer one the
// channel delivered meanwhile).
func (l *changeLog) load(ctx context.Context) error {
	cs, err := l.st.Changes(ctx)
	if err != nil {
		return err
	}
	if m, err := l.st.PayloadMax(ctx); err == nil {
		l.payloadMax.Store(m)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		l.noteLocked(c)
	}
	return nil
}

func (l *changeLog) note(c store.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noteLocked(c)
}

func (l *changeLog) noteLocked(c store.Change) {
	if old, ok := l.last[c.Task]; !ok || !c.At.Before(old.At) {
		l.last[c.Task] = c
	}
}

// run keeps the copy current until ctx ends.
func (l *changeLog) run(ctx context.Context) {
	notes, closeNotes := l.st.WatchChanges(ctx)
	defer func() { _ = closeNotes() }()
	t := time.NewTicker(l.checkEvery)
	defer t.Stop()
	for {
		resync := false
		select {
		case <-ctx.Done():
			return
		case n := <-notes:
			if !n.Resync {
				l.note(n.Change)
				continue
			}
			resync = true
		case <-t.C:
			resync = true
		}
		if resync {
			if err := l.load(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn().Err(err).Msg("read task changes")
			}
		}
	}
}

// stale says why d, a planned fire appended ahead of the time it is due,
// is not to run: its task was paused, changed or removed at or after the
// append and before the fire was due ("" when it was not, or d is not such a fire: a manual trigger,
// a retry, a fire appended once due, which any planner's plan already
// saw the task's latest state for).
func (l *changeLog) stale(d *store.Delivery) string {
	if l == nil || !planned(*d) {
		return ""
	}
	appended, err := events.EntryTime(d.EntryID)
	if err != nil || !appended.Before(d.Fire.DueAt()) {
		return ""
	}
	l.mu.Lock()
	c, ok := l.last[d.Fire.Task]
	l.mu.Unlock()
	if !ok || c.At.Before(appended) || !c.At.Before(d.Fire.DueAt()) {
		// Before the append (the plan saw it), or once the fire was due
		// (it would have run by then had a worker been free: a change
		// later than that is not what it was planned from).
		return ""
	}
	return fmt.Sprintf("%s at %s, after its fire was planned ahead (appended at %s, due %s)", c.Kind,
		c.At.Format(time.RFC3339Nano), appended.Format(time.RFC3339Nano), d.Fire.DueAt().Format(time.RFC3339Nano))
}

// tooBig says why d's payload is over the namespace's payload max ("" when
// it is not, or the bound is not read yet).
func (l *changeLog) tooBig(d *store.Delivery) string {
	if l == nil {
		return ""
	}
	if m := l.payloadMax.Load(); m > 0 && int64(len(d.Fire.Payload)) > m {
		return fmt.Sprintf("field %q: %d bytes; the namespace allows at most %d (taskino settings --payload-max)", events.FieldPayload, len(d.Fire.Payload), m)
	}
	return ""
}

// PolicyStale is the policy of the missed event of a fire planned ahead
// whose task was paused, changed or removed before it was due.
const PolicyStale events.Misfire = "stale"
