package planner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// jumpClock is the host clock plus a skip that a test can grow, as a
// planner paused mid-round (GC, VM stall) would see.
type jumpClock struct{ skip atomic.Int64 }

func (c *jumpClock) Now() time.Time { return time.Now().Add(time.Duration(c.skip.Load())) }

// A round whose plan would be recorded after its lease is trusted hands its
// tasks back at once (not after the lease), and claims half as many next
// time, so a batch too big to plan in time cannot loop forever; the size
// grows back after rounds that fit.
func TestRoundShrinksItsBatchAfterALeaseOverrun(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	specs := hourlySpecs(8)
	clock := &jumpClock{}
	var stall atomic.Bool
	p, err := New(rdb, Config{Namespace: "r", BatchSize: 8, Lease: time.Second, Clock: clock,
		Logger: zerolog.New(zerolog.NewTestWriter(t)),
		AfterClaim: func(context.Context, []string) {
			if stall.Load() {
				clock.skip.Add(int64(2 * time.Second))
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, p.Store(), 1, specs); err != nil {
		t.Fatal(err)
	}
	stall.Store(true)
	if _, planned, err := p.round(ctx); err != nil || planned != 0 {
		t.Fatalf("stalled round planned %d (%v), want 0", planned, err)
	}
	if p.batch != 4 {
		t.Fatalf("batch %d after an overrun, want 4", p.batch)
	}
	c, err := p.store.Claim(ctx, "other", time.Second, 100, time.Time{}, 0)
	if err != nil || len(c.Tasks) != 8 {
		t.Fatalf("another planner claimed %d tasks (%v); the stalled round should have handed all 8 back", len(c.Tasks), err)
	}
	if _, err := p.store.Release(ctx, "other", []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}); err != nil {
		t.Fatal(err)
	}
	stall.Store(false)
	if _, planned, err := p.round(ctx); err != nil || planned != 4 || p.batch != 5 {
		t.Fatalf("next round planned %d with batch now %d (%v), want 4 and 5 (grown by one)", planned, p.batch, err)
	}
	// At a batch of one, a stalled round still sends its plan: the store's
	// lease check decides, and a fixed stall cannot loop forever unplanned.
	p.batch = 1
	stall.Store(true)
	if _, planned, err := p.round(ctx); err != nil || planned != 1 || p.batch != 1 {
		t.Fatalf("stalled round at batch 1 planned %d (%v), batch %d; want 1 planned, batch 1", planned, err, p.batch)
	}
}

// A plan Redis has not answered when the lease runs out (Redis or the host
// too loaded) halves the next claim as an overrun does, so a loaded planner
// does not fail every round at the same size; its tasks are planned once
// their lease expires.
func TestRoundShrinksItsBatchWhenThePlanTimesOut(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	admin := srv.Client(t)
	ctx := context.Background()
	specs := hourlySpecs(8)
	var pause atomic.Bool
	p, err := New(rdb, Config{Namespace: "r", BatchSize: 8, Lease: 200 * time.Millisecond,
		Logger: zerolog.New(zerolog.NewTestWriter(t)),
		AfterClaim: func(ctx context.Context, _ []string) {
			// Writes (the plan script among them) wait out the pause,
			// longer than the lease.
			if pause.Load() {
				if err := admin.Do(ctx, "CLIENT", "PAUSE", 600, "WRITE").Err(); err != nil {
					t.Error(err)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, p.Store(), 1, specs); err != nil {
		t.Fatal(err)
	}
	pause.Store(true)
	if _, planned, err := p.round(ctx); !errors.Is(err, context.DeadlineExceeded) || planned != 0 {
		t.Fatalf("round under a pause planned %d (%v), want 0 and a deadline error", planned, err)
	}
	if p.batch != 4 {
		t.Fatalf("batch %d after a plan timed out, want 4", p.batch)
	}
	pause.Store(false)
	if err := admin.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for total < 8 {
		sleep, planned, err := p.round(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += planned
		if planned == 0 { // the tasks are leased to the timed-out round until its lease ends
			time.Sleep(min(max(sleep, time.Millisecond), 50*time.Millisecond))
		}
	}
}

func TestSplitByOps(t *testing.T) {
	t.Parallel()
	plan := func(name string, ops int) store.TaskPlan {
		return store.TaskPlan{Name: name, Ops: make([]store.Op, ops)}
	}
	keep, back := splitByOps([]store.TaskPlan{plan("a", 6), plan("b", 4), plan("c", 1), plan("d", 0)}, 10)
	if len(keep) != 2 || fmt.Sprint(back) != "[c d]" {
		t.Fatalf("kept %d, handed back %v; want a and b kept, [c d] back", len(keep), back)
	}
	keep, back = splitByOps([]store.TaskPlan{plan("huge", 50), plan("b", 1)}, 10)
	if len(keep) != 1 || keep[0].Name != "huge" || fmt.Sprint(back) != "[b]" {
		t.Fatalf("kept %v, back %v; a plan bigger than the bound still goes alone", keep, back)
	}
}

// Tasks registered without a version: Run says so and returns, instead of
// retrying forever as if Redis were down.
func TestRunWithoutAVersionFails(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p, err := New(srv.Client(t), Config{Namespace: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Register(events.Spec{Name: "a", Trigger: events.Every(time.Second)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Run(ctx); !errors.Is(err, store.ErrBadVersion) || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want ErrBadVersion at once", err, ctx.Err())
	}
}

// A slot within the lookahead is appended before it is due (its entry id,
// Redis time, is before the slot), one beyond it is not appended yet, and
// with no lookahead nothing is appended before its slot.
func TestRoundPlansSlotsWithinTheLookahead(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		lookahead time.Duration
		want      int
	}{{"ahead", 10 * time.Second, 1}, {"none", 0, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(rdb, Config{Namespace: tc.name, Lookahead: tc.lookahead, NoLookahead: tc.lookahead == 0, Logger: zerolog.New(zerolog.NewTestWriter(t))})
			if err != nil {
				t.Fatal(err)
			}
			now, err := p.Store().Time(ctx)
			if err != nil {
				t.Fatal(err)
			}
			soon, later := now.Add(5*time.Second).Truncate(time.Millisecond), now.Add(time.Minute)
			specs := []events.Spec{{Name: "soon", Trigger: events.Once(soon)}, {Name: "later", Trigger: events.Once(later)}}
			if _, err := Apply(ctx, p.Store(), 1, specs); err != nil {
				t.Fatal(err)
			}
			if _, _, err := p.round(ctx); err != nil {
				t.Fatal(err)
			}
			// A second round finds nothing more within the horizon.
			if _, planned, err := p.round(ctx); err != nil || planned != 0 {
				t.Fatalf("second round planned %d (%v), want 0", planned, err)
			}
			msgs, err := rdb.XRange(ctx, p.Store().Keys().Fires(events.DefaultQueue), "-", "+").Result()
			if err != nil || len(msgs) != tc.want {
				t.Fatalf("%d fires appended (%v), want %d", len(msgs), err, tc.want)
			}
			for _, m := range msgs {
				ms, _ := strconv.ParseInt(strings.SplitN(m.ID, "-", 2)[0], 10, 64)
				if m.Values[events.FieldTask] != "soon" || ms >= soon.UnixMilli() {
					t.Fatalf("fire %s of %v appended at %d, want task soon before its slot %d", m.ID, m.Values[events.FieldTask], ms, soon.UnixMilli())
				}
			}
		})
	}
}

// hourlySpecs is n tasks t0, t1, ... every hour: none due during a test,
// so a round plans each once, to find its next slot.
func hourlySpecs(n int) []events.Spec {
	specs := make([]events.Spec, n)
	for i := range specs {
		specs[i] = events.Spec{Name: fmt.Sprintf("t%d", i), Trigger: events.Every(time.Hour)}
	}
	return specs
}
