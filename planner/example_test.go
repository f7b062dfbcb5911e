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

// The seed's Register / SetVersion / Start, on taskino: register tasks with
// a version, run a planner, read what fired and the last-run times.
// (It uses the Redis at $TASKINO_REDIS, or 127.0.0.1:6379, in a namespace
// of its own that it deletes afterwards.)
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.SharedAddr()})
	defer rdb.Close()
	ns := "example-" + uuid.NewString()[:8]
	defer redistest.DeleteNamespace(rdb, ns)

	p, err := planner.New(rdb, planner.Config{Namespace: ns})
	if err != nil {
		panic(err)
	}
	err = p.Register(
		events.Spec{Name: "hello", Trigger: events.Every(time.Second)},
		events.Spec{Name: "report", Trigger: events.Cron("0 30 9 * * MON-FRI").In("Europe/Paris")},
	)
	if err != nil {
		panic(err)
	}
	p.SetVersion(1)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- p.Run(runCtx) }() // applies version 1, then plans

	// Follow the events stream until hello has fired twice.
	fired := 0
	for last := "0"; fired < 2; {
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{p.Store().Keys().Events(), last}, Block: 5 * time.Second}).Result()
		if err != nil {
			panic(err)
		}
		for _, m := range res[0].Messages {
			last = m.ID
			if m.Values["type"] == "reload" {
				fmt.Println("reload to version", m.Values["version"])
			}
			if m.Values["type"] == "fired" {
				fired++
				fmt.Println("fired", m.Values["task"])
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
