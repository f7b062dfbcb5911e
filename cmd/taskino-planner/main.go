// Command taskino-planner runs a taskino planner: it plans the fires of the
// task set stored in a namespace (applied by Go programs with
// planner.Apply) and appends them to the namespace's fire streams. Run as
// many as you like, anywhere; they share the work and never fire a slot
// twice.
//
// Usage:
//
//	taskino-planner [--redis URL] [--namespace NS] [--node NAME] [--log-level LEVEL]
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
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

func main() {
	m := &Main{Stderr: os.Stderr}
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "taskino-planner:", err)
		os.Exit(2)
	}
	err := m.Run(context.Background())
	m.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskino-planner:", err)
		os.Exit(1)
	}
}

// Main is the planner program: flags, wiring, lifecycle.
type Main struct {
	Stderr io.Writer

	RedisURL  string
	Namespace string
	Node      string
	LogLevel  string

	rdb *redis.Client
}

// ParseFlags reads the command line, with TASKINO_REDIS and
// TASKINO_NAMESPACE as defaults.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("taskino-planner", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.RedisURL, "redis", envOr("TASKINO_REDIS", "redis://127.0.0.1:6379/0"), "Redis URL, redis:// or rediss:// with user and password (env TASKINO_REDIS)")
	fs.StringVar(&m.Namespace, "namespace", envOr("TASKINO_NAMESPACE", store.DefaultNamespace), "namespace of the task set (env TASKINO_NAMESPACE)")
	fs.StringVar(&m.Node, "node", "", "name of this planner in events and logs (default host-pid-random)")
	fs.StringVar(&m.LogLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	return store.ValidateNamespace(m.Namespace)
}

// Run plans until SIGINT or SIGTERM, then stops cleanly and returns nil.
func (m *Main) Run(ctx context.Context) error {
	level, err := zerolog.ParseLevel(m.LogLevel)
	if err != nil || m.LogLevel == "" {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", m.LogLevel)
	}
	var out io.Writer = m.Stderr
	if f, ok := m.Stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		out = zerolog.ConsoleWriter{Out: f, TimeFormat: time.TimeOnly}
	}
	log := zerolog.New(out).Level(level).With().Timestamp().Logger()
	// go-redis logs connection failures on its own; route them to our
	// logger at debug, since the planner reports failures itself.
	redis.SetLogger(redisLogger{log.With().Str("component", "go-redis").Logger()})

	opts, err := redis.ParseURL(m.RedisURL)
	if err != nil {
		return fmt.Errorf("--redis %q: %v; want redis://[user:password@]host:port[/db]", m.RedisURL, err)
	}
	m.rdb = redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("cannot reach Redis at %s: %v", opts.Addr, err)
	}

	p, err := planner.New(m.rdb, planner.Config{Namespace: m.Namespace, Node: m.Node, Logger: log})
	if err != nil {
		return err
	}
	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return p.Run(ctx) }, func(error) { cancel() })
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

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// redisLogger sends go-redis's internal log lines to zerolog at debug level.
type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug().Msgf(format, v...)
}
