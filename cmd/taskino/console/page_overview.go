package console

import (
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// The overview page: the namespace at a glance.

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
