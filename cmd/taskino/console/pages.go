package console

import (
	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// The statuses a tasks list filters by: store's, and "failing" (the last
// outcome failed or was dead-lettered).
const statusFailing = "failing"

var listStatuses = []string{store.StatusRunning, statusFailing, store.StatusStuck, store.StatusPaused, store.StatusIdle, store.StatusDone}

func failing(v inspect.View) bool {
	o := v.State.Outcome
	return o != nil && (o.Status == string(events.TypeFailed) || o.Status == string(events.TypeDead))
}
