package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// outbox records what this worker's runs did, in batches, by one
// goroutine (run): the started events (Start), then the outcomes (Finish,
// admission's dead letters and missed events), each outcome atomically with
// the ack of its entry. It owns both queues and the flush that empties
// them; while Redis is unreachable it keeps them and retries. It is told
// when early fires are being released (setReleasing), and holds its writes
// meanwhile (waitRelease). The claims of the recorded fires are dropped
// through recorded. Safe for concurrent use.
type outbox struct {
	st          workerStore
	log         zerolog.Logger
	node        string
	batch       int                    // the most outcomes (and started events) per round trip
	releaseHold time.Duration          // the longest writes wait for a release (see waitRelease)
	recorded    func([]*store.Outcome) // told of each batch recorded, before it leaves the queue

	flushSig  chan struct{} // capacity 1: something was queued, or a release ended
	releasing atomic.Bool   // early fires due now wait for runs (see waitRelease)

	mu         sync.Mutex
	outcomes   []*store.Outcome // by pointer: an Outcome is large, and the queue is resliced at every flush
	flushedSig chan struct{}    // closed and replaced after each flush
	// startMu, not mu, guards the started queue: every run appends to it
	// as it begins, and while thousands begin at one instant they must not
	// wait behind outcomes and flushes on mu (nor, since each part has its
	// own lock, behind Fetch's claims and admission).
	startMu    sync.Mutex
	started    []startRec // started events to append (from startedOff on), before the outcomes
	startedOff int
	startedBuf []events.Event   // flushOnce's: a batch of started events, built from started
	runsBuf    []events.LastRun // and their running records
}

func newOutbox(st workerStore, log zerolog.Logger, node string, batch int, releaseHold time.Duration, recorded func([]*store.Outcome)) *outbox {
	return &outbox{st: st, log: log, node: node, batch: batch, releaseHold: releaseHold, recorded: recorded,
		flushSig: make(chan struct{}, 1), flushedSig: make(chan struct{})}
}

// startRec is a queued started event: the fields that vary by run.
type startRec struct {
	task, fire, queue string
	at, due, started  time.Time
	origin            string
	attempt           int
}

// start queues a run's started event.
func (ob *outbox) start(e startRec) {
	ob.startMu.Lock()
	ob.started = append(ob.started, e)
	ob.startMu.Unlock()
	ob.signal()
}

// add queues an outcome.
func (ob *outbox) add(o *store.Outcome) {
	ob.mu.Lock()
	ob.outcomes = append(ob.outcomes, o)
	ob.mu.Unlock()
	ob.signal()
}

func (ob *outbox) signal() {
	select {
	case ob.flushSig <- struct{}{}:
	default:
	}
}

// setReleasing says whether early fires due now are still being handed
// to runs; the end of a release wakes the flush, to write what waited.
func (ob *outbox) setReleasing(rel bool) {
	if ob.releasing.Swap(rel) && !rel {
		ob.signal() // the release is over: write what waited
	}
}

// endRelease ends a release for good (a stop: no Fetch comes any more):
// what is queued is written at once, not after a hold.
func (ob *outbox) endRelease() {
	ob.releasing.Store(false)
	ob.signal()
}

// run records queued outcomes in batches until ctx ends, retrying with
// backoff while Redis fails.
func (ob *outbox) run(ctx context.Context) {
	b := store.NewBackoff()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ob.flushSig:
		}
		ob.waitRelease(ctx)
		for {
			n, err := ob.flushOnce(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d := b.Next()
				if b.Report() {
					ob.log.Warn().Err(err).Int("failures", b.Failures()).Dur("retry_in", d).Msg("record outcomes")
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
				continue
			}
			b.Reset()
			if n == 0 {
				break
			}
		}
	}
}

// releaseHold is the longest outcome writes wait while early fires are
// being released (a quarter of the visibility timeout when that is less:
// a finished fire's claim must not run out while its outcome waits; see
// timing.releaseHold).
const releaseHold = time.Second

