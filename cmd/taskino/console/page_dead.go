package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/taskino/taskino/cmd/internal/inspect"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// The dead letters: list, replay, delete.

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
