// Package dispatcher is the execution side of a taskino worker, and what a
// Go program embeds: NewWorker builds a worker from a Redis client, one
// config and the handlers (one per task name), and runs them with bounded
// concurrency on the fires its consumer (package consumer, the stream
// side) reads. The Dispatcher alone runs handlers on any Source.
//
// It owns the runs and the decision of what becomes of each fire; it does
// not speak Redis: the consumer records what it decided.
//
// # Runs
//
// Each fire runs its task's handler with the fire's id, task, scheduled
// time, attempt and payload. The handler's context ends at the task's
// Timeout and on a hard stop. A handler that returns an error, times out or
// panics (the stack goes into the failed event) has failed: the fire is
// tried again after Config.RetryDelay until the task's Attempts are used,
// then dead-lettered. The handler's error can decide instead: one wrapping
// SkipRetry is dead-lettered at once, one made by RetryAfter is retried
// after its own delay. A fire of a task with no handler here does not
// reach the dispatcher while the task is in the task set (the consumer
// routes it to a worker that has one, or keeps it waiting); one that does
// (a task in no task set, or a handler removed by SetHandlers after the
// fire was read, and no longer in the task set) is dead-lettered. Broadcast fires are not retried (each
// worker runs its own copy once).
//
// # Mistakes found at start
//
// NewWorker refuses a config value out of range (naming the field) and,
// given the tasks the program registers (WorkerConfig.Tasks), a handler
// for a task not among them or a task of its queues without a handler.
//
// # Stopping
//
// Stop stops taking fires, lets the runs under way finish (until its
// context ends, then it cancels them), and returns when every fire is
// recorded or handed back to the other workers. StopAndCancel cancels the
// runs at once. Run, when its context is cancelled, stops gracefully
// within Config.Grace.
//
// The fires read but not started are handed back the moment a stop
// begins, and the other workers take them at once. A run the stop cuts is
// recorded as a cancelled event (the reason, the cost so far, its output)
// and its fire handed back once the handler has returned: never while the
// run may still be going, which would let another worker run the fire
// beside it. A handler that has not returned Config.CancelWait after its
// context was cancelled is abandoned: its fire is neither extended nor
// handed back, and another worker reclaims it after the visibility
// timeout, as it would a stopped worker's.
//
// Handlers run at least once per fire: a fire runs again when its worker
// stopped answering while it ran, so handlers should use the fire id to be
// idempotent.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Source is where fires come from and outcomes go: a *consumer.Consumer.
type Source interface {
	// Run does the source's background work until ctx ends, then records
	// what Finish was given and returns.
	Run(ctx context.Context) error
	// Fetch returns fires to run, about max of them (more when it reads
	// ahead: those wait for a run, up to ReadAheadWait), waiting a bounded
	// time; nothing when ctx ends.
	Fetch(ctx context.Context, max int) ([]store.Delivery, error)
	// Start records that a run began. d is the dispatcher's, only read
	// during the call.
	Start(d *store.Delivery)
	// Finish records how a run ended; it must not block. d is the
	// dispatcher's, only read during the call (a source that keeps the
	// delivery copies it).
	Finish(d *store.Delivery, r consumer.Result)
}

// ReadAheadWait is the longest fires fetched beyond the free runs (a
// source's read-ahead, see consumer.Config.Prefetch) wait for a run. Then
// the single-mode ones are handed back, so a worker with free runs takes
// them: a read-ahead made while runs were short does not hold fires behind
// runs that turned long.
const ReadAheadWait = time.Second

// startReadAhead starts fires fetched beyond the free runs as runs free
// up. Those still waiting after ReadAheadWait are handed back, but for
// broadcast ones (this worker's own to run), which wait on. It reports
// false when fetchCtx ended, the fires not started handed back.
func (dp *Dispatcher) startReadAhead(fetchCtx context.Context, ds []store.Delivery, p *pool) bool {
	waited := time.After(ReadAheadWait)
	for len(ds) > 0 {
		select {
		case <-p.slots:
			dp.start(p, ds[0])
			ds = ds[1:]
		case <-waited:
			var back []store.Delivery
			keep := ds[:0]
			for _, d := range ds {
				if d.Broadcast {
					keep = append(keep, d)
				} else {
					back = append(back, d)
				}
			}
			dp.handBack(back)
			ds, waited = keep, nil // a nil channel: wait on with no limit
		case <-fetchCtx.Done():
			dp.handBack(ds)
			return false
		}
	}
	return true
}

