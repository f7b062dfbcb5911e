package consumer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Consumer reads and records the fires of one worker. Fetch, Start and
// Finish are for one dispatcher; Run does the background work and must be
// running for Fetch to return anything.
//
// A Consumer is the composition of small parts, each owning its state
// behind its own lock (or confined to one goroutine), each in its own
// file: the reader (reads and reclaims), admission (which fires run now)
// with the earlyHold, localOverlap and waitRoom (fires of tasks with no
// handler here: routed or waiting) it decides over, the claims (what this
// worker holds: heartbeats, hand-backs), the outbox (started events and
// outcomes, flushed in batches), and the background loops: specCache,
// broadcaster, retryMover, trimmer, the waitRoom's. Run starts them and stops them in the
// order written there; Fetch, Start, Finish and HandBack go through them.
type Consumer struct {
	cfg      Config
	st       workerStore
	log      zerolog.Logger
	single   []string      // fire streams
	bstreams []string      // broadcast streams
	ready    chan struct{} // closed when Run has set up
	stopping chan struct{} // closed when Run's ctx ends
	readDone chan struct{} // closed when the read loop has returned
	// fetchDone is set by StopFetching: Fetch hands out nothing more.
	fetchDone atomic.Bool
	left      sync.Once // leave
	// handedBack signals that a worker handed fires back (set before ready
	// closes; nil when the subscription failed): Fetch reclaims at once.
	handedBack <-chan struct{}

	clock   redisClock // the Redis server's time, fed by set-up and heartbeats
	specs   *specCache
	changes *changeLog
	// onReplaced is told of each fire replaced under overlap
	// cancel-previous (OnReplaced); nil: nobody listens.
	onReplaced func(fire, by string)
	self       *advert
	claims     *claims
	outbox     *outbox
	reader     *reader
	early      *earlyHold // Fetch's goroutine only
	local      *localOverlap
	adm        *admission // Fetch's goroutine only
	bcast      *broadcaster
	retries    *retryMover
	trim       *trimmer
}

// New returns a consumer of cfg.Queues on rdb (a single server, Sentinel
// or Cluster client).
func New(rdb redis.UniversalClient, cfg Config) (*Consumer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pub, err := store.New(rdb, cfg.Namespace, store.Options{EventsMaxLen: store.DefaultEventsHardMaxLen, HistoryLen: cfg.HistoryLen})
	if err != nil {
		return nil, err
	}
	st := newWorkerStore(pub)
	c := &Consumer{
		cfg: cfg, st: st, ready: make(chan struct{}), stopping: make(chan struct{}), readDone: make(chan struct{}),
		log: cfg.Logger.With().Str("component", "consumer").Str("node", cfg.Node).Logger(),
	}
	c.claims = newClaims(st, c.log, cfg.Node, cfg.VisibilityTimeout, cfg.timing.heartbeat, &c.clock)
	c.outbox = newOutbox(st, c.log, cfg.Node, cfg.FlushBatch, cfg.timing.releaseHold, c.claims.forget)
	c.specs = newSpecCache(st, c.log, cfg.SpecCheckInterval, cfg.timing.specMiss)
	c.self = newAdvert(c.log, c.specs, cfg.Node, cfg.Queues, cfg.VisibilityTimeout)
	c.specs.onLoad = c.self.loaded
	c.changes = newChangeLog(st, c.log, cfg.SpecCheckInterval)
	c.claims.self, c.claims.forgetWorkers = c.self, cfg.timing.forgetWorkers
	for _, q := range cfg.Queues {
		c.single = append(c.single, st.Keys().Fires(q))
		c.bstreams = append(c.bstreams, st.Keys().Broadcast(q))
	}
	c.reader = newReader(st, c.log, cfg, c.single, cfg.timing.reclaim, c.claims)
	c.early = &earlyHold{window: cfg.HoldEarly, limit: cfg.EarlyLimit}
	c.local = newLocalOverlap()
	c.bcast = newBroadcaster(st, c.log, c.bstreams, cfg.Block, cfg.HoldEarly)
	c.retries = newRetryMover(st, c.log, cfg.timing.retryPoll)
	c.trim = &trimmer{st: st, log: c.log, every: cfg.TrimInterval, fires: append(append([]string(nil), c.single...), c.bstreams...),
		groups: c.single, retention: cfg.FireRetention, pruneIdle: cfg.timing.pruneIdle, eventsMaxAge: cfg.EventsMaxAge,
		retainEvery: cfg.RetainInterval, eventsMaxLen: cfg.EventsMaxLen}
	c.adm = &admission{st: st, log: c.log, node: cfg.Node, maxDeliveries: cfg.MaxDeliveries, visibility: cfg.VisibilityTimeout,
		specs: c.specs, changes: c.changes, claims: c.claims, clock: &c.clock, early: c.early, local: c.local,
		queue: c.enqueue, missed: c.missed, releasing: c.outbox.setReleasing, stopped: c.stopped, runs: c.self.runs,
		wait: &waitRoom{st: st, log: c.log, node: cfg.Node, claims: c.claims, clock: &c.clock, runs: c.self.runs,
			queue: c.enqueue, every: cfg.timing.routeLook, stuck: map[string]bool{}, kick: make(chan struct{}, 1)}}
	return c, nil
}

