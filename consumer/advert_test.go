package consumer

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// logLines is a zerolog writer that hands each JSON line to the test.
type logLines chan map[string]any

func (l logLines) Write(b []byte) (int, error) {
	var m map[string]any
	if json.Unmarshal(b, &m) == nil {
		l <- m
	}
	return len(b), nil
}

// awaitLog waits for a log line for which match holds (a minute: a bound
// on a hang, not a timing).
func awaitLog(t *testing.T, l logLines, what string, match func(m map[string]any) bool) map[string]any {
	t.Helper()
	limit := time.After(time.Minute)
	for {
		select {
		case m := <-l:
			if match(m) {
				return m
			}
		case <-limit:
			t.Fatalf("no log line %s within a minute", what)
		}
	}
}

// awaitWorkers waits until the registry read satisfies cond.
func awaitWorkers(t *testing.T, st *store.Store, what string, cond func(ws []store.WorkerState) bool) []store.WorkerState {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ws, err := st.Workers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cond(ws) {
			return ws
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers registry: %+v; want %s", ws, what)
		}
		time.Sleep(5 * time.Millisecond) // a poll, not a synchronisation: the condition decides
	}
}

// TestAdvertPublishesAndWarns: a running consumer publishes what it was
// told with Advertise, with its node, queues and visibility timeout; a
// stored task set newer than its version makes it warn once, naming both
// versions and the task that differs, and publish itself stale; a longer
// visibility timeout in the namespace makes it warn naming both; a clean
// stop takes it out of the registry.
func TestAdvertPublishesAndWarns(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	logs := make(logLines, 10_000)
	c, err := New(rdb, Config{Node: "w1", Namespace: "advert", Queues: []string{"q"}, Logger: zerolog.New(logs),
		VisibilityTimeout: time.Second, Block: 10 * time.Millisecond, SpecCheckInterval: time.Millisecond,
		timing: timing{heartbeat: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	a := events.Spec{Name: "a", Queue: "q", Trigger: events.Every(time.Minute)}
	b := events.Spec{Name: "b", Queue: "q", Trigger: events.Every(time.Minute)}
	if _, err := c.Store().Apply(ctx, 1, []events.Spec{a, b}); err != nil {
		t.Fatal(err)
	}
	c.Advertise(Advert{Tasks: []string{"b", "a"}, Version: 1, Specs: []events.Spec{a, b}})
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()

	ws := awaitWorkers(t, c.Store(), "w1 live, not stale", func(ws []store.WorkerState) bool { return len(ws) == 1 && ws[0].Live })
	if w := ws[0]; w.Node != "w1" || !slices.Equal(w.Queues, []string{"q"}) || !slices.Equal(w.Tasks, []string{"a", "b"}) ||
		w.Version != 1 || w.Visibility != time.Second || w.Stale {
		t.Errorf("published %+v", w)
	}

	// Version 2 changes b: stale, naming 1, 2 and b.
	b2 := b
	b2.Payload = "changed"
	if _, err := c.Store().Apply(ctx, 2, []events.Spec{a, b2}); err != nil {
		t.Fatal(err)
	}
	m := awaitLog(t, logs, "of a stale task set", func(m map[string]any) bool { return strings.Contains(m["message"].(string), "stale") })
	if m["version"] != 1.0 || m["stored_version"] != 2.0 || !slices.Equal(toStrings(m["differing_tasks"]), []string{"b"}) {
		t.Errorf("stale warning %v; want version 1, stored_version 2, differing_tasks [b]", m)
	}
	awaitWorkers(t, c.Store(), "w1 stale", func(ws []store.WorkerState) bool { return len(ws) == 1 && ws[0].Stale })

	// Advertising version 2 (a SIGHUP's reload) ends it.
	c.Advertise(Advert{Tasks: []string{"a", "b"}, Version: 2, Specs: []events.Spec{a, b2}})
	awaitWorkers(t, c.Store(), "w1 at version 2, not stale", func(ws []store.WorkerState) bool {
		return len(ws) == 1 && !ws[0].Stale && ws[0].Version == 2
	})

	// Another worker's 3s visibility timeout: the namespace's is 3s.
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, c.Store().Keys().Visibility(), redis.Z{Score: float64(now.UnixMilli()), Member: 3000}).Err(); err != nil {
		t.Fatal(err)
	}
	m = awaitLog(t, logs, "of a visibility timeout that differs", func(m map[string]any) bool {
		return strings.Contains(m["message"].(string), "visibility timeout differs")
	})
	if m["visibility"] != "1s" || m["namespace_visibility"] != "3s" {
		t.Errorf("visibility warning %v; want 1s and 3s", m)
	}

	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if ws, err := c.Store().Workers(ctx); err != nil || len(ws) != 0 {
		t.Errorf("registry after a clean stop: %+v, %v; want empty", ws, err)
	}
	// Each warning was logged once.
	close(logs)
	for m := range logs {
		if msg := m["message"].(string); strings.Contains(msg, "stale") || strings.Contains(msg, "visibility timeout differs") {
			t.Errorf("logged again: %v", m)
		}
	}
}

func toStrings(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