// handBacker is a Source that gives back many fires in one call, as a
// *consumer.Consumer does: a stop hands back what was read ahead in one
// round trip instead of one per fire.
type handBacker interface {
	HandBack(ds []store.Delivery)
}

// unhandler is a Source that can take back a fire it handed out whose
// task has no handler here (SetHandlers removed it after the fire was
// read), as a *consumer.Consumer does while the task is in the task set:
// the fire goes to a worker that has one, instead of a dead letter.
type unhandler interface {
	Unhandled(d *store.Delivery) bool
}

// fetchStopper is a Source that holds fires it has not handed out (read
// ahead, held early), as a *consumer.Consumer does: when the stop begins,
// StopFetching hands them back at once, instead of when the runs under
// way have ended.
type fetchStopper interface {
	StopFetching()
}

// handBack gives back fires fetched but not started.
func (dp *Dispatcher) handBack(ds []store.Delivery) {
	if hb, ok := dp.src.(handBacker); ok {
		hb.HandBack(ds)
		return
	}
	for i := range ds {
		dp.src.Finish(&ds[i], consumer.Result{Next: consumer.HandBack})
	}
}

// Dispatcher runs handlers on the fires of a Source.
type Dispatcher struct {
	src Source
	cfg Config
	log zerolog.Logger

	mu       sync.Mutex
	handlers map[string]Handler
	inflight map[*job]struct{}
	started  bool
	// replaced are fires a newer fire replaced (overlap cancel-previous)
	// before their run began (read ahead, waiting for a run slot): fire
	// id -> the newer one's. A run that begins finds itself here and
	// ends at once, replaced. Bounded: cleared past maxReplaced.
	replaced map[string]string

	stopOnce sync.Once
	stopCh   chan struct{}          // closed by Stop: stop taking fires
	cutWhy   atomic.Pointer[string] // why the runs under way were cancelled, for their cancelled events
	atOnce   atomic.Bool            // StopAndCancel was called
	hardOnce sync.Once
	hardCh   chan struct{} // closed by a hard stop: cancel runs
	done     chan struct{} // closed when Run returns
}

// New returns a dispatcher of the fires of src, or an error naming a
// Config field out of range. A program runs a worker with NewWorker, which
// builds the dispatcher and its source together; New is the part alone,
// for another Source (a test's, say).
func New(src Source, cfg Config) (*Dispatcher, error) {
	if err := cfg.validate("Config"); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	dp := &Dispatcher{
		src: src, cfg: cfg, log: cfg.Logger.With().Str("component", "dispatcher").Logger(),
		handlers: map[string]Handler{}, inflight: map[*job]struct{}{},
		stopCh: make(chan struct{}), hardCh: make(chan struct{}), done: make(chan struct{}),
	}
	if r, ok := src.(replacer); ok {
		r.OnReplaced(dp.replace)
	}
	return dp, nil
}

// Handle registers h for the fires of task, replacing any earlier one. It
// fails on a name that no task can have.
func (dp *Dispatcher) Handle(task string, h Handler) error {
	if err := events.ValidateName(task); err != nil {
		return err
	}
	dp.mu.Lock()
	defer dp.mu.Unlock()
	dp.handlers[task] = h
	return nil
}

// HandleFunc registers f for the fires of task (see Handle).
func (dp *Dispatcher) HandleFunc(task string, f func(ctx context.Context, fire events.Fire) error) error {
	return dp.Handle(task, HandlerFunc(f))
}

type job struct {
	d       store.Delivery
	h       Handler
	out     outputBox    // what the handler gave SetOutput
	started time.Time    // when its handler was called (the run's goroutine only)
	startNs atomic.Int64 // started, for a stop that abandons the run
	once    sync.Once
	cancel  context.CancelCauseFunc // ends the run's context (dp.mu); nil before it runs
}

// pool runs jobs on goroutines kept from one run to the next, at most
// Concurrency of them: a burst of short runs then pays neither for a new
// goroutine per run nor for growing its stack again, which a profile of
// a worker starting 100,000 held fires put at 13% of its CPU. Only Run's
// goroutine submits (and counts the goroutines).
type pool struct {
	dp     *Dispatcher
	runCtx context.Context
	slots  chan struct{} // a run holds one from before its fetch to its end
	wg     *sync.WaitGroup
	jobs   chan *job     // unbuffered: a send succeeds only to an idle goroutine
	died   chan struct{} // a goroutine ended by a handler's runtime.Goexit
	n, max int
}

