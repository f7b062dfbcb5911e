package main

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// idlePlanners is how many planners idle runs unless --planners says.
const idlePlanners = 2

// idleAhead is how far ahead of the apply the idle tasks' first slots are
// (at least): none is due during the measurement.
const idleAhead = time.Hour

// idleTasks are the idle mode's n tasks, all in the default queue: a third
// every hour, a third a daily cron (6 fields, UTC), a third once. Their first
// slots are spread evenly over the hour from first on, on whole seconds, so
// none is before first.
func idleTasks(n int, first time.Time) []events.Spec {
	specs := make([]events.Spec, n)
	for i := range specs {
		at := first.Add((time.Duration(i) * time.Hour / time.Duration(n)).Truncate(time.Second)).UTC()
		var tr events.Trigger
		switch i % 3 {
		case 0:
			tr = events.Every(time.Hour).From(at)
		case 1:
			tr = events.Cron(fmt.Sprintf("%d %d %d * * *", at.Second(), at.Minute(), at.Hour()))
		default:
			tr = events.Once(at)
		}
		specs[i] = events.Spec{Name: fmt.Sprintf("idle-%07d", i), Trigger: tr}
	}
	return specs
}

// idle: N registered tasks, none due for an hour, --planners (default 2)
// planners and no worker in this process. It measures the apply, the
// planners' first pass (every task is due at apply time until planned once),
// then, over --for, this process's CPU, Redis's CPU and commands per
// second, and Redis memory per task. A fire appended at any point is an
// error: nothing is due.
func (m *Main) idle(ctx context.Context) (Result, error) {
	ns, drop := m.namespace()
	defer drop()
	n := m.IdleN
	// The default events bound, as a deployment has: the apply's n
	// registered events are trimmed to it.
	st, err := store.New(m.rdb, ns, store.Options{})
	if err != nil {
		return Result{}, err
	}
	fires := st.Keys().Fires(events.DefaultQueue)
	if err := m.awaitLazyFree(ctx); err != nil {
		return Result{}, err
	}
	before, err := m.info(ctx, "memory")
	if err != nil {
		return Result{}, err
	}
	now, err := st.Time(ctx)
	if err != nil {
		return Result{}, err
	}
	first := now.Add(idleAhead).Truncate(time.Second).Add(time.Second)
	specs := idleTasks(n, first)
	stats0, err := m.info(ctx, "commandstats")
	if err != nil {
		return Result{}, err
	}
	// One script, about 17s per million tasks on 2 cores.
	start := time.Now()
	res, err := planner.Apply(ctx, st, 1, specs)
	if err != nil {
		return Result{}, fmt.Errorf("idle: apply %d tasks: %w", n, err)
	}
	applied := time.Since(start)
	stats1, err := m.info(ctx, "commandstats")
	if err != nil {
		return Result{}, err
	}
	if res.Outcome != store.Applied || len(res.Added) != n {
		return Result{}, fmt.Errorf("idle: apply %d tasks: %s with %d added, want applied with %d", n, res.Outcome, len(res.Added), n)
	}

	// First pass: until no task is left below its first slot (a task not
	// planned yet is due at apply time, or at the end of a planner's
	// lease on it; a planned one at its next slot, first or later).
	stop, err := m.planners(ctx, ns, idlePlanners, 0)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	start = time.Now()
	below := strconv.FormatInt(first.UnixMilli()-1, 10)
	for {
		left, err := m.rdb.ZCount(ctx, st.Keys().Due(), "-inf", below).Result()
		if err != nil {
			return Result{}, err
		}
		if left == 0 {
			break
		}
		if time.Since(start) > idleAhead/2 {
			return Result{}, fmt.Errorf("idle: %d of %d tasks not planned after %s", left, n, time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(10 * time.Millisecond): // polling Redis, in a bench only
		}
	}
	firstPass := time.Since(start)
	if got, err := m.rdb.ZCard(ctx, st.Keys().Due()).Result(); err != nil {
		return Result{}, err
	} else if got != int64(n) {
		return Result{}, fmt.Errorf("idle: %d tasks in the due index after the first pass, want %d", got, n)
	}
	if err := m.noFires(ctx, fires, "the first pass"); err != nil {
		return Result{}, err
	}

	// Settle: the first pass's garbage collected and returned to the OS
	// (so the Go scavenger is not at work in the window), Redis's lazy
	// frees done, a second for the planners to reach their idle loop.
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if err := m.awaitLazyFree(ctx); err != nil {
		return Result{}, err
	}
	after, err := m.info(ctx, "memory")
	if err != nil {
		return Result{}, err
	}
	evMem, err := m.rdb.MemoryUsage(ctx, st.Keys().Events(), 0).Result()
	if err != nil {
		return Result{}, err
	}
	time.Sleep(time.Second)

	// The window: nothing but the planners talks to Redis from this
	// process, and the only commands of ours Redis counts are the first
	// INFO (the second counts before itself).
	cpu0, cpuOK := processCPU()
	info0, err := m.info(ctx, "all")
	if err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-time.After(m.For):
	}
	info1, err := m.info(ctx, "all")
	if err != nil {
		return Result{}, err
	}
	cpu1, _ := processCPU()
	window := time.Since(t0).Seconds() // --for and two INFO calls' time

	if err := m.noFires(ctx, fires, "the window"); err != nil {
		return Result{}, err
	}
	if now, err := st.Time(ctx); err != nil {
		return Result{}, err
	} else if !now.Before(first) {
		return Result{}, fmt.Errorf("idle: the window ended at %s, after the first slot %s; the figures include planning", now.UTC().Format(time.RFC3339), first.UTC().Format(time.RFC3339))
	}

	script := stats1.commandUsec(stats0, "evalsha") + stats1.commandUsec(stats0, "eval")
	r := Result{Mode: "idle", N: n, WallS: m.For.Seconds(), ApplyS: applied.Seconds(), ApplyScriptS: float64(script) / 1e6, FirstPassS: firstPass.Seconds(),
		Planners: m.plannerCount(idlePlanners), EventsMemB: evMem, ProcHeapMB: float64(ms.HeapInuse) / (1 << 20)}
	r.PlannerCPUPct = -1
	if cpuOK {
		r.PlannerCPUPct = 100 * (cpu1 - cpu0).Seconds() / window
	}
	cmds := info1.int("total_commands_processed") - info0.int("total_commands_processed") - 1
	r.RedisCmdsPerS = float64(cmds) / window
	r.PerSec = r.RedisCmdsPerS
	r.RedisCmds = info1.commandCalls(info0)
	r.RedisCmds["info"]--
	if r.RedisCmds["info"] == 0 {
		delete(r.RedisCmds, "info")
	}
	redisCPU := info1.float("used_cpu_sys") + info1.float("used_cpu_user") - info0.float("used_cpu_sys") - info0.float("used_cpu_user")
	r.RedisCPUPct = 100 * redisCPU / window
	// used_memory less the clients' buffers, which come and go with the
	// planners' calls (and the apply's request, 265 MB for a million
	// tasks, if its connection were still open).
	mem := func(i info) int64 { return i.int("used_memory") - i.int("mem_clients_normal") }
	r.MemPerTaskB = float64(mem(after)-mem(before)) / float64(n)
	return r, nil
}

