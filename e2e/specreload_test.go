package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/redistest"
)

// calls is how often the bundle's Redis ran cmd.
func calls(t *testing.T, b testBundle, cmd string) int64 {
	t.Helper()
	return redistest.CommandStat(t, b.rdb, cmd, "calls")
}

// TestWorkerReadsTheTaskSetOnlyWhenItChanged: besides the wake-up of an
// apply, a worker checks the stored version every SpecCheckInterval
// (default 30s; 300ms here) and reads the whole task set (HGETALL) only
// when the version moved (an apply whose wake-up it missed), not at every
// check: for a million tasks that read is hundreds of MB.
func TestWorkerReadsTheTaskSetOnlyWhenItChanged(t *testing.T) {
	b := setup(t)
	manualTasks(t, b, events.Spec{Name: "a"})
	w := startWorker(t, b, consumer.Config{SpecCheckInterval: 300 * time.Millisecond}, dispatcher.Config{},
		map[string]dispatcher.HandlerFunc{"a": func(context.Context, events.Fire) error { return nil }})
	awaitNodesUp(t, b, w)
	// The version key is read only by these checks and the loads (no
	// planner here, and the worker runs nothing).
	awaitCheck := func(gets int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for calls(t, b, "get") <= gets {
			if time.Now().After(deadline) {
				t.Fatal("no version check within 30s")
			}
			time.Sleep(100 * time.Millisecond) // polling Redis: the check has no event
		}
	}
	reads, gets := calls(t, b, "hgetall"), calls(t, b, "get")
	if reads == 0 {
		t.Fatal("the worker did not read the task set at start")
	}
	awaitCheck(gets)
	if n := calls(t, b, "hgetall"); n != reads {
		t.Errorf("the task set was read %d times at a check with the version unchanged, want 0", n-reads)
	}
	// An apply whose wake-up it missed: the version moved, nobody published.
	if err := b.rdb.Incr(b.ctx, b.st.Keys().Version()).Err(); err != nil {
		t.Fatal(err)
	}
	gets = calls(t, b, "get")
	awaitCheck(gets)
	deadline := time.Now().Add(10 * time.Second)
	for calls(t, b, "hgetall") == reads {
		if time.Now().After(deadline) {
			t.Fatal("the task set was not read after a check found the version moved")
		}
		time.Sleep(10 * time.Millisecond) // the read follows the check
	}
}
