// Command taskino-planner runs a taskino planner: it plans the fires of the
// task set stored in a namespace (applied by Go programs with
// planner.Apply) and appends them to the namespace's fire streams. Run as
// many as you like, anywhere; they share the work and never fire a slot
// twice.
//
// Usage:
//
//	taskino-planner [--redis URL] [--namespace NS] [--tasks FILE] [--http ADDR]
//	                [--node NAME] [--log-level LEVEL]
//
// With --tasks it applies a tasks file at start (an older file never
// replaces a newer stored version). With --http it serves Prometheus
// /metrics and /healthz.
//
// It exits 0 after a clean stop on SIGINT or SIGTERM, and 1 with a one-line
// error when it cannot start (bad flags, unreachable Redis).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/cmd/internal/metrics"
	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/planner"
)

func main() {
	m := &Main{Stderr: os.Stderr}
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "taskino-planner:", app.OneLine(err))
		os.Exit(2)
	}
	// A signal during start-up (connecting, applying the file) is a clean
	// stop too.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := m.Run(ctx)
	stop()
	m.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskino-planner:", app.OneLine(err))
		os.Exit(1)
	}
}

// Main is the planner program: flags, wiring, lifecycle.
type Main struct {
	Stderr io.Writer

	app.Common
	TasksPath string
	HTTPAddr  string
	Node      string

	rdb redis.UniversalClient
}

// ParseFlags reads the command line, with TASKINO_REDIS and
// TASKINO_NAMESPACE as defaults.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("taskino-planner", flag.ContinueOnError)
	// Errors are printed by main, on one line; the usage only for --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	m.Common.Register(fs)
	fs.StringVar(&m.TasksPath, "tasks", app.EnvOr("TASKINO_TASKS", ""), "tasks file (YAML) to apply at start (env TASKINO_TASKS)")
	fs.StringVar(&m.HTTPAddr, "http", "", "serve Prometheus /metrics and /healthz on this address (e.g. :9090)")
	fs.StringVar(&m.Node, "node", "", "name of this planner in events and logs (default host-pid-random)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stdout, "Usage of taskino-planner:\n")
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	return m.Common.Check()
}

// Run plans until ctx ends or SIGINT or SIGTERM, then stops cleanly and
// returns nil.
func (m *Main) Run(ctx context.Context) error {
	err := m.run(ctx)
	if err != nil && ctx.Err() != nil {
		return nil // stopped while starting
	}
	return err
}

func (m *Main) run(ctx context.Context) error {
	log := m.Common.Logger(m.Stderr)
	var file *tasksfile.File
	if m.TasksPath != "" {
		var err error
		if file, err = tasksfile.Load(m.TasksPath); err != nil {
			return err
		}
	}
	var err error
	if m.rdb, err = m.Common.Connect(ctx); err != nil {
		return err
	}
	if file != nil {
		st, err := m.Common.Store(m.rdb)
		if err != nil {
			return err
		}
		res, err := app.ApplyFile(ctx, st, file, 0)
		if err != nil {
			return err
		}
		log.Info().Str("file", file.Path).Str("outcome", string(res.Outcome)).Int64("version", res.Version).Msg("tasks file applied")
	}
	cfg := planner.Config{Namespace: m.Namespace, Node: m.Node, Logger: log}
	var met *metrics.Metrics
	if m.HTTPAddr != "" {
		met = metrics.New()
		cfg.Metrics = met
	}
	p, err := planner.New(m.rdb, cfg)
	if err != nil {
		return err
	}
	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return p.Run(ctx) }, func(error) { cancel() })
	}
	if met != nil {
		srv, err := metrics.Listen(m.HTTPAddr, met.Handler(func(ctx context.Context) error { return m.rdb.Ping(ctx).Err() }))
		if err != nil {
			return fmt.Errorf("--http %q: %v", m.HTTPAddr, err)
		}
		log.Info().Str("addr", srv.Addr()).Msg("serving /metrics and /healthz")
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return srv.Run(ctx) }, func(error) { cancel() })
	}
	g.Add(run.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	// run.SignalError's As matches without filling the target; compare
	// with ErrSignal, as oklog/run advises.
	if err = g.Run(); errors.Is(err, run.ErrSignal) {
		log.Info().Str("reason", err.Error()).Msg("stopped")
		return nil
	}
	return err
}

// Close releases the Redis client.
func (m *Main) Close() {
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
}
