package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// The statuses a tasks list filters by: store's, and "failing" (the last
// outcome failed or was dead-lettered).
const statusFailing = "failing"

var listStatuses = []string{store.StatusRunning, statusFailing, store.StatusStuck, store.StatusPaused, store.StatusIdle, store.StatusDone}

func failing(v inspect.View) bool {
	o := v.State.Outcome
	return o != nil && (o.Status == string(events.TypeFailed) || o.Status == string(events.TypeDead))
}

// ---- overview

type queueRow struct {
	Queue, Mode   string
	Lag, Pending  int64
	Backlog       int64 // not finished: lag + pending
	Known, NoRead bool
}

type overviewData struct {
	Now                                    time.Time
	Planners                               []store.PlannerState
	Workers                                []store.WorkerState
	PlannersLive, WorkersLive              int
	Queues                                 []queueRow
	Tasks, Failing, Stuck, Paused, Running int
	Bad                                    []badSpec
	FailingList, StuckList, PausedList     []inspect.View
	Dead                                   int64
	Hour                                   hourStats
	FiresChart, LateChart                  template.HTML
	MissTimes                              []string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, n *namespace) {
	ctx := r.Context()
	h := n.events(c)
	d := overviewData{}
	var err error
	if d.Planners, err = n.st.Planners(ctx); err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	if d.Workers, err = n.st.Workers(ctx); err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	for _, p := range d.Planners {
		if p.Live {
			d.PlannersLive++
		}
	}
	for _, wk := range d.Workers {
		if wk.Live {
			d.WorkersLive++
		}
	}
	ts, err := n.tasks(ctx)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	vs, now, err := n.allViews(ctx, ts)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	d.Bad, d.Now, d.Tasks = ts.bad, now, len(vs)
	type qk struct{ q, m string }
	queues := map[qk]bool{}
	for _, v := range vs {
		queues[qk{v.Spec.Queue, string(v.Spec.Mode)}] = true
		switch {
		case v.Status == store.StatusStuck:
			d.Stuck++
			if len(d.StuckList) < 10 {
				d.StuckList = append(d.StuckList, v)
			}
		case v.Status == store.StatusPaused:
			d.Paused++
			if len(d.PausedList) < 10 {
				d.PausedList = append(d.PausedList, v)
			}
		case v.Status == store.StatusRunning:
			d.Running++
		}
		if failing(v) {
			d.Failing++
			if len(d.FailingList) < 10 {
				d.FailingList = append(d.FailingList, v)
			}
		}
	}
	keys := make([]qk, 0, len(queues))
	for k := range queues {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].q+keys[i].m < keys[j].q+keys[j].m })
	if len(keys) > maxQueues {
		keys = keys[:maxQueues] // the console's load stays bounded
	}
	var streams []string
	for _, k := range keys {
		if k.m == string(events.ModeSingle) {
			streams = append(streams, n.st.Keys().FireStream(k.q, events.ModeSingle))
		}
	}
	lags, err := n.groupLags(ctx, streams)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	for _, k := range keys {
		row := queueRow{Queue: k.q, Mode: k.m}
		if k.m == string(events.ModeSingle) {
			l, ok := lags[n.st.Keys().FireStream(k.q, events.ModeSingle)]
			row.Lag, row.Pending, row.Known, row.NoRead = l[0], l[1], ok, !ok
			row.Backlog = max(l[0], 0) + l[1]
		}
		d.Queues = append(d.Queues, row)
	}
	if d.Dead, err = n.rdb.XLen(ctx, n.st.Keys().Dead()).Result(); err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	d.Hour = h.hour(now)
	var fires, lates []bar
	for _, m := range d.Hour.Minutes {
		at := time.Unix(m.At*60, 0).UTC().Format("15:04 UTC")
		fires = append(fires, bar{Value: float64(m.Fired) / 60, Title: fmt.Sprintf("%s: %d fired (%.2f/s), %d started, %d completed, %d failed, %d dead-lettered, %d slots missed", at, m.Fired, float64(m.Fired)/60, m.Started, m.OK, m.Failed, m.Dead, m.Missed)})
		if len(m.Lates) > 0 {
			p := percentile(m.Lates, 99)
			lates = append(lates, bar{Value: float64(p.Milliseconds()), Title: fmt.Sprintf("%s: p99 lateness %s over %d starts", at, p.Round(time.Millisecond), len(m.Lates))})
		} else {
			lates = append(lates, bar{Title: at + ": no start"})
		}
	}
	from := time.Unix(d.Hour.Minutes[0].At*60, 0).UTC()
	d.FiresChart = barChart("fires per second, by minute, last hour", "/s", fires, axisTimes(from, now))
	d.LateChart = barChart("p99 lateness of first runs, by minute, last hour", "ms", lates, axisTimes(from, now))
	c.render(w, r, n, "overview", "Overview", d)
}

