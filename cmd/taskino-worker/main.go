// Command taskino-worker runs the command and HTTP tasks of a tasks file:
// it reads their queues' fire streams in the workers' consumer group, runs
// each fire (one worker per fire for single tasks, every worker for
// broadcast ones), retries, dead-letters, and reclaims the fires of workers
// that stopped answering. Run as many as you like.
//
// Usage:
//
//	taskino-worker --tasks FILE [--redis URL] [--namespace NS] [--queue Q]...
//	               [--concurrency N] [--grace D] [--kill-grace D] [--visibility D] [--prefetch N] [--early-limit N]
//	               [--events-max-len N] [--events-max-age D]
//	               [--http ADDR] [--node NAME] [--log-level LEVEL]
//
// A worker runs only the commands and URLs of its own tasks file: a fire
// names a task, never a command. It applies the file at start (an older
// file never replaces a newer stored version). On SIGHUP it reads the file
// again and, if it is valid, applies it the same way and runs its commands
// and URLs from the next fire on (a run under way finishes with the old
// one; the queues read stay those it started with); a bad file is logged
// in one line and the worker goes on with the tasks it had. On SIGINT or
// SIGTERM it stops taking fires and hands back at once those read but not
// started; lets runs finish within --grace; then sends each command still
// running SIGTERM, and SIGKILL after --kill-grace, records a cancelled
// event for it and hands its fire back once nothing of its process group
// is left; and exits 0. It exits 1 with a one-line error when it cannot
// start (a Redis user that may not run a command the worker needs
// included: see README "Redis ACL"). /healthz answers 503 while Redis,
// the heartbeats or the reclaims keep failing.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/cmd/internal/metrics"
	"github.com/taskino/taskino/cmd/internal/runner"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/store"
)

func main() { app.Main("taskino-worker", &Main{Stderr: os.Stderr}) }

// Main is the worker program: flags, wiring, lifecycle.
type Main struct {
	Stderr io.Writer

	app.Common
	TasksPath   string
	Queues      app.Queues
	Concurrency int
	Grace       time.Duration
	KillGrace   time.Duration
	Visibility  time.Duration
	Prefetch    int
	EarlyLimit  int
	EventsAge   time.Duration
	HTTPAddr    string
	// HTTPTokenFile names the token /metrics and /healthz require.
	HTTPTokenFile string
	Buckets       []float64 // --metrics-buckets
	Node          string
	RedactEnv     []string // --redact-env

	rdb redis.UniversalClient
}

// ParseFlags reads the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := app.NewFlagSet("taskino-worker")
	m.Common.Register(fs)
	m.Common.RegisterEvents(fs)
	fs.StringVar(&m.TasksPath, "tasks", app.EnvOr("TASKINO_TASKS", ""), "tasks file (YAML) whose exec and http tasks this worker runs (env TASKINO_TASKS)")
	fs.Var(&m.Queues, "queue", "queue to read; repeat for several (default: the queues of the file's tasks)")
	fs.IntVar(&m.Concurrency, "concurrency", 10, "most runs at once")
	fs.DurationVar(&m.Grace, "grace", 30*time.Second, "on SIGINT/SIGTERM, how long runs may finish before they are cancelled and handed back")
	fs.DurationVar(&m.KillGrace, "kill-grace", 5*time.Second, "a command cancelled (--grace ran out, or its task's timeout) gets SIGTERM, then SIGKILL after this long")
	fs.IntVar(&m.Prefetch, "prefetch", 200, "fires read beyond the free runs while runs average under 10ms (0: none), so short runs do not each wait for a round trip")
	fs.IntVar(&m.EarlyLimit, "early-limit", 10_000, "most fires held that planners appended ahead of their slot (--lookahead); with that many, nothing new is read until some are due")
	fs.DurationVar(&m.EventsAge, "events-max-age", 0, "also trim events older than this from the events stream, every minute (0: by --events-max-len alone)")
	fs.DurationVar(&m.Visibility, "visibility", 30*time.Second, "how long a fire held by a worker that stopped answering waits before another worker takes it over (runs on a live worker are never taken away; at most 1h)")
	fs.StringVar(&m.HTTPAddr, "http", "", "serve Prometheus /metrics and /healthz on this address (:9090 binds loopback only; 0.0.0.0:9090 every interface, with --http-token-file)")
	fs.StringVar(&m.HTTPTokenFile, "http-token-file", app.EnvOr("TASKINO_HTTP_TOKEN_FILE", ""), "file holding a token /metrics and /healthz require (Authorization: Bearer TOKEN) (env TASKINO_HTTP_TOKEN_FILE)")
	fs.StringVar(&m.Node, "node", "", "name of this worker in events and logs (default host-pid-random)")
	redact := fs.String("redact-env", "", "environment variables of the worker its commands do not get, comma-separated (a trailing * for a prefix: AWS_*); TASKINO_* never reach them")
	buckets := fs.String("metrics-buckets", "", "bounds in seconds of the run duration and lateness histograms, ascending, comma-separated (default 0.005 to 86400: 5 ms to a day)")
	if err := app.Parse(fs, args); err != nil {
		return err
	}
	for _, name := range strings.Split(*redact, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !validEnvName(name) {
			return fmt.Errorf("--redact-env: %q; want variable names of letters, digits and _, comma-separated (a trailing * for a prefix)", name)
		}
		m.RedactEnv = append(m.RedactEnv, name)
	}
	if *buckets != "" {
		b, err := metrics.ParseBuckets(*buckets)
		if err != nil {
			return err
		}
		m.Buckets = b
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
	if m.KillGrace <= 0 {
		return fmt.Errorf("--kill-grace %s: want a positive duration such as 5s", m.KillGrace)
	}
	if m.Prefetch < 0 {
		return fmt.Errorf("--prefetch %d: want 0 (none) or more", m.Prefetch)
	}
	if m.EarlyLimit < 1 {
		return fmt.Errorf("--early-limit %d: want 1 or more", m.EarlyLimit)
	}
	if m.EventsAge < 0 || (m.EventsAge > 0 && m.EventsAge < time.Minute) {
		return fmt.Errorf("--events-max-age %s: want 0 (off) or a duration of 1m or more, such as 168h", m.EventsAge)
	}
	if m.Visibility < 300*time.Millisecond || m.Visibility > store.MaxVisibility {
		return fmt.Errorf("--visibility %s: want a duration from 300ms to %s, such as 30s", m.Visibility, store.MaxVisibility)
	}
	return m.Common.Check()
}

