package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// Promise 1 (one fire per slot) and 3 (one clock): three planners whose
// host clocks are 30 s apart plan 200 every-second tasks for over 20 slots;
// every slot has exactly one fire, no duplicate, no gap.
func TestExactlyOnceAcrossSkewedPlanners(t *testing.T) { testExactlyOnce(t, false) }

// The same, with one planner stopped dead in the middle of a batch: it has
// claimed tasks and never records their plan. Its leases run out and the
// others fire those slots, late but within the misfire grace, so nothing is
// missed and nothing is doubled, even when the dead planner comes back.
func TestExactlyOnceWithAPlannerStoppedDead(t *testing.T) { testExactlyOnce(t, true) }

func testExactlyOnce(t *testing.T, killOne bool) {
	b := setup(t)
	const tasks, slots = 200, 20
	specs := make([]events.Spec, tasks)
	for i := range specs {
		specs[i] = events.Spec{Name: fmt.Sprintf("t%03d", i), Trigger: events.Every(time.Second)}
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}

	// With killOne, whichever planner wins the first claim after 5 s stops
	// dead holding it (the planner that just planned wakes first at the next
	// slot, so a planner chosen in advance might never win one).
	var dead safeNames
	var deadNode atomic.Value
	var killed atomic.Bool
	var deadAt atomic.Int64 // real time (ms) when it stopped; Redis shares this host's clock
	stoppedDead := make(chan struct{})
	comeBack := make(chan struct{})
	start := time.Now()
	planners := make([]*runningPlanner, 0, 3)
	for i, off := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		node := fmt.Sprintf("p%d", i)
		cfg := planner.Config{Clock: skewedClock{off}, Lease: 3 * time.Second, Node: node}
		if killOne {
			// No lookahead: the slot a claim holds is then the one due at
			// the claim, which the check below finds from the time the
			// planner stopped (with a lookahead the promise holds alike).
			cfg.NoLookahead = true
			cfg.AfterClaim = func(ctx context.Context, names []string) {
				if time.Since(start) > 5*time.Second && killed.CompareAndSwap(false, true) {
					dead.set(names)
					deadNode.Store(node)
					deadAt.Store(time.Now().UnixMilli())
					close(stoppedDead)
					<-comeBack
				}
			}
		}
		planners = append(planners, startPlanner(t, b, cfg, nil))
	}

	// Wait until every task has fired at least slots+2 times.
	awaitEvents(t, b, 2*time.Minute, func(all []events.Event) bool {
		n := map[string]int{}
		for _, e := range all {
			if e.Type == events.TypeFired {
				n[e.Task]++
			}
		}
		if len(n) < tasks {
			return false
		}
		for _, c := range n {
			if c < slots+2 {
				return false
			}
		}
		return true
	})
	if killOne {
		select {
		case <-stoppedDead:
		default:
			t.Fatal("the planner meant to stop dead never claimed a batch")
		}
		if len(dead.get()) == 0 {
			t.Fatal("the dead planner held no task")
		}
		close(comeBack) // it wakes up with a stale claim, which must write nothing
	}
	for _, p := range planners {
		p.stop(t)
	}

	l := readLedger(t, b)
	if len(l.missed) != 0 {
		t.Fatalf("%d missed slots, want none: planners were up", len(l.missed))
	}
	perTask := map[string][]int64{}
	for k, n := range l.fires {
		if n != 1 {
			t.Errorf("slot %s has %d fire entries, want exactly 1", k, n)
		}
		if l.fired[k] != 1 {
			t.Errorf("slot %s has %d fired events, want exactly 1", k, l.fired[k])
		}
		perTask[k.task] = append(perTask[k.task], k.at)
	}
	if len(l.fired) != len(l.fires) {
		t.Errorf("%d fired events for %d fire entries", len(l.fired), len(l.fires))
	}
	for _, sp := range specs {
		st, err := b.st.State(b.ctx, sp.Name)
		if err != nil {
			t.Fatal(err)
		}
		at := perTask[sp.Name]
		sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
		if len(at) < slots {
			t.Fatalf("task %s fired %d slots, want at least %d", sp.Name, len(at), slots)
		}
		// The first slot is the first whole second at or after registration.
		first := (st.Since.UnixMilli() + 999) / 1000 * 1000
		if at[0] != first {
			t.Errorf("task %s: first slot %d, want %d (registered at %d)", sp.Name, at[0], first, st.Since.UnixMilli())
		}
		for i := 1; i < len(at); i++ {
			if at[i]-at[i-1] != 1000 {
				t.Errorf("task %s: slots %d then %d: a gap", sp.Name, at[i-1], at[i])
			}
		}
	}
	if killOne {
		// The slot the dead planner held (the last whole second before it
		// stopped) was fired by another planner.
		t.Logf("%s stopped dead holding %d tasks", deadNode.Load(), len(dead.get()))
		held := deadAt.Load() / 1000 * 1000
		for _, name := range dead.get() {
			by, ok := l.firedBy[slotKey{name, held}]
			if !ok || by == "" || by == deadNode.Load() {
				t.Errorf("slot %s held by the dead planner: fired by %q (fired: %v)", slotKey{name, held}, by, ok)
			}
		}
	}
	t.Logf("%d tasks, %d fires, no duplicate, no gap", tasks, len(l.fires))
}
