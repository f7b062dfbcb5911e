package e2e

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/taskino/taskino/store/redistest"
)

// taskino-bench runs its ceiling, burst, periodic and idle modes against a
// real server (small sizes) and reports what it measured: every fire ran
// once, none was missed, and the burst's rate is put against the ceiling's;
// idle's figures are all there (the mode itself fails on a fire). It leaves
// no key behind.
func TestBenchCommand(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	bin := buildBinary(t, "cmd/taskino-bench")
	out, errOut, code := runCLI(t, bin, "--redis", "redis://"+srv.Addr+"/0", "--n", "2000", "--tasks", "100", "--for", "3s", "--lead", "3s", "--json", "ceiling", "burst", "periodic", "idle")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	type result struct {
		Mode       string    `json:"mode"`
		N          int       `json:"n"`
		PerSec     float64   `json:"per_s"`
		P99Ms      float64   `json:"lateness_p99_ms"`
		MaxMs      float64   `json:"lateness_max_ms"`
		Duplicates int       `json:"duplicates"`
		Misses     int       `json:"misses"`
		Expected   int       `json:"expected"`
		Ratio      float64   `json:"ratio_to_ceiling"`
		SlotP99Ms  []float64 `json:"slot_p99_ms"`
		WorstSlot  int       `json:"worst_slot"`

		Planners      int              `json:"planners"`
		WallS         float64          `json:"wall_s"`
		ApplyS        float64          `json:"apply_s"`
		ApplyScriptS  float64          `json:"apply_script_s"`
		FirstPassS    float64          `json:"first_pass_s"`
		PlannerCPUPct float64          `json:"planner_cpu_pct"`
		RedisCPUPct   float64          `json:"redis_cpu_pct"`
		RedisCmdsPerS float64          `json:"redis_cmds_per_s"`
		RedisCmds     map[string]int64 `json:"redis_cmds"`
		MemPerTaskB   float64          `json:"mem_per_task_b"`
		EventsMemB    int64            `json:"events_mem_b"`
	}
	var rs []result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	if len(rs) != 4 || rs[0].Mode != "ceiling" || rs[1].Mode != "burst" || rs[2].Mode != "periodic" || rs[3].Mode != "idle" {
		t.Fatalf("results %+v, want ceiling, burst, periodic, idle", rs)
	}
	if p := rs[2]; p.Expected != 300 || p.N != 300 || p.Duplicates != 0 || p.Misses != 0 || p.P99Ms <= 0 {
		t.Errorf("periodic, 100 tasks for 3s: %+v, want 300 runs, none twice, none missed", p)
	}
	if p := rs[2]; len(p.SlotP99Ms) != 3 || p.WorstSlot < 1 || p.WorstSlot > 3 || slices.Max(p.SlotP99Ms) != p.SlotP99Ms[p.WorstSlot-1] ||
		slices.Max(p.SlotP99Ms) > p.MaxMs {
		t.Errorf("periodic slots: p99 %v, worst %d; want one p99 per second, the worst the highest", p.SlotP99Ms, p.WorstSlot)
	}
	c, b := rs[0], rs[1]
	if c.N != 2000 || c.PerSec <= 0 || b.N != 2000 || b.PerSec <= 0 || b.P99Ms <= 0 {
		t.Errorf("figures missing: %+v", rs)
	}
	if b.Duplicates != 0 || b.Misses != 0 {
		t.Errorf("burst: %d duplicates, %d misses, want none", b.Duplicates, b.Misses)
	}
	if b.Ratio <= 0 || b.Ratio != b.PerSec/c.PerSec {
		t.Errorf("burst ratio %v, want its rate over the ceiling's (%v / %v)", b.Ratio, b.PerSec, c.PerSec)
	}
	// Idle: 2,000 tasks (--n), two planners, a 3s window. Redis counts at
	// least the planners' claims (scripts), and the bench's own INFO not.
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	i := rs[3]
	if i.N != 2000 || i.Planners != 2 || i.WallS != 3 || !(i.ApplyS > 0) || !(i.ApplyScriptS > 0) || !(i.FirstPassS > 0) {
		t.Errorf("idle: %+v, want 2000 tasks, 2 planners, a 3s window, the apply and first pass timed", i)
	}
	if !(i.RedisCmdsPerS > 0) || !finite(i.RedisCmdsPerS) || i.RedisCmds["evalsha"] == 0 || i.RedisCmds["info"] != 0 {
		t.Errorf("idle: %v Redis commands/s, by name %v; want some, the planners' claims (evalsha) among them, no INFO", i.RedisCmdsPerS, i.RedisCmds)
	}
	if i.PlannerCPUPct < 0 || !finite(i.PlannerCPUPct) || i.RedisCPUPct < 0 || !finite(i.RedisCPUPct) {
		t.Errorf("idle: planner CPU %v%%, Redis CPU %v%%, want measured", i.PlannerCPUPct, i.RedisCPUPct)
	}
	if !(i.MemPerTaskB > 0) || !finite(i.MemPerTaskB) || i.EventsMemB <= 0 {
		t.Errorf("idle: %v bytes per task, events stream %d bytes; want both above 0", i.MemPerTaskB, i.EventsMemB)
	}

	// Without --json, idle prints its own table and the window's commands.
	out, errOut, code = runCLI(t, bin, "--redis", "redis://"+srv.Addr+"/0", "--n", "200", "--for", "1s", "idle")
	if code != 0 || !strings.Contains(out, "planner CPU") || !strings.Contains(out, "Redis cmds/s") || !strings.Contains(out, "Redis commands in the 1s window") {
		t.Errorf("idle table: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if keys, err := srv.Client(t).Keys(t.Context(), "taskino:*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("keys left behind: %v (%v)", keys, err)
	}

	// A wrong mode is bad usage, named.
	_, errOut, code = runCLI(t, bin, "--redis", "redis://"+srv.Addr+"/0", "fastest")
	if code != 2 || !strings.Contains(errOut, `mode "fastest"`) {
		t.Errorf("unknown mode: exit %d, %q", code, errOut)
	}
}
