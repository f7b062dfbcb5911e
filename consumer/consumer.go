package consumer

import (
	"container/heap"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Consumer reads and records the fires of one worker. Fetch, Start and
// Finish are for one dispatcher; Run does the background work and must be
// running for Fetch to return anything.
type Consumer struct {
	cfg      Config
	st       *store.Store
	log      zerolog.Logger
	single   []string // fire streams
	bstreams []string // broadcast streams
	ready    chan struct{}

	stopping chan struct{} // closed when Run's ctx ends

	// Set up by Run.
	bcursors map[string]string
	bstart   map[string]string // each broadcast stream's last entry when this worker came up
	upSince  time.Time         // Redis time then
	bcast    chan []store.Delivery
	// Fetch's goroutine only:
	later []store.Delivery // read, to be returned by the next Fetch
	early earlyHeap        // read before their scheduled time, held until then

	mu       sync.Mutex
	localRun map[string]bool            // broadcast tasks with an overlap policy running here
	localBuf map[string]*store.Delivery // broadcast buffer-one: the one waiting
	retrySig chan struct{}
	clock    redisClock
	specs    *specCache
	claims   *claims
	outbox   *outbox
	reader   *reader
}

// earlyHeap holds early fires, the soonest due first (pointers: a
// Delivery is too big to swap around).
type earlyHeap []*store.Delivery

func (h earlyHeap) Len() int           { return len(h) }
func (h earlyHeap) Less(i, j int) bool { return h[i].Fire.At.Before(h[j].Fire.At) }
func (h earlyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *earlyHeap) Push(x any)        { *h = append(*h, x.(*store.Delivery)) }
func (h *earlyHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
}

// New returns a consumer of cfg.Queues on rdb (a single server, Sentinel
// or Cluster client).
func New(rdb redis.UniversalClient, cfg Config) (*Consumer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	st, err := store.New(rdb, cfg.Namespace, store.Options{EventsMaxLen: cfg.EventsMaxLen})
	if err != nil {
		return nil, err
	}
	c := &Consumer{
		cfg: cfg, st: st, ready: make(chan struct{}), stopping: make(chan struct{}),
		log:      cfg.Logger.With().Str("component", "consumer").Str("node", cfg.Node).Logger(),
		bcast:    make(chan []store.Delivery, 16),
		localRun: map[string]bool{},
		localBuf: map[string]*store.Delivery{},
		retrySig: make(chan struct{}, 1),
	}
	c.claims = newClaims(st, c.log, cfg.Node, cfg.VisibilityTimeout, cfg.VisibilityTimeout/6, &c.clock)
	c.outbox = newOutbox(st, c.log, cfg.Node, cfg.FlushBatch, min(releaseHold, cfg.VisibilityTimeout/4), c.claims.forget)
	c.specs = newSpecCache(st, c.log, 30*time.Second, time.Second)
	for _, q := range cfg.Queues {
		c.single = append(c.single, st.Keys().Fires(q))
		c.bstreams = append(c.bstreams, st.Keys().Broadcast(q))
	}
	c.reader = newReader(st, c.log, cfg, c.single, cfg.VisibilityTimeout/4, c.claims)
	return c, nil
}

// Store is the consumer's store (its namespace on Redis).
func (c *Consumer) Store() *store.Store { return c.st }

// Node is the worker's name in the consumer group and in events.
func (c *Consumer) Node() string { return c.cfg.Node }

// TriggerTask runs task once now, on whichever worker of its queue takes
// it (every worker, for a broadcast task), with payload (the task's own
// when empty). It returns the fire's entry id. See store.Trigger.
func (c *Consumer) TriggerTask(ctx context.Context, task, payload string) (string, error) {
	return c.st.Trigger(ctx, task, payload, "")
}

// Run sets the consumer up (consumer groups, broadcast cursors, the task
// specs), then does its background work until ctx is cancelled: extending
// claims, moving due retries back, trimming streams, recording outcomes.
// When ctx ends it stops reading, hands back every fire it still holds,
// records the outcomes reported so far, appends node_down and returns nil.
// Redis errors are logged and retried with backoff.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.setUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	close(c.ready)
	c.announce(ctx, events.TypeNodeUp)
	c.log.Info().Strs("queues", c.cfg.Queues).Msg("worker started")

	// Flushing outlives ctx: outcomes reported during the stop are recorded
	// before Run returns.
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	var flushWG sync.WaitGroup
	flushWG.Add(1)
	go func() { defer flushWG.Done(); c.outbox.run(flushCtx) }()

	readDone := make(chan struct{})
	go func() { defer close(readDone); c.reader.run(ctx) }()
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){c.broadcastLoop, c.claims.run, c.retryLoop, c.trimLoop, c.specs.run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	<-ctx.Done()
	close(c.stopping)
	wg.Wait()
	// No release is under way any more (no Fetch comes after ctx): the
	// outcomes still queued are written at once, not after a hold.
	c.outbox.endRelease()

	// A read under way is waited for: what it returns is held, and handed
	// back with the rest.
	<-readDone
	c.claims.handBackAll()
	c.outbox.drain(5 * time.Second)
	stopFlush()
	flushWG.Wait()
	c.announce(context.Background(), events.TypeNodeDown)
	c.log.Info().Msg("worker stopped")
	return nil
}

