package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// explain: one slot of a task, in plain words, with the facts behind the
// answer, from the task's spec, state, history, the workers registry and
// the dead letters.

func explainFlags(fs *flag.FlagSet, c *cli) {
	jsonFlag(fs, c)
	fs.StringVar(&c.at, "at", "", "the slot to explain: RFC 3339, or YYYY-MM-DD HH:MM[:SS] in the task's zone; a time between slots means the slot before it (default: the most recent slot, or the next when none was due yet)")
}

// Answers of explain --json, one word each.
const (
	answerRan        = "ran"
	answerFailed     = "failed"
	answerDead       = "dead"
	answerMissed     = "missed"
	answerCancelled  = "cancelled"
	answerRunning    = "running"
	answerWaiting    = "waiting"
	answerNotDue     = "not_due"
	answerNotPlanned = "not_planned"
	answerPaused     = "paused"
	answerUnknown    = "unknown"
)

// explanation is what explain prints.
type explanation struct {
	Task string `json:"task"`
	// Slot is the slot explained (UTC), SlotLocal the same in the task's
	// zone; Asked, the --at given when it was not itself a slot.
	Slot      string `json:"slot"`
	SlotLocal string `json:"slot_local"`
	Asked     string `json:"asked,omitempty"`
	// Answer is one word (ran, failed, dead, missed, cancelled, running,
	// waiting, paused, not_due, not_planned, unknown); Summary the answer in a
	// sentence; Facts what it rests on.
	Answer  string    `json:"answer"`
	Summary string    `json:"summary"`
	Facts   []string  `json:"facts"`
	Record  *slotJSON `json:"record,omitempty"`
	// DeadLetter is the id to give taskino dead replay, when dead.
	DeadLetter string `json:"dead_letter,omitempty"`
}

// parseAt reads --at: RFC 3339, or a local date and time in loc.
func parseAt(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("explain: --at %q: want RFC 3339 (2026-03-29T02:30:00+02:00) or YYYY-MM-DD HH:MM[:SS] in the task's zone (%s)", s, loc)
}

func runExplain(ctx context.Context, c *cli, args []string) error {
	if err := want("explain", args, 1, 1, "one task name"); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	vs, now, err := views(ctx, c, args)
	if err != nil {
		return err
	}
	v := vs[0]
	var at time.Time
	if c.at != "" {
		if at, err = parseAt(c.at, v.loc); err != nil {
			return err
		}
	}
	ex, err := explain(ctx, c, v, now, at)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(c, ex)
	}
	fmt.Fprintf(c.stdout, "%s, slot %s (%s):\n  %s\n", printable(ex.Task), ex.SlotLocal, ex.Slot, printable(ex.Summary))
	if ex.Asked != "" {
		fmt.Fprintf(c.stdout, "  (%s is not a slot of the task: this is the slot before it)\n", printable(ex.Asked))
	}
	for _, f := range ex.Facts {
		fmt.Fprintf(c.stdout, "  - %s\n", printable(f))
	}
	return nil
}

