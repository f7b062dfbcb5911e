package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// The live page and its Server-Sent Events stream.

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
		parts = append(parts, "late "+e.Started.Sub(e.DueAt()).Round(time.Millisecond).String())
	}
	if e.Type == events.TypeStarted && e.Started.IsZero() && !e.At.IsZero() {
		parts = append(parts, "late "+t.Sub(e.DueAt()).Round(time.Millisecond).String())
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
