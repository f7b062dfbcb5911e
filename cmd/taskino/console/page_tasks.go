package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// The tasks list: filtered, sorted, a page at a time.

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
		var lo, hi int
		page, lo, hi = pageBounds(len(keep), page, size)
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
		var lo, hi int
		page, lo, hi = pageBounds(len(keep), page, size)
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
		d.Rows = append(d.Rows, taskRow{View: v, Words: TriggerWords(v.Spec.Trigger), Next: inspect.NextFire(v.Spec, v.State.Next), Last: v.State.Last(),
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

// pageBounds is the page shown when page is asked for (past the end: the
// last), and the range of a list of n it holds, size a page.
func pageBounds(n, page, size int) (shown, lo, hi int) {
	shown = min(page, max((n+size-1)/size, 1))
	lo = min((shown-1)*size, n)
	return shown, lo, min(lo+size, n)
}
