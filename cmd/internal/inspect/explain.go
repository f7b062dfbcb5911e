package inspect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// Answers of Explain (explain --json), one word each.
const (
	AnswerRan        = "ran"
	AnswerFailed     = "failed"
	AnswerDead       = "dead"
	AnswerMissed     = "missed"
	AnswerCancelled  = "cancelled"
	AnswerRunning    = "running"
	AnswerWaiting    = "waiting"
	AnswerNotDue     = "not_due"
	AnswerNotPlanned = "not_planned"
	AnswerPaused     = "paused"
	AnswerUnknown    = "unknown"
	AnswerDone       = "done"
	AnswerExcluded   = "excluded"
)

// Explanation is what Explain prints.
type Explanation struct {
	Task string `json:"task"`
	// Slot is the slot explained (UTC), SlotLocal the same in the task's
	// zone; Asked, the --at given when it was not itself a slot.
	Slot      string `json:"slot"`
	SlotLocal string `json:"slot_local"`
	Asked     string `json:"asked,omitempty"`
	// Answer is one word (ran, failed, dead, missed, cancelled, running,
	// waiting, paused, not_due, not_planned, unknown); Summary the answer in a
	// sentence; Facts what it rests on.
	Answer  string   `json:"answer"`
	Summary string   `json:"summary"`
	Facts   []string `json:"facts"`
	Record  *Slot    `json:"record,omitempty"`
	// DeadLetter is the id to give taskino dead replay, when dead.
	DeadLetter string `json:"dead_letter,omitempty"`
}

// Explain answers for the slot at (zero: the most recent one due, or the
// next);
// asked is the text the slot was asked by, shown when it is not a slot.
func Explain(ctx context.Context, st *store.Store, v View, now, at time.Time, asked string) (Explanation, error) {
	slots, err := st.History(ctx, v.Spec.Name, 0, now)
	if err != nil {
		return Explanation{}, err
	}
	return ExplainFrom(ctx, st, v, slots, now, at, asked)
}

// ExplainFrom is Explain with the task's history already read (all it
// keeps: store.History with no limit).
func ExplainFrom(ctx context.Context, st *store.Store, v View, slots []store.Slot, now, at time.Time, asked string) (Explanation, error) {
	spec, ts, loc := v.Spec, v.State, v.Loc
	sched, err := planner.Compile(spec.Trigger)
	if err != nil {
		return Explanation{}, fmt.Errorf("task %q: %w", spec.Name, err)
	}
	ex := Explanation{Task: spec.Name, Facts: []string{}}
	var slot time.Time
	switch {
	case !at.IsZero():
		if s, ok := sched.Next(at.Add(-time.Millisecond)); (ok && s.Equal(at)) || recorded(slots, at) {
			slot = at // a slot, or a manual trigger's time the history holds
		} else if s, ok := SlotBefore(sched, at); ok {
			slot, ex.Asked = s, asked
		} else if s, ok := sched.Next(at); ok {
			slot, ex.Asked = s, asked
		} else {
			return Explanation{}, fmt.Errorf("task %s has no slot near %s", spec.Name, Stamp(at, loc))
		}
	case len(slots) > 0:
		// The most recent slot due by now. The history lists only the
		// newest fire waiting (which a planner's lookahead may have fired
		// ahead of its slot): the schedule's latest slot by now, when
		// planned and later than the history's latest due, is the one
		// asked about (its fire waits).
		first := slots[0]
		for _, s := range slots {
			if !s.DueAt().After(now) {
				first = s
				break
			}
		}
		slot = first.Scheduled
		if first.Count > 1 {
			slot = first.Until
		}
		if s, ok := SlotBefore(sched, now); ok && s.After(slot) && !s.After(ts.Planned) {
			slot = s
		}
	case !ts.Planned.IsZero():
		slot = ts.Planned
	default:
		s, ok := sched.Next(now)
		if !ok {
			return Explanation{}, fmt.Errorf("task %s has no slot left and no history", spec.Name)
		}
		slot = s
	}
	ex.Slot, ex.SlotLocal = ISO(slot), Stamp(slot, loc)
	if !ts.Paused.IsZero() {
		why := ""
		if ts.PausedWhy != "" {
			why = ", " + ts.PausedWhy
		}
		ex.Facts = append(ex.Facts, fmt.Sprintf("the task is paused since %s%s: no slot is fired until it is resumed, and the resume records the slots in between missed", Stamp(ts.Paused, loc), why))
	}
	ex.Facts = append(ex.Facts, fmt.Sprintf("task %s: trigger %s, queue %s, misfire %s (grace %s; it applies to slots the planners reach late), overlap %s",
		spec.Name, spec.Trigger, spec.Queue, spec.Misfire, spec.MisfireGrace, spec.Overlap))
	if spec.Limit > 0 {
		ex.Facts = append(ex.Facts, fmt.Sprintf("limit: %d fires; %d fired since it was registered or rescheduled", spec.Limit, ts.Fired))
	}
	if spec.PauseAfterFailures > 0 {
		ex.Facts = append(ex.Facts, fmt.Sprintf("pause_after_failures: %d slots in a row", spec.PauseAfterFailures))
	}

	var rec *store.Slot
	for i := range slots {
		s := &slots[i]
		if s.Scheduled.Equal(slot) || (s.Count > 1 && !slot.Before(s.Scheduled) && !slot.After(s.Until)) {
			rec = s
			break
		}
	}
	if rec != nil {
		j := SlotOf(*rec)
		ex.Record = &j
		explainRecord(ctx, st, &ex, *rec, v, now)
		return ex, nil
	}
	if x, ok := sched.(planner.Excluder); ok {
		if rule := x.Excluded(slot); rule != "" {
			ex.Answer = AnswerExcluded
			ex.Summary = fmt.Sprintf("does not fire: excluded by except %s (recorded missed when it is planned)", rule)
			return ex, nil
		}
	}
	explainUnrecorded(ctx, st, &ex, slot, slots, v, now)
	return ex, nil
}