// submit runs j on an idle goroutine, a new one while there are fewer
// than max, or else the first to come free (the caller holds j's slot, so
// one is finishing, or has ended by a handler's runtime.Goexit and is
// replaced).
func (p *pool) submit(j *job) {
	select {
	case p.jobs <- j:
		return
	default:
	}
	for {
		if p.n < p.max {
			p.n++
			go p.loop(j)
			return
		}
		select {
		case p.jobs <- j:
			return
		case <-p.died:
			p.n--
		}
	}
}

// loop runs j, then every job sent to it, until the pool is closed.
func (p *pool) loop(j *job) {
	ended := false
	defer func() {
		if !ended {
			p.died <- struct{}{} // room for every goroutine: never blocks
		}
	}()
	// The runs' contexts derive from one of this goroutine's own: each
	// run's context is made and cancelled here, and a context shared by
	// every run would make them queue on its lock to do that.
	ctx, cancel := context.WithCancel(p.runCtx)
	defer cancel()
	for ok := true; ok; j, ok = <-p.jobs {
		p.dp.run(ctx, p, j)
	}
	ended = true
}

// finish reports the job's end once: a handler that outlives a hard stop
// has already been handed back.
func (dp *Dispatcher) finish(j *job, r consumer.Result) {
	j.once.Do(func() { dp.src.Finish(&j.d, r) })
}

