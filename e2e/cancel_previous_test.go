package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
)

// overlap: cancel-previous, end to end with the binaries: a task every 2s
// whose command runs 6s, on two workers. Each new fire cancels the run
// under way, on whichever worker has it: that run's command (a process
// group: the shell and its sleep) is stopped before it ends, its slot is
// recorded cancelled, final (reason: replaced by the new fire), never
// retried, and its entry acked; the new fire runs.
func TestCancelPreviousWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "runs.log")
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 1
tasks:
  - name: slow
    every: 2s
    overlap: cancel-previous
    exec: [sh, -c, 'sleep 6 & echo "start $TASKINO_FIRE_ID $!" >> %[1]s; wait; echo "end $TASKINO_FIRE_ID" >> %[1]s']
`, log))
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w1 := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks}, common...)...)
	w2 := startProc(t, "worker", workerBin, append([]string{"--node", "w2", "--tasks", tasks}, common...)...)

	// Four runs replaced.
	all := awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeCancelled && e.Task == "slow" {
				n++
			}
		}
		return n >= 4
	})
	started := map[string]events.Event{}
	for _, e := range all {
		if e.Type == events.TypeStarted {
			started[e.Fire] = e
		}
	}
	workers := map[string]bool{}
	var cancelled []events.Event
	for _, e := range all {
		switch e.Type {
		case events.TypeCancelled:
			cancelled = append(cancelled, e)
			workers[e.Worker] = true
			by := events.FireID("slow", e.At.Add(2*time.Second))
			if e.Reason != "replaced by fire "+by+" (overlap: cancel-previous)" {
				t.Errorf("cancelled %s: reason %q; want replaced by fire %s", e.Fire, e.Reason, by)
			}
			if _, ok := started[by]; !ok {
				t.Errorf("%s replaced %s but did not start", by, e.Fire)
			}
		case events.TypeRetried, events.TypeFailed, events.TypeDead:
			t.Errorf("%s event for %s: a replaced run is not a failure", e.Type, e.Fire)
		}
	}
	if len(workers) < 2 {
		t.Logf("replaced runs were on %v only (two workers run; which takes a fire is theirs to decide)", workers)
	}
	// No replaced run's command reached its end, and each one's sleep
	// (its process group) is gone.
	text, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cancelled {
		if strings.Contains(string(text), "end "+c.Fire+"\n") {
			t.Errorf("the replaced run of %s ran to its end", c.Fire)
		}
		for _, l := range strings.Split(string(text), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "start" && f[1] == c.Fire {
				pid, _ := strconv.Atoi(f[2])
				if pid > 0 && syscall.Kill(pid, 0) == nil {
					t.Errorf("the sleep of the replaced run of %s (pid %d) is still alive", c.Fire, pid)
				}
			}
		}
	}
	// Each replaced fire's entry is acked: nothing older than the newest
	// started fire is pending.
	pend, err := b.rdb.XPendingExt(b.ctx, &redis.XPendingExtArgs{Stream: b.st.Keys().Fires("default"), Group: "workers", Start: "-", End: "+", Count: 100}).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cancelled {
		for _, pe := range pend {
			if id, _ := events.EntryTime(pe.ID); !id.After(c.At) && pe.ID != "" {
				t.Errorf("entry %s (of a slot at or before the replaced %s) still pending", pe.ID, c.Fire)
			}
		}
	}
	for _, pr := range []*proc{w1, w2, p} {
		pr.stop(t, syscall.SIGTERM)
	}
}
