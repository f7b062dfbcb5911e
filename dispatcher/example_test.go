package dispatcher_test

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
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

	p, _ := planner.New(rdb, planner.Config{Namespace: ns})
	_ = p.Register(events.Spec{Name: "greet", Trigger: events.Once(time.Now().Add(time.Second)), Payload: "world"})
	p.SetVersion(1)

	c, _ := consumer.New(rdb, consumer.Config{Namespace: ns, Queues: []string{"default"}})
	w := dispatcher.New(c, dispatcher.Config{Concurrency: 4})
	ran := make(chan struct{})
	_ = w.HandleFunc("greet", func(ctx context.Context, f events.Fire) error {
		fmt.Printf("hello, %s (fire %s, attempt %d)\n", f.Payload, f.ID[:6], f.Attempt)
		close(ran)
		return nil
	})

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
