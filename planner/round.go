package planner

import (
	"context"
	"strconv"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// maxOpsPerPlan bounds the slots one plan call records.
const maxOpsPerPlan = 20_000

// splitByOps keeps the leading plans whose ops add up to at most max (and
// at least one plan), so a catch-up of many frequent tasks does not block
// Redis for long; it names the rest, to be handed back and claimed again at
// once.
func splitByOps(plans []store.TaskPlan, max int) (keep []store.TaskPlan, handBack []string) {
	ops := 0
	for i, pl := range plans {
		if ops += len(pl.Ops); ops > max && i > 0 {
			for _, rest := range plans[i:] {
				handBack = append(handBack, rest.Name)
			}
			return plans[:i], handBack
		}
	}
	return plans, nil
}

// round claims one batch, plans it, and says how long to sleep before the
// next (0: at once, more may be due) and how many tasks it planned.
//
// A round is not interrupted by ctx: once tasks are claimed they are
// planned (or their leases run out), so a stop never strands them for a
// lease. It is bounded by the lease instead.
func (p *Planner) round(ctx context.Context) (sleep time.Duration, planned int, err error) {
	token := p.cfg.Node + "/" + p.instance + "/" + strconv.FormatInt(p.seq.Add(1), 10)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Lease)
	defer cancel()
	start := p.cfg.Clock.Now()
	// A claim Redis runs more than half a lease after we sent it is one we
	// have given up on (Redis was frozen, and ran the queued call once
	// back): it must claim nothing, or its tasks would wait out a lease.
	if p.anchorRedis.IsZero() {
		// The first round takes its anchor from TIME, so that even its
		// claim has a deadline.
		now, err := p.store.Time(rctx)
		if err != nil {
			return 0, 0, err
		}
		p.anchorRedis, p.anchorLocal = now, p.cfg.Clock.Now()
	}
	deadline := p.anchorRedis.Add(start.Sub(p.anchorLocal) + p.cfg.Lease/2)
	claim, err := p.store.Claim(rctx, token, p.cfg.Lease, p.batch, deadline, p.cfg.Lookahead)
	if err != nil {
		return 0, 0, err
	}
	end := p.cfg.Clock.Now()
	p.anchorRedis, p.anchorLocal = claim.Now, start.Add(end.Sub(start)/2)
	if claim.Late {
		p.log.Info().Msg("a claim reached Redis after its deadline and took nothing; claiming again")
		return 0, 0, nil
	}
	// The server's clock minus ours, measured at the round trip's midpoint:
	// only used to turn a due time into a sleep.
	offset := claim.Now.Sub(start.Add(end.Sub(start) / 2))
	sleepUntil := func(due time.Time) time.Duration {
		d := p.cfg.MaxSleep
		if !due.IsZero() {
			if until := due.Add(-p.cfg.Lookahead).Sub(p.cfg.Clock.Now().Add(offset)); until < d {
				d = until
			}
		}
		return d
	}
	if len(claim.Tasks) == 0 {
		return sleepUntil(claim.NextDue), 0, nil
	}

	if p.cfg.AfterClaim != nil {
		names := make([]string, len(claim.Tasks))
		for i, t := range claim.Tasks {
			names[i] = t.Name
		}
		p.cfg.AfterClaim(ctx, names)
	}
	plans := make([]store.TaskPlan, 0, len(claim.Tasks))
	for _, t := range claim.Tasks {
		sched, err := p.schedule(t)
		if err != nil {
			// A stored spec this build cannot read (written by a newer
			// version?): keep the lease, so the task comes back once per
			// lease (to a planner that can read it, perhaps) rather than
			// in a hot loop, and say so each time.
			p.log.Error().Err(err).Str("task", t.Name).Dur("retry_in", p.cfg.Lease).Msg("cannot plan task")
			continue
		}
		plan := planTask(t, sched, claim.Now, p.cfg.Lookahead, p.cfg.Node, p.cfg.CatchUpChunk)
		p.holdBackFull(&plan)
		plans = append(plans, plan)
	}
	plans, handBack := splitByOps(plans, maxOpsPerPlan)
	// The lease is trusted until start + lease - margin, measured from
	// before the claim's round trip. Past that another planner may hold the
	// tasks; the store would refuse our plan anyway, so do not send it.
	// Hand the tasks back instead (release only touches tasks still leased
	// to this token, and makes them due at once) and claim half as many next
	// time. At one task there is nothing left to halve: send the plan, and
	// let the store's own lease check decide.
	margin := p.cfg.Lease / 5
	overran := p.cfg.Clock.Now().After(start.Add(p.cfg.Lease - margin))
	if overran && p.batch > 1 {
		names := make([]string, len(plans))
		for i, pl := range plans {
			names[i] = pl.Name
		}
		relctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Lease)
		defer cancel()
		n, err := p.store.Release(relctx, token, append(names, handBack...))
		p.batch = max(1, p.batch/2)
		p.log.Warn().Err(err).Int("tasks", len(plans)).Int("released", n).Int("next_batch", p.batch).
			Msg("lease ran out before the plan was recorded; tasks handed back")
		return 0, 0, nil
	}
	res, err := p.store.Plan(rctx, token, plans, p.cfg.Lookahead)
	if err != nil {
		// A plan still unanswered when the lease ran out (Redis or this
		// host too loaded to plan the batch in time) is as much an overrun
		// as one sent too late: its tasks come back when the lease expires
		// (the store refuses the plan should it run after), and the next
		// claim takes half as many, or a loaded planner would fail every
		// round at the same size.
		if rctx.Err() != nil && p.batch > 1 {
			p.batch = max(1, p.batch/2)
			p.log.Warn().Err(err).Int("tasks", len(plans)).Int("next_batch", p.batch).
				Msg("lease ran out before the plan was answered")
		}
		return 0, 0, err
	}
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.Planned(res.Fires, res.Events-res.Fires)
		// The ops of a plan the store took in full (none dropped, no task
		// lost: the usual case) are what it recorded.
		if mm, ok := p.cfg.Metrics.(MissedMetrics); ok && res.Lost == 0 && res.Dropped == 0 {
			for i := range plans {
				for _, op := range plans[i].Ops {
					if op.Fire == nil && op.Event.Type == events.TypeMissed {
						mm.Missed(op.Event)
					}
				}
			}
		}
	}
	if len(handBack) > 0 {
		relctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.Lease)
		defer cancel()
		if _, err := p.store.Release(relctx, token, handBack); err != nil {
			p.log.Warn().Err(err).Int("tasks", len(handBack)).Msg("hand back tasks over the plan size")
		}
	}
	full := len(claim.Tasks) == p.batch || len(handBack) > 0
	// Grow back additively after a halving, so the size settles below the
	// one that overran instead of swinging between the two.
	if !overran {
		p.batch = min(p.cfg.BatchSize, p.batch+max(1, p.cfg.BatchSize/16))
	}
	p.log.Debug().Int("tasks", len(plans)).Int("fires", res.Fires).Int("events", res.Events).
		Int("lost", res.Lost).Int("dropped", res.Dropped).Msg("planned")
	if full {
		return 0, len(plans), nil
	}
	// Planned tasks may now be due before claim.NextDue; claim again soon
	// after the earliest next slot this batch produced.
	due := claim.NextDue
	for _, pl := range plans {
		if !pl.Next.IsZero() && (due.IsZero() || pl.Next.Before(due)) {
			due = pl.Next
		}
	}
	return sleepUntil(due), len(plans), nil
}
