package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/store"
)

// claims is what this worker holds of the fire streams: the single-mode
// entries it read or reclaimed and has not recorded an outcome for (running,
// read ahead, held early, or with the outcome queued). It owns that set,
// and all that is done to the claims in Redis besides reading and
// recording: the heartbeat that extends them (run), and the hand-backs
// that give them up. Safe for concurrent use.
type claims struct {
	st         workerStore
	log        zerolog.Logger
	node       string
	visibility time.Duration
	every      time.Duration // the heartbeat period (a sixth of visibility in production)
	clock      *redisClock   // told the server's time at each heartbeat
	// self is the worker's published state, sent with the heartbeats when
	// it changed; forgetWorkers is how long the registry keeps a worker
	// unseen (0: store's default).
	self          *advert
	forgetWorkers time.Duration
	nsVisibility  time.Duration // the namespace's visibility timeout at the last heartbeat (run's goroutine only)
	health        *store.Health // whether the heartbeats keep failing

	mu   sync.Mutex
	held map[string]heldFire // heldKey -> what is held
}

func newClaims(st workerStore, log zerolog.Logger, node string, visibility, every time.Duration, clock *redisClock) *claims {
	return &claims{st: st, log: log, node: node, visibility: visibility, every: every, clock: clock, held: map[string]heldFire{},
		health: store.NewHealth("heartbeats (claim extensions)")}
}

func heldKey(stream, id string) string { return stream + "\x00" + id }

// heldFire is a fire this worker holds, and when its claim was last reset
// (its entry's idle time set to 0 in the group): by this process's clock,
// taken before the read, reclaim or heartbeat that reset it was sent, so
// the entry has been idle no longer than time.Since(reset).
type heldFire struct {
	store.Held
	reset  time.Time
	lost   bool // another worker took it over: no longer extended, reported once
	queued bool // its outcome is queued: a stop does not hand it back (it is acked when recorded)
	out    bool // Fetch returned it: the dispatcher's to start or hand back
	// abandoned: its run was cancelled but did not end; neither extended
	// nor handed back, it is reclaimed after the visibility timeout.
	abandoned bool
}

// holdsFire says whether this worker holds a fire with id fire (a
// cancel-previous note concerns it only then). It scans what is held:
// notes are rare, one per replaced run in the namespace.
func (c *claims) holdsFire(fire string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.held {
		if h.FireID == fire {
			return true
		}
	}
	return false
}

// hold records single-mode deliveries as held, so heartbeats extend them;
// sent is when the read or reclaim that handed them out was sent.
func (c *claims) hold(ds []store.Delivery, sent time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		if !d.Broadcast {
			c.held[heldKey(d.Stream, d.EntryID)] = heldFire{
				Held:  store.Held{Stream: d.Stream, EntryID: d.EntryID, Task: d.Fire.Task, FireID: d.Fire.ID},
				reset: sent,
			}
		}
	}
}

// notHeld returns, in ds's array, the deliveries this worker does not hold
// already.
func (c *claims) notHeld(ds []store.Delivery) []store.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := ds[:0]
	for _, d := range ds {
		if _, mine := c.held[heldKey(d.Stream, d.EntryID)]; !mine {
			fresh = append(fresh, d)
		}
	}
	return fresh
}

// mark applies set to the held fires of ds (single-mode ones this worker
// still holds), under the lock.
func (c *claims) mark(ds []store.Delivery, set func(h *heldFire)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		k := heldKey(d.Stream, d.EntryID)
		if h, ok := c.held[k]; ok && !d.Broadcast {
			set(&h)
			c.held[k] = h
		}
	}
}

// markOverlap notes that d began under its task's overlap policy: its
// heartbeats extend the task's running key too.
func (c *claims) markOverlap(d store.Delivery) {
	c.mark([]store.Delivery{d}, func(h *heldFire) { h.Overlap = true })
}

