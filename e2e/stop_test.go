package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// Promise 8 (clean stop), planner side: a stop that arrives between a claim
// and its plan lets the round finish. Run returns nil, the claimed tasks are
// planned and hold no lease, and the planner announced itself up and down.
func TestStopFinishesTheRoundUnderWay(t *testing.T) {
	b := setup(t)
	specs := make([]events.Spec, 50)
	for i := range specs {
		specs[i] = events.Spec{Name: fmt.Sprintf("s%02d", i), Trigger: events.Every(time.Hour)}
	}
	if _, err := planner.Apply(b.ctx, b.st, 1, specs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var claimed safeNames
	p, err := planner.New(b.rdb, planner.Config{
		Namespace: ns, Node: "stopper", Logger: zerolog.New(zerolog.NewTestWriter(t)),
		AfterClaim: func(_ context.Context, names []string) {
			claimed.set(names)
			cancel() // SIGTERM arrives mid-batch
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil after a stop", err)
	}
	if len(claimed.get()) != len(specs) {
		t.Fatalf("claimed %d tasks, want %d", len(claimed.get()), len(specs))
	}
	for _, name := range claimed.get() {
		st, err := b.st.State(b.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Next.IsZero() {
			t.Errorf("%s: next slot not recorded; the round was abandoned", name)
		}
		// A plan ends the lease by emptying it.
		lease, err := b.rdb.HGet(b.ctx, b.st.Keys().State(name), "lease").Result()
		if err == nil && lease != "" {
			t.Errorf("%s: still leased to %q after the stop", name, lease)
		}
	}
	evs, err := b.st.RangeEvents(b.ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	var up, down bool
	for _, e := range evs {
		up = up || (e.Type == events.TypeNodeUp && e.Worker == "stopper")
		down = down || (e.Type == events.TypeNodeDown && e.Worker == "stopper")
	}
	if !up || !down {
		t.Errorf("node_up seen %v, node_down seen %v; want both", up, down)
	}
}
