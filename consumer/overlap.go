package consumer

import (
	"sync"

	"github.com/taskino/taskino/store"
)

// localOverlap applies the overlap policies (skip, buffer-one) of
// broadcast tasks, which every worker runs, so each worker applies them to
// its own runs: it owns which such tasks run here, the fire a buffer-one
// task keeps waiting, and the buffered fires released by a run's end for
// the next Fetch. (Single-mode fires are held to their policy in Redis:
// the worker protocol's Begin.) Safe for concurrent use: Fetch begins, runs' Finish ends.
type localOverlap struct {
	mu       sync.Mutex
	running  map[string]bool            // tasks running here
	buffered map[string]*store.Delivery // buffer-one: the one waiting
	later    []store.Delivery           // released, to be returned by the next Fetch
}

func newLocalOverlap() *localOverlap {
	return &localOverlap{running: map[string]bool{}, buffered: map[string]*store.Delivery{}}
}

// begin reports whether d is to run now (its task is not running here);
// if not, whether it was kept to run after the run under way (buffer-one,
// none kept yet). A fire neither run nor kept is dropped: missed.
func (l *localOverlap) begin(d *store.Delivery, bufferOne bool) (run, kept bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	run = !l.running[d.Fire.Task]
	kept = !run && bufferOne && l.buffered[d.Fire.Task] == nil
	switch {
	case run:
		l.running[d.Fire.Task] = true
	case kept:
		cp := *d
		l.buffered[d.Fire.Task] = &cp
	}
	return run, kept
}

// end ends task's run here; the fire it kept waiting, if any, is released:
// the next Fetch admits it first, and it takes the run.
func (l *localOverlap) end(task string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.running, task)
	if b := l.buffered[task]; b != nil {
		delete(l.buffered, task)
		l.later = append(l.later, *b)
	}
}

// takeLater returns the released fires.
func (l *localOverlap) takeLater() []store.Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.later
	l.later = nil
	return out
}