// Run runs handlers on fetched fires until ctx is cancelled or Stop is
// called, then stops (gracefully, within Grace, when ctx ended) and
// returns nil once the source has recorded every outcome. It returns the
// source's error if the source fails.
func (dp *Dispatcher) Run(ctx context.Context) error {
	dp.mu.Lock()
	if dp.started {
		dp.mu.Unlock()
		return errors.New("dispatcher: Run called twice")
	}
	dp.started = true
	dp.mu.Unlock()
	defer close(dp.done)

	srcCtx, stopSrc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrc()
	srcDone := make(chan error, 1)
	go func() { srcDone <- dp.src.Run(srcCtx) }()

	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRuns()
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	var srcErr error
	go func() {
		select {
		case <-dp.stopCh:
		case <-fetchCtx.Done():
		}
		stopFetch()
	}()

	slots := make(chan struct{}, dp.cfg.Concurrency)
	for range dp.cfg.Concurrency {
		slots <- struct{}{}
	}
	var wg sync.WaitGroup
	p := &pool{dp: dp, runCtx: runCtx, slots: slots, wg: &wg, jobs: make(chan *job),
		died: make(chan struct{}, dp.cfg.Concurrency), max: dp.cfg.Concurrency}
	defer close(p.jobs) // after the last submit: its goroutines end
	b := store.NewBackoff()
fetching:
	for fetchCtx.Err() == nil {
		select {
		case err := <-srcDone:
			srcErr = err
			srcDone <- err
			break fetching
		case <-slots:
		case <-fetchCtx.Done():
			break fetching
		}
		n := 1
		for more := true; more; {
			select {
			case <-slots:
				n++
			default:
				more = false
			}
		}
		ds, err := dp.src.Fetch(fetchCtx, n)
		for _, d := range ds[:min(n, len(ds))] {
			dp.start(p, d)
		}
		if len(ds) > n && !dp.startReadAhead(fetchCtx, ds[n:], p) {
			break fetching
		}
		for k := len(ds); k < n; k++ {
			slots <- struct{}{}
		}
		if err != nil {
			w := b.Next()
			if b.Report() {
				dp.log.Warn().Err(err).Int("failures", b.Failures()).Dur("retry_in", w).Msg("fetch fires")
			}
			select {
			case <-fetchCtx.Done():
			case <-time.After(w):
			}
			continue
		}
		b.Reset()
	}

	// Stopping: what the source holds and has not handed out goes back at
	// once; the runs under way may finish, within Grace when ctx ended
	// (Stop's own context bounds it otherwise), then they are cancelled.
	if fs, ok := dp.src.(fetchStopper); ok {
		fs.StopFetching()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	var grace <-chan time.Time
	select {
	case <-dp.stopCh:
	default:
		grace = time.After(dp.cfg.Grace)
	}
	dp.log.Info().Int("running", dp.running()).Msg("stopping: letting runs finish")
	why := "the worker was stopped at once (StopAndCancel)"
	select {
	case <-allDone:
	case <-dp.hardCh:
		if !dp.atOnce.Load() {
			why = "the worker's stop ran out of time (Stop's context ended)"
		}
	case <-grace:
		why = fmt.Sprintf("the worker stopped and the run did not end within its %s grace", dp.cfg.Grace)
	}
	dp.cutWhy.Store(&why)
	cancelRuns()
	select {
	case <-allDone:
	case <-time.After(dp.cfg.CancelWait):
		// Handlers that ignore their context are left behind. Their fires
		// are not handed back while the runs may still be going: they are
		// reclaimed after the visibility timeout.
		dp.mu.Lock()
		left := make([]*job, 0, len(dp.inflight))
		for j := range dp.inflight {
			left = append(left, j)
		}
		dp.mu.Unlock()
		dp.log.Warn().Int("runs", len(left)).Dur("waited", dp.cfg.CancelWait).
			Msg("runs did not end when cancelled; their fires are reclaimed after the visibility timeout")
		for _, j := range left {
			var started time.Time
			if ns := j.startNs.Load(); ns != 0 {
				started = time.Unix(0, ns)
			}
			dp.finish(j, consumer.Result{Next: consumer.Abandon, Started: started,
				Reason: why + fmt.Sprintf("; still running %s after it was cancelled, so not handed back: reclaimed after the visibility timeout", dp.cfg.CancelWait)})
		}
	}
	stopSrc()
	if err := <-srcDone; err != nil && srcErr == nil {
		srcErr = err
	}
	return srcErr
}

func (dp *Dispatcher) running() int {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return len(dp.inflight)
}

// start runs one fire on the pool, holding a slot (taken by the caller)
// until it ends.
func (dp *Dispatcher) start(p *pool, dl store.Delivery) {
	j := &job{d: dl}
	dp.mu.Lock()
	dp.inflight[j] = struct{}{}
	j.h = dp.handlers[dl.Fire.Task]
	dp.mu.Unlock()
	p.wg.Add(1)
	p.submit(j)
}

// run runs a started job, in a context of parent that ends with the run,
// and gives back its slot.
func (dp *Dispatcher) run(parent context.Context, p *pool, j *job) {
	ctx, cancelCause := context.WithCancelCause(parent)
	cancel := func() { cancelCause(nil) }
	dp.mu.Lock()
	j.cancel = cancelCause
	by, replaced := dp.replaced[j.d.Fire.ID]
	delete(dp.replaced, j.d.Fire.ID)
	dp.mu.Unlock()
	returned := false
	defer p.wg.Done()
	defer func() { p.slots <- struct{}{} }()
	defer func() {
		if !returned {
			// The handler ended its goroutine (runtime.Goexit, as
			// t.FailNow does): a failure, retried or dead-lettered like
			// any other, not a fire held until the worker stops.
			dp.finish(j, dp.settle(ctx, p.runCtx, &j.d, &j.out, consumer.Result{Started: j.started, Err: ErrGoexit}))
		}
		dp.mu.Lock()
		delete(dp.inflight, j)
		dp.mu.Unlock()
		cancel()
	}()
	switch {
	case replaced:
		// Replaced before it began: recorded so, never run.
		dp.finish(j, consumer.Result{Next: consumer.Replaced, Reason: (&ReplacedError{By: by}).Error()})
	case j.h == nil:
		if u, ok := dp.src.(unhandler); ok && u.Unhandled(&j.d) {
			j.once.Do(func() {}) // the source took it back
		} else {
			dp.finish(j, consumer.Result{Next: consumer.Dead, Reason: fmt.Sprintf("no handler for task %q on this worker (queue %q)", j.d.Fire.Task, j.d.Queue)})
		}
	default:
		dp.finish(j, dp.execute(ctx, p.runCtx, j))
	}
	returned = true
}

// Stop stops taking fires and waits for the runs under way to finish and
// be recorded; when ctx ends first, it cancels them, waits for Run to
// return, and returns ctx's error. Run must have been called.
func (dp *Dispatcher) Stop(ctx context.Context) error {
	dp.stopOnce.Do(func() { close(dp.stopCh) })
	select {
	case <-dp.done:
		return nil
	case <-ctx.Done():
		dp.hardOnce.Do(func() { close(dp.hardCh) })
		<-dp.done
		return ctx.Err()
	}
}

// StopAndCancel stops taking fires, cancels the runs under way at once and
// waits, until ctx ends, for Run to return.
func (dp *Dispatcher) StopAndCancel(ctx context.Context) error {
	dp.atOnce.Store(true)
	dp.stopOnce.Do(func() { close(dp.stopCh) })
	dp.hardOnce.Do(func() { close(dp.hardCh) })
	select {
	case <-dp.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
