package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/store"
)

// runWorkers prints the workers registry: each worker's node, whether it
// is live, when it was last seen, its queues, version (and staleness),
// visibility timeout and the tasks it runs.
func runWorkers(ctx context.Context, c *cli, args []string) error {
	if err := want("workers", args, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	ws, err := c.st.Workers(ctx)
	if err != nil {
		return err
	}
	now, err := c.st.Time(ctx)
	if err != nil {
		return err
	}
	version, err := c.st.Version(ctx)
	if err != nil {
		return err
	}
	var queues []string
	for _, w := range ws {
		for _, q := range w.Queues {
			if !slices.Contains(queues, q) {
				queues = append(queues, q)
			}
		}
	}
	held, err := c.st.Held(ctx, queues)
	if err != nil {
		return err
	}
	planners, err := c.st.Planners(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return printWorkersJSON(c, ws, version, held, planners)
	}
	printPlanners(c, planners, now)
	if len(ws) == 0 {
		fmt.Fprintf(c.stdout, "no workers in namespace %q\n", c.Namespace)
		return nil
	}
	live := 0
	for _, w := range ws {
		if w.Live {
			live++
		}
	}
	fmt.Fprintf(c.stdout, "namespace %q, version %d, %d workers (%d live)\n", c.Namespace, version, len(ws), live)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tLIVE\tSEEN\tQUEUES\tHELD\tVERSION\tVISIBILITY\tTASKS")
	for _, w := range ws {
		alive, seen := liveSeen(w.Live, w.Seen, now)
		v := "-"
		if w.Version > 0 {
			v = strconv.FormatInt(w.Version, 10)
		}
		if w.Stale {
			v += " (stale)"
		}
		tasks := fmt.Sprintf("%d: %s", len(w.Tasks), printable(clip(strings.Join(w.Tasks, ","), 80)))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", printable(w.Node), alive, seen, printable(strings.Join(w.Queues, ",")), held[w.Node], v, w.Visibility, tasks)
	}
	return tw.Flush()
}

// liveSeen is a registry row's LIVE and SEEN columns.
func liveSeen(live bool, seen, now time.Time) (alive, when string) {
	alive, when = "no", "-"
	if live {
		alive = "yes"
	}
	if !seen.IsZero() {
		when = stamp(seen) + " (" + now.Sub(seen).Round(time.Millisecond).String() + " ago)"
	}
	return alive, when
}

// printPlanners prints the planners registry: node, live or not, last
// seen, lookahead, build.
func printPlanners(c *cli, ps []store.PlannerState, now time.Time) {
	if len(ps) == 0 {
		fmt.Fprintf(c.stdout, "no planners in namespace %q\n", c.Namespace)
		return
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLANNER\tLIVE\tSEEN\tLOOKAHEAD\tBUILD")
	for _, p := range ps {
		alive, seen := liveSeen(p.Live, p.Seen, now)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(p.Node), alive, seen, p.Lookahead, orDash(printable(p.Build)))
	}
	_ = tw.Flush()
	fmt.Fprintln(c.stdout)
}

// workerJSON is one worker in taskino workers --json.
type workerJSON struct {
	Node         string    `json:"node"`
	Live         bool      `json:"live"`
	Seen         time.Time `json:"seen"`
	Queues       []string  `json:"queues"`
	Version      int64     `json:"version"`
	Stale        bool      `json:"stale"`
	VisibilityMs int64     `json:"visibility_ms"`
	Tasks        []string  `json:"tasks"`
	// Held is how many fires it read and has not finished (running, or
	// held until their slot).
	Held int64 `json:"held"`
	// Build is the taskino version it runs ("" when it did not say).
	Build string `json:"build,omitempty"`
}

// printWorkersJSON prints the registry as one JSON object: the namespace,
// its stored version and the workers (JSON escapes what came from Redis).
func printWorkersJSON(c *cli, ws []store.WorkerState, version int64, held map[string]int64, planners []store.PlannerState) error {
	type plannerJSON struct {
		Node        string    `json:"node"`
		Live        bool      `json:"live"`
		Seen        time.Time `json:"seen"`
		LookaheadMs int64     `json:"lookahead_ms"`
		Build       string    `json:"build,omitempty"`
	}
	out := struct {
		Namespace string        `json:"namespace"`
		Version   int64         `json:"version"`
		Planners  []plannerJSON `json:"planners"`
		Workers   []workerJSON  `json:"workers"`
	}{Namespace: c.Namespace, Version: version, Workers: []workerJSON{}, Planners: []plannerJSON{}}
	for _, p := range planners {
		out.Planners = append(out.Planners, plannerJSON{p.Node, p.Live, p.Seen, p.Lookahead.Milliseconds(), p.Build})
	}
	for _, w := range ws {
		out.Workers = append(out.Workers, workerJSON{Node: w.Node, Live: w.Live, Seen: w.Seen, Queues: w.Queues, Version: w.Version,
			Stale: w.Stale, VisibilityMs: w.Visibility.Milliseconds(), Tasks: w.Tasks, Held: held[w.Node], Build: w.Build})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, string(b))
	return nil
}

// warnUnrun prints to stderr, one line per task of f, the tasks that no
// live worker in ws advertises on the task's queue: their fires wait for
// one. Every task counts, exec, http and Go alike.
func warnUnrun(c *cli, f *tasksfile.File, ws []store.WorkerState) {
	for _, t := range f.Tasks {
		sp := t.Spec.WithDefaults()
		ran := false
		for _, w := range ws {
			if w.Live && slices.Contains(w.Tasks, sp.Name) && slices.Contains(w.Queues, sp.Queue) {
				ran = true
				break
			}
		}
		if !ran {
			fmt.Fprintf(c.stderr, "taskino: warning: no live worker advertises task %s (queue %s); its fires wait until one that runs it starts\n", sp.Name, sp.Queue)
		}
	}
}

// printable is s as a terminal may show it: s itself when every rune is
// printable, else quoted with Go's escapes, so that text read from Redis
// (written by anyone who can write there) cannot move the cursor, change
// colours or break a table's columns.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
