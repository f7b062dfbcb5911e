package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/cmd/internal/redisurl"
	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/cmd/taskino/console"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// exampleTasks is the tasks file dev runs when given none.
//
//go:embed example-tasks.yaml
var exampleTasks []byte

func devFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.tasks, "tasks", "", "tasks file to run (default: the example shipped with taskino)")
	fs.BoolVar(&c.json, "json", false, "print events as JSON lines")
	fs.StringVar(&c.web.addr, "http", "127.0.0.1:8080", "where to serve the web console (loopback only; another free port when this one is taken; off: none)")
}

// runDev runs a planner, a worker and a tail in this process, on an
// embedded in-memory Redis unless --redis was given, until SIGINT/SIGTERM.
func runDev(ctx context.Context, c *cli, args []string) error {
	if err := want("dev", args, 0, 0, "no arguments (the tasks file goes in --tasks)"); err != nil {
		return err
	}
	var file *tasksfile.File
	var err error
	if c.tasks != "" {
		file, err = tasksfile.Load(c.tasks)
	} else {
		file, err = tasksfile.Parse("example-tasks.yaml", exampleTasks)
	}
	if err != nil {
		return err
	}
	if !c.logLevelSet {
		c.LogLevel = "warn" // the events are the show; logs only when something is wrong
	}
	log := c.Common.Logger(c.stderr)

	var later []string // printed after the console's URL
	if c.embedded {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start the embedded Redis: %v", err)
		}
		defer mr.Close()
		stopClock := realTimeTTLs(mr)
		defer stopClock()
		c.RedisURL = "redis://" + mr.Addr()
		later = append(later, fmt.Sprintf("taskino dev: embedded in-memory Redis at %s (gone when dev stops; --redis URL to use a real one)", mr.Addr()),
			fmt.Sprintf("taskino dev: in another terminal: taskino --redis %s trigger %s", c.RedisURL, firstTask(file)))
	}
	if c.web.addr != "off" && !console.Loopback(c.web.addr) {
		return usagef("dev: --http %q: dev serves the console on a loopback address only (taskino web serves it further, with a token)", c.web.addr)
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	if c.web.addr != "off" {
		cfg, err := c.consoleConfig()
		if err != nil {
			return err
		}
		url, stop, err := startConsole(cfg, c.web.addr)
		if err != nil {
			host, _, _ := net.SplitHostPort(c.web.addr)
			url, stop, err = startConsole(cfg, net.JoinHostPort(host, "0"))
		}
		if err != nil {
			return err
		}
		defer stop()
		fmt.Fprintf(c.stderr, "taskino dev: web console at %s\n", url)
	}
	for _, l := range later {
		fmt.Fprintln(c.stderr, l)
	}
	if !c.embedded {
		// The embedded Redis has no users; a real one may refuse the
		// planner or the worker a command they need.
		for _, role := range []store.Role{store.RolePlanner, store.RoleWorker} {
			if err := app.CheckACL(ctx, log, c.st, role); err != nil {
				return err
			}
		}
		fmt.Fprintf(c.stderr, "taskino dev: on the Redis at %s, namespace %q: its workers of queue default share fires with this one\n", redisurl.Addr(c.RedisURL), c.Namespace)
	}
	from, err := c.st.LastEntryID(ctx, c.st.Keys().Events())
	if err != nil {
		return err
	}
	if file.Version == 0 {
		file.Version = 1
	}
	res, err := app.ApplyFile(ctx, c.st, file, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "taskino dev: %s: version %d %s, %d tasks; Ctrl-C stops\n", file.Path, res.Version, res.Outcome, len(file.Tasks))

	p, err := planner.New(c.rdb, planner.Config{Namespace: c.Namespace, Node: "dev-planner", Logger: log, EventsMaxLen: c.EventsMaxLen, HistoryLen: c.HistoryLen})
	if err != nil {
		return err
	}
	d, _, err := app.NewWorker(c.rdb, app.WorkerConfig{Namespace: c.Namespace, Node: "dev-worker", Tasks: file, Logger: log, Grace: 5 * time.Second,
		EventsMaxLen: c.EventsMaxLen, HistoryLen: c.HistoryLen})
	if err != nil {
		return err
	}
	// Planner and worker stop on SIGINT/SIGTERM (ctx); the tail goes on
	// until it has printed what they wrote on the way out.
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pcancel()
	done := make(chan error, 2)
	go func() { done <- p.Run(pctx) }()
	go func() { done <- d.Run(pctx) }()
	drain := make(chan struct{})
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- tail(context.WithoutCancel(ctx), c.st, from, func(events.Event) bool { return true }, newPrinter(c.stdout, c.json), drain)
	}()
	var firstErr error
	running := 2
	select {
	case <-ctx.Done():
	case firstErr = <-done:
		running--
	case firstErr = <-tailDone:
		pcancel()
		<-done
		<-done
		return firstErr
	}
	pcancel()
	for ; running > 0; running-- {
		if err := <-done; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	close(drain)
	if err := <-tailDone; err != nil && firstErr == nil {
		firstErr = err
	}
	fmt.Fprintln(c.stderr, "taskino dev: stopped")
	return firstErr
}

// realTimeTTLs makes the embedded Redis's key expiry follow the real
// clock (miniredis only moves it when told), and returns its stop.
func realTimeTTLs(mr *miniredis.Miniredis) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() { close(done) }
}

func firstTask(f *tasksfile.File) string {
	for _, t := range f.Tasks {
		return t.Spec.Name
	}
	return "NAME"
}
