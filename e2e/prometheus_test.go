package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeRules is the alert rules block of cmd/taskino/README.md, as it is.
func readmeRules(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "cmd", "taskino", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	const open = "```yaml\ngroups:"
	i := strings.Index(s, open)
	if i < 0 {
		t.Fatal("cmd/taskino/README.md has no alert rules block (```yaml, groups:)")
	}
	s = s[i+len("```yaml\n"):]
	return s[:strings.Index(s, "```")]
}

// lookPrometheus finds Debian's prometheus and promtool; outside CI a
// machine without them skips the test.
func lookPrometheus(t *testing.T) (prom, promtool string) {
	t.Helper()
	var err1, err2 error
	prom, err1 = exec.LookPath("prometheus")
	promtool, err2 = exec.LookPath("promtool")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus or promtool not found; .ci/run installs Debian's prometheus package")
		}
		t.Skip("prometheus and promtool not installed (apt-get install prometheus)")
	}
	return prom, promtool
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts is what Prometheus's API says of its alerts.
func alerts(t *testing.T, addr string) []promAlert {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/alerts")
	if err != nil {
		return nil // not up yet
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil // starting: "Service Unavailable" until ready
	}
	var r struct {
		Data struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/api/v1/alerts: %v", err)
	}
	return r.Data.Alerts
}

func firing(as []promAlert, name, task string) bool {
	for _, a := range as {
		if a.Labels["alertname"] == name && a.Labels["task"] == task && a.State == "firing" {
			return true
		}
	}
	return false
}

// query is the number of series a PromQL query returns.
func query(t *testing.T, addr, q string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0 // not up yet
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0 // starting: "Service Unavailable" until ready
	}
	var r struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return len(r.Data.Result)
}

// A real Prometheus (Debian's package) scrapes a planner and a worker
// binary and evaluates README's three alert rules, loaded as they are
// (promtool check rules accepts them): the dead-letters rule fires for a
// task whose runs fail, the not-succeeding rule does not fire for a task
// that succeeds, and fires for it once its worker is stopped.
func TestReadmeAlertRulesInPrometheus(t *testing.T) {
	prom, promtool := lookPrometheus(t)
	b := setup(t)
	plannerBin, workerBin := buildBinary(t, "cmd/taskino-planner"), buildBinary(t, "cmd/taskino-worker")
	dir := t.TempDir()
	rules := writeFile(t, dir, "rules.yml", readmeRules(t))
	if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS: 3 rules found") {
		t.Fatalf("promtool check rules on README's rules: %v\n%s", err, out)
	}
	tasks := writeFile(t, dir, "tasks.yaml", `version: 1
tasks:
  - name: beat
    every: 5s
    exec: ["true"]
  - name: broken
    every: 2s
    attempts: 1
    exec: [sh, -c, 'exit 1']
`)
	common := redisFlags(b)
	pAddr, wAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	p1 := startProc(t, "planner", plannerBin, append([]string{"--node", "p1", "--tasks", tasks, "--http", pAddr}, common...)...)
	w1 := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks, "--http", wAddr, "--visibility", "2s"}, common...)...)
	config := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: taskino
    static_configs:
      - targets: [%q, %q]
`, rules, pAddr, wAddr))
	pr := startProc(t, "prometheus", prom, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")

	await := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("after %s, no %s; alerts: %+v\nprometheus stderr:\n%s", limit, what, alerts(t, promAddr), pr.stderr())
			}
			time.Sleep(200 * time.Millisecond) // a poll: the condition decides
		}
	}
	await("last success of beat scraped from the planner", time.Minute, func() bool {
		return query(t, promAddr, `taskino_task_last_success_timestamp_seconds{task="beat"}`) == 1
	})
	await("TaskinoDeadLetters firing for broken", time.Minute, func() bool {
		return firing(alerts(t, promAddr), "TaskinoDeadLetters", "broken")
	})
	if as := alerts(t, promAddr); firing(as, "TaskinoScheduleNotSucceeding", "beat") {
		t.Errorf("TaskinoScheduleNotSucceeding fires for beat while it succeeds every 5s: %+v", as)
	}
	if !firing(alerts(t, promAddr), "TaskinoScheduleNotSucceeding", "broken") {
		// broken never succeeds: it is late from when it was scheduled.
		await("TaskinoScheduleNotSucceeding firing for broken, which never succeeds", time.Minute, func() bool {
			return firing(alerts(t, promAddr), "TaskinoScheduleNotSucceeding", "broken")
		})
	}
	w1.stop(t, syscall.SIGTERM)
	await("TaskinoScheduleNotSucceeding firing for beat, its worker stopped", time.Minute, func() bool {
		return firing(alerts(t, promAddr), "TaskinoScheduleNotSucceeding", "beat")
	})
	p1.stop(t, syscall.SIGTERM)
	pr.stop(t, syscall.SIGTERM)
}
