package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/store/redistest"
)

// The binaries on a Redis Cluster and behind Sentinel, through their
// --redis URL forms: a planner and a worker run a task's fires, and
// `taskino tail --json` and `taskino trigger` work, on each.
func TestBinariesOnClusterAndSentinel(t *testing.T) {
	t.Parallel()
	cli, plannerBin, workerBin := buildBinaries(t)
	nodes := redistest.StartCluster(t, 3)
	sentinel, _ := redistest.StartSentinel(t, "mymaster")
	for _, c := range []struct{ name, url string }{
		{"cluster", "redis+cluster://" + strings.Join(nodes, ",")},
		{"sentinel", "redis+sentinel://" + sentinel + "/mymaster"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tasks := writeFile(t, dir, "tasks.yaml", `version: 1
tasks:
  - name: tick
    every: 200ms
    exec: [sh, -c, 'echo tick $TASKINO_FIRE_ID']
  - name: poke
    once: 2099-01-01T00:00:00Z
    exec: [sh, -c, 'echo poked with $TASKINO_PAYLOAD']
`)
			up := []string{"--redis", c.url, "--namespace", "topo"}
			tail := startProc(t, "tail", cli, append([]string{"tail", "--json"}, up...)...)
			pl := startProc(t, "planner", plannerBin, append([]string{"--tasks", tasks, "--node", "p"}, up...)...)
			wk := startProc(t, "worker", workerBin, append([]string{"--tasks", tasks, "--node", "w"}, up...)...)
			completed := func(task string) func(string) bool {
				return func(line string) bool {
					var e map[string]any
					if err := json.Unmarshal([]byte(line), &e); err != nil {
						t.Fatalf("tail line %q: %v", line, err)
					}
					return e["type"] == "completed" && e["task"] == task && e["worker"] == "w"
				}
			}
			tail.awaitLine(t, 60*time.Second, completed("tick"))
			mustCLI(t, cli, append([]string{"trigger", "poke", "--payload", c.name}, up...)...)
			line := tail.awaitLine(t, 60*time.Second, completed("poke"))
			if !strings.Contains(line, "poked with "+c.name) {
				t.Errorf("poke's completion %s lacks its output", line)
			}
			pl.stop(t, syscall.SIGTERM)
			wk.stop(t, syscall.SIGTERM)
			tail.stop(t, syscall.SIGTERM)
		})
	}
}
