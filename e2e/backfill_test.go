package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// taskino backfill, end to end with the binaries: a task every second has
// run a few slots; a backfill of a range from 4 s before its registration
// to its latest run fires the 4 slots before the registration (marked
// backfill in events and history) and reports the others as fired
// already; a second backfill of the same range fires nothing. Each slot of
// the range is fired and run exactly once overall.
func TestBackfillWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran.log")
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 1
tasks:
  - name: tick
    every: 1s
    exec: [sh, -c, 'echo "$TASKINO_FIRE_ID" >> %s']
`, ran))
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks}, common...)...)

	var first, last time.Time
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeCompleted && e.Task == "tick" {
				if first.IsZero() || e.At.Before(first) {
					first = e.At
				}
				if e.At.After(last) {
					last = e.At
				}
				n++
			}
		}
		return n >= 4
	})
	from := first.Add(-4 * time.Second)
	rng := []string{"backfill", "tick", "--from", from.Format(time.RFC3339Nano), "--to", last.Format(time.RFC3339Nano)}

	dry := mustCLI(t, cli, append(append(rng, "--dry-run"), common...)...)
	if !strings.Contains(dry, "to fire 4;") || !strings.Contains(dry, "a planner fired it") {
		t.Errorf("backfill --dry-run:\n%s\nwant 4 to fire and the planner's slots fired already", dry)
	}
	out := mustCLI(t, cli, append(rng, common...)...)
	if !strings.Contains(out, "fired 4;") || !strings.Contains(out, "outcomes: 4 of 4 finished (completed 4)") {
		t.Errorf("backfill:\n%s\nwant 4 fired and 4 completed", out)
	}
	again := mustCLI(t, cli, append(rng, common...)...)
	if !strings.Contains(again, "fired 0;") || !strings.Contains(again, "an earlier backfill fired it") {
		t.Errorf("a second backfill of the range:\n%s\nwant nothing fired, the backfilled slots fired already", again)
	}

	// Every slot of the range fired and ran once; the backfilled ones say so.
	all, err := b.st.RangeEvents(b.ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	fired, completed := map[int64]int{}, map[int64]int{}
	for _, e := range all {
		if e.Task != "tick" || e.At.Before(from) || e.At.After(last) {
			continue
		}
		backfilled := e.At.Before(first)
		switch e.Type {
		case events.TypeFired:
			fired[e.At.UnixMilli()]++
		case events.TypeCompleted:
			completed[e.At.UnixMilli()]++
		default:
			continue
		}
		if backfilled != (e.Origin == events.OriginBackfill) {
			t.Errorf("%s event of %s: origin %q; want backfill exactly for the slots before the registration", e.Type, e.Fire, e.Origin)
		}
	}
	for at := from; !at.After(last); at = at.Add(time.Second) {
		if fired[at.UnixMilli()] != 1 || completed[at.UnixMilli()] != 1 {
			t.Errorf("slot %s: fired %d times, completed %d; want once each", at.Format(time.RFC3339), fired[at.UnixMilli()], completed[at.UnixMilli()])
		}
	}
	runs := readRunsLines(t, ran)
	for at := from; !at.After(last); at = at.Add(time.Second) {
		if n := runs[events.FireID("tick", at)]; n != 1 {
			t.Errorf("slot %s: the command ran %d times, want 1", at.Format(time.RFC3339), n)
		}
	}
	if h := mustCLI(t, cli, append([]string{"history", "tick"}, common...)...); strings.Count(h, "completed (backfill)") != 4 {
		t.Errorf("history marks %d slots backfill, want 4:\n%s", strings.Count(h, "completed (backfill)"), h)
	}
	// A range reaching past what planners planned is refused, naming it.
	_, stderr, code := runCLI(t, cli, append([]string{"backfill", "tick", "--from", from.Format(time.RFC3339Nano), "--to", time.Now().Add(time.Hour).Format(time.RFC3339)}, common...)...)
	if code == 0 || !strings.Contains(stderr, "is the planners' to fire") {
		t.Errorf("a backfill into the future: exit %d, stderr %q; want refused, the planners' slots", code, stderr)
	}
	for _, pr := range []*proc{w, p} {
		pr.stop(t, syscall.SIGTERM)
	}
}

// readRunsLines counts the lines of a file, one fire id each.
func readRunsLines(t *testing.T, path string) map[string]int {
	t.Helper()
	out := map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		out[l]++
	}
	return out
}

// planner.Backfill paces a long range: with overlap allow and a window of
// 5, no more than 5 of its fires are ever in the queue or running at once
// (the handlers count them), and one at a time under the task's
// buffer-one. 300 daily slots of a task registered now, each run once,
// in order for buffer-one.
func TestBackfillPacesItsFires(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		name    string
		overlap events.Overlap
		window  int
		most    int64
	}{{"allow", events.OverlapAllow, 5, 5}, {"buffer-one", events.OverlapBufferOne, 0, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			task := "daily-" + tc.name
			spec := events.Spec{Name: task, Trigger: events.Cron("0 3 * * *"), Overlap: tc.overlap}
			if _, err := planner.Apply(b.ctx, b.st, time.Now().UnixNano(), []events.Spec{spec}); err != nil {
				t.Fatal(err)
			}
			var now, most atomic.Int64
			var order []string
			var mu sync.Mutex
			startWorker(t, b, consumer.Config{Node: "w-" + tc.name}, dispatcher.Config{Concurrency: 20}, map[string]dispatcher.HandlerFunc{
				task: func(ctx context.Context, f events.Fire) error {
					n := now.Add(1)
					defer now.Add(-1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					mu.Lock()
					order = append(order, f.ID)
					mu.Unlock()
					return nil
				},
			})
			to := time.Now().Add(-24 * time.Hour)
			from := to.Add(-300 * 24 * time.Hour)
			rep, err := planner.Backfill(b.ctx, b.st, task, from, to, planner.BackfillOptions{Overlap: tc.overlap, Window: tc.window})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Fired) != 300 || rep.Done != 300 || rep.Outcomes["completed"] != 300 {
				t.Fatalf("report: %d fired, %d done, %v; want 300 completed", len(rep.Fired), rep.Done, rep.Outcomes)
			}
			if m := most.Load(); m > tc.most {
				t.Errorf("%d runs at once, want at most %d", m, tc.most)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(order) != 300 {
				t.Fatalf("%d runs, want 300", len(order))
			}
			if tc.most == 1 && !slices.IsSorted(order) {
				t.Errorf("one at a time, the slots ran out of order: %v", order[:10])
			}
		})
	}
}

// Outcomes the events stream lost before the backfill read them (trimmed
// by a short events bound in a busy namespace) are found in the task's
// history: the backfill ends with every outcome, instead of waiting for
// events that are gone. A later backfill of a range before the trim is
// refused: the stream no longer says whether those slots fired.
func TestBackfillFindsTrimmedOutcomesInTheHistory(t *testing.T) {
	b := setup(t)
	task := "nightly-trimmed"
	spec := events.Spec{Name: task, Trigger: events.Cron("0 3 * * *")}
	if _, err := planner.Apply(b.ctx, b.st, time.Now().UnixNano(), []events.Spec{spec}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, b, consumer.Config{Node: "w-trimmed"}, dispatcher.Config{Concurrency: 5}, map[string]dispatcher.HandlerFunc{
		task: func(ctx context.Context, f events.Fire) error { return nil },
	})
	var once sync.Once
	hold := func(planner.BackfillReport) {
		once.Do(func() {
			// All three fires are appended: let them run, then trim every
			// event before the backfill reads one.
			awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
				n := 0
				for _, e := range all {
					if e.Type == events.TypeCompleted && e.Task == task {
						n++
					}
				}
				return n == 3
			})
			if err := b.rdb.XTrimMaxLen(b.ctx, b.st.Keys().Events(), 0).Err(); err != nil {
				t.Error(err)
			}
		})
	}
	to := time.Now().Add(-24 * time.Hour)
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	rep, err := planner.Backfill(ctx, b.st, task, to.Add(-3*24*time.Hour), to, planner.BackfillOptions{Progress: hold, Poll: 100 * time.Millisecond, HistoryEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("backfill: %v (%d of %d outcomes read); want it to find the trimmed ones in the history", err, rep.Done, len(rep.Fired))
	}
	if len(rep.Fired) != 3 || rep.Done != 3 || rep.Outcomes["completed"] != 3 {
		t.Fatalf("report: %d fired, %d done, %v; want 3 completed", len(rep.Fired), rep.Done, rep.Outcomes)
	}
	// The trimmed stream no longer says whether earlier slots fired: a
	// range before the trim is refused, naming --unchecked.
	earlier := to.Add(-10 * 24 * time.Hour)
	if _, err := planner.Backfill(ctx, b.st, task, earlier, earlier.Add(48*time.Hour), planner.BackfillOptions{}); err == nil || !strings.Contains(err.Error(), "--unchecked") {
		t.Errorf("backfill of a range the trimmed events no longer cover: %v; want it refused, naming --unchecked", err)
	}
}
