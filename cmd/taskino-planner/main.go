// Command taskino-planner runs a taskino planner: it plans the fires of the
// task set stored in a namespace (applied by Go programs with
// planner.Apply) and appends them to the namespace's fire streams. Run as
// many as you like, anywhere; they share the work and never fire a slot
// twice.
//
// Usage:
//
//	taskino-planner [--redis URL] [--namespace NS] [--tasks FILE] [--http ADDR]
//	                [--node NAME] [--lookahead D] [--log-level LEVEL]
//
// With --tasks it applies a tasks file at start (an older file never
// replaces a newer stored version). With --http it serves Prometheus
// /metrics and /healthz. It appends fires up to --lookahead (default 1.5s,
// at most 10s; 0 for none) before they are due; workers hold them until
// then, and record missed (policy stale) a fire whose task was paused,
// changed or removed after it was appended.
//
// It exits 0 after a clean stop on SIGINT or SIGTERM, and 1 with a one-line
// error when it cannot start (bad flags, unreachable Redis, a Redis user
// that may not run a command the planner needs: see README "Redis ACL").
// /healthz answers 503 while Redis or the planning rounds keep failing.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/cmd/internal/metrics"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

func main() { app.Main("taskino-planner", &Main{Stderr: os.Stderr}) }

// Main is the planner program: flags, wiring, lifecycle.
type Main struct {
	Stderr io.Writer

	app.Common
	TasksPath string
	HTTPAddr  string
	// HTTPTokenFile names the token /metrics and /healthz require.
	HTTPTokenFile string
	Node          string
	Lookahead     time.Duration

	rdb redis.UniversalClient
}

// ParseFlags reads the command line, with TASKINO_REDIS and
// TASKINO_NAMESPACE as defaults.
func (m *Main) ParseFlags(args []string) error {
	fs := app.NewFlagSet("taskino-planner")
	m.Common.Register(fs)
	m.Common.RegisterEvents(fs)
	fs.StringVar(&m.TasksPath, "tasks", app.EnvOr("TASKINO_TASKS", ""), "tasks file (YAML) to apply at start (env TASKINO_TASKS)")
	fs.StringVar(&m.HTTPAddr, "http", "", "serve Prometheus /metrics and /healthz on this address (:9090 binds loopback only; 0.0.0.0:9090 every interface, with --http-token-file)")
	fs.StringVar(&m.HTTPTokenFile, "http-token-file", app.EnvOr("TASKINO_HTTP_TOKEN_FILE", ""), "file holding a token /metrics and /healthz require (Authorization: Bearer TOKEN) (env TASKINO_HTTP_TOKEN_FILE)")
	fs.StringVar(&m.Node, "node", "", "name of this planner in events and logs (default host-pid-random)")
	fs.DurationVar(&m.Lookahead, "lookahead", planner.DefaultLookahead, "append fires up to this long before they are due (workers hold them until then, and drop one whose task was paused, changed or removed after it was appended); 0: append each once due")
	if err := app.Parse(fs, args); err != nil {
		return err
	}
	if m.Lookahead < 0 || m.Lookahead > 10*time.Second {
		return fmt.Errorf("--lookahead %s: want 0 to 10s (workers hold early fires for at most 10s)", m.Lookahead)
	}
	return m.Common.Check()
}

// Run plans until ctx ends (SIGINT or SIGTERM), then stops cleanly and
// returns nil.
func (m *Main) Run(ctx context.Context) error {
	log := m.Common.Logger(m.Stderr)
	var err error
	if m.rdb, _, err = m.Common.Start(ctx, log, m.TasksPath, store.RolePlanner); err != nil {
		return err
	}
	cfg := planner.Config{Namespace: m.Namespace, Node: m.Node, Logger: log, Lookahead: m.Lookahead, NoLookahead: m.Lookahead == 0,
		EventsMaxLen: m.EventsMaxLen, HistoryLen: m.HistoryLen}
	var met *metrics.Metrics
	if m.HTTPAddr != "" {
		met = metrics.NewPlanner()
		cfg.Metrics = met
	}
	p, err := planner.New(m.rdb, cfg)
	if err != nil {
		return err
	}
	if met != nil {
		met.WatchTasks(p.Store())
	}
	return app.Group(ctx, log, p.Run, app.HTTPServe{Addr: m.HTTPAddr, TokenFile: m.HTTPTokenFile}, met, m.rdb, app.Health(p.Store(), store.RolePlanner, p.Health))
}

// Close releases the Redis client.
func (m *Main) Close() {
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
}
