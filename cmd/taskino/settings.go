package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"text/tabwriter"
	"time"
)

// settingsFlags: each notGiven when not given.
type settingsFlags struct {
	maxLen, hardMaxLen int64
	hardMaxAge         time.Duration
	firesMaxBacklog    int64
	payloadMax         int64
}

// notGiven is a settings flag's default: any value a user gives, negative
// ones included, is checked.
const notGiven = math.MinInt64

func settingsFlagSet(fs *flag.FlagSet, c *cli) {
	jsonFlag(fs, c)
	fs.Int64Var(&c.settings.maxLen, "events-max-len", notGiven, "set: keep about this many events (more while a durable listener was not delivered them)")
	fs.Int64Var(&c.settings.hardMaxLen, "events-hard-max-len", notGiven, "set: never keep more events than this, delivered or not")
	fs.DurationVar(&c.settings.hardMaxAge, "events-hard-max-age", notGiven, "set: drop events older than this, delivered or not (0: none)")
	fs.Int64Var(&c.settings.firesMaxBacklog, "fires-max-backlog", notGiven, "set: at this many fires no worker has read in a queue, planners record its slots missed instead of appending more (0: no bound)")
	fs.Int64Var(&c.settings.payloadMax, "payload-max", notGiven, "set: the largest payload in bytes, 1 to 65536: task specs, triggers and fire entries over it are refused or dead-lettered")
	for _, name := range []string{"events-max-len", "events-hard-max-len", "events-hard-max-age", "fires-max-backlog", "payload-max"} {
		fs.Lookup(name).DefValue = "" // --help shows no sentinel
	}
}

// runSettings prints the namespace's settings and its durable listeners,
// after changing the settings given.
func runSettings(ctx context.Context, c *cli, args []string) error {
	if err := want("settings", args, 0, 0, "no arguments"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	st, err := c.st.Settings(ctx)
	if err != nil {
		return err
	}
	f := c.settings
	if f.maxLen != notGiven || f.hardMaxLen != notGiven || f.hardMaxAge != notGiven || f.firesMaxBacklog != notGiven || f.payloadMax != notGiven {
		if f.payloadMax != notGiven {
			st.PayloadMax = f.payloadMax
		}
		if f.firesMaxBacklog != notGiven {
			st.FiresMaxBacklog = f.firesMaxBacklog
		}
		if f.maxLen != notGiven {
			st.EventsMaxLen = f.maxLen
		}
		if f.hardMaxLen != notGiven {
			st.EventsHardMaxLen = f.hardMaxLen
		}
		if f.hardMaxAge != notGiven {
			st.EventsHardMaxAge = f.hardMaxAge
		}
		if err := st.Validate(); err != nil {
			return usagef("settings: %v", err)
		}
		if err := c.st.SetSettings(ctx, st); err != nil {
			return err
		}
	}
	groups, err := c.st.EventGroups(ctx)
	if err != nil {
		return err
	}
	if c.json {
		type groupJSON struct {
			Name          string `json:"name"`
			Behind        int64  `json:"behind"`
			Pending       int64  `json:"pending"`
			LastDelivered string `json:"last_delivered"`
		}
		out := struct {
			Namespace          string      `json:"namespace"`
			EventsMaxLen       int64       `json:"events_max_len"`
			EventsHardMaxLen   int64       `json:"events_hard_max_len"`
			EventsHardMaxAgeMs int64       `json:"events_hard_max_age_ms"`
			FiresMaxBacklog    int64       `json:"fires_max_backlog"`
			PayloadMax         int64       `json:"payload_max"`
			Listeners          []groupJSON `json:"durable_listeners"`
		}{Namespace: c.Namespace, EventsMaxLen: st.EventsMaxLen, EventsHardMaxLen: st.EventsHardMaxLen,
			EventsHardMaxAgeMs: st.EventsHardMaxAge.Milliseconds(), FiresMaxBacklog: st.FiresMaxBacklog, PayloadMax: st.PayloadMax, Listeners: []groupJSON{}}
		for _, g := range groups {
			out.Listeners = append(out.Listeners, groupJSON{g.Name, g.Behind, g.Pending, g.LastDelivered})
		}
		return printJSON(c, out)
	}
	age := "none"
	if st.EventsHardMaxAge > 0 {
		age = st.EventsHardMaxAge.String()
	}
	backlog := "none"
	if st.FiresMaxBacklog > 0 {
		backlog = fmt.Sprint(st.FiresMaxBacklog)
	}
	fmt.Fprintf(c.stdout, "namespace %q\nevents max len       %d\nevents hard max len  %d\nevents hard max age  %s\nfires max backlog    %s\npayload max          %d bytes\n",
		c.Namespace, st.EventsMaxLen, st.EventsHardMaxLen, age, backlog, st.PayloadMax)
	if len(groups) == 0 {
		fmt.Fprintln(c.stdout, "no durable listeners")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DURABLE LISTENER\tBEHIND\tPENDING\tLAST DELIVERED")
	for _, g := range groups {
		behind := fmt.Sprint(g.Behind)
		if g.Behind < 0 {
			behind = "unknown (events were trimmed past it)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", printable(g.Name), behind, g.Pending, printable(g.LastDelivered))
	}
	return tw.Flush()
}
