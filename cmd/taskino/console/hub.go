package console

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// hub is a namespace's one events reader: it reads the last hour at its
// start (newest first, at most backfillMax events), then follows the
// stream, keeps
// per-minute counts and lateness for the overview, the latest misses and
// events, and hands each event to the live streams subscribed. Its Redis
// load is one blocking XREAD at a time, whatever the number of viewers.
type hub struct {
	st *store.Store

	mu      sync.Mutex
	minutes [60]minute // ring by minute
	recent  []events.Event
	misses  []events.Event
	subs    map[chan events.Event]struct{}
	started map[string]struct{} // fires seen started (bounded)
	ready   bool                // the backfill is read
	partial bool                // the backfill stopped at backfillMax
	err     error
}

// minute is one minute of the events: fires, outcomes and lateness.
type minute struct {
	At                                       int64 // unix minute
	Fired, Started, OK, Failed, Dead, Missed int
	Lates                                    []time.Duration // bounded sample
}

const (
	keepRecent   = 1000 // the live page's first rows are the latest 200 of these that match
	keepMisses   = 20
	backfillMax  = 100_000
	lateSamples  = 2000
	subscriberCh = 256
	maxStarted   = 200_000
)

func (n *namespace) events(c *Console) *hub {
	n.hubOnce.Do(func() {
		n.hub = &hub{st: n.st, subs: map[chan events.Event]struct{}{}, started: map[string]struct{}{}}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			n.hub.run(c.ctx)
		}()
	})
	return n.hub
}

func (h *hub) run(ctx context.Context) {
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
			return true
		}
	}
	now, err := h.st.Time(ctx)
	for err != nil {
		h.setErr(err)
		if !wait() {
			return
		}
		now, err = h.st.Time(ctx)
	}
	since := fmt.Sprintf("%d-0", now.Add(-time.Hour).UnixMilli())
	// The last hour, newest first, up to backfillMax events: a busy
	// hour's counts then cover its newest part.
	before, top, read := "+", "", 0
	for read < backfillMax && ctx.Err() == nil {
		es, err := h.st.ReadEventsBack(ctx, before, 1000)
		if err != nil {
			h.setErr(err)
			if !wait() {
				return
			}
			continue
		}
		if len(es) == 0 {
			break
		}
		if top == "" {
			top = es[0].ID // the live reader goes on after it
		}
		keep := es
		for k, e := range es {
			if store.LessID(e.ID, since) {
				keep = es[:k]
				break
			}
		}
		h.take(keep, true)
		read += len(keep)
		before = es[len(es)-1].ID
		if len(keep) < len(es) || len(es) < 1000 {
			break
		}
	}
	h.backDone(read >= backfillMax)
	after := top
	if after == "" {
		after = "0-0" // an empty stream: from its first event
	}
	for ctx.Err() == nil {
		es, next, err := h.st.ReadEvents(ctx, after, 1000, 2*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.setErr(err)
			if !wait() {
				return
			}
			continue
		}
		after = next
		h.take(es, false)
	}
}

func (h *hub) setErr(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// count adds e to its minute; h.mu is held.
func (h *hub) count(e events.Event) {
	t, _ := events.EntryTime(e.ID)
	m := &h.minutes[(t.Unix()/60)%60]
	if m.At != t.Unix()/60 {
		*m = minute{At: t.Unix() / 60}
	}
	switch e.Type {
	case events.TypeFired:
		m.Fired++
	case events.TypeStarted:
		m.Started++
		// Lateness of first runs: retries and replays wait on purpose.
		if _, again := h.started[e.Fire]; !again && !e.At.IsZero() && e.Attempt <= 1 && e.Origin == "" && len(m.Lates) < lateSamples {
			m.Lates = append(m.Lates, t.Sub(e.DueAt()))
		}
		if len(h.started) >= maxStarted {
			clear(h.started) // bounded: a replay after this counts as a first run
		}
		h.started[e.Fire] = struct{}{}
	case events.TypeCompleted:
		m.OK++
	case events.TypeFailed:
		m.Failed++
	case events.TypeDead:
		m.Dead++ // a fire's last failure is also counted failed
	case events.TypeMissed:
		m.Missed += int(max(e.Count, 1))
	}
}

// backDone ends the backfill: the events kept go oldest first.
func (h *hub) backDone(partial bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	slices.Reverse(h.recent)
	slices.Reverse(h.misses)
	h.ready, h.partial = true, partial
}

// take counts es and keeps the latest events and misses. Read back (the
// backfill, newest first) it keeps the first ones it meets; read live, the
// last ones, and hands each event to the subscribers.
func (h *hub) take(es []store.EventEntry, back bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = nil
	for _, en := range es {
		if en.Err != nil {
			continue
		}
		e := en.Event
		e.ID = en.ID
		h.count(e)
		missed := e.Type == events.TypeMissed
		if back {
			if len(h.recent) < keepRecent {
				h.recent = append(h.recent, e)
			}
			if missed && len(h.misses) < keepMisses {
				h.misses = append(h.misses, e)
			}
			continue
		}
		if missed {
			h.misses = append(h.misses, e)
			if len(h.misses) > keepMisses {
				h.misses = h.misses[len(h.misses)-keepMisses:]
			}
		}
		h.recent = append(h.recent, e)
		if len(h.recent) > 2*keepRecent {
			h.recent = append([]events.Event(nil), h.recent[len(h.recent)-keepRecent:]...)
		}
		for ch := range h.subs {
			select {
			case ch <- e:
			default: // a viewer too slow: it misses this one, the others do not wait
			}
		}
	}
}

// subscribe returns a channel of the events from now on, and the latest
// ones before; cancel ends it.
func (h *hub) subscribe() (ch chan events.Event, before []events.Event, cancel func()) {
	ch = make(chan events.Event, subscriberCh)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	if h.ready { // during the backfill, recent is newest first and partial
		start := max(len(h.recent)-keepRecent, 0)
		before = append([]events.Event(nil), h.recent[start:]...)
	}
	h.mu.Unlock()
	return ch, before, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// hourStats is the last hour by minute, oldest first, as of now.
type hourStats struct {
	Ready, Partial                           bool
	Err                                      error
	Minutes                                  []minute
	Fired, Started, OK, Failed, Dead, Missed int
	P99Late                                  time.Duration
	HasLate                                  bool
	Misses                                   []events.Event
}

func (h *hub) hour(now time.Time) hourStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := hourStats{Ready: h.ready, Partial: h.partial, Err: h.err}
	var all []time.Duration
	cur := now.Unix() / 60
	for k := cur - 59; k <= cur; k++ {
		m := h.minutes[k%60]
		if m.At != k {
			m = minute{At: k}
		}
		m.Lates = append([]time.Duration(nil), m.Lates...)
		all = append(all, m.Lates...)
		out.Minutes = append(out.Minutes, m)
		out.Fired += m.Fired
		out.Started += m.Started
		out.OK += m.OK
		out.Failed += m.Failed
		out.Dead += m.Dead
		out.Missed += m.Missed
	}
	if len(all) > 0 {
		out.P99Late, out.HasLate = percentile(all, 99), true
	}
	for i := len(h.misses) - 1; i >= 0; i-- {
		out.Misses = append(out.Misses, h.misses[i])
	}
	return out
}