// ---- tasks

type taskRow struct {
	View          inspect.View
	Words         string
	Next          time.Time
	Last          *events.LastRun
	Stats         outcomeStats
	Failing, Done bool
}

type tasksData struct {
	Now             time.Time
	Rows            []taskRow
	Bad             []badSpec
	Q, Status, Sort string
	Desc            bool              // the sort reversed (dir=desc)
	SortURL         map[string]string // each sortable column's link
	Statuses, Sorts []string
	Total, From, To int
	Prev, Next      string
	Window          int
}

var listSorts = []string{"name", "next", "status", "last"}

func (c *Console) tasksPage(w http.ResponseWriter, r *http.Request, n *namespace) {
	ctx := r.Context()
	q := r.URL.Query()
	d := tasksData{Q: strings.TrimSpace(q.Get("q")), Status: q.Get("status"), Sort: q.Get("sort"), Desc: q.Get("dir") == "desc",
		Statuses: listStatuses, Sorts: listSorts, Window: historyWindow}
	if !slices.Contains(listSorts, d.Sort) {
		d.Sort = "name"
	}
	if d.Status != "" && !slices.Contains(listStatuses, d.Status) {
		c.fail(w, r, n, http.StatusBadRequest, fmt.Errorf("status %q: want one of %s", d.Status, strings.Join(listStatuses, ", ")))
		return
	}
	ts, err := n.tasks(ctx)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	specs := ts.specs
	d.Bad = ts.bad
	page, _ := strconv.Atoi(q.Get("page"))
	page = min(max(page, 1), len(specs)/c.cfg.PageSize+1) // no overflow of (page-1)*size
	match := func(name string) bool {
		return d.Q == "" || strings.Contains(strings.ToLower(name), strings.ToLower(d.Q))
	}
	size := c.cfg.PageSize
	var rows []inspect.View
	var now time.Time
	if d.Status == "" && d.Sort == "name" {
		// Sorted by name: only the page's tasks are read.
		var keep []int
		for i := range specs {
			if match(specs[i].Name) {
				keep = append(keep, i)
			}
		}
		if d.Desc {
			slices.Reverse(keep)
		}
		d.Total = len(keep)
		page = min(page, max((len(keep)+size-1)/size, 1)) // past the end: the last page
		lo := min((page-1)*size, len(keep))
		hi := min(lo+size, len(keep))
		pageSpecs := make([]events.Spec, 0, hi-lo)
		for _, i := range keep[lo:hi] {
			pageSpecs = append(pageSpecs, specs[i])
		}
		if rows, now, err = inspect.ViewsOf(ctx, n.st, pageSpecs); err != nil {
			c.fail(w, r, n, http.StatusBadGateway, err)
			return
		}
		d.From, d.To = lo, hi
	} else {
		all, t, err := n.allViews(ctx, ts)
		if err != nil {
			c.fail(w, r, n, http.StatusBadGateway, err)
			return
		}
		now = t
		var keep []int
		for i := range all {
			v := &all[i]
			if !match(v.Spec.Name) {
				continue
			}
			if d.Status == statusFailing && !failing(*v) || d.Status != "" && d.Status != statusFailing && v.Status != d.Status {
				continue
			}
			keep = append(keep, i)
		}
		sortViews(all, keep, d.Sort)
		if d.Desc {
			slices.Reverse(keep)
		}
		d.Total = len(keep)
		page = min(page, max((len(keep)+size-1)/size, 1))
		lo := min((page-1)*size, len(keep))
		hi := min(lo+size, len(keep))
		for _, i := range keep[lo:hi] {
			rows = append(rows, all[i])
		}
		d.From, d.To = lo, hi
	}
	if now.IsZero() {
		if now, err = n.st.Time(ctx); err != nil {
			c.fail(w, r, n, http.StatusBadGateway, err)
			return
		}
	}
	d.Now = now
	names := make([]string, len(rows))
	for i, v := range rows {
		names[i] = v.Spec.Name
	}
	hist, err := n.recentOutcomes(ctx, names, historyWindow)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	for _, v := range rows {
		d.Rows = append(d.Rows, taskRow{View: v, Words: TriggerWords(v.Spec.Trigger), Next: v.State.Next, Last: v.State.Last(),
			Stats: statsOf(hist[v.Spec.Name]), Failing: failing(v), Done: v.State.Done})
	}
	base := c.cfg.Prefix + "/n/" + url.PathEscape(n.name) + "/tasks"
	d.SortURL = map[string]string{}
	for _, by := range listSorts {
		v := url.Values{}
		for k, vs := range q {
			if k != "msg" && k != "sig" && k != "page" && k != "sort" && k != "dir" {
				v[k] = vs
			}
		}
		v.Set("sort", by)
		if by == d.Sort && !d.Desc {
			v.Set("dir", "desc")
		}
		d.SortURL[by] = base + "?" + v.Encode()
	}
	if page > 1 {
		d.Prev = pageURL(base, q, "page", strconv.Itoa(page-1))
	}
	if d.To < d.Total {
		d.Next = pageURL(base, q, "page", strconv.Itoa(page+1))
	}
	c.render(w, r, n, "tasks", "Tasks", d)
}

