package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// dryRunApply prints what applying f at version would change, from the
// stored task set, writing nothing: the outcome, the tasks added, changed
// (rescheduled or not) and removed, with the next fire of each added or
// rescheduled one, and the tasks no live worker advertises. It fails as
// the apply would (an older version, or the stored one with other tasks),
// so a CI check by dry run fails where the apply would.
func dryRunApply(ctx context.Context, c *cli, f *tasksfile.File, version int64) error {
	version, err := app.FileVersion(f, version)
	if err != nil {
		return err
	}
	stored, err := c.st.Version(ctx)
	if err != nil {
		return err
	}
	old, err := c.st.Specs(ctx)
	if err != nil {
		return err
	}
	now, err := c.st.Time(ctx)
	if err != nil {
		return err
	}
	byName := make(map[string]events.Spec, len(old))
	for _, s := range old {
		byName[s.Name] = s
	}
	var added, changed, removed []string
	resched := map[string]bool{}
	inFile := map[string]bool{}
	for _, s := range f.Specs() {
		inFile[s.Name] = true
		prev, ok := byName[s.Name]
		if !ok {
			added = append(added, s.Name)
			continue
		}
		a, errA := events.MarshalSpec(prev)
		b, errB := events.MarshalSpec(s)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			changed = append(changed, s.Name)
			resched[s.Name] = events.ScheduleKey(prev) != events.ScheduleKey(s)
		}
	}
	for name := range byName {
		if !inFile[name] {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	same := len(added)+len(changed)+len(removed) == 0
	switch {
	case stored > version:
		return fmt.Errorf("dry run: version %d would not be applied: version %d is stored; apply a higher version", version, stored)
	case stored == version && same:
		fmt.Fprintf(c.stdout, "dry run: version %d is already applied with these %d tasks; nothing would change\n", version, len(f.Tasks))
		return nil
	case stored == version:
		return fmt.Errorf("dry run: version %d is stored with other tasks: applying would be refused; raise the version", version)
	case stored == 0:
		fmt.Fprintf(c.stdout, "dry run: would apply version %d (%d tasks); nothing written\n", version, len(f.Tasks))
	default:
		fmt.Fprintf(c.stdout, "dry run: would apply version %d over %d (%d tasks); nothing written\n", version, stored, len(f.Tasks))
	}
	specs := map[string]events.Spec{}
	for _, s := range f.Specs() {
		specs[s.Name] = s
	}
	next := func(name string) string {
		sched, err := planner.Compile(specs[name].Trigger)
		if err != nil {
			return ""
		}
		_, loc, err := zoneOf(specs[name].Trigger.TZ)
		if err != nil {
			return ""
		}
		first, ok := sched.Next(now.Add(-time.Millisecond))
		if !ok {
			return " (no slot left)"
		}
		return " (next fire " + inspect.NextFire(specs[name], first).In(loc).Format("2006-01-02 15:04:05.000 MST") + ")"
	}
	for _, n := range added {
		fmt.Fprintf(c.stdout, "  + %s%s\n", printable(n), next(n))
	}
	for _, n := range changed {
		if resched[n] {
			fmt.Fprintf(c.stdout, "  ~ %s (rescheduled)%s\n", printable(n), next(n))
		} else {
			fmt.Fprintf(c.stdout, "  ~ %s\n", printable(n))
		}
	}
	for _, n := range removed {
		fmt.Fprintf(c.stdout, "  - %s\n", printable(n))
	}
	if ws, err := c.st.Workers(ctx); err == nil {
		warnUnrun(c, f, ws)
	}
	return nil
}
