package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The tables and JSON lines the modes print.

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