// explain answers for the slot at (zero: the most recent, or the next).
func explain(ctx context.Context, c *cli, v taskView, now, at time.Time) (explanation, error) {
	spec, ts, loc := v.spec, v.state, v.loc
	sched, err := planner.Compile(spec.Trigger)
	if err != nil {
		return explanation{}, fmt.Errorf("task %q: %w", spec.Name, err)
	}
	slots, err := c.st.History(ctx, spec.Name, 0, now)
	if err != nil {
		return explanation{}, err
	}
	ex := explanation{Task: spec.Name, Facts: []string{}}
	var slot time.Time
	switch {
	case !at.IsZero():
		if s, ok := sched.Next(at.Add(-time.Millisecond)); ok && s.Equal(at) {
			slot = at
		} else if s, ok := slotBefore(sched, at); ok {
			slot, ex.Asked = s, c.at
		} else if s, ok := sched.Next(at); ok {
			slot, ex.Asked = s, c.at
		} else {
			return explanation{}, fmt.Errorf("task %s has no slot near %s", spec.Name, zstamp(at, loc))
		}
	case len(slots) > 0:
		slot = slots[0].Scheduled
		if slots[0].Count > 1 {
			slot = slots[0].Until
		}
	case !ts.Planned.IsZero():
		slot = ts.Planned
	default:
		s, ok := sched.Next(now)
		if !ok {
			return explanation{}, fmt.Errorf("task %s has no slot left and no history", spec.Name)
		}
		slot = s
	}
	ex.Slot, ex.SlotLocal = iso(slot), zstamp(slot, loc)
	if !ts.Paused.IsZero() {
		ex.Facts = append(ex.Facts, fmt.Sprintf("the task is paused since %s: no slot is fired until it is resumed, and the resume records the slots in between missed", zstamp(ts.Paused, loc)))
	}
	ex.Facts = append(ex.Facts, fmt.Sprintf("task %s: trigger %s, queue %s, misfire %s (grace %s; it applies to slots the planners reach late), overlap %s",
		spec.Name, spec.Trigger, spec.Queue, spec.Misfire, spec.MisfireGrace, spec.Overlap))

	var rec *store.Slot
	for i := range slots {
		s := &slots[i]
		if s.Scheduled.Equal(slot) || (s.Count > 1 && !slot.Before(s.Scheduled) && !slot.After(s.Until)) {
			rec = s
			break
		}
	}
	if rec != nil {
		j := slotOf(*rec)
		ex.Record = &j
		explainRecord(ctx, c, &ex, *rec, v, now)
		return ex, nil
	}
	explainUnrecorded(ctx, c, &ex, slot, slots, v, now)
	return ex, nil
}

// took is how long a run took, as words.
func took(s store.Slot) string {
	if s.Started.IsZero() || s.Finished.IsZero() {
		return ""
	}
	return s.Finished.Sub(s.Started).Round(time.Millisecond).String()
}

