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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
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
	fs.DurationVar(&m.Lookahead, "lookahead", 0, "the planners' lookahead: fires appended up to this long before their slot, held by the worker until due (burst, periodic)")
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

func (m *Main) print(rs []Result) error {
	if m.JSON {
		enc := json.NewEncoder(m.Stdout)
		for _, r := range rs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	var flow, idle []Result
	for _, r := range rs {
		if r.Mode == "idle" {
			idle = append(idle, r)
		} else {
			flow = append(flow, r)
		}
	}
	if len(flow) > 0 {
		if err := m.printFlow(flow); err != nil {
			return err
		}
	}
	if len(idle) > 0 {
		if len(flow) > 0 {
			fmt.Fprintln(m.Stdout)
		}
		return m.printIdle(idle)
	}
	return nil
}

// printFlow prints the modes that move fires or entries.
func (m *Main) printFlow(rs []Result) error {
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "mode\tn\twall\tper s\tlate p50\tp99\tmax\tdup\tmiss\tof ceiling\tlookahead\t")
	for _, r := range rs {
		late := func(v float64) string {
			if r.Mode == "ceiling" {
				return "-"
			}
			return fmt.Sprintf("%.0fms", v)
		}
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*r.Ratio)
		}
		ahead := "-"
		if r.Mode != "ceiling" {
			ahead = (time.Duration(r.LookaheadMs) * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%d\t%.2fs\t%.0f\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", r.Mode, r.N, r.WallS, r.PerSec,
			late(r.P50Ms), late(r.P99Ms), late(r.MaxMs), r.Duplicates, r.Misses, ratio, ahead)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		if len(r.SlotP99Ms) == 0 {
			continue
		}
		first := r.SlotP99Ms[:min(5, len(r.SlotP99Ms))]
		fmt.Fprintf(m.Stdout, "%s: lateness p99 by slot: worst %.0fms (slot %d of %d); first slots %s\n", r.Mode,
			r.SlotP99Ms[r.WorstSlot-1], r.WorstSlot, len(r.SlotP99Ms), msList(first))
	}
	return nil
}

// msList formats milliseconds as "12ms 30ms ...".
func msList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.0fms", x)
	}
	return strings.Join(parts, " ")
}

// printIdle prints the idle figures, then the window's commands.
func (m *Main) printIdle(rs []Result) error {
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "idle tasks\tplanners\tapply\tof it script\tfirst pass\tplanned/s\twindow\tplanner CPU\tRedis CPU\tRedis cmds/s\tmemory/task\tevents stream\tbench heap\t")
	for _, r := range rs {
		cpu := "-"
		if r.PlannerCPUPct >= 0 {
			cpu = fmt.Sprintf("%.2f%%", r.PlannerCPUPct)
		}
		fmt.Fprintf(w, "%d\t%d\t%.1fs\t%.1fs\t%.1fs\t%.0f\t%.0fs\t%s\t%.2f%%\t%.1f\t%.0f B\t%.1f MB\t%.0f MB\t\n", r.N, r.Planners, r.ApplyS, r.ApplyScriptS, r.FirstPassS,
			float64(r.N)/r.FirstPassS, r.WallS, cpu, r.RedisCPUPct, r.RedisCmdsPerS, r.MemPerTaskB, float64(r.EventsMemB)/(1<<20), r.ProcHeapMB)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		names := make([]string, 0, len(r.RedisCmds))
		for name := range r.RedisCmds {
			names = append(names, name)
		}
		slices.SortFunc(names, func(a, b string) int {
			if c := r.RedisCmds[b] - r.RedisCmds[a]; c != 0 {
				return int(c)
			}
			return strings.Compare(a, b)
		})
		parts := make([]string, len(names))
		for i, name := range names {
			parts[i] = fmt.Sprintf("%s %d", name, r.RedisCmds[name])
		}
		fmt.Fprintf(m.Stdout, "Redis commands in the %.0fs window (scripts' calls included): %s\n", r.WallS, strings.Join(parts, ", "))
	}
	return nil
}