// historyWindow is how many history entries of each listed task its
// success rate and lateness are taken from.
const historyWindow = 50

// sortViews sorts keep, indices of vs, by next fire, last slot (newest
// first) or status (stuck, failing, running, paused, idle, done); by name
// they are already.
func sortViews(vs []inspect.View, keep []int, by string) {
	far := time.Unix(1<<40, 0)
	var key func(v *inspect.View) int64
	switch by {
	case "next":
		key = func(v *inspect.View) int64 {
			if v.State.Next.IsZero() {
				return far.UnixMilli() // none: last
			}
			return v.State.Next.UnixMilli()
		}
	case "last":
		key = func(v *inspect.View) int64 {
			if l := v.State.Last(); l != nil {
				return -l.Scheduled.UnixMilli() // newest first
			}
			return far.UnixMilli()
		}
	case "status":
		rank := map[string]int64{store.StatusStuck: 0, store.StatusRunning: 2, store.StatusPaused: 3, store.StatusIdle: 4, store.StatusDone: 5}
		key = func(v *inspect.View) int64 {
			if failing(*v) && v.Status != store.StatusStuck {
				return 1
			}
			return rank[v.Status]
		}
	default:
		return
	}
	keys := make([]int64, len(vs))
	for _, i := range keep {
		keys[i] = key(&vs[i])
	}
	sort.SliceStable(keep, func(a, b int) bool { return keys[keep[a]] < keys[keep[b]] })
}