// markQueued notes that d's outcome is queued (see Consumer.enqueue, which
// calls it before the outcome is queued): it stays held, and extended,
// until recorded, but a stop does not hand it back.
func (c *claims) markQueued(d store.Delivery) {
	c.mark([]store.Delivery{d}, func(h *heldFire) { h.queued = true })
}

// markOut notes that Fetch returned ds: the dispatcher starts them or
// hands them back, so handBackUnstarted leaves them alone.
func (c *claims) markOut(ds []store.Delivery) {
	c.mark(ds, func(h *heldFire) { h.out = true })
}

// markIn undoes markOut for d: the consumer holds it again, unstarted
// (Consumer.Unhandled), and a stop hands it back.
func (c *claims) markIn(d store.Delivery) {
	c.mark([]store.Delivery{d}, func(h *heldFire) { h.out = false })
}

// abandon gives up extending d, whose run did not end when cancelled: it
// is neither extended nor handed back, so it is reclaimed once the
// visibility timeout has passed, when the run is over or its process gone.
func (c *claims) abandon(d store.Delivery) {
	c.mark([]store.Delivery{d}, func(h *heldFire) { h.abandoned = true })
}

// handBackUnstarted gives back at once the held fires that Fetch has not
// returned and whose outcome is not queued (read, reclaimed or held early,
// but not handed to the dispatcher): a stop's first step. It returns how
// many.
func (c *claims) handBackUnstarted() int {
	return c.handBackWhere(func(h heldFire) bool { return !h.out })
}

// holding says whether this worker still holds d: held, and not taken
// over by another worker.
func (c *claims) holding(d store.Delivery) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.held[heldKey(d.Stream, d.EntryID)]
	return ok && !h.lost
}

// release forgets a held entry.
func (c *claims) release(d store.Delivery) {
	c.mu.Lock()
	delete(c.held, heldKey(d.Stream, d.EntryID))
	c.mu.Unlock()
}

// forget forgets the entries of recorded outcomes (acked now).
func (c *claims) forget(batch []*store.Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range batch {
		if o.Delivery.EntryID != "" && !o.Delivery.Broadcast {
			delete(c.held, heldKey(o.Delivery.Stream, o.Delivery.EntryID))
		}
	}
}

// handBack gives held single-mode fires back at once (see the worker protocol's HandBack).
func (c *claims) handBack(ds []store.Delivery) {
	var hs []store.Held
	c.mu.Lock()
	for _, d := range ds {
		if h, ok := c.held[heldKey(d.Stream, d.EntryID)]; ok {
			hs = append(hs, h.Held)
			delete(c.held, heldKey(d.Stream, d.EntryID))
		}
	}
	c.mu.Unlock()
	c.handBackHeld(hs)
}

// handBackAll gives back every held fire whose outcome is not queued and
// that was not abandoned (a stop).
func (c *claims) handBackAll() { c.handBackWhere(func(heldFire) bool { return true }) }

// handBackWhere gives back, and forgets, the held fires for which pick
// holds, but for those whose outcome is queued or that were abandoned; it
// returns how many.
func (c *claims) handBackWhere(pick func(h heldFire) bool) int {
	c.mu.Lock()
	var hs []store.Held
	for k, h := range c.held {
		if !h.queued && !h.abandoned && pick(h) {
			hs = append(hs, h.Held)
			delete(c.held, k)
		}
	}
	c.mu.Unlock()
	c.handBackHeld(hs)
	return len(hs)
}

