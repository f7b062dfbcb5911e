package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

func tailFlags(fs *flag.FlagSet, c *cli) {
	fs.BoolVar(&c.json, "json", false, "one JSON object per line instead of text for people")
	fs.StringVar(&c.task, "task", "", "only events of this task")
	fs.StringVar(&c.typ, "type", "", "only events of these types, comma-separated (fired, started, completed, failed, retried, dead, missed, ...)")
	fs.StringVar(&c.since, "since", "", "start at an entry id (exclusive; 0 for the oldest kept) or a duration ago (5m), instead of now")
	fs.BoolVar(&c.noFollow, "no-follow", false, "stop at the last event stored when tail started, instead of waiting for more (with --since)")
}

func runTail(ctx context.Context, c *cli, args []string) error {
	if err := want("tail", args, 0, 0, "no arguments"); err != nil {
		return err
	}
	filter, err := c.tailFilter()
	if err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	from, err := c.tailStart(ctx)
	if err != nil {
		return err
	}
	if c.noFollow {
		if c.since == "" {
			return usagef("tail: --no-follow needs --since (an entry id, 0 for the oldest kept, or a duration such as 5m): without it there is nothing to print")
		}
		last, err := c.st.LastEntryID(ctx, c.st.Keys().Events())
		if err != nil {
			return err
		}
		if last == "" {
			return nil // nothing stored
		}
		ctx, stop := context.WithCancel(ctx)
		defer stop()
		return tail(ctx, c.st, from, func(e events.Event) bool {
			if !store.LessID(last, e.ID) {
				return filter(e)
			}
			stop() // past the end: print nothing more
			return false
		}, newPrinter(c.stdout, c.json), closedChan)
	}
	return tail(ctx, c.st, from, filter, newPrinter(c.stdout, c.json), nil)
}

// closedChan makes tail read what is stored without waiting (its drain).
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

var entryIDForm = regexp.MustCompile(`^\d+(-\d+)?$`)

// tailStart is the entry id tail reads after.
func (c *cli) tailStart(ctx context.Context) (string, error) {
	switch {
	case c.since == "":
		return "$", nil
	case entryIDForm.MatchString(c.since):
		return c.since, nil
	}
	d, err := time.ParseDuration(c.since)
	if err != nil || d < 0 {
		return "", usagef("tail: --since %q: want an entry id such as 1700000000000-0 (or 0) or a duration such as 5m", c.since)
	}
	now, err := c.st.Time(ctx)
	if err != nil {
		return "", err
	}
	ms := now.Add(-d).UnixMilli() - 1
	if ms < 0 {
		return "0", nil // further back than the epoch: everything kept
	}
	// Just before the first entry of the millisecond now - d.
	return fmt.Sprintf("%d-18446744073709551615", ms), nil
}

// tailFilter is what --task and --type keep.
func (c *cli) tailFilter() (func(e events.Event) bool, error) {
	types := map[events.Type]bool{}
	if c.typ != "" {
		for _, t := range strings.Split(c.typ, ",") {
			t = strings.TrimSpace(t)
			if !events.Type(t).Known() {
				return nil, usagef("tail: --type %q: want event types such as fired, started, completed, failed, retried, dead, missed, reload", t)
			}
			types[events.Type(t)] = true
		}
	}
	return func(e events.Event) bool {
		return (c.task == "" || e.Task == c.task) && (len(types) == 0 || types[e.Type])
	}, nil
}

// tail prints the events after from that keep passes, until ctx ends, or
// until drain is closed and every event appended before that is printed
// (nil drain: never); then it returns nil.
func tail(ctx context.Context, st *store.Store, from string, keep func(events.Event) bool, p *printer, drain <-chan struct{}) error {
	after := from
	block := time.Second
	for ctx.Err() == nil {
		select {
		case <-drain:
			block = 0
		default:
		}
		es, next, err := st.ReadEvents(ctx, after, 1000, block)
		after = next
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read events: %v", err)
		}
		for _, e := range es {
			if e.Err != nil {
				p.bad(e.ID, e.Err)
				continue
			}
			if keep(e.Event) {
				p.print(e.Event)
			}
		}
		if block == 0 && len(es) == 0 {
			return nil
		}
	}
	return nil
}

// printer writes events as text for people (coloured on a terminal) or as
// JSON lines.
type printer struct {
	w     io.Writer
	json  bool
	color bool
	now   func() time.Time // the day an entry's time is shown without its date
}

func newPrinter(w io.Writer, asJSON bool) *printer {
	color := false
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) && os.Getenv("NO_COLOR") == "" {
		color = true
	}
	return &printer{w: w, json: asJSON, color: color, now: time.Now}
}

