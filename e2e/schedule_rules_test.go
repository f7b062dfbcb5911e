package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// pause_after_failures, end to end with the binaries: a task failing every
// second with pause_after_failures: 3 is paused by the worker once its
// third slot in a row is dead-lettered, with a paused event saying why;
// no slot after the pause is planned; another task goes on; ls and
// explain say paused; resume plans it again.
func TestPauseAfterFailuresWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-planner"), buildBinary(t, "cmd/taskino-worker")
	tasks := writeFile(t, t.TempDir(), "tasks.yaml", `version: 1
tasks:
  - name: flaky
    every: 1s
    attempts: 1
    pause_after_failures: 3
    exec: [sh, -c, 'echo disk full >&2; exit 3']
  - name: steady
    every: 1s
    exec: ["true"]
`)
	common := []string{"--redis", "redis://" + b.srv.Addr + "/0", "--namespace", ns}
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", filepath.Clean(tasks)}, common...)...)

	all := awaitEvent(t, b, 60*time.Second, events.TypePaused, func(e events.Event) bool { return e.Task == "flaky" })
	var dead []events.Event
	var paused events.Event
	for _, e := range all {
		switch {
		case e.Task == "flaky" && e.Type == events.TypeDead:
			dead = append(dead, e)
		case e.Task == "flaky" && e.Type == events.TypePaused:
			paused = e
		}
	}
	if len(dead) != 3 {
		t.Errorf("%d dead letters of flaky before its pause, want 3", len(dead))
	}
	if paused.Worker != "w1" || !strings.Contains(paused.Reason, "paused after 3 slots in a row failed and were dead-lettered (pause_after_failures: 3)") ||
		!strings.Contains(paused.Reason, "exit status 3") {
		t.Errorf("paused event: worker %q, reason %q; want w1 saying why, with the last error", paused.Worker, paused.Reason)
	}
	pausedAt, _ := events.EntryTime(paused.ID)

	// Steady runs 3 more slots after the pause; flaky fires none of its
	// slots after it.
	after := awaitEvents(t, b, 30*time.Second, func(es []events.Event) bool {
		n := 0
		for _, e := range es {
			if at, _ := events.EntryTime(e.ID); e.Task == "steady" && e.Type == events.TypeCompleted && at.After(pausedAt) {
				n++
			}
		}
		return n >= 3
	})
	for _, e := range after {
		if e.Task == "flaky" && e.Type == events.TypeFired && e.At.After(pausedAt) {
			t.Errorf("flaky fired slot %s after its pause at %s", e.At, pausedAt)
		}
	}
	if out := mustCLI(t, cli, append([]string{"ls"}, common...)...); !strings.Contains(out, "paused since") {
		t.Errorf("ls after the pause:\n%s", out)
	}
	mustCLI(t, cli, append([]string{"resume", "flaky"}, common...)...)
	awaitEvent(t, b, 30*time.Second, events.TypeDead, func(e events.Event) bool {
		at, _ := events.EntryTime(e.ID)
		return e.Task == "flaky" && at.After(pausedAt.Add(time.Second))
	})
	for _, pr := range []*proc{w, p} {
		pr.stop(t, syscall.SIGTERM)
	}
	_ = fmt.Sprint
}
