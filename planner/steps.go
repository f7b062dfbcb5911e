package planner

import (
	"context"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// planningSteps collects the steps of the planning protocol
// (store.PlanningProtocol) that a Planner takes: claim due tasks, then plan
// or release each claim before its lease ends. They keep their promises
// only in that order, which is this package's to keep.
type planningSteps interface {
	Claim(ctx context.Context, token string, lease time.Duration, max int, deadline time.Time, lookahead time.Duration) (store.Claim, error)
	Plan(ctx context.Context, token string, plans []store.TaskPlan, lookahead time.Duration) (store.PlanResult, error)
	Release(ctx context.Context, token string, names []string) (int, error)
	AppendEvent(ctx context.Context, e events.Event) error
	RetainEvents(ctx context.Context) (store.Retention, error)
	Seen(ctx context.Context, st store.PlannerAdvert) error
	Leave(ctx context.Context, node string) error
}

// planningStore is the namespace as a Planner uses it: the store's public
// calls (apply, time, wake-ups, last runs) and the planning steps, under
// one name.
type planningStore struct {
	*store.Store
	planningSteps
}

func newPlanningStore(st *store.Store) planningStore {
	return planningStore{Store: st, planningSteps: store.PlanningProtocol(st)}
}