func explainRecord(ctx context.Context, c *cli, ex *explanation, s store.Slot, v taskView, now time.Time) {
	loc := v.loc
	late := s.Late.Round(time.Millisecond)                         // the first attempt's
	lastLate := s.Started.Sub(s.Scheduled).Round(time.Millisecond) // the last attempt's
	tries := ""
	if s.Attempts > 1 {
		tries = fmt.Sprintf(" on attempt %d, after %d failed (the first started %s after the slot)", s.Attempts, s.Attempts-1, late)
	}
	if !s.Fired.IsZero() {
		ex.Facts = append(ex.Facts, fmt.Sprintf("fired (appended to queue %s) at %s", v.spec.Queue, zstamp(s.Fired, loc)))
	}
	switch s.Outcome {
	case string(events.TypeCompleted):
		ex.Answer = answerRan
		ex.Summary = fmt.Sprintf("ran: started on %s at %s, %s after its slot, took %s and completed%s", s.Worker, zstamp(s.Started, loc), lastLate, took(s), tries)
	case string(events.TypeFailed):
		ex.Answer = answerFailed
		ex.Summary = fmt.Sprintf("failed: the run on %s at %s (attempt %d) failed after %s: %s", s.Worker, zstamp(s.Started, loc), s.Attempt, took(s), clip(s.Error, 200))
		if r := v.state.Running; r != nil && r.Fire == s.Fire {
			ex.Facts = append(ex.Facts, fmt.Sprintf("attempt %d started on %s at %s", r.Attempt, r.Worker, zstamp(r.Started, loc)))
		} else {
			ex.Facts = append(ex.Facts, fmt.Sprintf("a retry runs when its backoff ends, if attempts remain (attempts %d)", v.spec.Attempts))
		}
	case string(events.TypeDead):
		ex.Answer = answerDead
		ex.Summary = fmt.Sprintf("dead-lettered: %s", s.Reason)
		if s.Error != "" {
			ex.Summary += "; last error: " + clip(s.Error, 200)
		}
		if !s.Started.IsZero() {
			ex.Facts = append(ex.Facts, fmt.Sprintf("its last attempt (%d) started on %s at %s, %s after its slot, and failed after %s", s.Attempts, s.Worker, zstamp(s.Started, loc), lastLate, took(s)))
		}
		if id := deadLetterOf(ctx, c, s); id != "" {
			ex.DeadLetter = id
			ex.Facts = append(ex.Facts, fmt.Sprintf("replay it with: taskino dead replay %s", id))
		} else {
			ex.Facts = append(ex.Facts, "its dead letter is gone (replayed or deleted)")
		}
	case string(events.TypeMissed):
		ex.Answer = answerMissed
		ex.Summary = fmt.Sprintf("not run: missed, %s (policy %s)", s.Reason, s.Policy)
		if s.Count > 1 {
			ex.Facts = append(ex.Facts, fmt.Sprintf("one record of %d slots, %s to %s", s.Count, zstamp(s.Scheduled, loc), zstamp(s.Until, loc)))
		}
		switch {
		case strings.HasPrefix(s.Reason, "planned ") && strings.Contains(s.Reason, "grace"):
			ex.Facts = append(ex.Facts, fmt.Sprintf("no planner planned it until %s: the planners were down or behind from its slot until then, and the misfire policy %s skips slots later than the grace", zstamp(s.Recorded, loc), s.Policy))
		case strings.HasPrefix(string(s.Policy), "overlap-"):
			ex.Facts = append(ex.Facts, fmt.Sprintf("its fire reached worker %s at %s while a run of the task held it (overlap %s)", s.Worker, zstamp(s.Recorded, loc), v.spec.Overlap))
		case strings.HasPrefix(s.Reason, "paused"):
			ex.Facts = append(ex.Facts, fmt.Sprintf("recorded by the resume at %s (%s)", zstamp(s.Recorded, loc), s.Worker))
		default:
			ex.Facts = append(ex.Facts, fmt.Sprintf("recorded by %s at %s", s.Worker, zstamp(s.Recorded, loc)))
		}
	case string(events.TypeCancelled):
		ex.Answer = answerCancelled
		ex.Summary = fmt.Sprintf("cut: the run on %s started at %s was stopped after %s (%s); its fire runs again", s.Worker, zstamp(s.Started, loc), took(s), s.Reason)
	case store.OutcomeRunning:
		ex.Answer = answerRunning
		ex.Summary = fmt.Sprintf("running on %s since %s, %s after its slot (attempt %d)", s.Worker, zstamp(s.Started, loc), late, s.Attempt)
		if v.status != store.StatusRunning {
			ex.Facts = append(ex.Facts, fmt.Sprintf("worker %s is not live: its fire is reclaimed by another worker once its visibility timeout passes", s.Worker))
		}
	case store.OutcomeWaiting:
		ex.Answer = answerWaiting
		ex.Summary = fmt.Sprintf("waiting: fired, not started yet, %s after its slot", late)
		waitingFacts(ctx, c, ex, v)
	default:
		ex.Answer = answerUnknown
		ex.Summary = s.Outcome
	}
}

// waitingFacts adds why a due fire of v waits: who reads its queue, and
// its backlog.
func waitingFacts(ctx context.Context, c *cli, ex *explanation, v taskView) {
	if v.why != "" {
		ex.Summary += "; stuck: " + v.why
	}
	if o := v.state.Outcome; o != nil {
		ex.Facts = append(ex.Facts, fmt.Sprintf("the task's last outcome: %s, slot %s, finished at %s on %s", o.Status, zstamp(o.Scheduled, v.loc), zstamp(o.Finished, v.loc), o.Worker))
	}
	ws, err := c.st.Workers(ctx)
	if err == nil {
		var readers, capable []string
		for _, w := range ws {
			if w.Live && slices.Contains(w.Queues, v.spec.Queue) {
				readers = append(readers, w.Node)
				if _, ok := slices.BinarySearch(w.Tasks, v.spec.Name); ok {
					capable = append(capable, w.Node)
				}
			}
		}
		if len(readers) == 0 {
			ex.Facts = append(ex.Facts, fmt.Sprintf("no live worker reads queue %s", v.spec.Queue))
		} else {
			ex.Facts = append(ex.Facts, fmt.Sprintf("live workers of queue %s: %d (%s), of which can run %s: %d", v.spec.Queue, len(readers),
				strings.Join(readers, ", "), v.spec.Name, len(capable)))
		}
		for _, w := range ws {
			if !w.Live && slices.Contains(w.Queues, v.spec.Queue) {
				ex.Facts = append(ex.Facts, fmt.Sprintf("worker %s of queue %s was last seen at %s", w.Node, v.spec.Queue, zstamp(w.Seen, v.loc)))
			}
		}
	}
	stream := c.st.Keys().FireStream(v.spec.Queue, v.spec.Mode)
	if lag, pending, err := c.st.GroupLag(ctx, stream); err == nil {
		ex.Facts = append(ex.Facts, fmt.Sprintf("queue %s: %d fires not yet read, %d read and not finished", v.spec.Queue, lag, pending))
	}
	if held, err := c.st.Held(ctx, []string{v.spec.Queue}); err == nil {
		var who []string
		for node, n := range held {
			if n == 0 {
				continue
			}
			if by, ok := strings.CutSuffix(node, "~handback"); ok {
				who = append(who, fmt.Sprintf("%d handed back by %s at its stop, for the next worker to take", n, by))
			} else {
				who = append(who, fmt.Sprintf("%d held by %s", n, node))
			}
		}
		if len(who) > 0 {
			slices.Sort(who)
			ex.Facts = append(ex.Facts, "read and not finished: "+strings.Join(who, "; "))
		}
	}
}

