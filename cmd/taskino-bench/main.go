// Command taskino-bench measures taskino against a real redis-server, and
// against what Redis Streams allow on the same machine in the same run.
//
// Usage:
//
//	taskino-bench [--redis URL] [--n N] [--tasks K] [--for D] [--planners P] [--concurrency C] [--lead D] [--json] MODE...
//
// Modes:
//
//	ceiling  a bare go-redis loop moves N entries through one stream: XADD
//	         in pipelines of 100, XREADGROUP COUNT 100, XACK; entries/s from
//	         the first XADD to the last XACK. The ceiling a Redis Streams
//	         scheduler can approach.
//	periodic K tasks (--tasks, default 1,000) every second for --for (30s),
//	         two planners and one worker in this process: executions
//	         against the expected count, duplicates, misses, lateness
//	         p50/p99/max
//	burst    N one-shot tasks due at one instant, a planner and one worker
//	         (concurrency C, a no-op handler) in this process: wall time
//	         from the due instant to the last ack, fires/s, lateness (handler
//	         start minus scheduled time) p50/p99/max, duplicates, misses,
//	         and fires/s as a ratio to the ceiling measured in the same run
//	         (burst alone measures the ceiling first).
//	idle     N tasks (1,000,000 unless --n is given) none of which is due
//	         for an hour: a third every hour, a third a daily cron, a third
//	         once, their first slots spread evenly from 1h to 2h ahead.
//	         Planners (--planners, default 2) and no worker in this
//	         process. It reports the apply's time, the planners' first pass
//	         (every task is due at apply time until planned once), then,
//	         over --for: this process's CPU (the planners' idle loop) and
//	         Redis's CPU as % of one core, Redis commands per second (from
//	         INFO, less the bench's own) and which commands, and Redis
//	         memory per task (used_memory before the apply against after
//	         the first pass, over N). A fire appended is an error. The
//	         apply (one script, about 17s per million tasks on 2 cores)
//	         goes through a client of its own that waits for it and does
//	         not retry.
//
// Every mode works in a namespace of its own (bench-<random>), deleted at
// the end (SCAN and UNLINK in batches); nothing else on the server is
// touched. The server should be a dedicated one: other load skews the
// figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/planner"
)

func main() { app.Main("taskino-bench", &Main{Stdout: os.Stdout}) }

// Main is the bench program.
type Main struct {
	Stdout io.Writer

	app.Common
	N           int
	IdleN       int // the idle mode's tasks: --n when given, else 1,000,000
	Concurrency int
	Prefetch    int
	EarlyLimit  int
	Lead        time.Duration
	Tasks       int
	For         time.Duration
	Planners    int
	Lookahead   time.Duration
	CPUProfile  string
	MemProfile  string
	Trace       string
	JSON        bool
	Modes       []string

	rdb redis.UniversalClient
}

var modes = []string{"ceiling", "burst", "periodic", "idle"}

// defaultIdleN is the idle mode's task count when --n is not given.
const defaultIdleN = 1_000_000

// ParseFlags reads the command line: flags, then one or more modes.
func (m *Main) ParseFlags(args []string) error {
	fs := app.NewFlagSet("taskino-bench")
	m.Common.Register(fs)
	fs.IntVar(&m.N, "n", 100_000, "entries (ceiling) or tasks (burst, idle); idle's default is 1,000,000")
	fs.IntVar(&m.Concurrency, "concurrency", 50, "the worker's most runs at once (burst)")
	fs.IntVar(&m.Prefetch, "prefetch", 200, "fires the worker reads beyond its free runs while runs are short (0: none)")
	fs.IntVar(&m.EarlyLimit, "early-limit", 10_000, "most fires the worker holds that the planners appended ahead of their slot (--lookahead)")
	fs.DurationVar(&m.Lead, "lead", 10*time.Second, "how far ahead of applying the burst's tasks they are due (applying 100,000 takes a few seconds)")
	fs.IntVar(&m.Planners, "planners", 0, "planners in the process (default: 1 for burst, 2 for periodic and idle)")
	fs.IntVar(&m.Tasks, "tasks", 1000, "tasks every second (periodic)")
	fs.DurationVar(&m.Lookahead, "lookahead", planner.DefaultLookahead, "the planners' lookahead: fires appended up to this long before they are due, held by the worker until then (burst, periodic); 0: none")
	fs.DurationVar(&m.For, "for", 30*time.Second, "how long the periodic tasks run, or idle is measured after its first pass (whole seconds)")
	fs.StringVar(&m.CPUProfile, "cpuprofile", "", "write this process's CPU profile (planners and worker) to FILE")
	fs.StringVar(&m.Trace, "trace", "", "write this process's execution trace to FILE (go tool trace)")
	fs.StringVar(&m.MemProfile, "memprofile", "", "write this process's allocation profile to FILE at the end (go tool pprof -sample_index alloc_space)")
	fs.BoolVar(&m.JSON, "json", false, "print one JSON object per mode instead of a table")
	// Modes and flags in any order.
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(os.Stdout, "Usage: taskino-bench [flags] ceiling|burst|periodic|idle...")
				fs.SetOutput(os.Stdout)
				fs.PrintDefaults()
			}
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			rest = append(rest, args[0])
			args = args[1:]
		}
	}
	if len(rest) == 0 {
		return fmt.Errorf("name a mode: %s", strings.Join(modes, ", "))
	}
	for _, md := range rest {
		if !slices.Contains(modes, md) {
			return fmt.Errorf("mode %q: want one of %s", md, strings.Join(modes, ", "))
		}
	}
	m.Modes = rest
	if m.N < 1 {
		return fmt.Errorf("--n %d: want 1 or more", m.N)
	}
	m.IdleN = defaultIdleN
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "n" {
			m.IdleN = m.N
		}
	})
	if m.Prefetch < 0 {
		return fmt.Errorf("--prefetch %d: want 0 (none) or more", m.Prefetch)
	}
	if m.EarlyLimit < 1 {
		return fmt.Errorf("--early-limit %d: want 1 or more", m.EarlyLimit)
	}
	if m.Concurrency < 1 {
		return fmt.Errorf("--concurrency %d: want 1 or more", m.Concurrency)
	}
	if m.Lookahead < 0 || m.Lookahead > 10*time.Second {
		return fmt.Errorf("--lookahead %s: want 0 to 10s (the worker holds early fires for at most 10s)", m.Lookahead)
	}
	if m.Planners < 0 {
		return fmt.Errorf("--planners %d: want 1 or more", m.Planners)
	}
	if m.Tasks < 1 {
		return fmt.Errorf("--tasks %d: want 1 or more", m.Tasks)
	}
	if m.For < time.Second || m.For%time.Second != 0 {
		return fmt.Errorf("--for %s: want whole seconds, such as 30s", m.For)
	}
	if m.Lead <= 0 {
		return fmt.Errorf("--lead %s: want a positive duration such as 10s", m.Lead)
	}
	return m.Common.Check()
}