// ---- task

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
	if raw, err := n.rdb.HGet(ctx, n.st.Keys().Specs(), v.Spec.Name).Result(); err == nil {
		var buf bytes.Buffer
		if json.Indent(&buf, []byte(raw), "", "  ") == nil {
			d.SpecJSON = buf.String()
		} else {
			d.SpecJSON = raw
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
	if d.ExplainErr == "" {
		ex, err := inspect.Explain(ctx, n.st, v, now, at, asked)
		if err != nil {
			d.ExplainErr = err.Error()
		} else {
			d.Explain = &ex
		}
	}
	tl, slots, err := c.timeline(r, n, v, now)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	if d.Explain != nil {
		tl.Explained = d.Explain.Slot
		for i := range tl.Blocks {
			tl.Blocks[i].Active = tl.Blocks[i].At == d.Explain.Slot
		}
	}
	d.Timeline = tl
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

func (c *Console) timeline(r *http.Request, n *namespace, v inspect.View, now time.Time) (timelineData, []store.Slot, error) {
	slots, err := n.st.History(r.Context(), v.Spec.Name, timelineSlots, now)
	if err != nil {
		return timelineData{}, nil, err
	}
	tl := timelineData{Task: v.Spec.Name, Loc: v.Loc, Rows: slots}
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
		tl.Blocks = append(tl.Blocks, slotBlock{Slot: s, Class: "o-" + s.Outcome, At: inspect.ISO(s.Scheduled), Title: title})
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
	return tl, slots, nil
}

func (c *Console) timelineFragment(w http.ResponseWriter, r *http.Request, n *namespace) {
	v, now, ok := c.taskOf(w, r, n)
	if !ok {
		return
	}
	tl, _, err := c.timeline(r, n, v, now)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	tl.Explained = r.URL.Query().Get("at")
	for i := range tl.Blocks {
		tl.Blocks[i].Active = tl.Blocks[i].At == tl.Explained
	}
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

// ---- live

type liveData struct {
	Task, Type string
	Types      []string
	Names      []string // for the task field's suggestions
}

var eventTypes = []string{string(events.TypeFired), string(events.TypeStarted), string(events.TypeCompleted), string(events.TypeFailed),
	string(events.TypeRetried), string(events.TypeDead), string(events.TypeMissed), string(events.TypeCancelled), string(events.TypeStuck),
	string(events.TypePaused), string(events.TypeResumed), string(events.TypeNodeUp), string(events.TypeNodeDown),
	string(events.TypeRegistered), string(events.TypeReload)}

func (c *Console) livePage(w http.ResponseWriter, r *http.Request, n *namespace) {
	n.events(c)
	q := r.URL.Query()
	d := liveData{Task: q.Get("task"), Type: q.Get("type"), Types: eventTypes}
	if ts, err := n.tasks(r.Context()); err == nil {
		for _, s := range ts.specs[:min(len(ts.specs), 1000)] {
			d.Names = append(d.Names, s.Name)
		}
	}
	c.render(w, r, n, "live", "Live", d)
}

// liveEvent is one event as the live streams send it (the page puts each
// value in as text).
type liveEvent struct {
	ID      string `json:"id"`
	Time    string `json:"time"`
	Type    string `json:"type"`
	Task    string `json:"task"`
	Fire    string `json:"fire"`
	Slot    string `json:"slot"`
	Worker  string `json:"worker"`
	Attempt int    `json:"attempt,omitempty"`
	Detail  string `json:"detail"`
}

func liveOf(e events.Event) liveEvent {
	t, _ := events.EntryTime(e.ID)
	le := liveEvent{ID: e.ID, Time: inspect.ISO(t), Type: string(e.Type), Task: show(e.Task), Fire: show(e.Fire), Slot: inspect.ISO(e.At),
		Worker: show(e.Worker), Attempt: e.Attempt}
	var parts []string
	if e.Fire != "" && e.Fire != events.FireID(e.Task, e.At) {
		parts = append(parts, "fire "+e.Fire) // a manual trigger's id
	}
	if e.CostMs > 0 || e.Type == events.TypeCompleted {
		parts = append(parts, fmt.Sprintf("took %dms", e.CostMs))
	}
	if !e.Started.IsZero() && !e.At.IsZero() && e.Type == events.TypeStarted {
		parts = append(parts, "late "+e.Started.Sub(e.At).Round(time.Millisecond).String())
	}
	if e.Type == events.TypeStarted && e.Started.IsZero() && !e.At.IsZero() {
		parts = append(parts, "late "+t.Sub(e.At).Round(time.Millisecond).String())
	}
	if e.Count > 1 {
		parts = append(parts, fmt.Sprintf("%d slots", e.Count))
	}
	if e.Reason != "" {
		parts = append(parts, e.Reason)
	}
	if e.Policy != "" {
		parts = append(parts, "policy "+string(e.Policy))
	}
	if e.Error != "" {
		parts = append(parts, "error: "+inspect.Clip(e.Error, 300))
	}
	if e.Change != "" {
		parts = append(parts, e.Change)
	}
	le.Detail = show(strings.Join(parts, "; "))
	return le
}

// eventStream is the live page's Server-Sent Events: the latest events
// (up to 200; none with recent=0) and then each one as it is appended,
// filtered by task and type (a comma list).
func (c *Console) eventStream(w http.ResponseWriter, r *http.Request, n *namespace) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	task := r.URL.Query().Get("task")
	var types []string
	if t := r.URL.Query().Get("type"); t != "" {
		types = strings.Split(t, ",")
	}
	keep := func(e events.Event) bool {
		return (task == "" || e.Task == task) && (len(types) == 0 || slices.Contains(types, string(e.Type)))
	}
	h := n.events(c)
	ch, before, cancel := h.subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(e events.Event) bool {
		b, _ := json.Marshal(liveOf(e))
		_, err := fmt.Fprintf(w, "id: %s\ndata: %s\n\n", e.ID, b)
		return err == nil
	}
	fmt.Fprint(w, "retry: 1000\n\n")
	if r.URL.Query().Get("recent") == "0" {
		before = nil // only what comes from now on
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		// A reconnect: only what the page has not shown.
		k := 0
		for k < len(before) && !store.LessID(last, before[k].ID) {
			k++
		}
		before = before[k:]
	}
	var first []events.Event
	for i := len(before) - 1; i >= 0 && len(first) < 200; i-- {
		if keep(before[i]) {
			first = append(first, before[i])
		}
	}
	for i := len(first) - 1; i >= 0; i-- {
		if !send(first[i]) {
			return
		}
	}
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.ctx.Done():
			return
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		case e := <-ch:
			if !keep(e) {
				continue
			}
			if !send(e) {
				return
			}
			// Send what else is queued, then flush once.
			for more := true; more; {
				select {
				case e := <-ch:
					if keep(e) && !send(e) {
						return
					}
				default:
					more = false
				}
			}
			fl.Flush()
		}
	}
}

