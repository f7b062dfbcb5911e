package planner_test

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store/redistest"
)

// Register tasks with a version, run a planner, read what fired and the
// last-run times (the seed's Register / SetVersion / Start).
// (It uses the Redis at $TASKINO_REDIS, or 127.0.0.1:6379, in a namespace
// of its own that it deletes afterwards.)
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.SharedAddr()})
	defer rdb.Close()
	ns := "example-" + uuid.NewString()[:8]
	defer redistest.DeleteNamespace(rdb, ns)

	p, err := planner.New(rdb, planner.Config{Namespace: ns, Version: 1},
		events.Spec{Name: "hello", Trigger: events.Every(time.Second)},
		events.Spec{Name: "report", Trigger: events.Cron("0 30 9 * * MON-FRI").In("Europe/Paris")},
	)
	if err != nil {
		panic(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- p.Run(runCtx) }() // applies version 1, then plans

	// Follow the events stream until hello has fired twice.
	fired := 0
	for after := "0"; fired < 2; {
		es, next, err := p.Store().ReadEvents(ctx, after, 100, 5*time.Second)
		if err != nil {
			panic(err)
		}
		after = next
		for _, e := range es {
			switch e.Event.Type {
			case events.TypeReload:
				fmt.Println("reload to version", e.Event.Version)
			case events.TypeFired:
				fired++
				fmt.Println("fired", e.Event.Task)
			}
		}
	}
	stop()
	if err := <-done; err != nil {
		panic(err)
	}

	_, helloRan, _ := p.LastRunTime(ctx, "hello")
	_, reportRan, _ := p.LastRunTime(ctx, "report")
	fmt.Println("hello has a last run:", helloRan)
	fmt.Println("report has a last run:", reportRan)
	// Output:
	// reload to version 1
	// fired hello
	// fired hello
	// hello has a last run: true
	// report has a last run: false
}