// Result is one mode's figures. For idle, N is the tasks, WallS the
// window (--for) and PerSec Redis commands per second over it (also in
// RedisCmdsPerS); the fields after Ratio are idle's only.
type Result struct {
	Mode       string  `json:"mode"`
	N          int     `json:"n"`
	WallS      float64 `json:"wall_s"`
	PerSec     float64 `json:"per_s"`
	P50Ms      float64 `json:"lateness_p50_ms,omitempty"`
	P99Ms      float64 `json:"lateness_p99_ms,omitempty"`
	MaxMs      float64 `json:"lateness_max_ms,omitempty"`
	Expected   int     `json:"expected,omitempty"`
	Duplicates int     `json:"duplicates"`
	Misses     int     `json:"misses"`
	Ratio      float64 `json:"ratio_to_ceiling,omitempty"`
	// LookaheadMs is the planners' lookahead (burst, periodic).
	LookaheadMs int64 `json:"lookahead_ms,omitempty"`
	// SlotP99Ms is the lateness p99 of each slot (scheduled time), in
	// order, and WorstSlot the 1-based index of the highest (periodic):
	// a run's warm-up shows here.
	SlotP99Ms []float64 `json:"slot_p99_ms,omitempty"`
	WorstSlot int       `json:"worst_slot,omitempty"`

	Planners      int     `json:"planners,omitempty"`
	ApplyS        float64 `json:"apply_s,omitempty"`         // planner.Apply of the N tasks: specs checked and encoded, sent, one script
	ApplyScriptS  float64 `json:"apply_script_s,omitempty"`  // the script's own time in Redis (INFO commandstats), which serves nothing else meanwhile
	FirstPassS    float64 `json:"first_pass_s,omitempty"`    // planners' start to every task planned
	PlannerCPUPct float64 `json:"planner_cpu_pct,omitempty"` // this process, % of one core over the window; -1 when not measured
	RedisCPUPct   float64 `json:"redis_cpu_pct,omitempty"`   // used_cpu_sys + used_cpu_user, % of one core over the window
	RedisCmdsPerS float64 `json:"redis_cmds_per_s,omitempty"`
	// RedisCmds is the window's commands by name (INFO commandstats), the
	// ones scripts call included, the bench's INFO not.
	RedisCmds   map[string]int64 `json:"redis_cmds,omitempty"`
	MemPerTaskB float64          `json:"mem_per_task_b,omitempty"`  // used_memory (less client buffers) after the first pass minus before the apply, over N
	EventsMemB  int64            `json:"events_mem_b,omitempty"`    // MEMORY USAGE of the events stream then (trimmed to its default bound)
	ProcHeapMB  float64          `json:"process_heap_mb,omitempty"` // this process's Go heap in use after the first pass, collected
}

// Run runs the modes in order and prints their figures.
func (m *Main) Run(ctx context.Context) error {
	rdb, err := m.Common.Connect(ctx)
	if err != nil {
		return err
	}
	m.rdb = rdb
	for _, rec := range []struct {
		path  string
		start func(io.Writer) error
		stop  func()
	}{{m.CPUProfile, pprof.StartCPUProfile, pprof.StopCPUProfile}, {m.Trace, trace.Start, trace.Stop}} {
		if rec.path == "" {
			continue
		}
		f, err := os.Create(rec.path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := rec.start(f); err != nil {
			return err
		}
		defer rec.stop()
	}
	if m.MemProfile != "" {
		defer func() {
			if err := writeHeapProfile(m.MemProfile); err != nil {
				fmt.Fprintln(os.Stderr, "taskino-bench: memprofile:", err)
			}
		}()
	}
	var results []Result
	var ceiling float64
	for _, md := range m.Modes {
		var r Result
		switch md {
		case "ceiling":
			r, err = m.ceiling(ctx)
			ceiling = r.PerSec
		case "burst":
			if ceiling == 0 {
				c, err := m.ceiling(ctx)
				if err != nil {
					return err
				}
				results = append(results, c)
				ceiling = c.PerSec
			}
			r, err = m.burst(ctx)
			r.Ratio = r.PerSec / ceiling
		case "periodic":
			r, err = m.periodic(ctx)
		case "idle":
			r, err = m.idle(ctx)
		}
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	return m.print(results)
}

// Close releases the Redis client.
func (m *Main) Close() {
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
}

// writeHeapProfile writes the heap profile, with every allocation since the
// start, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