func explainRecord(ctx context.Context, st *store.Store, ex *Explanation, s store.Slot, v View, now time.Time) {
	loc := v.Loc
	late := s.Late.Round(time.Millisecond)                       // the first attempt's
	lastLate := s.Started.Sub(s.DueAt()).Round(time.Millisecond) // the last attempt's, after its due time
	afterSlot := "after its slot"
	if s.Due.After(s.Scheduled) {
		afterSlot = "after it was due"
	}
	tries := ""
	if s.Attempts > 1 {
		tries = fmt.Sprintf(" on attempt %d, after %d failed (the first started %s after the slot)", s.Attempts, s.Attempts-1, late)
	}
	if s.Due.After(s.Scheduled) {
		ex.Facts = append(ex.Facts, fmt.Sprintf("its jitter made it due at %s, %s after the slot; lateness counts from then", Stamp(s.Due, loc), s.Due.Sub(s.Scheduled)))
	}
	if !s.Fired.IsZero() {
		ex.Facts = append(ex.Facts, fmt.Sprintf("fired (appended to queue %s) at %s", v.Spec.Queue, Stamp(s.Fired, loc)))
	}
	switch s.Outcome {
	case string(events.TypeCompleted):
		ex.Answer = AnswerRan
		ex.Summary = fmt.Sprintf("ran: started on %s at %s, %s %s, took %s and completed%s", s.Worker, Stamp(s.Started, loc), lastLate, afterSlot, Took(s), tries)
	case string(events.TypeFailed):
		ex.Answer = AnswerFailed
		ex.Summary = fmt.Sprintf("failed: the run on %s at %s (attempt %d) failed after %s: %s", s.Worker, Stamp(s.Started, loc), s.Attempt, Took(s), Clip(s.Error, 200))
		if r := v.State.Running; r != nil && r.Fire == s.Fire {
			ex.Facts = append(ex.Facts, fmt.Sprintf("attempt %d started on %s at %s", r.Attempt, r.Worker, Stamp(r.Started, loc)))
		} else {
			ex.Facts = append(ex.Facts, fmt.Sprintf("a retry runs when its backoff ends, if attempts remain (attempts %d)", v.Spec.Attempts))
		}
	case string(events.TypeDead):
		ex.Answer = AnswerDead
		ex.Summary = fmt.Sprintf("dead-lettered: %s", s.Reason)
		if s.Error != "" {
			ex.Summary += "; last error: " + Clip(s.Error, 200)
		}
		if !s.Started.IsZero() {
			ex.Facts = append(ex.Facts, fmt.Sprintf("its last attempt (%d) started on %s at %s, %s %s, and failed after %s", s.Attempts, s.Worker, Stamp(s.Started, loc), lastLate, afterSlot, Took(s)))
		}
		if id := deadLetterOf(ctx, st, s); id != "" {
			ex.DeadLetter = id
			ex.Facts = append(ex.Facts, fmt.Sprintf("replay it with: taskino dead replay %s", id))
		} else {
			ex.Facts = append(ex.Facts, "its dead letter is gone (replayed or deleted)")
		}
	case string(events.TypeMissed):
		ex.Answer = AnswerMissed
		ex.Summary = fmt.Sprintf("not run: missed, %s (policy %s)", s.Reason, s.Policy)
		if s.Count > 1 {
			ex.Facts = append(ex.Facts, fmt.Sprintf("one record of %d slots, %s to %s", s.Count, Stamp(s.Scheduled, loc), Stamp(s.Until, loc)))
		}
		switch {
		case strings.HasPrefix(s.Reason, "planned ") && strings.Contains(s.Reason, "grace"):
			ex.Facts = append(ex.Facts, fmt.Sprintf("no planner planned it until %s: the planners were down or behind from its slot until then, and the misfire policy %s skips slots later than the grace", Stamp(s.Recorded, loc), s.Policy))
		case strings.HasPrefix(string(s.Policy), "overlap-"):
			ex.Facts = append(ex.Facts, fmt.Sprintf("its fire reached worker %s at %s while a run of the task held it (overlap %s)", s.Worker, Stamp(s.Recorded, loc), v.Spec.Overlap))
		case strings.HasPrefix(s.Reason, "paused"):
			ex.Facts = append(ex.Facts, fmt.Sprintf("recorded by the resume at %s (%s)", Stamp(s.Recorded, loc), s.Worker))
		default:
			ex.Facts = append(ex.Facts, fmt.Sprintf("recorded by %s at %s", s.Worker, Stamp(s.Recorded, loc)))
		}
	case string(events.TypeCancelled):
		ex.Answer = AnswerCancelled
		ex.Summary = fmt.Sprintf("cut: the run on %s started at %s was stopped after %s (%s); its fire runs again", s.Worker, Stamp(s.Started, loc), Took(s), s.Reason)
	case store.OutcomeRunning:
		ex.Answer = AnswerRunning
		ex.Summary = fmt.Sprintf("running on %s since %s, %s %s (attempt %d)", s.Worker, Stamp(s.Started, loc), late, afterSlot, s.Attempt)
		if v.Status != store.StatusRunning {
			ex.Facts = append(ex.Facts, fmt.Sprintf("worker %s is not live: its fire is reclaimed by another worker once its visibility timeout passes", s.Worker))
		}
	case store.OutcomeWaiting:
		ex.Answer = AnswerWaiting
		ex.Summary = fmt.Sprintf("waiting: fired, not started yet, %s %s", late, afterSlot)
		if due := s.DueAt(); due.After(now) {
			ex.Summary = fmt.Sprintf("waiting: fired ahead (a planner's lookahead), due in %s", due.Sub(now).Round(time.Millisecond))
		}
		waitingFacts(ctx, st, ex, v)
	default:
		ex.Answer = AnswerUnknown
		ex.Summary = s.Outcome
	}
}

