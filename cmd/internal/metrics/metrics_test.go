package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestCountsAndHealth(t *testing.T) {
	pm, wm := NewPlanner(), NewWorker(nil)
	pm.Planned(3, 1)
	pm.Missed(events.Event{Type: events.TypeMissed, Task: "a", Count: 4, Policy: events.MisfireSkip, Reason: "planned 2m late, past the 10s grace"})
	wm.Missed(events.Event{Type: events.TypeMissed, Task: "b", Count: 1, Policy: "overlap-skip", Reason: "the previous run of the task was still running"})
	wm.Ran(events.Fire{Task: "a", Attempt: 1}, 20*time.Millisecond, 90*time.Minute, nil)
	wm.Ran(events.Fire{Task: "a", Attempt: 2}, time.Hour, time.Second, errors.New("x"))
	wm.Reclaimed("s", 4)
	wm.DeadLettered("a")
	// A hook of the other role does nothing.
	pm.Ran(events.Fire{Task: "a", Attempt: 1}, 0, 0, nil)
	pm.DeadLettered("a")
	wm.Planned(5, 0)
	healthy := true
	health := func(context.Context) error {
		if healthy {
			return nil
		}
		return errors.New("connection refused")
	}
	code, planner := get(t, pm.Handler(health), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("planner /metrics: %d", code)
	}
	code, worker := get(t, wm.Handler(health), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("worker /metrics: %d", code)
	}
	for _, want := range []string{
		"taskino_fires_planned_total 3",
		`taskino_missed_slots_total{policy="skip",reason="late",task="a"} 4`,
	} {
		if !strings.Contains(planner, want) {
			t.Errorf("planner /metrics lacks %q", want)
		}
	}
	for _, want := range []string{
		`taskino_missed_slots_total{policy="overlap-skip",reason="overlap",task="b"} 1`,
		`taskino_runs_total{status="completed",task="a"} 1`,
		`taskino_runs_total{status="failed",task="a"} 1`,
		`taskino_fire_lateness_seconds_count{task="a"} 1`, // a retry's lateness is not counted
		`taskino_run_duration_seconds_bucket{task="a",le="3600"} 1`,
		`taskino_run_duration_seconds_bucket{task="a",le="7200"} 2`, // the 90-minute run has a bucket below +Inf
		"taskino_fires_reclaimed_total 4",
		`taskino_dead_letters_total{task="a"} 1`,
	} {
		if !strings.Contains(worker, want) {
			t.Errorf("worker /metrics lacks %q", want)
		}
	}
	for _, own := range []string{"taskino_runs_total", "taskino_dead_letters_total", "taskino_run_duration_seconds"} {
		if strings.Contains(planner, own) {
			t.Errorf("planner /metrics exports the worker's %s", own)
		}
	}
	if strings.Contains(worker, "taskino_fires_planned_total") {
		t.Error("worker /metrics exports the planner's taskino_fires_planned_total")
	}
	// promtool (Debian's prometheus package, which CI installs) finds
	// nothing against Prometheus's naming conventions.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found; .ci/run installs Debian's prometheus package")
		}
		t.Log("promtool not found: the lint is skipped")
	} else {
		for name, body := range map[string]string{"planner": planner, "worker": worker} {
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = strings.NewReader(body)
			if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("promtool check metrics on the %s's: %v\n%s", name, err, out)
			}
		}
	}
	h := wm.Handler(health)
	if code, body := get(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz while healthy: %d %q", code, body)
	}
	healthy = false
	if code, body := get(t, h, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Errorf("/healthz while Redis fails: %d %q, want 503 with the error", code, body)
	}
}

func TestParseBuckets(t *testing.T) {
	if b, err := ParseBuckets("0.5, 60,3600"); err != nil || len(b) != 3 || b[2] != 3600 {
		t.Errorf("ParseBuckets: %v, %v", b, err)
	}
	for _, bad := range []string{"", "1,1", "2,1", "-1", "x", "1,,2"} {
		if _, err := ParseBuckets(bad); err == nil || !strings.Contains(err.Error(), "--metrics-buckets") {
			t.Errorf("ParseBuckets(%q): %v, want an error naming the flag", bad, err)
		}
	}
}
