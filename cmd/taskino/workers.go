package main

import (
	"context"
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
	fmt.Fprintln(tw, "NODE\tLIVE\tSEEN\tQUEUES\tVERSION\tVISIBILITY\tTASKS")
	for _, w := range ws {
		alive := "no"
		if w.Live {
			alive = "yes"
		}
		seen := "-"
		if !w.Seen.IsZero() {
			seen = stamp(w.Seen) + " (" + now.Sub(w.Seen).Round(time.Millisecond).String() + " ago)"
		}
		v := "-"
		if w.Version > 0 {
			v = strconv.FormatInt(w.Version, 10)
		}
		if w.Stale {
			v += " (stale)"
		}
		tasks := fmt.Sprintf("%d: %s", len(w.Tasks), printable(clip(strings.Join(w.Tasks, ","), 80)))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(w.Node), alive, seen, printable(strings.Join(w.Queues, ",")), v, w.Visibility, tasks)
	}
	return tw.Flush()
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
