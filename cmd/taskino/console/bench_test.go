package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// counter counts the commands a client sends, and its round trips (a
// pipeline is one).
type counter struct{ cmds, trips atomic.Int64 }

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		c.trips.Add(1)
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.cmds.Add(int64(len(cmds)))
		c.trips.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkPages renders the console's pages of a namespace of 10,000 and
// 100,000 tasks (each with 20 history entries) on a real redis-server, and
// reports the time of a page view and the Redis commands and round trips
// it costs. "cold" views read every task's state again (StateTTL passed);
// the others reuse what the console keeps.
//
//	go test ./cmd/taskino/console -run '^$' -bench Pages -benchtime 20x
func BenchmarkPages(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			srv := redistest.Start(b)
			rdb := srv.Client(b)
			ctx := context.Background()
			st, err := store.New(rdb, "bench", store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			specs := make([]events.Spec, n)
			for i := range specs {
				specs[i] = events.Spec{Name: fmt.Sprintf("task-%06d", i), Trigger: events.Trigger{Kind: events.KindCron, Cron: "0 30 2 * * *", TZ: "Europe/Berlin"}}.WithDefaults()
			}
			if _, err := st.Apply(ctx, 1, specs); err != nil {
				b.Fatal(err)
			}
			// 20 outcomes in each history stream, as a busy namespace has.
			pipe := rdb.Pipeline()
			now := time.Now()
			for i := range specs {
				for k := 0; k < 20; k++ {
					slot := now.Add(-time.Duration(20-k) * time.Minute)
					e := fmt.Sprintf(`{"type":"completed","task":%q,"fire":"%s@%d","at":"%d","started":"%d","attempt":"1","worker":"w1","cost_ms":"12"}`,
						specs[i].Name, specs[i].Name, slot.UnixMilli(), slot.UnixMilli(), slot.Add(3*time.Millisecond).UnixMilli())
					pipe.XAdd(ctx, &redis.XAddArgs{Stream: st.Keys().History(specs[i].Name), Values: []string{events.FieldHistory, e}})
				}
				if i%1000 == 999 {
					if _, err := pipe.Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
			cnt := &counter{}
			crdb := srv.Client(b)
			crdb.AddHook(cnt)
			for _, cold := range []bool{false, true} {
				cfg := Config{Redis: crdb, Namespaces: []string{"bench"}}
				if cold {
					cfg.StateTTL = time.Nanosecond
				}
				c, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				hs := httptest.NewServer(c)
				pages := []struct{ name, path string }{
					{"overview", "/n/bench/"},
					{"tasks", "/n/bench/tasks"},
					{"tasks-page-100", "/n/bench/tasks?page=100"},
					{"tasks-search", "/n/bench/tasks?q=task-0099"},
					{"tasks-by-next", "/n/bench/tasks?sort=next"},
					{"tasks-idle", "/n/bench/tasks?status=idle"},
					{"task", "/n/bench/task?name=task-000042"},
					{"dead", "/n/bench/dead"},
					{"workers", "/n/bench/workers"},
				}
				for _, p := range pages {
					if cold && p.name != "overview" && p.name != "tasks-by-next" && p.name != "tasks-idle" {
						continue // only these read every state
					}
					name := p.name
					if cold {
						name += "-cold"
					}
					b.Run(name, func(b *testing.B) {
						view := func() {
							resp, err := hs.Client().Get(hs.URL + p.path)
							if err != nil {
								b.Fatal(err)
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != http.StatusOK {
								b.Fatalf("%s: %d", p.path, resp.StatusCode)
							}
						}
						view() // the task set read once, as a running console has it
						cnt.cmds.Store(0)
						cnt.trips.Store(0)
						b.ResetTimer()
						for i := 0; i < b.N; i++ {
							view()
						}
						b.StopTimer()
						b.ReportMetric(float64(cnt.cmds.Load())/float64(b.N), "cmds/view")
						b.ReportMetric(float64(cnt.trips.Load())/float64(b.N), "trips/view")
						b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/view")
					})
				}
				hs.Close()
				_ = c.Close()
			}
		})
	}
}
