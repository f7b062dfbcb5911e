package consumer

import (
	"fmt"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

func fireAt(task string, at time.Time) *store.Delivery {
	return &store.Delivery{Fire: events.Fire{ID: events.FireID(task, at), Task: task, At: at, Attempt: 1}}
}

// TestEarlyHoldKeepsFiresDueWithinItsWindow: a fire due within the
// window is held; one due now or before, due later than the window, or
// read before the first clock measure is not; with no window none is.
func TestEarlyHoldKeepsFiresDueWithinItsWindow(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	e := &earlyHold{window: 10 * time.Second, limit: 100}
	for _, tc := range []struct {
		in   time.Duration
		now  time.Time
		held bool
	}{{time.Second, now, true}, {10 * time.Second, now, true}, {0, now, false}, {-time.Second, now, false},
		{11 * time.Second, now, false}, {time.Second, time.Time{}, false}} {
		if got := e.hold(fireAt("t", now.Add(tc.in)), tc.now); got != tc.held {
			t.Errorf("fire due in %s (now %s): held %v, want %v", tc.in, tc.now, got, tc.held)
		}
	}
	// Appended at or after its slot (a manual trigger, a retry): not early,
	// though the measured clock, behind the server's, says it is.
	for _, appended := range []time.Duration{0, time.Millisecond, time.Hour} {
		d := fireAt("t", now.Add(5*time.Millisecond))
		d.EntryID = fmt.Sprintf("%d-0", now.Add(5*time.Millisecond+appended).UnixMilli())
		if e.hold(d, now) {
			t.Errorf("a fire appended %s after its slot was held as early", appended)
		}
	}
	// Appended before it (a planner's lookahead): held.
	ahead := fireAt("t", now.Add(time.Second))
	ahead.EntryID = fmt.Sprintf("%d-3", now.UnixMilli())
	if !e.hold(ahead, now) {
		t.Error("a fire appended a second before its slot was not held")
	}
	off := &earlyHold{limit: 100}
	if off.hold(fireAt("t", now.Add(time.Second)), now) {
		t.Error("a hold with no window held a fire")
	}
}

// TestEarlyHoldReleasesSoonestFirst: held fires come out in the order
// they are due, only once due; the limit says when the hold is full.
func TestEarlyHoldReleasesSoonestFirst(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	e := &earlyHold{window: time.Minute, limit: 3}
	for _, s := range []int{3, 1, 2} {
		if !e.hold(fireAt("t", now.Add(time.Duration(s)*time.Second)), now) {
			t.Fatalf("fire due in %ds not held", s)
		}
	}
	if !e.full() {
		t.Error("3 fires held with a limit of 3, yet not full")
	}
	if at, ok := e.next(); !ok || !at.Equal(now.Add(time.Second)) {
		t.Errorf("next due %s (%v), want the soonest, in 1s", at, ok)
	}
	if _, ok := e.popDue(now.Add(999 * time.Millisecond)); ok {
		t.Error("a fire came out before it was due")
	}
	var got []time.Duration
	for {
		d, ok := e.popDue(now.Add(2 * time.Second))
		if !ok {
			break
		}
		got = append(got, d.Fire.At.Sub(now))
	}
	if len(got) != 2 || got[0] != time.Second || got[1] != 2*time.Second {
		t.Errorf("due by 2s: %v, want 1s then 2s", got)
	}
	if !e.dueBy(now.Add(3*time.Second)) || e.dueBy(now.Add(2*time.Second)) || e.full() {
		t.Errorf("after two came out: dueBy(3s) %v, dueBy(2s) %v, full %v; want true, false, false",
			e.dueBy(now.Add(3*time.Second)), e.dueBy(now.Add(2*time.Second)), e.full())
	}
}

// TestEarlyHoldKeepsJitteredFiresUntilDue: a jittered fire appended ahead
// of its due time is held until then, though its slot has passed, and
// comes out after a fire due before it whose slot is later.
func TestEarlyHoldKeepsJitteredFiresUntilDue(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	e := &earlyHold{window: time.Minute, limit: 10}
	jittered := fireAt("j", now.Add(-time.Second))
	jittered.Fire.Due = now.Add(3 * time.Second)
	jittered.EntryID = fmt.Sprintf("%d-0", now.UnixMilli())
	if !e.hold(jittered, now) {
		t.Fatal("a jittered fire appended before its due time was not held")
	}
	plain := fireAt("p", now.Add(2*time.Second))
	if !e.hold(plain, now) {
		t.Fatal("a fire due in 2s was not held")
	}
	if d, ok := e.popDue(now.Add(2500 * time.Millisecond)); !ok || d.Fire.Task != "p" {
		t.Fatalf("at +2.5s popDue = %v, %v; want the fire due at +2s", d, ok)
	}
	if _, ok := e.popDue(now.Add(2999 * time.Millisecond)); ok {
		t.Fatal("the jittered fire came out before its due time")
	}
	if d, ok := e.popDue(now.Add(3 * time.Second)); !ok || d.Fire.Task != "j" {
		t.Fatalf("at +3s popDue = %v, %v; want the jittered fire", d, ok)
	}
}

// TestEarlyHoldOverdue: overdue takes the single-mode fires due before the
// time given, soonest first, and leaves broadcast ones and those due later.
func TestEarlyHoldOverdue(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	e := &earlyHold{window: time.Minute, limit: 10}
	for i, task := range []string{"a", "b", "c", "d"} {
		d := fireAt(task, now.Add(time.Duration(i+1)*time.Second))
		d.Broadcast = task == "b"
		if !e.hold(d, now) {
			t.Fatalf("%s not held", task)
		}
	}
	got := e.overdue(now.Add(3500 * time.Millisecond))
	if len(got) != 2 || got[0].Fire.Task != "a" || got[1].Fire.Task != "c" {
		t.Fatalf("overdue = %v; want a and c", got)
	}
	if e.len() != 2 {
		t.Fatalf("%d held after, want b (broadcast) and d (not overdue)", e.len())
	}
}
