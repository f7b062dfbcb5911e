// Command embed runs three tasks, their planner, worker and a durable listener in one program.
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/listeners"
	"github.com/taskino/taskino/planner"
)

func main() {
	tasks := []events.Spec{
		{Name: "tick", Trigger: events.Every(time.Second)},
		{Name: "report", Trigger: events.Cron("0 30 9 * * MON-FRI").In("Europe/Paris")},
		{Name: "cleanup", Trigger: events.Every(time.Hour), Attempts: 1},
	}
	say := dispatcher.HandlerFunc(func(ctx context.Context, f events.Fire) error { fmt.Println("running", f.ID); return nil })
	audit := listeners.CompleteFunc(func(ctx context.Context, e events.Event) { fmt.Println("completed", e.Fire) })
	rdb := redis.NewClient(&redis.Options{Addr: cmp.Or(os.Getenv("REDIS_ADDR"), "127.0.0.1:6379")})
	defer rdb.Close()
	p, err1 := planner.New(rdb, planner.Config{Namespace: "shop", Version: 1}, tasks...) // bump Version when tasks change
	w, err2 := dispatcher.NewWorker(rdb, dispatcher.WorkerConfig{Namespace: "shop", Tasks: tasks},
		dispatcher.Handlers{"tick": say, "report": say, "cleanup": say})
	l, err3 := listeners.New(rdb, listeners.Config{Namespace: "shop", Durable: "audit"}, audit) // durable: misses nothing
	if err := cmp.Or(err1, err2, err3); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var g run.Group // each part returns nil once ctx ends (a signal); one that fails stops the others
	for _, part := range []func(context.Context) error{p.Run, w.Run, l.Run} {
		g.Add(func() error { return part(ctx) }, func(error) { stop() })
	}
	if err := g.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