// Store is the consumer's store (its namespace on Redis).
func (c *Consumer) Store() *store.Store { return c.st.Store }

// LoadedSpecs is the task set the worker loaded when Run set up, once it
// has (ok is false when ctx ends first): what its fires are run by, read
// once, so a caller need not read a large set a second time.
func (c *Consumer) LoadedSpecs(ctx context.Context) (specs []events.Spec, ok bool) {
	select {
	case <-c.ready:
		return c.specs.all(), true
	case <-ctx.Done():
		return nil, false
	}
}

// Health is nil while the worker's heartbeats (which extend its claims and
// record its pulse) and its reclaims of fires from workers that stopped
// answering succeed, and an error naming the failing one and its last
// failure while either keeps failing: from the store.HealthThreshold-th
// failure in a row (heartbeats come every sixth of VisibilityTimeout,
// reclaim sweeps at most every quarter) until one succeeds. A worker whose
// Redis user may not run a command these need, or whose Redis is down, so
// reports itself. Safe to call from any goroutine, at any time.
func (c *Consumer) Health() error {
	hb, rc := c.claims.health.Err(), c.reader.health.Err()
	if hb != nil && rc != nil {
		return fmt.Errorf("%w; %w", hb, rc)
	}
	if hb != nil {
		return hb
	}
	return rc
}

// OnReplaced sets f, called with a fire's id and the id of the fire that
// replaced it whenever a fire of a task under the overlap policy
// cancel-previous begins (on any worker) while the older one runs: the
// caller running the older fire cancels its run and finishes it with
// Result.Next Replaced. Call it before Run; the dispatcher does.
func (c *Consumer) OnReplaced(f func(fire, by string)) { c.onReplaced = f }

// watchReplaced passes the cancel channel's notes to onReplaced until ctx
// ends.
func (c *Consumer) watchReplaced(ctx context.Context) {
	if c.onReplaced == nil {
		return
	}
	cancels, closeCancels := c.st.Cancels(ctx)
	defer func() { _ = closeCancels() }()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-cancels:
			// Every worker hears every note; only the one holding the
			// old fire acts (the dispatcher keeps a note of a fire it
			// has not started, and must not fill up with others').
			if c.claims.holdsFire(n[0]) {
				c.onReplaced(n[0], n[1])
			}
		}
	}
}

