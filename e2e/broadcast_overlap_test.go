package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// TestBroadcastBufferOne: on one worker, a broadcast fire that comes while
// the task runs waits and runs after it, and the task keeps running later
// fires.
func TestBroadcastBufferOne(t *testing.T) {
	b := setup(t)
	runs := newRunLog()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	w := startWorker(t, b, consumer.Config{Node: "w0"}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
		"bsync": func(ctx context.Context, f events.Fire) error {
			runs.add("w0", f)
			if f.ID == "first" {
				<-release
			}
			return nil
		},
	})
	awaitNodesUp(t, b, w)
	manualTasks(t, b, events.Spec{Name: "bsync", Mode: events.ModeBroadcast, Overlap: events.OverlapBufferOne})
	if _, err := b.st.Trigger(b.ctx, "bsync", "", "first"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Fire == "first" })
	for _, id := range []string{"during", "dropped"} {
		if _, err := b.st.Trigger(b.ctx, "bsync", "", id); err != nil {
			t.Fatal(err)
		}
	}
	awaitEvent(t, b, 30*time.Second, events.TypeMissed, func(e events.Event) bool { return e.Fire == "dropped" })
	once.Do(func() { close(release) })
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "during" })
	if _, err := b.st.Trigger(b.ctx, "bsync", "", "after"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "after" })
	w.stop(t)
	got, _ := runs.snapshot()
	if len(got) != 3 || got["first"] != 1 || got["during"] != 1 || got["after"] != 1 {
		t.Errorf("runs %v, want first, during and after once each", got)
	}
}

// TestBroadcastRunsOnEveryWorker: each broadcast fire runs once on each of
// three workers.
func TestBroadcastRunsOnEveryWorker(t *testing.T) {
	b := setup(t)
	runs := newRunLog()
	var ws []*runningWorker
	for w := range 3 {
		node := fmt.Sprintf("w%d", w)
		ws = append(ws, startWorker(t, b, consumer.Config{Node: node}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
			"refresh-cache": func(ctx context.Context, f events.Fire) error { runs.add(node, f); return nil },
		}))
	}
	awaitNodesUp(t, b, ws...)
	now, err := b.st.Time(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := now.Add(300 * time.Millisecond).Truncate(time.Millisecond)
	spec := events.Spec{Name: "refresh-cache", Mode: events.ModeBroadcast,
		Trigger: events.Every(200 * time.Millisecond).From(start).Until(start.Add(time.Second))}
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{spec}); err != nil {
		t.Fatal(err)
	}
	startPlanner(t, b, planner.Config{}, nil)
	if _, err := b.st.Trigger(b.ctx, "refresh-cache", "", "by-hand"); err != nil {
		t.Fatal(err)
	}
	const fires = 7 // the slots start, +200ms ... +1s, and one by hand
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		c := countEvents(all, events.TypeCompleted)
		if len(c) < fires {
			return false
		}
		for _, n := range c {
			if n < 3 {
				return false
			}
		}
		return true
	})
	for _, w := range ws {
		w.stop(t)
	}
	all = append(all, mustRange(t, b, nextID(all))...)
	got, by := runs.snapshot()
	if len(got) != fires {
		t.Errorf("%d broadcast fires ran, want %d: %v", len(got), fires, got)
	}
	for id, n := range got {
		seen := map[string]int{}
		for _, w := range by[id] {
			seen[w]++
		}
		if n != 3 || len(seen) != 3 {
			t.Errorf("broadcast fire %s ran %d times on %v, want once on each of 3 workers", id, n, seen)
		}
	}
	for id, n := range countEvents(all, events.TypeCompleted) {
		if n != 3 {
			t.Errorf("broadcast fire %s has %d completed events, want 3", id, n)
		}
	}
}

