package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// A task's page: its spec, next fires, timeline, explain answers and actions.

type slotBlock struct {
	Slot   store.Slot
	Class  string
	At     string // the slot, RFC 3339, for ?at=
	Title  string
	Active bool
}

type taskData struct {
	Now          time.Time
	View         inspect.View
	Words        string
	SpecJSON     string
	NextSlots    []inspect.NextSlot
	NextErr      string
	Timeline     timelineData
	Explain      *inspect.Explanation
	ExplainErr   string
	Stats        outcomeStats
	Last         *events.LastRun
	Failing      bool
	Paused       bool
	ViewerZoneID string
}

type timelineData struct {
	Task                 string
	Loc                  *time.Location
	Blocks               []slotBlock
	Rows                 []store.Slot
	CostChart, LateChart template.HTML
	Explained            string
}

func (c *Console) taskOf(w http.ResponseWriter, r *http.Request, n *namespace) (inspect.View, time.Time, bool) {
	task := r.URL.Query().Get("name")
	spec, err := n.spec(r.Context(), task)
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, n, http.StatusNotFound, fmt.Errorf("namespace %s has no task %q", n.name, show(task)))
		return inspect.View{}, time.Time{}, false
	}
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return inspect.View{}, time.Time{}, false
	}
	vs, now, err := inspect.ViewsOf(r.Context(), n.st, []events.Spec{spec})
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return inspect.View{}, time.Time{}, false
	}
	return vs[0], now, true
}

func (c *Console) taskPage(w http.ResponseWriter, r *http.Request, n *namespace) {
	ctx := r.Context()
	v, now, ok := c.taskOf(w, r, n)
	if !ok {
		return
	}
	d := taskData{Now: now, View: v, Words: TriggerWords(v.Spec.Trigger), Last: v.State.Last(), Failing: failing(v), Paused: !v.State.Paused.IsZero()}
	if raw, err := events.MarshalSpec(v.Spec); err == nil { // the stored form
		var buf bytes.Buffer
		if json.Indent(&buf, raw, "", "  ") == nil {
			d.SpecJSON = buf.String()
		}
	}
	if sched, err := planner.Compile(v.Spec.Trigger); err != nil {
		d.NextErr = err.Error()
	} else {
		from := now
		if v.State.Next.After(now) {
			from = v.State.Next.Add(-time.Millisecond)
		}
		d.NextSlots = inspect.NextSlots(sched, v.Loc, from, 10)
		inspect.Jitter(d.NextSlots, sched, v.Spec.Name, v.Spec.Trigger.Jitter)
	}
	at := time.Time{}
	asked := r.URL.Query().Get("at")
	if asked != "" {
		t, err := inspect.ParseAt(asked, v.Loc)
		if err != nil {
			d.ExplainErr = err.Error()
		} else {
			at = t
		}
	}
	// The history, read once for the explain answer and the timeline.
	slots, err := n.st.History(ctx, v.Spec.Name, 0, now)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	explained := ""
	if d.ExplainErr == "" {
		ex, err := inspect.ExplainFrom(ctx, n.st, v, slots, now, at, asked)
		if err != nil {
			d.ExplainErr = err.Error()
		} else {
			d.Explain, explained = &ex, ex.Slot
		}
	}
	slots = slots[:min(len(slots), timelineSlots)]
	d.Timeline = timeline(v, slots, explained)
	var es []events.Event
	for _, s := range slots {
		if s.Outcome == string(events.TypeCompleted) || s.Outcome == string(events.TypeFailed) || s.Outcome == string(events.TypeDead) {
			es = append(es, events.Event{Type: events.Type(s.Outcome), Fire: s.Fire, At: s.Scheduled, Started: s.Started})
		}
	}
	d.Stats = statsOf(es)
	c.render(w, r, n, "task", v.Spec.Name, d)
}

// timelineSlots is how many recent slots a task's timeline shows.
const timelineSlots = 60