// waitingFacts adds why a due fire of v waits: who reads its queue, and
// its backlog.
func waitingFacts(ctx context.Context, st *store.Store, ex *Explanation, v View) {
	if v.Why != "" {
		ex.Summary += "; stuck: " + v.Why
	}
	if o := v.State.Outcome; o != nil {
		ex.Facts = append(ex.Facts, fmt.Sprintf("the task's last outcome: %s, slot %s, finished at %s on %s", o.Status, Stamp(o.Scheduled, v.Loc), Stamp(o.Finished, v.Loc), o.Worker))
	}
	ws, err := st.Workers(ctx)
	if err == nil {
		var readers, capable []string
		for _, w := range ws {
			if w.Live && slices.Contains(w.Queues, v.Spec.Queue) {
				readers = append(readers, w.Node)
				if _, ok := slices.BinarySearch(w.Tasks, v.Spec.Name); ok {
					capable = append(capable, w.Node)
				}
			}
		}
		if len(readers) == 0 {
			ex.Facts = append(ex.Facts, fmt.Sprintf("no live worker reads queue %s", v.Spec.Queue))
		} else {
			ex.Facts = append(ex.Facts, fmt.Sprintf("live workers of queue %s: %d (%s), of which can run %s: %d", v.Spec.Queue, len(readers),
				strings.Join(readers, ", "), v.Spec.Name, len(capable)))
		}
		for _, w := range ws {
			if !w.Live && slices.Contains(w.Queues, v.Spec.Queue) {
				ex.Facts = append(ex.Facts, fmt.Sprintf("worker %s of queue %s was last seen at %s", w.Node, v.Spec.Queue, Stamp(w.Seen, v.Loc)))
			}
		}
	}
	stream := st.Keys().FireStream(v.Spec.Queue, v.Spec.Mode)
	if lag, pending, err := st.GroupLag(ctx, stream); err == nil {
		ex.Facts = append(ex.Facts, fmt.Sprintf("queue %s: %d fires not yet read, %d read and not finished", v.Spec.Queue, lag, pending))
	}
	if held, err := st.Held(ctx, []string{v.Spec.Queue}); err == nil {
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
func deadLetterOf(ctx context.Context, st *store.Store, s store.Slot) string {
	from := fmt.Sprintf("%d-0", s.Recorded.Add(-time.Second).UnixMilli())
	dls, err := st.ListDead(ctx, from, 200)
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

func explainUnrecorded(ctx context.Context, st *store.Store, ex *Explanation, slot time.Time, slots []store.Slot, v View, now time.Time) {
	ts, loc := v.State, v.Loc
	switch {
	case ts.Done && (ts.Planned.IsZero() || slot.After(ts.Planned)):
		ex.Answer = AnswerDone
		ex.Summary = "not run: the task is done, no slot of it fires any more"
		if v.Spec.Limit > 0 {
			ex.Summary += fmt.Sprintf(" (it reached its limit of %d fires, or its trigger has no slot left)", v.Spec.Limit)
		}
	case !ts.Paused.IsZero() && slot.After(ts.Planned) && !slot.After(now):
		ex.Answer = AnswerPaused
		ex.Summary = fmt.Sprintf("not run: the task is paused (since %s); the resume records this slot missed", Stamp(ts.Paused, loc))
	case slot.After(now):
		ex.Answer = AnswerNotDue
		ex.Summary = fmt.Sprintf("not yet due: its slot is in %s", Until(slot.Sub(now)))
		if !ts.Paused.IsZero() {
			ex.Summary += ", and the task is paused"
		}
	case !ts.Since.IsZero() && slot.Before(ts.Since):
		ex.Answer = AnswerNotPlanned
		ex.Summary = fmt.Sprintf("not run: the slot is before the task's schedule started (registered, rescheduled or resumed at %s)", Stamp(ts.Since, loc))
	case ts.Planned.IsZero() || slot.After(ts.Planned):
		ex.Answer = AnswerNotPlanned
		ex.Summary = fmt.Sprintf("not planned yet: due %s ago, and no planner has fired it or recorded it missed", now.Sub(slot).Round(time.Second))
		if ts.Paused.IsZero() {
			ex.Facts = append(ex.Facts, "planners fire a slot when it is due, and record it missed under the misfire policy when they reach it late: none is running, or they are behind")
		}
		if !ts.Planned.IsZero() {
			ex.Facts = append(ex.Facts, fmt.Sprintf("the latest slot planned is %s", Stamp(ts.Planned, loc)))
		}
	default:
		oldest := time.Time{}
		if len(slots) > 0 {
			oldest = slots[len(slots)-1].Scheduled
		}
		if !oldest.IsZero() && slot.Before(oldest) {
			ex.Answer = AnswerUnknown
			ex.Summary = fmt.Sprintf("planned, but older than the history keeps (its oldest slot is %s)", Stamp(oldest, loc))
			return
		}
		ex.Answer = AnswerWaiting
		ex.Summary = "fired (planned), with no outcome yet: its fire waits in its queue"
		waitingFacts(ctx, st, ex, v)
	}
}

// ParseAt reads --at: RFC 3339, or a local date and time in loc.
func ParseAt(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-03-29T02:30:00+02:00) or YYYY-MM-DD HH:MM[:SS] in the task's zone (%s)", s, loc)
}

// recorded reports whether the history holds a slot at t.
func recorded(slots []store.Slot, t time.Time) bool {
	for _, s := range slots {
		if s.Scheduled.Equal(t) {
			return true
		}
	}
	return false
}

// Until says a duration for people: to the second under two days
// ("3h2m5s"), in days and hours beyond ("23 days 9h").
func Until(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Second).String()
	}
	days := int64(d / (24 * time.Hour))
	hours := int64(d%(24*time.Hour)) / int64(time.Hour)
	if hours == 0 {
		return fmt.Sprintf("%d days", days)
	}
	return fmt.Sprintf("%d days %dh", days, hours)
}