// stopped says whether Run's ctx ended: Fetch returns nothing more, and
// admission stops retrying.
func (c *Consumer) stopped() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// setUp creates the groups, sets the broadcast cursors and loads the specs,
// retrying while Redis is unreachable.
func (c *Consumer) setUp(ctx context.Context) error {
	b := store.NewBackoff()
	for {
		err := c.trySetUp(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := b.Next()
		if b.Report() {
			c.log.Warn().Err(err).Int("failures", b.Failures()).Dur("retry_in", d).Msg("worker set-up failed")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

func (c *Consumer) trySetUp(ctx context.Context) error {
	for _, s := range c.single {
		if err := c.st.EnsureGroup(ctx, s); err != nil {
			return err
		}
	}
	before := time.Now()
	up, err := c.st.Time(ctx)
	if err != nil {
		return err
	}
	c.clock.set(before, time.Now(), up)
	// Broadcast fires are run by the workers up at their slot. Fires are
	// appended up to a planner's lookahead early, so reading starts
	// HoldEarly back, and of the entries appended before now only those
	// due from now on run.
	cur, last := map[string]string{}, map[string]string{}
	for _, s := range c.bstreams {
		id, err := c.st.LastEntryID(ctx, s)
		if err != nil {
			return err
		}
		cur[s], last[s] = id, id
		if back := fmt.Sprintf("%d-0", up.Add(-c.cfg.HoldEarly).UnixMilli()); c.cfg.HoldEarly > 0 && store.LessID(back, id) {
			cur[s] = back
		}
	}
	c.bcursors, c.bstart, c.upSince = cur, last, up
	return c.specs.load(ctx)
}

// sinceUp drops the broadcast entries appended before this worker was up
// whose slot was before then too.
func (c *Consumer) sinceUp(ds []store.Delivery) []store.Delivery {
	out := ds[:0]
	for _, d := range ds {
		if last := c.bstart[d.Stream]; !store.LessID(last, d.EntryID) && (d.Err != nil || d.Fire.At.Before(c.upSince)) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// announce appends node_up or node_down; a failure is logged.
func (c *Consumer) announce(ctx context.Context, typ events.Type) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := c.st.AppendEvent(actx, events.Event{Type: typ, Worker: c.cfg.Node, Status: "worker"}); err != nil {
		c.log.Warn().Err(err).Str("event", string(typ)).Msg("announce")
	}
}

// Fetch returns fires to run: broadcast fires, fires reclaimed from
// workers that stopped answering, and new ones, at most max of the latter
// two plus, while runs are short, Config.Prefetch read ahead (a read
// started by an earlier call may add up to that call's count). It waits
// up to Config.Block for one, and returns nothing when ctx ends. Entries
// that cannot run (malformed, handed out too often, dropped by the
// overlap policy) are recorded here and not returned. Every fire returned
// must be given to Finish or HandBack.
func (c *Consumer) Fetch(ctx context.Context, max int) ([]store.Delivery, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, nil
	}
	if c.stopped() {
		return nil, nil
	}
	want := max
	due := c.takeDue(ctx, want)
	out := c.takeLater()
	out = append(out, c.takeBroadcast()...)
	select {
	case r := <-c.reader.results:
		ds, err := c.afterRead(ctx, out, r)
		return append(due, ds...), err
	default:
	}
	if len(c.early) >= c.cfg.EarlyLimit {
		max = 0 // read nothing new until some early fires are due
	}
	if max > 0 && c.reader.reclaimDue() {
		ds, err := c.reader.sweep(ctx, max)
		out = append(out, ds...)
		if err != nil {
			return append(due, c.admit(ctx, out)...), err
		}
		max -= len(ds)
	}
	if len(out) == 0 && len(due) == 0 {
		// Wait for a read, a broadcast fire, or the next early fire.
		var reads chan readResult
		if max > 0 {
			c.reader.start(max + c.reader.readAhead())
			reads = c.reader.results
		}
		wait := c.cfg.Block
		if len(c.early) > 0 {
			wait = min(wait, c.clock.until(c.early[0].Fire.At))
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case r := <-reads:
			return c.afterRead(ctx, out, r)
		case b := <-c.bcast:
			out = append(out, b...)
		case <-timer.C:
			due = c.takeDue(ctx, want)
		case <-ctx.Done():
		}
	}
	return append(due, c.admit(ctx, out)...), nil
}

// takeDue returns up to limit (at least one) early fires now due that are
// to run (their overlap policy admits them); the others stay held for the
// next Fetch, so a release of thousands at one instant is not copied out
// at once.
func (c *Consumer) takeDue(ctx context.Context, limit int) []store.Delivery {
	if len(c.early) == 0 {
		return nil
	}
	now := c.clock.now()
	limit = min(len(c.early), max(limit, 1))
	out := make([]store.Delivery, 0, limit)
	for len(out) < limit && len(c.early) > 0 && !c.early[0].Fire.At.After(now) {
		d := heap.Pop(&c.early).(*store.Delivery)
		if c.overlapAdmits(ctx, d) {
			out = append(out, *d)
		}
	}
	rel := len(c.early) > 0 && !c.early[0].Fire.At.After(now)
	c.outbox.setReleasing(rel)
	return out
}

// afterRead takes the result of a finished read.
func (c *Consumer) afterRead(ctx context.Context, out []store.Delivery, r readResult) ([]store.Delivery, error) {
	c.reader.finished(ctx, r)
	out = append(out, r.ds...)
	return c.admit(ctx, out), r.err
}

func (c *Consumer) takeLater() []store.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.later
	c.later = nil
	return out
}

func (c *Consumer) takeBroadcast() []store.Delivery {
	var out []store.Delivery
	for {
		select {
		case b := <-c.bcast:
			out = append(out, b...)
		default:
			return out
		}
	}
}

// admit resolves specs, dead-letters what cannot run and applies the
// overlap policies; it returns what is to run.
func (c *Consumer) admit(ctx context.Context, ds []store.Delivery) []store.Delivery {
	now := c.clock.now() // for early fires
	out := ds[:0]
	for _, d := range ds {
		if d.Err != nil {
			c.deadLetter(d, "malformed entry: "+d.Err.Error(), "", false)
			continue
		}
		d.Spec = c.specs.get(ctx, d.Fire.Task)
		if d.Deliveries > c.cfg.MaxDeliveries {
			c.deadLetter(d, fmt.Sprintf("handed out %d times with no outcome: every worker that took it stopped answering", d.Deliveries), "", false)
			continue
		}
		if !c.firstTrigger(ctx, d) {
			continue
		}
		if c.cfg.HoldEarly > 0 && !now.IsZero() {
			if w := d.Fire.At.Sub(now); w > 0 && w <= c.cfg.HoldEarly {
				// Its overlap policy applies when it is due.
				heap.Push(&c.early, &d)
				continue
			}
		}
		if c.overlapAdmits(ctx, &d) {
			out = append(out, d)
		}
	}
	return out
}

// overlapAdmits applies the task's overlap policy, if it has one.
func (c *Consumer) overlapAdmits(ctx context.Context, d *store.Delivery) bool {
	return d.Spec.Overlap == events.OverlapAllow || c.beginOverlap(ctx, d)
}

// firstTrigger makes a hand-written single-mode entry with an id field
// idempotent: only the first entry with that id runs. Entries taskino
// writes (planned fires, retries, buffered fires) carry the encoding
// version and are unique already.
func (c *Consumer) firstTrigger(ctx context.Context, d store.Delivery) bool {
	if d.Broadcast || d.Raw[events.FieldID] == "" || d.Raw[events.FieldV] != "" {
		return true
	}
	missed := c.missed(d, "duplicate-id", "a trigger with this id was run already (ids are remembered for 24h)")
	var first bool
	if !c.retry(ctx, d, "trigger id check", func() (err error) {
		first, err = c.st.FirstTrigger(ctx, d, missed)
		return err
	}) {
		return false
	}
	if !first {
		c.claims.release(d)
	}
	return first
}

// beginOverlap applies the task's overlap policy; it reports whether the
// fire is to run now.
func (c *Consumer) beginOverlap(ctx context.Context, d *store.Delivery) bool {
	missed := c.missed(*d, events.Misfire("overlap-"+string(d.Spec.Overlap)), "the previous run of the task was still running")
	if d.Broadcast {
		c.mu.Lock()
		run := !c.localRun[d.Fire.Task]
		buffer := !run && d.Spec.Overlap == events.OverlapBufferOne && c.localBuf[d.Fire.Task] == nil
		switch {
		case run:
			c.localRun[d.Fire.Task] = true
		case buffer:
			cp := *d
			c.localBuf[d.Fire.Task] = &cp
		}
		c.mu.Unlock()
		if !run && !buffer {
			c.enqueue(&store.Outcome{Delivery: *d, Events: []events.Event{missed}})
		}
		return run
	}
	var res store.BeginResult
	if !c.retry(ctx, *d, "overlap check", func() (err error) {
		res, err = c.st.Begin(ctx, *d, d.Spec.Overlap, c.cfg.VisibilityTimeout, missed)
		return err
	}) {
		return false
	}
	if res != store.BeginRun {
		c.claims.release(*d)
		return false
	}
	c.claims.markOverlap(*d)
	return true
}

// missed is the missed event of a fire dropped under policy.
func (c *Consumer) missed(d store.Delivery, policy events.Misfire, reason string) events.Event {
	return events.Event{Type: events.TypeMissed, Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Count: 1,
		Policy: policy, Worker: c.cfg.Node, Queue: d.Queue, Reason: reason}
}

// retry calls f until it succeeds, pacing the tries, and reports false
// when the worker stops first: d stays held, and the hand-back at stop
// gives it to another worker.
func (c *Consumer) retry(ctx context.Context, d store.Delivery, what string, f func() error) bool {
	b := store.NewBackoff()
	for {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil || c.stopped() {
			return false
		}
		wait := b.Next()
		if b.Report() {
			c.log.Warn().Err(err).Str("fire", d.Fire.ID).Int("failures", b.Failures()).Msg(what + " failed; retrying")
		}
		sleep(ctx, wait)
	}
}

// deadLetter queues d's dead letter; endOverlap also ends its overlap
// hold (a fire that began under skip or buffer-one).
func (c *Consumer) deadLetter(d store.Delivery, reason, lastErr string, endOverlap bool) {
	e := events.Event{Type: events.TypeDead, Reason: clean(reason), Worker: c.cfg.Node, Queue: d.Queue, Error: clean(lastErr)}
	if d.Err == nil {
		e.Task, e.Fire, e.At, e.Attempt = d.Fire.Task, d.Fire.ID, d.Fire.At, d.Fire.Attempt
	}
	c.log.Warn().Str("entry", d.EntryID).Str("stream", d.Stream).Str("reason", e.Reason).Msg("dead-lettered")
	c.enqueue(&store.Outcome{Delivery: d, Events: []events.Event{e}, Dead: e.Reason, DeadError: e.Error, EndOverlap: endOverlap})
}

// Start records that the run of d started (a started event).
func (c *Consumer) Start(d *store.Delivery) {
	// Not an outcome: no entry to ack, no condition, so a plain append
	// (see flushOnce), and no allocation per run while thousands start:
	// the queue holds, as values, what varies by run (a quarter of an
	// event's size).
	e := startRec{task: d.Fire.Task, fire: d.Fire.ID, queue: d.Queue, at: d.Fire.At, attempt: d.Fire.Attempt}
	c.outbox.start(e)
}

// Finish records how the run of d ended: completed, failed and retried,
// failed and dead-lettered, or handed back unfinished. It does not block:
// outcomes are written in batches, and kept while Redis is unreachable.
func (c *Consumer) Finish(d *store.Delivery, r store.Result) {
	if !r.Started.IsZero() && !r.Finished.IsZero() {
		c.reader.noteRun(r.Finished.Sub(r.Started))
	}
	overlap := d.Spec.Overlap != events.OverlapAllow && d.Spec.Overlap != ""
	if overlap && d.Broadcast {
		c.mu.Lock()
		delete(c.localRun, d.Fire.Task)
		if b := c.localBuf[d.Fire.Task]; b != nil {
			// The next Fetch admits it first, and it takes the run.
			delete(c.localBuf, d.Fire.Task)
			c.later = append(c.later, *b)
		}
		c.mu.Unlock()
	}
	if r.HandBack {
		if !d.Broadcast {
			c.claims.handBack([]store.Delivery{*d})
		}
		return
	}
	if r.Dead != "" && r.Err == nil && r.Started.IsZero() {
		c.deadLetter(*d, r.Dead, "", overlap && !d.Broadcast)
		return
	}
	// The outcome is built where it is queued, in place: a run's
	// goroutine that copied it and its events through locals would
	// outgrow its first stack, and thousands of runs start at one instant.
	o := &store.Outcome{Delivery: *d, EndOverlap: overlap && !d.Broadcast,
		LastRun: &events.LastRun{Task: d.Fire.Task, Fire: d.Fire.ID, Scheduled: d.Fire.At, Started: r.Started, Finished: r.Finished}}
	ne := 1 // a failure may add its retried or dead event
	if r.Err != nil {
		ne = 2
	}
	o.Events = make([]events.Event, 1, ne)
	e := &o.Events[0]
	e.Task, e.Fire, e.At, e.Attempt, e.Worker, e.Queue = d.Fire.Task, d.Fire.ID, d.Fire.At, d.Fire.Attempt, c.cfg.Node, d.Queue
	e.CostMs, e.Output = r.Finished.Sub(r.Started).Milliseconds(), cleanTail(r.Output)
	if r.Err == nil {
		e.Type, e.Status = events.TypeCompleted, events.StatusCompleted
		o.LastRun.Status = events.StatusCompleted
	} else {
		msg := clean(r.Err.Error())
		e.Type, e.Status, e.Error = events.TypeFailed, events.StatusFailed, msg
		o.LastRun.Status, o.LastRun.Error = events.StatusFailed, msg
		next := events.Event{Task: d.Fire.Task, Fire: d.Fire.ID, At: d.Fire.At, Attempt: d.Fire.Attempt, Worker: c.cfg.Node, Error: msg}
		switch {
		case r.RetryIn > 0 && !d.Broadcast:
			next.Type, next.Attempt = events.TypeRetried, d.Fire.Attempt+1
			next.Reason = fmt.Sprintf("attempt %d of %d failed; next in %s", d.Fire.Attempt, d.Spec.Attempts, r.RetryIn.Round(time.Millisecond))
			o.Events = append(o.Events, next)
			o.RetryIn = r.RetryIn
		case r.Dead != "":
			next.Type, next.Reason, next.Queue = events.TypeDead, clean(r.Dead), d.Queue
			o.Events = append(o.Events, next)
			o.Dead, o.DeadError = next.Reason, msg
		}
	}
	c.enqueue(o)
	if o.RetryIn > 0 {
		select {
		case c.retrySig <- struct{}{}:
		default:
		}
	}
}

func (c *Consumer) enqueue(o *store.Outcome) {
	if o.Dead != "" && c.cfg.Metrics != nil {
		c.cfg.Metrics.DeadLettered(o.Delivery.Fire.Task)
	}
	// Marked before it is queued: a stop hands back every held fire not
	// marked, and one with its outcome queued must not run again.
	c.claims.markQueued(o.Delivery)
	c.outbox.add(o)
}

// maxText bounds an error text kept in an event (a panic's stack included).
const maxText = 8 << 10

// clean makes text fit an event field: valid UTF-8, at most maxText bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxText {
		s = strings.ToValidUTF8(s[:maxText], "") + "..."
	}
	return s
}

// cleanTail is clean keeping the end of s, where a run's last words are.
func cleanTail(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxText {
		s = "..." + strings.ToValidUTF8(s[len(s)-maxText:], "")
	}
	return s
}

// HandBack gives up fires returned by Fetch that will not be started (read
// ahead and still waiting, or a stopping dispatcher's): the single-mode
// ones in one round trip, so the next reclaim by any worker takes them at
// once; a broadcast one is not run here, as Finish with HandBack does.
func (c *Consumer) HandBack(ds []store.Delivery) {
	var single []store.Delivery
	for i, d := range ds {
		if d.Broadcast {
			c.Finish(&ds[i], store.Result{HandBack: true}) // ends its overlap state here
		} else {
			single = append(single, d)
		}
	}
	c.claims.handBack(single)
}

// broadcastLoop reads broadcast fires from the cursors set at start.
func (c *Consumer) broadcastLoop(ctx context.Context) {
	b := store.NewBackoff()
	for ctx.Err() == nil {
		ds, err := c.st.ReadBroadcast(ctx, c.bcursors, 100, c.cfg.Block)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := b.Next()
			if b.Report() {
				c.log.Warn().Err(err).Int("failures", b.Failures()).Dur("retry_in", d).Msg("read broadcast fires")
			}
			sleep(ctx, d)
			continue
		}
		b.Reset()
		if ds = c.sinceUp(ds); len(ds) > 0 {
			select {
			case c.bcast <- ds:
			case <-ctx.Done():
				return
			}
		}
	}
}

