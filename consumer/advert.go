package consumer

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
)

// Advert is what a worker publishes of itself with its heartbeats, beside
// its node, queues and visibility timeout (see store.Store.Workers).
type Advert struct {
	// Tasks are the tasks it has handlers for.
	Tasks []string
	// Version is the task-set version those handlers are of: a tasks
	// file's version, or the one a Go program registers. 0: not known (the
	// worker is then never stale).
	Version int64
	// Specs are that version's task definitions as the worker knows them
	// (nil: none). They are only compared with the stored set, to name the
	// tasks that differ when the worker is stale.
	Specs []events.Spec
}

// Advertise sets what the worker publishes of itself. The state goes out
// with the next heartbeat, and is checked against the stored task set
// (at once when it is loaded, and again at each reload): a Version older
// than the stored one logs a warning naming both versions and the tasks
// whose definitions differ, once per change, and is published as stale.
// Safe for concurrent use, before and while Run runs.
func (c *Consumer) Advertise(a Advert) { c.self.set(a) }

// advert is the worker's published state: what Advertise last said, with
// the node, queues and visibility timeout, and whether it is stale against
// the task set the specCache loaded. It owns the stale check and its
// warning; the claims' heartbeats send the state when it changed (pending,
// sent) or the registry lost it (resend). Safe for concurrent use.
type advert struct {
	log   zerolog.Logger
	specs *specCache

	mu     sync.Mutex
	state  events.WorkerState
	own    []events.Spec // Advert.Specs
	gen    int           // bumped by every change of state
	sentAt int           // the gen last recorded (-1: none)
	stored int64         // the stored version the cache last loaded (0: none yet)
	warned string        // the stale warning last logged, to log it once per change
	gone   bool          // the worker is stopping: it publishes nothing more
}

// stop makes the worker publish nothing more (it is leaving the registry).
func (a *advert) stop() {
	a.mu.Lock()
	a.gone = true
	a.mu.Unlock()
}

func newAdvert(log zerolog.Logger, specs *specCache, node string, queues []string, visibility time.Duration) *advert {
	return &advert{log: log, specs: specs, sentAt: -1,
		state: events.WorkerState{Node: node, Queues: slices.Clone(queues), Tasks: []string{}, Visibility: visibility, Build: events.Build()}}
}

func (a *advert) set(ad Advert) {
	tasks := slices.Clone(ad.Tasks)
	sort.Strings(tasks)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state.Tasks, a.state.Version, a.own = tasks, ad.Version, slices.Clone(ad.Specs)
	a.gen++
	a.check()
}

// runs says whether the worker advertises a handler for task; known is
// false while it advertises no task at all (nothing to go by).
func (a *advert) runs(task string) (known, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.state.Tasks) == 0 {
		return false, false
	}
	_, ok = slices.BinarySearch(a.state.Tasks, task)
	return true, ok
}

// loaded is told each version the specCache loads.
func (a *advert) loaded(version int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stored = version
	a.check()
}

// check recomputes Stale, logs the warning when it is new, and marks the
// state to send when Stale changed. a.mu is held.
func (a *advert) check() {
	stale := a.state.Version > 0 && a.stored > a.state.Version
	if stale != a.state.Stale {
		a.state.Stale = stale
		a.gen++
	}
	if !stale {
		a.warned = ""
		return
	}
	differ := differing(a.own, a.specs.all())
	key := fmt.Sprint(a.state.Version, "/", a.stored, "/", strings.Join(differ, ","))
	if key == a.warned {
		return
	}
	a.warned = key
	ev := a.log.Warn().Int64("version", a.state.Version).Int64("stored_version", a.stored)
	if a.own != nil {
		ev = ev.Strs("differing_tasks", differ)
	}
	ev.Msg("this worker's task set is stale: its version is older than the stored one; its handlers may run definitions that changed since (update its tasks file and send it SIGHUP, or restart it)")
}

// differing names, sorted, the tasks of own and stored whose definitions
// differ, or that only one of them has. Nothing when own is nil (not
// known).
func differing(own, stored []events.Spec) []string {
	if own == nil {
		return nil
	}
	enc := func(specs []events.Spec) map[string][]byte {
		m := make(map[string][]byte, len(specs))
		for _, s := range specs {
			b, err := events.MarshalSpec(s)
			if err != nil {
				b = nil // an invalid spec differs from every stored one
			}
			m[s.Name] = b
		}
		return m
	}
	a, b := enc(own), enc(stored)
	out := []string{}
	for n, x := range a {
		if y, ok := b[n]; !ok || x == nil || !bytes.Equal(x, y) {
			out = append(out, n)
		}
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// pending is the state to send with the next heartbeat (nil when the
// registry has it already), and its generation for sent.
func (a *advert) pending() (*events.WorkerState, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sentAt == a.gen || a.gone {
		return nil, a.gen
	}
	s := a.state
	s.Queues, s.Tasks = slices.Clone(s.Queues), slices.Clone(s.Tasks)
	return &s, a.gen
}

// sent notes that the state of generation gen was recorded.
func (a *advert) sent(gen int) {
	a.mu.Lock()
	a.sentAt = gen
	a.mu.Unlock()
}

// resend makes the next heartbeat send the state again (the registry has
// none: a flush, or the worker was out of reach for a day).
func (a *advert) resend() {
	a.mu.Lock()
	a.sentAt = -1
	a.mu.Unlock()
}

// leave removes the worker from the registry, once, and makes it publish
// nothing more: a clean stop, at its start (StopFetching) or at the end of
// Run, before node_down. A failure is logged; the entry then stops being
// live after the visibility timeout, and is forgotten after
// store.ForgetWorkers.
func (c *Consumer) leave() {
	c.left.Do(func() {
		c.self.stop()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := c.st.Leave(ctx, c.cfg.Node); err != nil {
			c.log.Warn().Err(err).Msg("leave the workers registry")
		}
	})
}
