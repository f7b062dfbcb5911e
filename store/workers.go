package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/protocol"
)

// WorkerState is a worker as the workers registry knows it: the state it
// published with its heartbeats, when it was last seen, and whether it is
// live.
type WorkerState struct {
	events.WorkerState
	// Seen is when it last reached Redis (the Redis server's clock); zero
	// when not known.
	Seen time.Time
	// Live is true when it was seen within its visibility timeout (it
	// heartbeats every sixth of it): a worker not live has stopped, or
	// cannot reach Redis, and its fires are being reclaimed.
	Live bool
}

// Held is how many fires each consumer of the workers' group holds on the
// single-mode fire streams of queues: read and not yet finished (running,
// or held until their slot), by worker node.
func (s *Store) Held(ctx context.Context, queues []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, q := range queues {
		cs, err := s.rdb.XInfoConsumers(ctx, s.keys.Fires(q), WorkerGroup).Result()
		if err != nil {
			if strings.Contains(err.Error(), "no such key") || redis.HasErrorPrefix(err, "NOGROUP") {
				continue
			}
			return nil, fmt.Errorf("the workers of queue %s: %w", q, err)
		}
		for _, c := range cs {
			out[c.Name] += c.Pending
		}
	}
	return out, nil
}

// ForgetWorkers (a day) is how long the registry keeps a worker that
// stopped without saying so (killed, crashed); one that stops cleanly
// leaves it at once.
const ForgetWorkers = protocol.DefaultForgetWorkers

// Workers is the namespace's workers registry, sorted by node: every
// worker that published its state and was seen in the last ForgetWorkers,
// live or not. A record that does not decode (not written by a worker) is
// left out.
func (s *Store) Workers(ctx context.Context) ([]WorkerState, error) {
	pipe := s.rdb.Pipeline()
	timeCmd := pipe.Time(ctx)
	states := pipe.HGetAll(ctx, s.keys.Workers())
	seen := pipe.ZRangeWithScores(ctx, s.keys.WorkersSeen(), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read the workers registry: %w", err)
	}
	now := timeCmd.Val()
	seenAt := make(map[string]time.Time, len(seen.Val()))
	for _, z := range seen.Val() {
		if node, ok := z.Member.(string); ok {
			seenAt[node] = time.UnixMilli(int64(z.Score)).UTC()
		}
	}
	out := make([]WorkerState, 0, len(states.Val()))
	for node, raw := range states.Val() {
		ws, err := events.UnmarshalWorkerState([]byte(raw))
		if err != nil || ws.Node != node {
			continue
		}
		w := WorkerState{WorkerState: ws, Seen: seenAt[node]}
		vis := min(ws.Visibility, MaxVisibility)
		// A time ahead of the server's by more than a failover's skew is
		// not a worker's.
		w.Live = !w.Seen.IsZero() && !w.Seen.After(now.Add(time.Minute)) && now.Sub(w.Seen) <= vis
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// PlannerState is a planner as the planners registry knows it.
type PlannerState struct {
	Node string
	// Build is the taskino version it was built with ("" when it did
	// not say).
	Build string
	// Lookahead is how far before their slots it appends fires.
	Lookahead time.Duration
	// Seen is when it last published its state (Redis clock).
	Seen time.Time
	// Live is true while it was seen within three of its publishing
	// intervals (and two seconds): a planner not live stopped or cannot
	// reach Redis.
	Live bool
}

// Planners is the namespace's planners registry, sorted by node: every
// planner that published its state and was seen in the last
// ForgetWorkers, live or not; one that stopped cleanly left it.
func (s *Store) Planners(ctx context.Context) ([]PlannerState, error) {
	pipe := s.rdb.Pipeline()
	timeCmd := pipe.Time(ctx)
	states := pipe.HGetAll(ctx, s.keys.Planners())
	seen := pipe.ZRangeWithScores(ctx, s.keys.PlannersSeen(), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read the planners registry: %w", err)
	}
	now := timeCmd.Val()
	at := map[string]time.Time{}
	for _, z := range seen.Val() {
		if node, ok := z.Member.(string); ok {
			at[node] = time.UnixMilli(int64(z.Score)).UTC()
		}
	}
	var out []PlannerState
	for node, raw := range states.Val() {
		var adv protocol.PlannerState
		if json.Unmarshal([]byte(raw), &adv) != nil || adv.Node != node {
			continue // not written by a planner
		}
		p := PlannerState{Node: node, Build: adv.Build, Lookahead: time.Duration(adv.LookaheadMs) * time.Millisecond, Seen: at[node]}
		every := time.Duration(max(adv.EveryMs, 0)) * time.Millisecond
		p.Live = !p.Seen.IsZero() && now.Sub(p.Seen) <= 3*every+2*time.Second && !p.Seen.After(now.Add(time.Minute))
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}