// ---- dead letters

type deadRow struct {
	store.DeadLetter
	Fields [][2]string
	Size   int
	At     time.Time // when it was dead-lettered
}

type deadData struct {
	Rows         []deadRow
	Total        int64
	Next, First  string
	After, Task  string
	Newest       bool
	Scanned      int
	OrderURL     string
	ScanLimitHit bool
}

// deadScanMax bounds the dead letters one page with a task filter reads.
const deadScanMax = 10_000

func (c *Console) deadPage(w http.ResponseWriter, r *http.Request, n *namespace) {
	ctx := r.Context()
	q := r.URL.Query()
	d := deadData{After: q.Get("after"), Task: strings.TrimSpace(q.Get("task")), Newest: q.Get("order") != "oldest"}
	if d.After != "" {
		if _, err := events.EntryTime(d.After); err != nil {
			c.fail(w, r, n, http.StatusBadRequest, fmt.Errorf("after %q: want a stream entry id such as 1700000000000-0", show(d.After)))
			return
		}
	}
	base := c.cfg.Prefix + "/n/" + url.PathEscape(n.name) + "/dead"
	link := func(after string, newest bool) string {
		v := url.Values{}
		if !newest {
			v.Set("order", "oldest")
		}
		if d.Task != "" {
			v.Set("task", d.Task)
		}
		if after != "" {
			v.Set("after", after)
		}
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	d.OrderURL, d.First = link("", !d.Newest), link("", d.Newest)
	// Read pages until one is full of the task's letters (or the scan
	// bound is reached).
	size := c.cfg.DeadPageSize
	cursor := d.After
	var last string
	for len(d.Rows) <= size && d.Scanned < deadScanMax {
		var ds []store.DeadLetter
		var err error
		chunk := int64(size + 1)
		if d.Task != "" {
			chunk = 500
		}
		switch {
		case d.Newest && cursor == "":
			ds, err = n.st.ListDeadBack(ctx, "+", chunk)
		case d.Newest:
			ds, err = n.st.ListDeadBack(ctx, cursor, chunk)
		case cursor == "":
			ds, err = n.st.ListDead(ctx, "-", chunk)
		default:
			ds, err = n.st.ListDead(ctx, "("+cursor, chunk)
		}
		if err != nil {
			c.fail(w, r, n, http.StatusBadGateway, err)
			return
		}
		for _, dl := range ds {
			d.Scanned++
			if d.Task != "" && dl.Task() != d.Task {
				continue
			}
			if len(d.Rows) == size {
				last = d.Rows[size-1].ID // more follow
				break
			}
			d.Rows = append(d.Rows, deadRowOf(dl))
		}
		if last != "" || int64(len(ds)) < chunk {
			break
		}
		cursor = ds[len(ds)-1].ID
	}
	if last == "" && d.Scanned >= deadScanMax && d.Task != "" {
		d.ScanLimitHit = true
		last = cursor
	}
	if last != "" {
		d.Next = link(last, d.Newest)
	}
	var err error
	if d.Total, err = n.rdb.XLen(ctx, n.st.Keys().Dead()).Result(); err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	c.render(w, r, n, "dead", "Dead letters", d)
}

func deadRowOf(dl store.DeadLetter) deadRow {
	row := deadRow{DeadLetter: dl}
	row.At, _ = events.EntryTime(dl.ID)
	keys := make([]string, 0, len(dl.Fields))
	for k := range dl.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row.Fields = append(row.Fields, [2]string{k, dl.Fields[k]})
		row.Size += len(k) + len(dl.Fields[k])
	}
	return row
}

// replayAllMax bounds one "replay all": the rest is for the next click.
const replayAllMax = 10_000

