// Command taskino-worker runs the command and HTTP tasks of a tasks file:
// it reads their queues' fire streams in the workers' consumer group, runs
// each fire (one worker per fire for single tasks, every worker for
// broadcast ones), retries, dead-letters, and reclaims the fires of workers
// that stopped answering. Run as many as you like.
//
// Usage:
//
//	taskino-worker --tasks FILE [--redis URL] [--namespace NS] [--queue Q]...
//	               [--concurrency N] [--grace D] [--http ADDR] [--node NAME] [--log-level LEVEL]
//
// A worker runs only the commands and URLs of its own tasks file: a fire
// names a task, never a command. It applies the file at start (an older
// file never replaces a newer stored version). On SIGINT or SIGTERM it
// stops taking fires, lets runs finish within --grace, hands back the rest
// and exits 0; it exits 1 with a one-line error when it cannot start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/cmd/internal/metrics"
	"github.com/taskino/taskino/cmd/internal/tasksfile"
)

func main() {
	m := &Main{Stderr: os.Stderr}
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "taskino-worker:", app.OneLine(err))
		os.Exit(2)
	}
	// A signal during start-up (connecting, applying the file) is a clean
	// stop too.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := m.Run(ctx)
	stop()
	m.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskino-worker:", app.OneLine(err))
		os.Exit(1)
	}
}

// Main is the worker program: flags, wiring, lifecycle.
type Main struct {
	Stderr io.Writer

	app.Common
	TasksPath   string
	Queues      app.Queues
	Concurrency int
	Grace       time.Duration
	HTTPAddr    string
	Node        string

	rdb redis.UniversalClient
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("taskino-worker", flag.ContinueOnError)
	// Errors are printed by main, on one line; the usage only for --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	m.Common.Register(fs)
	fs.StringVar(&m.TasksPath, "tasks", app.EnvOr("TASKINO_TASKS", ""), "tasks file (YAML) whose exec and http tasks this worker runs (env TASKINO_TASKS)")
	fs.Var(&m.Queues, "queue", "queue to read; repeat for several (default: the queues of the file's tasks)")
	fs.IntVar(&m.Concurrency, "concurrency", 10, "most runs at once")
	fs.DurationVar(&m.Grace, "grace", 30*time.Second, "on SIGINT/SIGTERM, how long runs may finish before they are cancelled and handed back")
	fs.StringVar(&m.HTTPAddr, "http", "", "serve Prometheus /metrics and /healthz on this address (e.g. :9090)")
	fs.StringVar(&m.Node, "node", "", "name of this worker in events and logs (default host-pid-random)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stdout, "Usage of taskino-worker:\n")
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	if m.TasksPath == "" {
		return errors.New("--tasks FILE is required: the worker runs the exec and http tasks of that file")
	}
	if m.Concurrency < 1 {
		return fmt.Errorf("--concurrency %d: want 1 or more", m.Concurrency)
	}
	if m.Grace <= 0 {
		return fmt.Errorf("--grace %s: want a positive duration such as 30s", m.Grace)
	}
	return m.Common.Check()
}

// Run works until ctx ends or SIGINT or SIGTERM, then stops cleanly and
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
	file, err := tasksfile.Load(m.TasksPath)
	if err != nil {
		return err
	}
	if m.rdb, err = m.Common.Connect(ctx); err != nil {
		return err
	}
	st, err := m.Common.Store(m.rdb)
	if err != nil {
		return err
	}
	res, err := app.ApplyFile(ctx, st, file, 0)
	if err != nil {
		return err
	}
	log.Info().Str("file", file.Path).Str("outcome", string(res.Outcome)).Int64("version", res.Version).Msg("tasks file applied")

	var met *metrics.Metrics
	if m.HTTPAddr != "" {
		met = metrics.New()
	}
	d, queues, err := app.NewWorker(m.rdb, app.WorkerConfig{
		Namespace: m.Namespace, Queues: m.Queues, Concurrency: m.Concurrency, Grace: m.Grace,
		Node: m.Node, Tasks: file, Logger: log, Metrics: met,
	})
	if err != nil {
		return err
	}

	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return d.Run(ctx) }, func(error) { cancel() })
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
	log.Info().Str("queues", strings.Join(queues, ",")).Int("concurrency", m.Concurrency).Msg("worker running")
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
