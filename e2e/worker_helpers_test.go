package e2e

import (
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
)

// runningWorker is a worker running in a goroutine.
type runningWorker struct {
	*running
	w *dispatcher.Worker
}

// startWorker starts a worker on the bundle's server with the given
// handlers, its stream side tuned by cc and its runs by dc (as
// dispatcher.NewWorker builds them), and stops it (checking Run returned
// nil) when the test ends.
func startWorker(t *testing.T, b testBundle, cc consumer.Config, dc dispatcher.Config, handlers map[string]dispatcher.HandlerFunc) *runningWorker {
	t.Helper()
	wc := dispatcher.WorkerConfig{Namespace: ns, Queues: cc.Queues, Node: cc.Node, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Concurrency: dc.Concurrency, Grace: dc.Grace, RetryDelay: dc.RetryDelay}
	cc.Queues, cc.Node = nil, ""
	wc.Stream = cc
	hs := dispatcher.Handlers{}
	for name, h := range handlers {
		hs[name] = h
	}
	w, err := dispatcher.NewWorker(b.rdb, wc, hs)
	if err != nil {
		t.Fatal(err)
	}
	return &runningWorker{running: goRun(t, "worker", 60*time.Second, w.Run), w: w}
}

// awaitNodesUp waits for a node_up event of each worker.
func awaitNodesUp(t *testing.T, b testBundle, ws ...*runningWorker) {
	t.Helper()
	want := map[string]bool{}
	for _, w := range ws {
		want[w.w.Node()] = true
	}
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeNodeUp && want[e.Worker] {
				n++
			}
		}
		return n >= len(want)
	})
}

// runLog records the runs of handlers: per fire id, how often, and by whom.
type runLog struct {
	mu    sync.Mutex
	runs  map[string]int
	by    map[string][]string
	total int
}

func newRunLog() *runLog { return &runLog{runs: map[string]int{}, by: map[string][]string{}} }

func (l *runLog) add(worker string, f events.Fire) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[f.ID]++
	l.by[f.ID] = append(l.by[f.ID], worker)
	l.total++
}

func (l *runLog) snapshot() (map[string]int, map[string][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	runs := make(map[string]int, len(l.runs))
	by := make(map[string][]string, len(l.by))
	for k, v := range l.runs {
		runs[k] = v
		by[k] = append([]string(nil), l.by[k]...)
	}
	return runs, by
}

// countEvents counts events of typ per fire id.
func countEvents(all []events.Event, typ events.Type) map[string]int {
	out := map[string]int{}
	for _, e := range all {
		if e.Type == typ {
			out[e.Fire]++
		}
	}
	return out
}

// ofType is the events of type typ, in order.
func ofType(all []events.Event, typ events.Type) []events.Event {
	var out []events.Event
	for _, e := range all {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