// noFires fails when the namespace's fire stream has an entry.
func (m *Main) noFires(ctx context.Context, stream, when string) error {
	got, err := m.rdb.XLen(ctx, stream).Result()
	if err != nil {
		return err
	}
	if got != 0 {
		return fmt.Errorf("idle: %d fires appended by the end of %s; no task is due for an hour", got, when)
	}
	return nil
}

// awaitLazyFree waits (up to a minute) until Redis has no object left to
// free in the background, such as the keys of a previous mode: they would
// skew memory and CPU figures.
func (m *Main) awaitLazyFree(ctx context.Context) error {
	for deadline := time.Now().Add(time.Minute); ; {
		i, err := m.info(ctx, "memory")
		if err != nil {
			return err
		}
		if i.int("lazyfree_pending_objects") == 0 || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *Main) plannerCount(def int) int {
	if m.Planners > 0 {
		return m.Planners
	}
	return def
}

// info is one INFO reply: field -> value.
type info map[string]string

func (m *Main) info(ctx context.Context, section string) (info, error) {
	s, err := m.rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("INFO %s: %w", section, err)
	}
	return parseInfo(s), nil
}

func parseInfo(s string) info {
	i := info{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			i[k] = v
		}
	}
	return i
}

func (i info) int(k string) int64 {
	v, _ := strconv.ParseInt(i[k], 10, 64)
	return v
}

func (i info) float(k string) float64 {
	v, err := strconv.ParseFloat(i[k], 64)
	if err != nil || math.IsNaN(v) {
		return 0
	}
	return v
}

// commandCalls is, per command (lower case, subcommands as "config|get"),
// how many more calls i counts than since (INFO commandstats).
func (i info) commandCalls(since info) map[string]int64 {
	out := map[string]int64{}
	for k, v := range i {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		if d := statField(v, "calls") - statField(since[k], "calls"); d != 0 {
			out[name] = d
		}
	}
	return out
}

// commandUsec is how many more microseconds i counts in command cmd than
// since (INFO commandstats).
func (i info) commandUsec(since info, cmd string) int64 {
	return statField(i["cmdstat_"+cmd], "usec") - statField(since["cmdstat_"+cmd], "usec")
}

// statField is field f of a commandstats value "calls=3,usec=20,...".
func statField(v, f string) int64 {
	for _, kv := range strings.Split(v, ",") {
		if c, ok := strings.CutPrefix(kv, f+"="); ok {
			n, _ := strconv.ParseInt(c, 10, 64)
			return n
		}
	}
	return 0
}
