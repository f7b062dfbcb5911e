package console

import (
	"net/http"
	"sort"
	"time"

	"github.com/taskino/taskino/store"
)

// The planners and workers page.

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