var typeColor = map[events.Type]string{
	events.TypeFired:     "36", // cyan
	events.TypeStarted:   "34", // blue
	events.TypeCompleted: "32", // green
	events.TypeFailed:    "31", // red
	events.TypeCancelled: "33",
	events.TypeStuck:     "1;33",
	events.TypeRetried:   "33", // yellow
	events.TypeDead:      "1;31",
	events.TypeMissed:    "33",
	events.TypeReload:    "1",
	events.TypePaused:    "35",
	events.TypeResumed:   "35",
}

func (p *printer) bad(id string, err error) {
	if p.json {
		b, _ := json.Marshal(map[string]string{"id": id, "error": "undecodable event: " + err.Error()})
		fmt.Fprintln(p.w, string(b))
		return
	}
	fmt.Fprintf(p.w, "%s undecodable event %s: %v\n", clock(entryTime(id), p.now()), id, err)
}

func (p *printer) print(e events.Event) {
	if p.json {
		b, err := json.Marshal(jsonEvent(e))
		if err != nil {
			p.bad(e.ID, err)
			return
		}
		fmt.Fprintln(p.w, string(b))
		return
	}
	typ := fmt.Sprintf("%-10s", e.Type)
	if c, ok := typeColor[e.Type]; ok && p.color {
		typ = "\x1b[" + c + "m" + typ + "\x1b[0m"
	}
	var b strings.Builder
	when := entryTime(e.ID)
	fmt.Fprintf(&b, "%s %s", clock(when, p.now()), typ)
	add := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, printable(v))
		}
	}
	if e.Task != "" {
		b.WriteString(" " + printable(e.Task))
	}
	if e.Fire != "" && e.Fire != events.FireID(e.Task, e.At) {
		add("fire", e.Fire)
	}
	if !e.At.IsZero() {
		add("at", clock(e.At, when))
	}
	if e.Attempt > 0 {
		add("attempt", strconv.Itoa(e.Attempt))
	}
	if e.Type == events.TypeCompleted || e.Type == events.TypeFailed || e.Type == events.TypeCancelled {
		add("cost", (time.Duration(e.CostMs) * time.Millisecond).String())
	}
	if e.Count > 1 {
		add("count", strconv.FormatInt(e.Count, 10))
		if !e.Until.IsZero() {
			add("until", clock(e.Until, when))
		}
	}
	if e.Version > 0 {
		add("version", strconv.FormatInt(e.Version, 10))
	}
	if e.Change != "" {
		add("change", e.Change)
	}
	add("worker", e.Worker)
	if e.Reason != "" {
		add("reason", strconv.Quote(e.Reason))
	}
	if e.Error != "" {
		add("error", strconv.Quote(clip(e.Error, 200)))
	}
	if e.Output != "" {
		add("output", strconv.Quote(clip(lastLines(e.Output, 3), 200)))
	}
	fmt.Fprintln(p.w, b.String())
}

// jsonEvent is an event as a JSON object: its stream fields, with numbers
// as numbers and times as RFC 3339 (UTC, milliseconds), plus its entry id
// and the entry's time.
func jsonEvent(e events.Event) map[string]any {
	kv, err := e.Encode()
	out := map[string]any{"id": e.ID, "time": rfc3339(entryTime(e.ID))}
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		switch k {
		case events.FieldV:
		case events.FieldLastRun:
			out[k] = true // it became the task's last outcome
		case events.FieldAt, events.FieldUntil, events.FieldFired, events.FieldStarted:
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = rfc3339(time.UnixMilli(ms))
			} else {
				out[k] = v
			}
		case events.FieldAttempt, events.FieldCostMs, events.FieldCount, events.FieldVersion, events.FieldPrevious,
			events.FieldAdded, events.FieldChanged, events.FieldRemoved:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
			} else {
				out[k] = v
			}
		default:
			out[k] = v
		}
	}
	return out
}

// clock is t (UTC, marked Z) as a time of day, or as a stamp with its date when
// that is not ref's: an event of another day, or a slot far from its
// event (a window that ended a year before the missed event recording it).
func clock(t, ref time.Time) string {
	t, ref = t.UTC(), ref.UTC()
	if y, m, d := t.Date(); ref.Year() == y && ref.Month() == m && ref.Day() == d {
		return t.Format("15:04:05.000Z")
	}
	return stamp(t)
}

func rfc3339(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// entryTime is the time in a stream entry id (Redis server time).
func entryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).Local()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