func (c *claims) handBackHeld(hs []store.Held) {
	if len(hs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.st.HandBack(ctx, c.node, 100*c.visibility, hs)
	if err != nil {
		c.log.Warn().Err(err).Int("fires", len(hs)).Int("handed_back", n).Msg("hand back fires; the others are reclaimed after the visibility timeout")
		return
	}
	c.log.Info().Int("fires", n).Msg("handed back fires")
}

// run records the worker's pulse every sixth of the visibility
// timeout (every) and, in the same calls, extends the claims of the held fires
// whose claims were last reset at least 1.25 sixths ago (and the running
// keys of those with an overlap policy; the margin keeps a tick that comes
// early from sending a claim the previous tick reset). A claim is so reset
// every third of the visibility timeout, the first time at most 3/8 of it
// after it was read, and while heartbeats fail it is sent again at each
// tick: three more tries before the timeout. Fires read moments ago
// (early fires held for their slot, runs of a few ms) are not sent at
// all: an extension costs Redis about 70,000 instructions, and a
// heartbeat over the 15,000 early fires a 1.5 s lookahead holds at 10,000
// fires a second took Redis a second, in which every run waited.
func (c *claims) run(ctx context.Context) {
	every := c.every
	t := time.NewTicker(every)
	defer t.Stop()
	b := store.NewBackoff() // only for its reports: the ticker paces
	// The first heartbeat goes at once: it publishes the worker's state.
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		if n, err := c.heartbeat(ctx, every+every/4); err != nil {
			if ctx.Err() == nil {
				c.health.Failed(err)
			}
			if b.Next(); ctx.Err() == nil && b.Report() {
				c.log.Warn().Err(err).Int("fires", n).Int("failures", b.Failures()).Msg("extend claims")
			}
			continue
		}
		c.health.Succeeded()
		b.Reset()
	}
}

// heartbeat records the pulse and extends the claims of the held fires
// not reset for at least old; it returns how many it sent.
func (c *claims) heartbeat(ctx context.Context, old time.Duration) (int, error) {
	before := time.Now()
	var hs []store.Held
	c.mu.Lock()
	for _, h := range c.held {
		if !h.lost && !h.abandoned && before.Sub(h.reset) >= old {
			hs = append(hs, h.Held)
		}
	}
	c.mu.Unlock()
	var self store.Self
	gen := 0
	if c.self != nil {
		self.State, gen = c.self.pending()
		self.Forget = c.forgetWorkers
	}
	hb, err := c.st.Heartbeat(ctx, c.node, c.visibility, hs, self)
	if err != nil {
		return len(hs), err
	}
	c.clock.set(hb.Sent, hb.Answered, hb.Now)
	if c.self != nil {
		if self.State != nil {
			c.self.sent(gen)
		} else if hb.StateMissing {
			c.self.resend()
		}
	}
	c.checkVisibility(hb.Visibility)
	ids := make([]string, 0, len(hb.Lost))
	c.mu.Lock()
	for _, h := range hb.Lost {
		ids = append(ids, h.EntryID)
		k := heldKey(h.Stream, h.EntryID)
		if cur, ok := c.held[k]; ok {
			cur.lost = true
			c.held[k] = cur
		}
	}
	for _, h := range hs {
		k := heldKey(h.Stream, h.EntryID)
		if cur, ok := c.held[k]; ok && !cur.lost {
			cur.reset = before
			c.held[k] = cur
		}
	}
	c.mu.Unlock()
	if len(ids) > 0 {
		c.log.Warn().Strs("entries", ids).Msg("fires this worker runs were reclaimed by another worker (this one stopped answering for the visibility timeout)")
	}
	return len(hs), nil
}

// checkVisibility logs, once per change, that the namespace's visibility
// timeout (the longest of the workers' seen in the last 10 minutes, which
// reclaims wait for) differs from this worker's.
func (c *claims) checkVisibility(ns time.Duration) {
	if ns <= 0 || ns == c.nsVisibility {
		return
	}
	c.nsVisibility = ns
	if ns != c.visibility {
		c.log.Warn().Str("visibility", c.visibility.String()).Str("namespace_visibility", ns.String()).
			Msg("this worker's visibility timeout differs from the namespace's (the longest of its workers' in the last 10 minutes): fires of a worker that stops answering are reclaimed after the namespace's; give every worker of the namespace the same --visibility")
	}
}
