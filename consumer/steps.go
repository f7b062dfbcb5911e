package consumer

import (
	"context"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// workerSteps collects the steps of the worker protocol (store.WorkerProtocol)
// that a Consumer takes: read or reclaim a fire, begin it under its overlap
// policy, heartbeat while it runs, finish or hand it back, and the upkeep
// of the streams. They keep their promises only in that order, which is
// this package's to keep.
type workerSteps interface {
	EnsureGroup(ctx context.Context, stream string) error
	ReadFires(ctx context.Context, consumer string, streams []string, count int, block time.Duration) ([]store.Delivery, error)
	ReadBroadcast(ctx context.Context, cursors map[string]string, count int, block time.Duration) ([]store.Delivery, error)
	Reclaim(ctx context.Context, consumer, stream string, visibility time.Duration, cursor string, count int) ([]store.Delivery, string, time.Duration, error)
	FirstTrigger(ctx context.Context, d store.Delivery, missed events.Event) (bool, error)
	Begin(ctx context.Context, d store.Delivery, policy events.Overlap, ttl time.Duration, missed events.Event) (store.BeginResult, error)
	Heartbeat(ctx context.Context, consumer string, visibility time.Duration, held []store.Held, self store.Self) (store.HeartbeatResult, error)
	Leave(ctx context.Context, consumer string) error
	Finish(ctx context.Context, worker string, outs []*store.Outcome) (int, error)
	HandBack(ctx context.Context, consumer string, idle time.Duration, held []store.Held) (int, error)
	HandBacks(ctx context.Context) (handedBack <-chan struct{}, close func() error)
	Route(ctx context.Context, consumer, target string, held []store.Held) (int, error)
	PromoteRetries(ctx context.Context, max int) (int, time.Time, error)
	PruneConsumers(ctx context.Context, stream string, idle time.Duration) (int, error)
	TrimFires(ctx context.Context, stream string, keep time.Duration) (int64, error)
	TrimEvents(ctx context.Context, keep time.Duration) (int64, error)
	AppendEvent(ctx context.Context, e events.Event) error
	AppendEvents(ctx context.Context, evs []events.Event) error
	AppendStarted(ctx context.Context, evs []events.Event, runs []events.LastRun) error
	AppendOutcome(ctx context.Context, e events.Event) error
	RetainEvents(ctx context.Context) (store.Retention, error)
	Changes(ctx context.Context) ([]store.Change, error)
	WatchChanges(ctx context.Context) (notes <-chan store.ChangeNote, close func() error)
	Cancels(ctx context.Context) (cancels <-chan [2]string, close func() error)
}

// workerStore is the namespace as a Consumer uses it: the store's public
// calls (specs, versions, time, triggers) and the worker steps, under one
// name.
type workerStore struct {
	*store.Store
	workerSteps
}

func newWorkerStore(st *store.Store) workerStore {
	return workerStore{Store: st, workerSteps: store.WorkerProtocol(st)}
}