// timeline draws a task's recent slots (newest first), the one explained
// (RFC 3339, or "") marked.
func timeline(v inspect.View, slots []store.Slot, explained string) timelineData {
	tl := timelineData{Task: v.Spec.Name, Loc: v.Loc, Rows: slots, Explained: explained}
	var costs, lates []bar
	for i := len(slots) - 1; i >= 0; i-- { // oldest first, left to right
		s := slots[i]
		title := fmt.Sprintf("%s: %s", inspect.Stamp(s.Scheduled, v.Loc), s.Outcome)
		if !s.Started.IsZero() {
			title += ", started " + s.Late.Round(time.Millisecond).String() + " late"
		}
		if t := inspect.Took(s); t != "" {
			title += ", took " + t
		}
		if s.Count > 1 {
			title += fmt.Sprintf(" (%d slots)", s.Count)
		}
		if s.Error != "" {
			title += ": " + inspect.Clip(s.Error, 120)
		} else if s.Reason != "" {
			title += ": " + inspect.Clip(s.Reason, 120)
		}
		title = show(title)
		at := inspect.ISO(s.Scheduled)
		tl.Blocks = append(tl.Blocks, slotBlock{Slot: s, Class: "o-" + s.Outcome, At: at, Title: title, Active: at == explained})
		cost := 0.0
		if !s.Started.IsZero() && !s.Finished.IsZero() {
			cost = float64(s.Finished.Sub(s.Started).Milliseconds())
		}
		costs = append(costs, bar{Value: cost, Title: title, Class: "o-" + s.Outcome})
		late := 0.0
		if !s.Started.IsZero() || s.Outcome == store.OutcomeWaiting {
			late = float64(s.Late.Milliseconds())
		}
		lates = append(lates, bar{Value: late, Title: title, Class: "o-" + s.Outcome})
	}
	var axis [2]string
	if len(slots) > 0 {
		axis = [2]string{inspect.Stamp(slots[len(slots)-1].Scheduled, v.Loc), inspect.Stamp(slots[0].Scheduled, v.Loc)}
	}
	tl.CostChart = barChart("duration of the recent slots", "ms", costs, axis)
	tl.LateChart = barChart("lateness of the recent slots (first run)", "ms", lates, axis)
	return tl
}

func (c *Console) timelineFragment(w http.ResponseWriter, r *http.Request, n *namespace) {
	v, now, ok := c.taskOf(w, r, n)
	if !ok {
		return
	}
	slots, err := n.st.History(r.Context(), v.Spec.Name, timelineSlots, now)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	tl := timeline(v, slots, r.URL.Query().Get("at"))
	var buf bytes.Buffer
	if err := c.pages["task"].ExecuteTemplate(&buf, "timeline", layout{Prefix: c.cfg.Prefix, NS: n.name,
		Base: c.cfg.Prefix + "/n/" + url.PathEscape(n.name), Data: tl}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) taskAction(w http.ResponseWriter, r *http.Request, n *namespace) {
	ctx := r.Context()
	task := r.PostForm.Get("name")
	page := c.cfg.Prefix + "/n/" + url.PathEscape(n.name) + "/task?name=" + url.QueryEscape(task)
	var msg string
	switch r.PathValue("action") {
	case "trigger":
		id := strings.TrimSpace(r.PostForm.Get("id"))
		entry, appended, err := n.st.TriggerOnce(ctx, task, r.PostForm.Get("payload"), id)
		if err != nil {
			c.fail(w, r, n, http.StatusBadRequest, fmt.Errorf("trigger %s: %w", show(task), err))
			return
		}
		msg = "triggered " + task + ": fire appended as entry " + entry
		if !appended {
			msg = "not triggered again: " + task + " was triggered with id " + id + " within " + store.TriggerIDTTL.String() + ", as entry " + entry
		}
	case "pause":
		at, err := planner.Pause(ctx, n.st, task, c.cfg.Who)
		switch {
		case errors.Is(err, store.ErrAlreadyPaused):
			msg = task + " was already paused (since " + at.UTC().Format(time.RFC3339) + ")"
		case err != nil:
			c.fail(w, r, n, http.StatusBadRequest, fmt.Errorf("pause %s: %w", show(task), err))
			return
		default:
			msg = "paused " + task + ": no slot is fired until it is resumed"
			if st, err := n.st.State(ctx, task); err == nil && st.Done {
				msg = "paused " + task + "; it has no slot left (done), so this holds back only a new definition applied before it is resumed"
			}
		}
	case "resume":
		done, err := planner.Resume(ctx, n.st, task, c.cfg.Who)
		switch {
		case errors.Is(err, store.ErrNotPaused):
			msg = task + " was not paused"
		case err != nil:
			c.fail(w, r, n, http.StatusBadRequest, fmt.Errorf("resume %s: %w", show(task), err))
			return
		case done:
			msg = "resumed " + task + ": it has no slot left, so it is done (the slots skipped are recorded missed)"
		default:
			msg = "resumed " + task + ": planned again from now on (the slots skipped are recorded missed)"
		}
	default:
		c.fail(w, r, n, http.StatusNotFound, fmt.Errorf("unknown action %q: want trigger, pause or resume", show(r.PathValue("action"))))
		return
	}
	n.forget() // the lists show the change at once
	c.back(w, r, page, msg)
}
