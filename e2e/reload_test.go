package e2e

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// Promise 6 (versioned reload): v1, then v2 changing one trigger, deleting
// one task and adding one. Only those three change; an older process started
// afterwards adopts v2 without writing and plans v2's tasks; after FLUSHALL
// the next apply republishes.
func TestReloadChangesOnlyWhatChanged(t *testing.T) {
	b := setup(t)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Slots an hour away, so nothing fires and every state stays put
	// unless a reload moves it.
	far := now.Add(time.Hour).Truncate(time.Second)
	spec := func(name string, period time.Duration) events.Spec {
		return events.Spec{Name: name, Trigger: events.Every(period).From(far)}
	}
	v1 := []events.Spec{spec("keep-a", time.Minute), spec("change-b", time.Minute), spec("delete-c", time.Minute), spec("keep-d", 2*time.Minute)}
	v1[3].Payload = "d"

	p1 := startPlanner(t, b, planner.Config{Node: "v1-a"}, func(p *planner.Planner) {
		if err := p.Register(v1...); err != nil {
			t.Fatal(err)
		}
		p.SetVersion(1)
	})
	// Wait until the planner has computed every task's next slot.
	states := func() map[string]store.TaskState {
		out := map[string]store.TaskState{}
		for _, n := range []string{"keep-a", "change-b", "delete-c", "keep-d", "add-e"} {
			if st, err := b.st.State(b.ctx, n); err == nil {
				out[n] = st
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Fatal(err)
			}
		}
		return out
	}
	awaitEvents(t, b, 30*time.Second, func([]events.Event) bool {
		s := states()
		for _, n := range []string{"keep-a", "change-b", "delete-c", "keep-d"} {
			if s[n].Next.IsZero() {
				return false
			}
		}
		return true
	})
	p1.stop(t)
	before := states()
	eventsBefore, _ := b.st.RangeEvents(b.ctx, "-", "+")

	// v2: change-b's trigger changes, delete-c goes, add-e comes; keep-a and
	// keep-d are the same specs.
	v2 := []events.Spec{v1[0], spec("change-b", 30*time.Second), v1[3], events.Spec{Name: "add-e", Trigger: events.Once(now.Add(2 * time.Second))}}
	res, err := planner.Apply(b.ctx, b.st, 2, v2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != store.Applied || res.Previous != 1 ||
		!equal(res.Added, "add-e") || !equal(res.Changed, "change-b") || !equal(res.Rescheduled, "change-b") || !equal(res.Removed, "delete-c") {
		t.Fatalf("apply v2: %+v", res)
	}
	after := states()
	for _, n := range []string{"keep-a", "keep-d"} {
		if after[n] != before[n] {
			t.Errorf("%s changed on reload: %+v -> %+v", n, before[n], after[n])
		}
	}
	if _, ok := after["delete-c"]; ok {
		t.Error("delete-c still has a schedule state")
	}
	if b2 := after["change-b"]; b2.Gen != before["change-b"].Gen+1 || !b2.Next.IsZero() || !b2.Since.After(before["change-b"].Since) {
		t.Errorf("change-b not rescheduled: %+v -> %+v", before["change-b"], b2)
	}
	if _, ok := after["add-e"]; !ok {
		t.Error("add-e not scheduled")
	}
	evs, _ := b.st.RangeEvents(b.ctx, "-", "+")
	var registered []string
	var reload *events.Event
	for i, e := range evs[len(eventsBefore):] {
		switch e.Type {
		case events.TypeRegistered:
			registered = append(registered, e.Task+":"+e.Change)
		case events.TypeReload:
			reload = &evs[len(eventsBefore)+i]
		}
	}
	if !equal(registered, "add-e:added", "change-b:changed", "delete-c:removed") {
		t.Errorf("registered events %v", registered)
	}
	if reload == nil || reload.Version != 2 || reload.Previous != 1 || reload.Added != 1 || reload.Changed != 1 || reload.Removed != 1 {
		t.Errorf("reload event %+v", reload)
	}

	// A v1 process started now adopts v2: it writes no task set, and plans
	// v2's tasks (add-e fires through it).
	eventsAtV2 := len(evs)
	startPlanner(t, b, planner.Config{Node: "v1-late"}, func(p *planner.Planner) {
		if err := p.Register(v1...); err != nil {
			t.Fatal(err)
		}
		p.SetVersion(1)
	})
	all := awaitEvent(t, b, 30*time.Second, events.TypeFired, func(e events.Event) bool { return e.Task == "add-e" })
	for _, e := range all[eventsAtV2:] {
		if e.Type == events.TypeReload || e.Type == events.TypeRegistered {
			t.Errorf("the v1 process wrote %+v", e)
		}
		if e.Type == events.TypeFired && e.Worker != "v1-late" {
			t.Errorf("fired by %q, want the v1 process", e.Worker)
		}
	}
	if v, _ := b.st.Version(b.ctx); v != 2 {
		t.Errorf("version %d after the v1 process started, want 2", v)
	}
	specs, _ := b.st.Specs(b.ctx)
	if len(specs) != 4 {
		t.Errorf("%d specs stored, want v2's 4", len(specs))
	}

	// Empty Redis means republish.
	if err := b.rdb.FlushAll(b.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err = planner.Apply(b.ctx, b.st, 2, v2)
	if err != nil || res.Outcome != store.Applied || len(res.Added) != 4 {
		t.Fatalf("apply after FLUSHALL: %+v, %v; want all 4 added", res, err)
	}
	if specs, _ := b.st.Specs(b.ctx); len(specs) != 4 {
		t.Errorf("%d specs after republishing, want 4", len(specs))
	}
}

func equal(got []string, want ...string) bool {
	g := append([]string(nil), got...)
	sort.Strings(g)
	sort.Strings(want)
	if len(g) != len(want) {
		return false
	}
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}