// retryLoop moves due retries back to their streams: at the earliest due
// retry, at most a second apart, and when this worker scheduled one.
func (c *Consumer) retryLoop(ctx context.Context) {
	wait := time.Duration(0)
	b := store.NewBackoff() // only for its reports
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.retrySig:
		case <-time.After(wait):
		}
		n, next, err := c.st.PromoteRetries(ctx, 500)
		if err == nil {
			b.Reset()
		}
		switch {
		case err != nil:
			if b.Next(); ctx.Err() == nil && b.Report() {
				c.log.Warn().Err(err).Int("failures", b.Failures()).Msg("move due retries")
			}
			wait = time.Second
		case n == 500:
			wait = 0
		case next.IsZero():
			wait = time.Second
		default:
			now, terr := c.st.Time(ctx)
			wait = time.Second
			if terr == nil {
				wait = min(max(next.Sub(now), time.Millisecond), time.Second)
			}
		}
	}
}

// trimLoop trims the fire streams every TrimInterval (and the events
// stream by age, with EventsMaxAge), and removes from the group the
// consumers of workers idle for an hour that hold nothing.
func (c *Consumer) trimLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range append(append([]string(nil), c.single...), c.bstreams...) {
			if _, err := c.st.TrimFires(ctx, s, c.cfg.FireRetention); err != nil && ctx.Err() == nil {
				c.log.Warn().Err(err).Str("stream", s).Msg("trim")
			}
		}
		for _, s := range c.single {
			if _, err := c.st.PruneConsumers(ctx, s, time.Hour); err != nil && ctx.Err() == nil {
				c.log.Warn().Err(err).Str("stream", s).Msg("remove consumers of stopped workers")
			}
		}
		if c.cfg.EventsMaxAge > 0 {
			if _, err := c.st.TrimEvents(ctx, c.cfg.EventsMaxAge); err != nil && ctx.Err() == nil {
				c.log.Warn().Err(err).Msg("trim events by age")
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
