package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store/redistest"
)

// A Go program that embeds a worker and a planner: the planner fires the
// task, the worker runs its handler, and the last run is read back.
// (It uses the Redis at $TASKINO_REDIS, or 127.0.0.1:6379, in a namespace
// of its own that it deletes afterwards.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: redistest.SharedAddr()})
	defer rdb.Close()
	ns := "example-" + uuid.NewString()[:8]
	defer redistest.DeleteNamespace(rdb, ns)

	tasks := []events.Spec{{Name: "greet", Trigger: events.Once(time.Now().Add(time.Second)), Payload: "world"}}
	p, _ := planner.New(rdb, planner.Config{Namespace: ns, Version: 1}, tasks...)
	ran := make(chan struct{})
	w, err := dispatcher.NewWorker(rdb, dispatcher.WorkerConfig{Namespace: ns, Tasks: tasks, Concurrency: 4}, dispatcher.Handlers{
		"greet": dispatcher.HandlerFunc(func(ctx context.Context, f events.Fire) error {
			fmt.Printf("hello, %s (fire %s, attempt %d)\n", f.Payload, f.ID[:6], f.Attempt)
			close(ran)
			return nil
		}),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, stop := context.WithCancel(context.Background())
	var g run.Group
	g.Add(func() error { return p.Run(ctx) }, func(error) { stop() })
	g.Add(func() error { return w.Run(ctx) }, func(error) { stop() })
	// A real program waits for a signal instead:
	// g.Add(run.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	g.Add(func() error { <-ran; return nil }, func(error) {})
	if err := g.Run(); err != nil {
		fmt.Println(err)
	}

	last, _, _ := p.LastRun(context.Background(), "greet")
	fmt.Println("last run:", last.Status)
	// Output:
	// hello, world (fire greet@, attempt 1)
	// last run: completed
}

// A handler says what happens after its failure: SkipRetry dead-letters
// the fire at once; RetryAfter picks the next attempt's delay.
func ExampleSkipRetry() {
	charge := func(ctx context.Context, f events.Fire) error {
		if f.Payload == "" {
			return fmt.Errorf("fire %s: no order id in the payload: %w", f.ID, dispatcher.SkipRetry)
		}
		if f.Payload == "busy" {
			return dispatcher.RetryAfter(30*time.Second, errors.New("payment API: 429 Too Many Requests"))
		}
		return nil
	}
	err := charge(context.Background(), events.Fire{ID: "charge@1"})
	fmt.Println(errors.Is(err, dispatcher.SkipRetry), err)
	err = charge(context.Background(), events.Fire{ID: "charge@2", Payload: "busy"})
	fmt.Println(err)
	// Output:
	// true fire charge@1: no order id in the payload: not retried (SkipRetry)
	// payment API: 429 Too Many Requests (asked to retry in 30s)
}
