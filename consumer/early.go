package consumer

import (
	"container/heap"
	"sync"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// earlyHold keeps the fires read before they are due (their slot, or a
// jittered fire's due time; see Fire.DueAt) (planners append fires
// up to their lookahead ahead of it) until they are due by the Redis
// server's clock, the soonest first. It owns the held early fires. Safe
// for concurrent use: Fetch's goroutine holds and releases them, and
// giveBack's hands back those a busy worker leaves waiting.
type earlyHold struct {
	window time.Duration // Config.HoldEarly: a fire due within it is held; 0: none
	limit  int           // Config.EarlyLimit: with this many held, nothing new is read
	mu     sync.Mutex
	h      earlyHeap
}

// hold keeps d if it is due after now, by no more than the window (the
// Redis server's time; zero before the first measure: nothing is held).
// One due later (a hand-written entry with a distant "at") is not held,
// nor one appended at or after its scheduled time (a manual trigger, a
// retry, an on-time fire): Redis stamped its entry id then, so it is not
// early, whatever the measured clock (which may lag the server's by a
// round trip) says. Holding such a fire would keep it from a free run
// slot until the next Fetch, which a worker whose runs are all busy does
// not make.
func (e *earlyHold) hold(d *store.Delivery, now time.Time) bool {
	if e.window <= 0 || now.IsZero() {
		return false
	}
	if appended, err := events.EntryTime(d.EntryID); err == nil && !d.Fire.DueAt().After(appended) {
		return false
	}
	if w := d.Fire.DueAt().Sub(now); w > 0 && w <= e.window {
		e.mu.Lock()
		heap.Push(&e.h, d)
		e.mu.Unlock()
		return true
	}
	return false
}

func (e *earlyHold) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.h)
}

// full says the limit is reached: read nothing new until some are due.
func (e *earlyHold) full() bool { return e.len() >= e.limit }

// next is when the soonest held fire is due; ok is false when none is held.
func (e *earlyHold) next() (at time.Time, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.h) == 0 {
		return time.Time{}, false
	}
	return e.h[0].Fire.DueAt(), true
}

// dueBy says whether a held fire is due by now.
func (e *earlyHold) dueBy(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.h) > 0 && !e.h[0].Fire.DueAt().After(now)
}

// popDue takes the soonest held fire if it is due by now.
func (e *earlyHold) popDue(now time.Time) (*store.Delivery, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.h) == 0 || e.h[0].Fire.DueAt().After(now) {
		return nil, false
	}
	return heap.Pop(&e.h).(*store.Delivery), true
}

// overdue takes the single-mode fires due before by (they found no free
// run since: this worker's runs are all busy), for the caller to hand
// back so that a worker with free runs takes them; broadcast ones, this
// worker's own to run, stay.
func (e *earlyHold) overdue(by time.Time) []store.Delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []store.Delivery
	var keep []*store.Delivery
	for len(e.h) > 0 && e.h[0].Fire.DueAt().Before(by) {
		d := heap.Pop(&e.h).(*store.Delivery)
		if d.Broadcast {
			keep = append(keep, d)
			continue
		}
		out = append(out, *d)
	}
	for _, d := range keep {
		heap.Push(&e.h, d)
	}
	return out
}

// earlyHeap holds early fires, the soonest due first (pointers: a
// Delivery is too big to swap around).
type earlyHeap []*store.Delivery

func (h earlyHeap) Len() int           { return len(h) }
func (h earlyHeap) Less(i, j int) bool { return h[i].Fire.DueAt().Before(h[j].Fire.DueAt()) }
func (h earlyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *earlyHeap) Push(x any)        { *h = append(*h, x.(*store.Delivery)) }
func (h *earlyHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
}