// giveBackOverdue hands back, until ctx ends, the early fires held here
// that have been due for timing.earlyWait without a free run to take them
// (every run of this worker busy, as with long or stuck handlers), so a
// worker with free runs takes them, as the dispatcher does with fires
// read ahead (dispatcher.ReadAheadWait).
func (c *Consumer) giveBackOverdue(ctx context.Context) {
	t := time.NewTicker(c.cfg.timing.earlyWait / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := c.clock.now()
		if now.IsZero() {
			continue
		}
		if ds := c.early.overdue(now.Add(-c.cfg.timing.earlyWait)); len(ds) > 0 {
			c.log.Info().Int("fires", len(ds)).Msg("handing back early fires that found no free run")
			c.claims.handBack(ds)
		}
	}
}

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
//
// # Shutdown order
//
// A dispatcher cancels ctx after its runs have ended (or been handed
// back), so the outcomes are all reported by then. Run stops:
//
//  1. Fetch and admission (stopping): Fetch hands out nothing more, and
//     admission gives up its retries (the fire stays held: step 4 hands it
//     back).
//  2. The loops on ctx: broadcaster, heartbeats (claims), retryMover,
//     trimmer, spec reload, wait room; Run waits for them. (Claims are not extended
//     from here on: a fire whose outcome is still unwritten when its claim
//     runs out is run again elsewhere, as drain's log says.)
//  3. The outbox's release hold: no Fetch releases early fires any more,
//     so what is queued is written at once.
//  4. The read under way (at most Block): its fires are held by the time
//     it returns. Only then does every held fire with no outcome queued go
//     back, so none read late escapes the hand-back; and before the drain,
//     so other workers take them while this one writes.
//  5. The outbox, drained (up to 5s): the flush loop alone outlives ctx,
//     to record the outcomes reported, and stops after.
//  6. Out of the workers registry, then node_down, last: after every
//     event of this worker.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.setUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	handedBack, unsubscribe := c.st.HandBacks(ctx)
	defer func() { _ = unsubscribe() }()
	c.handedBack = handedBack
	close(c.ready)
	c.announce(ctx, events.TypeNodeUp)
	c.log.Info().Strs("queues", c.cfg.Queues).Msg("worker started")

	// Flushing outlives ctx: outcomes reported during the stop are recorded
	// before Run returns.
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	var flushWG sync.WaitGroup
	flushWG.Add(1)
	go func() { defer flushWG.Done(); c.outbox.run(flushCtx) }()

	// The read loop apart: its end is waited for at step 4.
	go func() { defer close(c.readDone); c.reader.run(ctx) }()
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){c.bcast.run, c.claims.run, c.retries.run, c.trim.run, c.trim.retain, c.specs.run, c.changes.run, c.watchReplaced, c.giveBackOverdue, c.adm.wait.run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	<-ctx.Done()
	close(c.stopping) // 1
	wg.Wait()         // 2
	// 3. No release is under way any more (no Fetch comes after ctx): the
	// outcomes still queued are written at once, not after a hold.
	c.outbox.endRelease()

	// 4. A read under way is waited for: what it returns is held, and
	// handed back with the rest.
	<-c.readDone
	c.claims.handBackAll()
	c.outbox.drain(c.cfg.timing.drain) // 5
	stopFlush()
	flushWG.Wait()
	c.leave()                                             // 6: out of the workers registry,
	c.announce(context.Background(), events.TypeNodeDown) // then node_down
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
	if err := c.bcast.setUp(ctx, up); err != nil {
		return err
	}
	if err := c.changes.load(ctx); err != nil {
		return err
	}
	return c.specs.load(ctx)
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
	if c.stopped() || c.fetchDone.Load() {
		return nil, nil
	}
	ds, err := c.fetch(ctx, max)
	c.claims.markOut(ds)
	return ds, err
}

// StopFetching ends Fetch for good and hands back at once, for other
// workers to take, every fire this worker holds that Fetch has not
// returned: read, reclaimed or held early but not handed to a run. A read
// under way is handed back when it returns. The dispatcher calls it when
// its stop begins, from the goroutine that called Fetch, never during a
// Fetch; the fires Fetch returned are the dispatcher's to start or hand
// back. Run's ctx may end later, once the runs under way have ended.
func (c *Consumer) StopFetching() {
	if c.fetchDone.Swap(true) {
		return
	}
	select {
	case <-c.ready:
	default:
		return // not set up: nothing held
	}
	// Out of the registry first, so no worker routes fires here any more.
	c.leave()
	if n := c.claims.handBackUnstarted(); n > 0 {
		c.log.Info().Int("fires", n).Msg("stopping: handed back the fires read but not started")
	}
	if c.reader.reading {
		// The read returns within Config.Block, its fires held.
		go func() {
			select {
			case r := <-c.reader.results:
				c.claims.handBack(r.ds)
			case <-c.readDone: // the read was never sent: Run hands back what is held
			}
		}()
	}
}

// fetch is Fetch, once set up and not stopped.
func (c *Consumer) fetch(ctx context.Context, max int) ([]store.Delivery, error) {
	want := max
	due := c.adm.takeDue(ctx, want)
	due = append(due, c.adm.nowRunnable(ctx)...)
	out := c.local.takeLater()
	out = append(out, c.bcast.take()...)
	select {
	case r := <-c.reader.results:
		ds, err := c.afterRead(ctx, out, r)
		return append(due, ds...), err
	default:
	}
	if c.early.full() {
		max = 0 // read nothing new until some early fires are due
	}
	if max > 0 && c.reader.reclaimDue() {
		ds, err := c.reader.sweep(ctx, max)
		out = append(out, ds...)
		if err != nil {
			return append(due, c.adm.admit(ctx, out)...), err
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
		if at, ok := c.early.next(); ok {
			wait = min(wait, c.clock.until(at))
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case r := <-reads:
			return c.afterRead(ctx, out, r)
		case b := <-c.bcast.out:
			out = append(out, b...)
		case <-c.handedBack:
			c.reader.rewind() // the next Fetch reclaims at once, from the start
		case <-timer.C:
			due = c.adm.takeDue(ctx, want)
		case <-ctx.Done():
		}
	}
	return append(due, c.adm.admit(ctx, out)...), nil
}

// afterRead takes the result of a finished read.
func (c *Consumer) afterRead(ctx context.Context, out []store.Delivery, r readResult) ([]store.Delivery, error) {
	c.reader.finished(ctx, r)
	out = append(out, r.ds...)
	return c.adm.admit(ctx, out), r.err
}