// namespace returns a fresh namespace and a function that deletes its keys:
// SCAN and UNLINK in batches of 1,000, so a million keys take a few
// seconds and never block Redis long. While Redis answers BUSY (a script
// still running, such as an apply whose call timed out) it waits, up to
// ten minutes.
func (m *Main) namespace() (string, func()) {
	ns := "bench-" + uuid.NewString()[:8]
	return ns, func() {
		ctx := context.Background()
		pattern := "taskino:{" + ns + "}:*"
		for deadline := time.Now().Add(10 * time.Minute); ; {
			err := m.unlinkAll(ctx, pattern)
			if err == nil || !strings.HasPrefix(err.Error(), "BUSY") || time.Now().After(deadline) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (m *Main) unlinkAll(ctx context.Context, pattern string) error {
	var cursor uint64
	for {
		keys, next, err := m.rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := m.rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// ceiling moves N entries through one stream with a bare go-redis loop.
func (m *Main) ceiling(ctx context.Context) (Result, error) {
	ns, drop := m.namespace()
	defer drop()
	stream := "taskino:{" + ns + "}:ceiling"
	if err := m.rdb.XGroupCreateMkStream(ctx, stream, "g", "$").Err(); err != nil {
		return Result{}, fmt.Errorf("ceiling: %w", err)
	}
	start := time.Now()
	prod := make(chan error, 1)
	go func() {
		for i := 0; i < m.N; i += 100 {
			pipe := m.rdb.Pipeline()
			for j := i; j < min(i+100, m.N); j++ {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{events.FieldTask, "t", events.FieldAt, "1"}})
			}
			if _, err := pipe.Exec(ctx); err != nil {
				prod <- err
				return
			}
		}
		prod <- nil
	}()
	acked := 0
	for acked < m.N {
		res, err := m.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 100, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			select {
			case err := <-prod: // the producer stopped short
				if err != nil {
					return Result{}, fmt.Errorf("ceiling: %w", err)
				}
				prod <- nil
			default:
			}
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("ceiling: %w", err)
		}
		ids := make([]string, 0, 100)
		for _, msg := range res[0].Messages {
			ids = append(ids, msg.ID)
		}
		if err := m.rdb.XAck(ctx, stream, "g", ids...).Err(); err != nil {
			return Result{}, fmt.Errorf("ceiling: %w", err)
		}
		acked += len(ids)
	}
	if err := <-prod; err != nil {
		return Result{}, fmt.Errorf("ceiling: %w", err)
	}
	wall := time.Since(start)
	return Result{Mode: "ceiling", N: m.N, WallS: wall.Seconds(), PerSec: float64(m.N) / wall.Seconds()}, nil
}

// runs records each run's lateness and counts runs per fire.
type runs struct {
	mu     sync.Mutex
	bySlot map[int64][]time.Duration // lateness by scheduled time (Unix ms)
	count  map[string]int
	all    chan struct{}
	want   int
}

func (r *runs) add(f events.Fire) {
	d := time.Since(f.At)
	r.mu.Lock()
	defer r.mu.Unlock()
	at := f.At.UnixMilli()
	r.bySlot[at] = append(r.bySlot[at], d)
	r.count[f.ID]++
	if len(r.count) == r.want && r.count[f.ID] == 1 {
		close(r.all)
	}
}

// setup is what burst and periodic share: a store on ns whose events are
// not trimmed during the run, a running worker whose no-op handlers record
// want runs, and k tasks named prefix-0..k-1 with the trigger built from
// the server's time, applied.
type setup struct {
	st         *store.Store
	rs         *runs
	maxLen     int64
	stopWorker func()
}

func (m *Main) setUp(ctx context.Context, ns, prefix string, k, want int, trigger func(now time.Time) events.Trigger) (setup, error) {
	su := setup{maxLen: int64(10*want + 100_000)}
	st, err := store.New(m.rdb, ns, store.Options{EventsMaxLen: su.maxLen})
	if err != nil {
		return su, err
	}
	su.st = st
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%07d", prefix, i)
	}
	su.rs = &runs{count: make(map[string]int, want), bySlot: map[int64][]time.Duration{}, all: make(chan struct{}), want: want}
	if su.stopWorker, err = m.worker(ctx, ns, names, su.rs, su.maxLen); err != nil {
		return su, err
	}
	now, err := st.Time(ctx)
	if err == nil {
		specs := make([]events.Spec, k)
		for i := range specs {
			specs[i] = events.Spec{Name: names[i], Trigger: trigger(now)}
		}
		_, err = planner.Apply(ctx, st, 1, specs)
	}
	if err != nil {
		su.stopWorker()
		return su, fmt.Errorf("%s: apply %d tasks: %w", prefix, k, err)
	}
	return su, nil
}

// burst: N one-shot tasks due at one instant, one planner and one worker.
func (m *Main) burst(ctx context.Context) (Result, error) {
	ns, drop := m.namespace()
	defer drop()
	var due time.Time
	su, err := m.setUp(ctx, ns, "burst", m.N, m.N, func(now time.Time) events.Trigger {
		due = now.Add(m.Lead)
		return events.Once(due)
	})
	if err != nil {
		return Result{}, err
	}
	defer su.stopWorker()
	if now, err := su.st.Time(ctx); err != nil {
		return Result{}, err
	} else if now.After(due) {
		return Result{}, fmt.Errorf("burst: applying %d tasks took past their due time; raise --lead above %s", m.N, m.Lead)
	}
	stop, err := m.planners(ctx, ns, 1, su.maxLen)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	if err := m.awaitRuns(ctx, su.st, su.rs, due); err != nil {
		return Result{}, err
	}
	return m.result(su.rs, "burst", m.N, time.Since(due)), nil
}

// periodic: K tasks every second for a while, two planners and one worker.
func (m *Main) periodic(ctx context.Context) (Result, error) {
	ns, drop := m.namespace()
	defer drop()
	want := m.Tasks * int(m.For/time.Second)
	var end time.Time
	su, err := m.setUp(ctx, ns, "tick", m.Tasks, want, func(now time.Time) events.Trigger {
		start := now.Add(m.Lead).Truncate(time.Second)
		end = start.Add(m.For - time.Millisecond)
		return events.Every(time.Second).From(start).Until(end)
	})
	if err != nil {
		return Result{}, err
	}
	defer su.stopWorker()
	stop, err := m.planners(ctx, ns, 2, su.maxLen)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	if err := m.awaitRuns(ctx, su.st, su.rs, end); err != nil {
		return Result{}, err
	}
	r := m.result(su.rs, "periodic", want, m.For)
	r.Expected = want
	return r, nil
}

// worker starts a worker of ns (concurrency --concurrency) whose no-op
// handlers record their runs, and returns its stop.
func (m *Main) worker(ctx context.Context, ns string, names []string, rs *runs, maxLen int64) (func(), error) {
	hs := dispatcher.Handlers{}
	for _, n := range names {
		hs[n] = dispatcher.HandlerFunc(func(_ context.Context, f events.Fire) error { rs.add(f); return nil })
	}
	d, err := dispatcher.NewWorker(m.rdb, dispatcher.WorkerConfig{Namespace: ns, Logger: zerolog.Nop(), Concurrency: m.Concurrency,
		Stream: consumer.Config{FlushBatch: 512, EventsMaxLen: maxLen, Prefetch: m.Prefetch, NoPrefetch: m.Prefetch == 0, EarlyLimit: m.EarlyLimit}}, hs)
	if err != nil {
		return nil, err
	}
	return m.goRun(ctx, d.Run), nil
}

// planners starts --planners planners of ns (def when the flag is unset)
// and returns their stop.
func (m *Main) planners(ctx context.Context, ns string, def int, maxLen int64) (func(), error) {
	n := m.plannerCount(def)
	var stops []func()
	stopAll := func() {
		for _, stop := range stops {
			stop()
		}
	}
	for i := range n {
		p, err := planner.New(m.rdb, planner.Config{Namespace: ns, Node: fmt.Sprintf("bench-planner-%d", i+1), Logger: zerolog.Nop(),
			EventsMaxLen: maxLen, Lookahead: m.Lookahead})
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, m.goRun(ctx, p.Run))
	}
	return stopAll, nil
}