// waitRelease waits, up to releaseHold, while early fires due now are
// still being handed to runs: thousands can be due at one instant, and
// writing the outcomes of the first ones (encoding here, scripts in Redis
// on the same machine) would take CPU from starting the last ones. The
// outcomes are written right after; nothing is lost meanwhile (their
// entries stay pending and held).
func (ob *outbox) waitRelease(ctx context.Context) {
	if !ob.releasing.Load() {
		return
	}
	t := time.NewTimer(ob.releaseHold)
	defer t.Stop()
	for ob.releasing.Load() {
		select {
		case <-ob.flushSig: // more outcomes, or the release ended
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// flushOnce records the queued started events, then up to FlushBatch
// queued outcomes; it returns how many it took from the queues. A run's
// outcome is queued after its started event, so every outcome taken has
// its started event among those written first: the events stream has
// them in that order.
func (ob *outbox) flushOnce(ctx context.Context) (int, error) {
	// The outbox first: an outcome taken now was queued after its run's
	// started event, so the count taken after it covers that event.
	ob.mu.Lock()
	n := min(len(ob.outcomes), ob.batch)
	batch := ob.outcomes[:n:n]
	ob.mu.Unlock()
	ob.startMu.Lock()
	starts := len(ob.started) - ob.startedOff
	ob.startMu.Unlock()
	for left := starts; left > 0; {
		ob.startMu.Lock()
		m := min(left, ob.batch)
		// Start only appends, and only this goroutine moves what is
		// queued: the records stay put once the lock is released.
		recs := ob.started[ob.startedOff : ob.startedOff+m : ob.startedOff+m]
		ob.startMu.Unlock()
		evs, runs := ob.startedBuf[:0], ob.runsBuf[:0]
		for _, r := range recs {
			evs = append(evs, events.Event{Type: events.TypeStarted, Task: r.task, Fire: r.fire, At: r.at, Due: r.due, Origin: r.origin, Attempt: r.attempt,
				Worker: ob.node, Queue: r.queue})
			runs = append(runs, events.LastRun{Task: r.task, Fire: r.fire, Scheduled: r.at, Due: r.due, Started: r.started,
				Status: events.StatusRunning, Attempt: r.attempt, Worker: ob.node})
		}
		err := ob.st.AppendStarted(ctx, evs, runs)
		clear(evs) // keep no run's strings alive
		clear(runs)
		ob.startedBuf, ob.runsBuf = evs, runs
		if err != nil {
			return 0, err
		}
		ob.startMu.Lock()
		ob.startedOff += m
		if ob.startedOff > len(ob.started)/2 {
			// Most is written: move the rest to the array's head, so
			// the array is reused, not grown, while starts go on.
			k := copy(ob.started, ob.started[ob.startedOff:])
			clear(ob.started[k:])
			ob.started, ob.startedOff = ob.started[:k], 0
		}
		ob.startMu.Unlock()
		left -= m
	}
	if n > 0 {
		if _, err := ob.st.Finish(ctx, ob.node, batch); err != nil {
			return 0, err
		}
	}
	if starts+n == 0 {
		return 0, nil
	}
	if n > 0 {
		ob.recorded(batch) // their claims go: the entries are acked
		ob.pauseFailing(ctx, batch)
	}
	ob.mu.Lock()
	clear(batch) // let the outcomes go
	ob.outcomes = ob.outcomes[n:]
	close(ob.flushedSig) // wake drain: something was recorded
	ob.flushedSig = make(chan struct{})
	ob.mu.Unlock()
	return starts + n, nil
}

// drain waits up to limit for the queues to be recorded.
func (ob *outbox) drain(limit time.Duration) {
	deadline := time.After(limit)
	for {
		ob.mu.Lock()
		left := len(ob.outcomes)
		sig := ob.flushedSig
		ob.mu.Unlock()
		ob.startMu.Lock()
		left += len(ob.started) - ob.startedOff
		ob.startMu.Unlock()
		if left == 0 {
			return
		}
		ob.signal()
		select {
		case <-sig:
		case <-deadline:
			ob.log.Error().Int("outcomes", left).Msg("stopping with outcomes not recorded; their fires are run again by another worker")
			return
		}
	}
}

// pauseFailing pauses each task of batch with pause_after_failures whose
// dead letter made its slots failed in a row reach that number: the count
// the finish script keeps (a retried slot counts once; a success resets
// it; the next slot may have failed already, retries outlasting the
// period), less the count at the task's last pause after failures, so a
// task resumed by hand gets that many tries again. A rare write: only after
// such a dead letter. A pause that fails is logged, and tried again at the
// next one.
func (ob *outbox) pauseFailing(ctx context.Context, batch []*store.Outcome) {
	var tasks []string
	limit := map[string]int{}
	last := map[string]string{}
	for _, o := range batch {
		n := o.Delivery.Spec.PauseAfterFailures
		if o.Dead == "" || n <= 0 {
			continue
		}
		t := o.Delivery.Fire.Task
		if _, ok := limit[t]; !ok {
			tasks = append(tasks, t)
		}
		limit[t], last[t] = n, o.DeadError
	}
	if len(tasks) == 0 {
		return
	}
	states, err := ob.st.States(ctx, tasks)
	if err != nil {
		ob.log.Warn().Err(err).Strs("tasks", tasks).Msg("read the failures in a row of tasks with pause_after_failures")
		return
	}
	for _, t := range tasks {
		ts := states[t]
		o := ts.Outcome
		if !ts.Paused.IsZero() || o == nil || o.Fails == 0 {
			continue // paused already, or a success came after the dead letter
		}
		fails := o.Fails
		if ts.FailsBase <= fails {
			fails -= ts.FailsBase // counted since the last pause for failures
		}
		if fails < limit[t] {
			continue
		}
		reason := fmt.Sprintf("paused after %d slots in a row failed, the last dead-lettered (pause_after_failures: %d)", fails, limit[t])
		if last[t] != "" {
			reason += "; last error: " + last[t]
		}
		why := fmt.Sprintf("after %d failed slots in a row (pause_after_failures: %d)", fails, limit[t])
		_, err = ob.st.PauseAfterFailures(ctx, t, ob.node, reason, why, ts.Since, o.Fails)
		switch {
		case errors.Is(err, store.ErrAlreadyPaused), errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrMovedOn):
		case err != nil:
			ob.log.Warn().Err(err).Str("task", t).Msg("pause after failures")
		default:
			ob.log.Warn().Str("task", t).Int("failures", fails).Msg("task paused: " + reason)
		}
	}
}
