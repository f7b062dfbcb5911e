package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// latencies collects handler lateness (start minus scheduled time).
type latencies struct {
	mu   sync.Mutex
	vals []time.Duration
	all  chan struct{}
	want int
}

func (l *latencies) add(f events.Fire) {
	d := time.Since(f.At)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.vals = append(l.vals, d)
	if len(l.vals) == l.want {
		close(l.all)
	}
}

func (l *latencies) report(b *testing.B, n int, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.vals)
	q := func(p float64) float64 { return float64(l.vals[int(p*float64(len(l.vals)-1))].Milliseconds()) }
	b.ReportMetric(float64(n)/elapsed.Seconds(), "execs/s")
	b.ReportMetric(q(0.5), "p50-late-ms")
	b.ReportMetric(q(0.99), "p99-late-ms")
	b.ReportMetric(q(1), "max-late-ms")
}

// benchWorker starts one worker (concurrency 50, a no-op handler that
// records its lateness) for the tasks named by names.
func benchWorker(b *testing.B, rdb *redis.Client, names []string, lat *latencies) (stop func()) {
	hs := dispatcher.Handlers{}
	for _, n := range names {
		hs[n] = dispatcher.HandlerFunc(func(ctx context.Context, f events.Fire) error { lat.add(f); return nil })
	}
	d, err := dispatcher.NewWorker(rdb, dispatcher.WorkerConfig{Namespace: ns, Logger: zerolog.Nop(), Concurrency: 50,
		Stream: consumer.Config{FlushBatch: 512}}, hs)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// awaitAcked waits until the worker group holds nothing of the stream.
func awaitAcked(b *testing.B, rdb *redis.Client, stream string) {
	for {
		p, err := rdb.XPending(context.Background(), stream, store.WorkerGroup).Result()
		if err != nil {
			b.Fatal(err)
		}
		if p.Count == 0 {
			return
		}
		time.Sleep(time.Millisecond) // polling, in a benchmark only
	}
}

// BenchmarkWorkerBacklog: one worker (concurrency 50, no-op handler) drains
// 20,000 fires that are all due when it starts (written as a planner writes
// them). execs/s counts a fire done
// when its outcome is recorded and its entry acked; lateness is handler
// start minus the fires' scheduled time (so it is the queueing delay of a
// backlog).
func BenchmarkWorkerBacklog(b *testing.B) {
	const n = 20_000
	for range b.N {
		b.StopTimer()
		srv := redistest.Start(b)
		rdb := srv.Client(b)
		st, _ := store.New(rdb, ns, store.Options{})
		stream := st.Keys().Fires("default")
		if err := store.WorkerProtocol(st).EnsureGroup(context.Background(), stream); err != nil {
			b.Fatal(err)
		}
		now, _ := st.Time(context.Background())
		at := strconv.FormatInt(now.UnixMilli(), 10)
		pipe := rdb.Pipeline()
		for i := range n {
			pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: []any{events.FieldV, events.EncodingVersion, events.FieldTask, "noop", events.FieldID, fmt.Sprint(i), events.FieldAt, at}})
		}
		if _, err := pipe.Exec(context.Background()); err != nil {
			b.Fatal(err)
		}
		lat := &latencies{all: make(chan struct{}), want: n}
		b.StartTimer()
		start := time.Now()
		stop := benchWorker(b, rdb, []string{"noop"}, lat)
		<-lat.all
		awaitAcked(b, rdb, stream)
		elapsed := time.Since(start)
		b.StopTimer()
		stop()
		lat.report(b, n, elapsed)
	}
}

// BenchmarkEndToEndBurst: a planner and one worker (concurrency 50, no-op
// handler) take 10,000 one-shot tasks due at one instant, from the due
// instant to the last ack. Lateness is handler start minus the scheduled
// time.
func BenchmarkEndToEndBurst(b *testing.B) {
	const n = 10_000
	for range b.N {
		b.StopTimer()
		srv := redistest.Start(b)
		rdb := srv.Client(b)
		st, _ := store.New(rdb, ns, store.Options{})
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("burst-%d", i)
		}
		lat := &latencies{all: make(chan struct{}), want: n}
		stopWorker := benchWorker(b, rdb, names, lat)
		now, _ := st.Time(context.Background())
		due := now.Add(2 * time.Second)
		specs := make([]events.Spec, n)
		for i := range specs {
			specs[i] = events.Spec{Name: names[i], Trigger: events.Once(due)}
		}
		if _, err := planner.Apply(context.Background(), st, 1, specs); err != nil {
			b.Fatal(err)
		}
		p, err := planner.New(rdb, planner.Config{Namespace: ns})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		pdone := make(chan error, 1)
		go func() { pdone <- p.Run(ctx) }()
		time.Sleep(time.Until(due)) // the benchmark measures from the due instant
		b.StartTimer()
		<-lat.all
		awaitAcked(b, rdb, st.Keys().Fires("default"))
		elapsed := time.Since(due)
		b.StopTimer()
		cancel()
		<-pdone
		stopWorker()
		lat.report(b, n, elapsed)
	}
}
