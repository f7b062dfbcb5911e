package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// WorkerState is what a worker publishes of itself with its heartbeats,
// for operators (taskino workers) and tools (taskino apply's check that
// some live worker runs each task): what it is, what it reads, what it can
// run and whether its task set is behind the namespace's.
type WorkerState struct {
	// Node is the worker's name in the group and in events.
	Node string `json:"node"`
	// Queues are the queues it reads.
	Queues []string `json:"queues"`
	// Tasks are the tasks it has handlers for, sorted.
	Tasks []string `json:"tasks"`
	// Version is the task-set version its handlers are of (a tasks file's
	// version, or the version a Go program registers); 0 when it did not
	// say.
	Version int64 `json:"version"`
	// Visibility is its visibility timeout.
	Visibility time.Duration `json:"-"`
	// Stale is true when Version is older than the namespace's stored
	// version: its handlers may run definitions that changed since.
	Stale bool `json:"stale"`
	// Build is the taskino version it was built with (Build); empty for
	// a worker older than this field.
	Build string `json:"build,omitempty"`
}

type wireWorkerState struct {
	WorkerState
	VisibilityMs int64 `json:"visibility_ms"`
}

// MarshalWorkerState encodes s as JSON (the visibility timeout in ms, as
// "visibility_ms").
func MarshalWorkerState(s WorkerState) ([]byte, error) {
	return json.Marshal(wireWorkerState{WorkerState: s, VisibilityMs: s.Visibility.Milliseconds()})
}

// UnmarshalWorkerState decodes what MarshalWorkerState wrote. It refuses
// a record without a node, or with a negative visibility timeout or
// version.
func UnmarshalWorkerState(b []byte) (WorkerState, error) {
	var w wireWorkerState
	if err := json.Unmarshal(b, &w); err != nil {
		return WorkerState{}, fmt.Errorf("decode worker state: %w", err)
	}
	s := w.WorkerState
	switch {
	case s.Node == "":
		return WorkerState{}, fmt.Errorf("decode worker state: no node")
	case w.VisibilityMs < 0 || w.VisibilityMs > int64(time.Duration(1<<62)/time.Millisecond):
		return WorkerState{}, fmt.Errorf("decode worker state of %q: visibility_ms %d out of range", s.Node, w.VisibilityMs)
	case s.Version < 0:
		return WorkerState{}, fmt.Errorf("decode worker state of %q: version %d is negative", s.Node, s.Version)
	}
	s.Visibility = time.Duration(w.VisibilityMs) * time.Millisecond
	return s, nil
}
