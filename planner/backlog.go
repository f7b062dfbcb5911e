package planner

import (
	"context"
	"fmt"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// PolicyBacklog is the policy of the missed event of a slot not fired
// because its queue's stream held the namespace's fires max backlog of
// fires no worker had read (store.Settings.FiresMaxBacklog).
const PolicyBacklog events.Misfire = "backlog"

// holdBackFull turns the fires of plan into missed slots (policy backlog)
// when its stream is at the namespace's fires max backlog: a queue no
// worker reads does not grow without bound. Recorded, never silent.
func (p *Planner) holdBackFull(plan *store.TaskPlan) {
	stream := p.store.Keys().FireStream(plan.Queue, plan.Mode)
	p.backlogMu.Lock()
	if p.streams == nil {
		p.streams = map[string]bool{}
	}
	p.streams[stream] = true
	backlog, full := p.full[stream]
	max := p.maxBacklog
	p.backlogMu.Unlock()
	if !full {
		return
	}
	for i := range plan.Ops {
		op := &plan.Ops[i]
		if op.Fire == nil {
			continue
		}
		op.Event = events.Event{Type: events.TypeMissed, Task: plan.Name, At: op.Slot, Count: 1, Policy: PolicyBacklog, Worker: p.cfg.Node,
			Fire: op.Fire.ID, Queue: plan.Queue,
			Reason: fmt.Sprintf("queue %s holds %d fires no worker has read (fires max backlog %d, taskino settings): not fired", plan.Queue, backlog, max)}
		op.Fire = nil
	}
	plan.LastRun = nil
}

// checkBacklogs reads the namespace's fires max backlog and the backlog of
// each stream this planner appends to, and marks those at the bound full
// (logged when one becomes full, or no longer is).
func (p *Planner) checkBacklogs(ctx context.Context) {
	st, err := p.store.Settings(ctx)
	if err != nil {
		return
	}
	p.backlogMu.Lock()
	streams := make([]string, 0, len(p.streams))
	for s := range p.streams {
		streams = append(streams, s)
	}
	p.backlogMu.Unlock()
	full := map[string]int64{}
	if st.FiresMaxBacklog > 0 {
		for _, s := range streams {
			n, err := p.store.Backlog(ctx, s)
			if err == nil && n >= st.FiresMaxBacklog {
				full[s] = n
			}
		}
	}
	p.backlogMu.Lock()
	defer p.backlogMu.Unlock()
	for s, n := range full {
		if _, was := p.full[s]; !was {
			p.log.Warn().Str("stream", s).Int64("backlog", n).Int64("max", st.FiresMaxBacklog).Msg("no worker reads this queue: its slots are recorded missed (policy backlog) until workers read it")
		}
	}
	for s := range p.full {
		if _, still := full[s]; !still {
			p.log.Info().Str("stream", s).Msg("workers read this queue again: its slots fire again")
		}
	}
	p.full, p.maxBacklog = full, st.FiresMaxBacklog
}