func (c *Console) deadAction(w http.ResponseWriter, r *http.Request, n *namespace) {
	ctx := r.Context()
	page := c.cfg.Prefix + "/n/" + url.PathEscape(n.name) + "/dead"
	id := r.PostForm.Get("id")
	all := r.PostForm.Get("all") == "1"
	if id == "" && !all {
		c.fail(w, r, n, http.StatusBadRequest, errors.New("want a dead-letter id, or all"))
		return
	}
	if _, err := events.EntryTime(id); id != "" && err != nil {
		c.fail(w, r, n, http.StatusBadRequest, fmt.Errorf("dead-letter id %q: want a stream entry id such as 1700000000000-0", show(id)))
		return
	}
	switch r.PathValue("action") {
	case "replay":
		var ds []store.DeadLetter
		if all {
			var err error
			if ds, err = n.st.ListDead(ctx, "-", replayAllMax); err != nil {
				c.fail(w, r, n, http.StatusBadGateway, err)
				return
			}
		} else {
			d, err := n.st.DeadLetterByID(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				c.back(w, r, page, "dead letter "+id+" is gone (replayed or deleted)")
				return
			}
			if err != nil {
				c.fail(w, r, n, http.StatusBadGateway, err)
				return
			}
			ds = []store.DeadLetter{d}
		}
		replayed, refused := 0, []string{}
		for _, d := range ds {
			_, err := n.st.Replay(ctx, d, c.cfg.Who)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case errors.Is(err, store.ErrNotReplayable):
				refused = append(refused, d.ID+": "+err.Error())
			case err != nil:
				c.fail(w, r, n, http.StatusBadGateway, fmt.Errorf("replay %s (replayed %d before it): %w", d.ID, replayed, err))
				return
			default:
				replayed++
			}
		}
		msg := fmt.Sprintf("replayed %d dead letter(s)", replayed)
		if len(refused) > 0 {
			msg += fmt.Sprintf("; %d cannot be replayed: %s", len(refused), inspect.Clip(strings.Join(refused, "; "), 300))
		}
		c.back(w, r, page, msg)
	case "delete":
		if all {
			ds, err := n.st.ListDead(ctx, "-", replayAllMax)
			if err != nil {
				c.fail(w, r, n, http.StatusBadGateway, err)
				return
			}
			ids := make([]string, len(ds))
			for i, d := range ds {
				ids[i] = d.ID
			}
			var k int64
			for len(ids) > 0 {
				part := ids[:min(len(ids), 1000)]
				ids = ids[len(part):]
				got, err := n.st.DeleteDead(ctx, part...)
				if err != nil {
					c.fail(w, r, n, http.StatusBadGateway, fmt.Errorf("delete (deleted %d before): %w", k, err))
					return
				}
				k += got
			}
			c.back(w, r, page, fmt.Sprintf("deleted %d dead letter(s)", k))
			return
		}
		k, err := n.st.DeleteDead(ctx, id)
		if err != nil {
			c.fail(w, r, n, http.StatusBadGateway, err)
			return
		}
		c.back(w, r, page, fmt.Sprintf("deleted %d dead letter(s)", k))
	default:
		c.fail(w, r, n, http.StatusNotFound, fmt.Errorf("unknown action %q: want replay or delete", show(r.PathValue("action"))))
	}
}

// ---- workers

type workerRow struct {
	store.WorkerState
	Held     int64
	HandBack int64
}

type workersData struct {
	Now      time.Time
	Planners []store.PlannerState
	Workers  []workerRow
	Version  int64
	Unrun    []string
}

func (c *Console) workersPage(w http.ResponseWriter, r *http.Request, n *namespace) {
	ctx := r.Context()
	d := workersData{}
	var err error
	if d.Planners, err = n.st.Planners(ctx); err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	ws, err := n.st.Workers(ctx)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	ts, err := n.tasks(ctx)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	specs := ts.specs
	d.Version = ts.version
	if d.Now, err = n.st.Time(ctx); err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	queues := map[string]bool{}
	runnable := map[string]bool{}
	for _, wk := range ws {
		for _, q := range wk.Queues {
			queues[q] = true
		}
		if wk.Live {
			for _, t := range wk.Tasks {
				runnable[t] = true
			}
		}
	}
	qs := make([]string, 0, len(queues))
	for q := range queues {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	held, err := n.st.Held(ctx, qs)
	if err != nil {
		c.fail(w, r, n, http.StatusBadGateway, err)
		return
	}
	for _, wk := range ws {
		d.Workers = append(d.Workers, workerRow{WorkerState: wk, Held: held[wk.Node], HandBack: held[wk.Node+"~handback"]})
	}
	for _, s := range specs {
		if !runnable[s.Name] && len(d.Unrun) < 20 {
			d.Unrun = append(d.Unrun, s.Name)
		}
	}
	c.render(w, r, n, "workers", "Workers", d)
}
