package planner

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// countHook counts the commands a client sends to Redis: one per round trip
// for single commands and scripts, one per pipeline.
type countHook struct{ trips atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.trips.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.trips.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkPlanThroughput measures one planner draining N tasks that are all
// due at the same instant (one-shot tasks): fires planned per second and
// Redis round trips per fire. Redis runs on the same machine.
//
//	go test ./planner -run '^$' -bench PlanThroughput -benchtime 3x
func BenchmarkPlanThroughput(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("due=%d", n), func(b *testing.B) {
			srv := redistest.Start(b)
			rdb := srv.Client(b)
			hook := &countHook{}
			rdb.AddHook(hook)
			ctx := context.Background()
			var fires, trips int64
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ns := fmt.Sprintf("bench%d", i)
				st, err := store.New(rdb, ns, store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				now, _ := st.Time(ctx)
				// Due after the apply and the first pass have certainly
				// finished (about 50µs a task here), so the timed part
				// plans every fire.
				due := now.Add(2*time.Second + time.Duration(n)*100*time.Microsecond)
				specs := make([]events.Spec, n)
				for j := range specs {
					specs[j] = events.Spec{Name: fmt.Sprintf("task-%06d", j), Trigger: events.Once(due)}
				}
				if _, err := st.Apply(ctx, 1, specs); err != nil {
					b.Fatal(err)
				}
				p, err := New(rdb, Config{Namespace: ns})
				if err != nil {
					b.Fatal(err)
				}
				// First pass: compute every task's next slot (not due yet).
				for planned := 0; planned < n; {
					_, k, err := p.round(ctx)
					if err != nil {
						b.Fatal(err)
					}
					planned += k
				}
				if now, _ := st.Time(ctx); !now.Before(due) {
					b.Fatalf("setup took past the due time; raise the margin")
				}
				for {
					if now, _ := st.Time(ctx); !now.Before(due) {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				before := hook.trips.Load()
				start := time.Now()
				b.StartTimer()
				for planned := 0; planned < n; {
					sleep, k, err := p.round(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if k == 0 && sleep > 0 {
						b.Fatalf("nothing left to plan after %d of %d tasks", planned, n)
					}
					planned += k
				}
				b.StopTimer()
				elapsed += time.Since(start)
				trips += hook.trips.Load() - before
				got, err := rdb.XLen(ctx, st.Keys().Fires("default")).Result()
				if err != nil || got != int64(n) {
					b.Fatalf("%d fires appended, want %d (%v)", got, n, err)
				}
				fires += got
				rdb.FlushAll(ctx)
			}
			b.ReportMetric(float64(fires)/elapsed.Seconds(), "fires/s")
			b.ReportMetric(float64(trips)/float64(fires), "roundtrips/fire")
			b.ReportMetric(0, "ns/op")
		})
	}
}