// Run works until ctx ends (SIGINT or SIGTERM), then stops cleanly and
// returns nil.
func (m *Main) Run(ctx context.Context) error {
	// SIGHUP reloads the tasks file (the worker binary alone: the others
	// keep Go's default, which ends the process). Asked for first, so one
	// during start-up waits for the worker instead of killing it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := m.Common.Logger(m.Stderr)
	rdb, file, err := m.Common.Start(ctx, log, m.TasksPath, store.RoleWorker)
	m.rdb = rdb
	if err != nil {
		return err
	}
	var met *metrics.Metrics
	if m.HTTPAddr != "" {
		met = metrics.NewWorker(m.Buckets)
	}
	cfg := app.WorkerConfig{
		Namespace: m.Namespace, Queues: m.Queues, Concurrency: m.Concurrency, Grace: m.Grace, Visibility: m.Visibility, Prefetch: m.Prefetch, NoPrefetch: m.Prefetch == 0,
		EarlyLimit: m.EarlyLimit, EventsMaxLen: m.EventsMaxLen, HistoryLen: m.HistoryLen, EventsMaxAge: m.EventsAge, Node: m.Node, Tasks: file, Logger: log, Metrics: met,
		Runner: runner.Options{KillGrace: m.KillGrace, RedactEnv: m.RedactEnv},
	}
	d, queues, err := app.NewWorker(m.rdb, cfg)
	if err != nil {
		return err
	}
	log.Info().Str("queues", strings.Join(queues, ",")).Int("concurrency", m.Concurrency).Msg("worker running")
	work := func(ctx context.Context) error {
		rctx, cancel := context.WithCancel(ctx)
		reloading := make(chan struct{})
		go func() { defer close(reloading); reloadOnHUP(rctx, log, d, cfg, m.TasksPath, hup) }()
		err := d.Run(ctx)
		cancel()
		<-reloading
		return err
	}
	return app.Group(ctx, log, work, app.HTTPServe{Addr: m.HTTPAddr, TokenFile: m.HTTPTokenFile}, met, m.rdb, app.Health(d.Store(), store.RoleWorker, d.Health))
}

// reloadOnHUP reloads the tasks file at path into d at each signal on hup
// (app.ReloadWorker), logging what it did or, on one line, why not, until
// ctx ends.
func reloadOnHUP(ctx context.Context, log zerolog.Logger, d *dispatcher.Worker, cfg app.WorkerConfig, path string, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		r, err := app.ReloadWorker(ctx, d, cfg, path)
		if err != nil {
			log.Error().Str("error", app.OneLine(err)).Str("file", path).Msg("SIGHUP: tasks file not reloaded; the worker goes on with the tasks it had")
			continue
		}
		cfg.Tasks = r.File
		log.Info().Str("file", path).Int64("version", r.File.Version).Str("outcome", string(r.Apply.Outcome)).Int64("stored_version", r.Apply.Version).
			Msg("SIGHUP: tasks file reloaded; fires started from now on run its commands")
		if len(r.Unread) > 0 {
			log.Warn().Strs("queues", r.Unread).Msg("SIGHUP: the file has tasks on queues this worker does not read (it reads those it started with); restart it to read them")
		}
	}
}

// Close releases the Redis client.
func (m *Main) Close() {
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
}

// validEnvName says whether name is a variable name (letters, digits, _;
// not starting with a digit), with an optional trailing "*".
func validEnvName(name string) bool {
	name = strings.TrimSuffix(name, "*")
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range name {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