// goRun runs run until the returned stop is called, which waits for it.
func (m *Main) goRun(ctx context.Context, run func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = run(ctx); close(done) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// awaitRuns waits until every wanted fire ran and nothing is pending, or
// until 10 minutes after last (the last slot): what has not run by then
// counts as missed.
func (m *Main) awaitRuns(ctx context.Context, st *store.Store, rs *runs, last time.Time) error {
	select {
	case <-rs.all:
	case <-time.After(time.Until(last) + 10*time.Minute):
	case <-ctx.Done():
		return ctx.Err()
	}
	stream := st.Keys().Fires(events.DefaultQueue)
	for {
		pend, err := m.rdb.XPending(ctx, stream, store.WorkerGroup).Result()
		if err != nil {
			return err
		}
		if pend.Count == 0 || time.Since(last) > 10*time.Minute {
			return nil
		}
		time.Sleep(time.Millisecond) // polling Redis, in a bench only
	}
}

// quantile is the q quantile of sorted, in ms.
func quantile(sorted []time.Duration, q float64) float64 {
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
}

// result sums up the runs: n wanted over wall (a run not seen is a miss).
func (m *Main) result(r *runs, mode string, n int, wall time.Duration) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Mode: mode, N: n, WallS: wall.Seconds(), PerSec: float64(len(r.count)) / wall.Seconds(), LookaheadMs: m.Lookahead.Milliseconds()}
	var all []time.Duration
	for i, at := range slices.Sorted(maps.Keys(r.bySlot)) {
		late := r.bySlot[at]
		all = append(all, late...)
		if mode != "periodic" {
			continue
		}
		slices.Sort(late)
		p := quantile(late, 0.99)
		res.SlotP99Ms = append(res.SlotP99Ms, p)
		if res.WorstSlot == 0 || p > res.SlotP99Ms[res.WorstSlot-1] {
			res.WorstSlot = i + 1
		}
	}
	if len(all) > 0 {
		slices.Sort(all)
		res.P50Ms, res.P99Ms, res.MaxMs = quantile(all, 0.5), quantile(all, 0.99), quantile(all, 1)
	}
	for _, c := range r.count {
		res.Duplicates += c - 1
	}
	res.Misses = n - len(r.count)
	return res
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
