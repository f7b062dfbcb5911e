package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Run statuses kept in a LastRun.
const (
	StatusFired     = "fired"     // appended by a planner; no worker has reported yet
	StatusRunning   = "running"   // a worker started it
	StatusCompleted = "completed" // it succeeded
	StatusFailed    = "failed"    // its last attempt failed
)

// LastRun is what is known of a task's most recent fire.
type LastRun struct {
	Task string `json:"task"`
	Fire string `json:"fire"`
	// Scheduled is the slot the fire was planned for.
	Scheduled time.Time `json:"-"`
	// Fired is when the planner appended it (Redis server time).
	Fired time.Time `json:"-"`
	// Started and Finished are set by the worker that ran it.
	Started  time.Time `json:"-"`
	Finished time.Time `json:"-"`
	Status   string    `json:"status"`
	Error    string    `json:"error,omitempty"`
}

type wireLastRun struct {
	LastRun
	Scheduled int64 `json:"scheduled"`
	Fired     int64 `json:"fired,omitempty"`
	Started   int64 `json:"started,omitempty"`
	Finished  int64 `json:"finished,omitempty"`
}

func optMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromOptMs(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// MarshalLastRun encodes a last-run record in its stored form.
func MarshalLastRun(r LastRun) ([]byte, error) {
	return json.Marshal(wireLastRun{LastRun: r, Scheduled: r.Scheduled.UnixMilli(), Fired: optMs(r.Fired),
		Started: optMs(r.Started), Finished: optMs(r.Finished)})
}

// UnmarshalLastRun decodes a last-run record from its stored form.
func UnmarshalLastRun(b []byte) (LastRun, error) {
	var w wireLastRun
	if err := json.Unmarshal(b, &w); err != nil {
		return LastRun{}, fmt.Errorf("decode last run: %w", err)
	}
	r := w.LastRun
	r.Scheduled = time.UnixMilli(w.Scheduled).UTC()
	r.Fired, r.Started, r.Finished = fromOptMs(w.Fired), fromOptMs(w.Started), fromOptMs(w.Finished)
	return r, nil
}