// deadLetterOf finds the dead letter of the slot s records (dead-lettered
// in the step that recorded s).
func deadLetterOf(ctx context.Context, c *cli, s store.Slot) string {
	from := fmt.Sprintf("%d-0", s.Recorded.Add(-time.Second).UnixMilli())
	dls, err := c.st.ListDead(ctx, from, 200)
	if err != nil {
		return ""
	}
	for _, d := range dls {
		if d.Fields[events.FieldID] == s.Fire {
			return d.ID
		}
	}
	return ""
}

func explainUnrecorded(ctx context.Context, c *cli, ex *explanation, slot time.Time, slots []store.Slot, v taskView, now time.Time) {
	ts, loc := v.state, v.loc
	switch {
	case !ts.Paused.IsZero() && slot.After(ts.Planned) && !slot.After(now):
		ex.Answer = answerPaused
		ex.Summary = fmt.Sprintf("not run: the task is paused (since %s); the resume records this slot missed", zstamp(ts.Paused, loc))
	case slot.After(now):
		ex.Answer = answerNotDue
		ex.Summary = fmt.Sprintf("not yet due: its slot is in %s", slot.Sub(now).Round(time.Second))
		if !ts.Paused.IsZero() {
			ex.Summary += ", and the task is paused"
		}
	case !ts.Since.IsZero() && slot.Before(ts.Since):
		ex.Answer = answerNotPlanned
		ex.Summary = fmt.Sprintf("not run: the slot is before the task's schedule started (registered, rescheduled or resumed at %s)", zstamp(ts.Since, loc))
	case ts.Planned.IsZero() || slot.After(ts.Planned):
		ex.Answer = answerNotPlanned
		ex.Summary = fmt.Sprintf("not planned yet: due %s ago, and no planner has fired it or recorded it missed", now.Sub(slot).Round(time.Second))
		if ts.Paused.IsZero() {
			ex.Facts = append(ex.Facts, "planners fire a slot when it is due, and record it missed under the misfire policy when they reach it late: none is running, or they are behind")
		}
		if !ts.Planned.IsZero() {
			ex.Facts = append(ex.Facts, fmt.Sprintf("the latest slot planned is %s", zstamp(ts.Planned, loc)))
		}
	default:
		oldest := time.Time{}
		if len(slots) > 0 {
			oldest = slots[len(slots)-1].Scheduled
		}
		if !oldest.IsZero() && slot.Before(oldest) {
			ex.Answer = answerUnknown
			ex.Summary = fmt.Sprintf("planned, but older than the history keeps (its oldest slot is %s)", zstamp(oldest, loc))
			return
		}
		ex.Answer = answerWaiting
		ex.Summary = "fired (planned), with no outcome yet: its fire waits in its queue"
		waitingFacts(ctx, c, ex, v)
	}
}
