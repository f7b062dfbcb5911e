package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
	m := New()
	m.Planned(3, 1)
	m.Ran(events.Fire{Task: "a", Attempt: 1}, 20*time.Millisecond, time.Second, nil)
	m.Ran(events.Fire{Task: "a", Attempt: 2}, time.Hour, time.Second, errors.New("x"))
	m.Reclaimed("s", 4)
	m.DeadLettered("a")
	healthy := true
	h := m.Handler(func(context.Context) error {
		if healthy {
			return nil
		}
		return errors.New("connection refused")
	})
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"taskino_fires_planned_total 3",
		"taskino_missed_events_total 1",
		`taskino_runs_total{status="completed",task="a"} 1`,
		`taskino_runs_total{status="failed",task="a"} 1`,
		"taskino_fire_lateness_seconds_count 1", // a retry's lateness is not counted
		"taskino_fires_reclaimed_total 4",
		"taskino_dead_letters_total 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz while healthy: %d %q", code, body)
	}
	healthy = false
	if code, body := get(t, h, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Errorf("/healthz while Redis fails: %d %q, want 503 with the error", code, body)
	}
}