// TestOverlapSkipAcrossWorkers: a task slower than its period, with overlap
// skip, never runs twice at once across three workers; the fires that come
// while it runs are recorded missed.
func TestOverlapSkipAcrossWorkers(t *testing.T) {
	b := setup(t)
	var running, maxRunning, runs atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	h := func(ctx context.Context, f events.Fire) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		runs.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	var ws []*runningWorker
	for w := range 3 {
		ws = append(ws, startWorker(t, b, consumer.Config{Node: fmt.Sprintf("w%d", w)}, dispatcher.Config{},
			map[string]dispatcher.HandlerFunc{"slow": h}))
	}
	awaitNodesUp(t, b, ws...)
	manualTasks(t, b, events.Spec{Name: "slow", Overlap: events.OverlapSkip})
	// The first fire runs and holds; the next five come while it runs.
	if _, err := b.st.Trigger(b.ctx, "slow", "", "first"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Fire == "first" })
	for i := range 5 {
		if _, err := b.st.Trigger(b.ctx, "slow", "", fmt.Sprintf("during-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeMissed)) == 5 })
	releaseAll()
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "first" })
	// Free again: the next fire runs.
	if _, err := b.st.Trigger(b.ctx, "slow", "", "after"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == "after" })
	for _, w := range ws {
		w.stop(t)
	}
	if m := maxRunning.Load(); m != 1 {
		t.Errorf("up to %d runs of the task at once, want 1", m)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("%d runs, want 2 (the first and the one after)", n)
	}
	for _, e := range ofType(all, events.TypeMissed) {
		if !strings.HasPrefix(e.Fire, "during-") || e.Policy != "overlap-skip" {
			t.Errorf("missed event %+v, want one per fire during the run, policy overlap-skip", e)
		}
	}
	assertNothingPending(t, b, "default")
	if err := b.rdb.Get(b.ctx, b.st.Keys().Running("slow")).Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("the running mark is still set after the runs ended (err %v)", err)
	}
}

// TestOverlapBufferOneAcrossWorkers: with buffer-one, fires that come while
// the task runs on any worker keep one waiting (the first of them) and drop
// the rest as missed; the waiting one runs when the run ends.
func TestOverlapBufferOneAcrossWorkers(t *testing.T) {
	b := setup(t)
	var running, maxRunning atomic.Int32
	runs := newRunLog()
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	var ws []*runningWorker
	for w := range 3 {
		node := fmt.Sprintf("w%d", w)
		ws = append(ws, startWorker(t, b, consumer.Config{Node: node}, dispatcher.Config{}, map[string]dispatcher.HandlerFunc{
			"sync": func(ctx context.Context, f events.Fire) error {
				if n := running.Add(1); n > maxRunning.Load() {
					maxRunning.Store(n)
				}
				defer running.Add(-1)
				runs.add(node, f)
				if f.ID == "first" {
					<-release
				}
				return nil
			},
		}))
	}
	awaitNodesUp(t, b, ws...)
	manualTasks(t, b, events.Spec{Name: "sync", Overlap: events.OverlapBufferOne})
	if _, err := b.st.Trigger(b.ctx, "sync", "", "first"); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeStarted, func(e events.Event) bool { return e.Fire == "first" })
	for i := range 3 {
		if _, err := b.st.Trigger(b.ctx, "sync", "", fmt.Sprintf("during-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool { return len(ofType(all, events.TypeMissed)) == 2 })
	// The three reached different workers at once: whichever began first
	// took the buffer; the other two were dropped.
	missed := map[string]bool{}
	for _, e := range ofType(all, events.TypeMissed) {
		missed[e.Fire] = e.Policy == "overlap-buffer-one"
	}
	kept := ""
	for i := range 3 {
		if id := fmt.Sprintf("during-%d", i); !missed[id] {
			kept = id
		}
	}
	if len(missed) != 2 || kept == "" {
		t.Fatalf("missed %v, want two of during-0..2 under overlap-buffer-one", missed)
	}
	releaseAll()
	all = awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Fire == kept })
	for _, w := range ws {
		w.stop(t)
	}
	all = append(all, mustRange(t, b, nextID(all))...)
	got, _ := runs.snapshot()
	if len(got) != 2 || got["first"] != 1 || got[kept] != 1 {
		t.Errorf("runs %v, want first and %s (the buffered one) once each", got, kept)
	}
	for _, e := range ofType(all, events.TypeMissed) {
		if !missed[e.Fire] {
			t.Errorf("missed event %+v after the release, want none", e)
		}
	}
	for _, e := range ofType(all, events.TypeStarted) {
		if e.Fire == kept && e.ID < ofType(all, events.TypeCompleted)[0].ID {
			t.Errorf("the buffered fire %s started before the running one completed", kept)
		}
	}
	if m := maxRunning.Load(); m != 1 {
		t.Errorf("up to %d runs at once, want 1", m)
	}
	assertNothingPending(t, b, "default")
}
