package dispatcher_test

import (
	"context"
	"sync"
	"testing"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// countSource hands out b.N fires, a batch at a time, and counts the
// finished ones: the dispatcher's own cost per run, without Redis.
type countSource struct {
	mu      sync.Mutex
	left    int
	batch   []store.Delivery
	done    chan struct{}
	pending int
}

func (s *countSource) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (s *countSource) Fetch(ctx context.Context, max int) ([]store.Delivery, error) {
	s.mu.Lock()
	n := min(max, s.left, len(s.batch))
	s.left -= n
	s.mu.Unlock()
	if n == 0 {
		<-ctx.Done()
		return nil, nil
	}
	out := make([]store.Delivery, n)
	copy(out, s.batch)
	return out, nil
}

func (s *countSource) Start(*store.Delivery) {}

func (s *countSource) Finish(*store.Delivery, consumer.Result) {
	s.mu.Lock()
	s.pending--
	last := s.pending == 0
	s.mu.Unlock()
	if last {
		close(s.done)
	}
}

// BenchmarkDispatch: a run of a no-op handler, from the fetch that
// returned its fire to its Finish (concurrency 50).
func BenchmarkDispatch(b *testing.B) {
	spec := events.Spec{Name: "noop"}.WithDefaults()
	batch := make([]store.Delivery, 50)
	for i := range batch {
		batch[i] = store.Delivery{Fire: events.Fire{ID: "noop@1", Task: "noop", Attempt: 1}, Spec: spec, Queue: "default"}
	}
	src := &countSource{left: b.N, pending: b.N, batch: batch, done: make(chan struct{})}
	d := newDispatcher(b, src, dispatcher.Config{Concurrency: 50})
	if err := d.HandleFunc("noop", func(context.Context, events.Fire) error { return nil }); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-src.done
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
