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

// runningWorker is a consumer and dispatcher running in goroutines.
type runningWorker struct {
	*running
	c *consumer.Consumer
	d *dispatcher.Dispatcher
}

// startWorker starts a worker on the bundle's server with the given
// handlers, and stops it (checking Run returned nil) when the test ends.
func startWorker(t *testing.T, b testBundle, cc consumer.Config, dc dispatcher.Config, handlers map[string]dispatcher.HandlerFunc) *runningWorker {
	t.Helper()
	cc.Namespace = ns
	cc.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	dc.Logger = cc.Logger
	c, err := consumer.New(b.rdb, cc)
	if err != nil {
		t.Fatal(err)
	}
	d := dispatcher.New(c, dc)
	for name, h := range handlers {
		if err := d.Handle(name, h); err != nil {
			t.Fatal(err)
		}
	}
	return &runningWorker{running: goRun(t, "worker", 60*time.Second, d.Run), c: c, d: d}
}

// awaitNodesUp waits for a node_up event of each worker.
func awaitNodesUp(t *testing.T, b testBundle, ws ...*runningWorker) {
	t.Helper()
	want := map[string]bool{}
	for _, w := range ws {
		want[w.c.Node()] = true
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
