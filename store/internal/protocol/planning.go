package protocol

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// A planner's hold on a task is a lease: the claim writes its token and an
// expiry into the task's state and hides the task from other planners until
// then; the plan script compares the token before writing and deletes it
// after. A planner that dies holding a lease loses nothing: the task is due
// again when the lease ends. The lease spreads work between planners; the
// watermark in the plan script, not the lease, is what makes a slot fire at
// most once.

// ClaimedTask is one task leased to a planner, with what it needs to plan it.
type ClaimedTask struct {
	Name string
	// Spec is the stored spec; SpecErr is set instead when it does not
	// decode (the planner reports it and leaves the task).
	Spec    events.Spec
	SpecErr error
	// Raw is the stored encoding of Spec (a cache key for its schedule).
	Raw string
	// Since is when the task was registered, rescheduled or resumed: its
	// first slot is not earlier, but for a once instant within the misfire
	// grace before it.
	Since time.Time
	// Next is the next slot not yet planned, zero when not yet computed
	// (the task was registered, rescheduled or resumed since it was last
	// planned) or when none was left (Ended).
	Next time.Time
	// Ended is set when the task's last plan found no slot left: it is
	// done, and in the due index again only by accident.
	Ended bool
	// Gen is the spec's generation, handed back to Plan.
	Gen string
	// Planned is the watermark: the latest slot fired or missed, zero when
	// none. Slots at or before it are never fired.
	Planned time.Time
}

// Claim is the result of a claim: the tasks leased, the server's clock when
// they were, and when the next unclaimed task is due.
type Claim struct {
	Token string
	// Now is the Redis server time of the claim.
	Now time.Time
	// NextDue is the earliest due time left in the index after the claim
	// (it may be a lease end); zero when the index is empty.
	NextDue time.Time
	Tasks   []ClaimedTask
	// Late is true when the claim reached Redis after its deadline and so
	// took nothing.
	Late bool
}

// Claim leases up to max due tasks to token for lease: tasks whose next
// slot is at most lookahead after the server's now, or not yet computed.
// When deadline is
// set (a Redis server time) and Redis runs the claim after it, nothing is
// claimed and Late is set: a call its caller has given up on (Redis was
// frozen or slow, and ran the call once back) must not hold tasks for a
// lease that nobody will use.
func (pl *Planning) Claim(ctx context.Context, token string, lease time.Duration, max int, deadline time.Time, lookahead time.Duration) (Claim, error) {
	keys := []string{pl.keys.Due(), pl.keys.Specs(), pl.keys.Planned()}
	dl := int64(-1)
	if !deadline.IsZero() {
		dl = deadline.UnixMilli()
	}
	ahead := lookahead.Milliseconds()
	if ahead < 0 {
		ahead = 0
	}
	res, err := claimScript.Run(ctx, pl.rdb, keys, pl.keys.State(""), token, lease.Milliseconds(), max, dl, ahead).Slice()
	if err != nil {
		return Claim{}, fmt.Errorf("claim due tasks: %w", err)
	}
	c := Claim{Token: token, Now: time.UnixMilli(res[0].(int64)).UTC()}
	if len(res) == 3 {
		late, _ := res[2].(string)
		c.Late = late == "late"
	}
	if nd := res[1].(int64); nd >= 0 {
		c.NextDue = time.UnixMilli(nd).UTC()
	}
	for i := 2; i+5 < len(res); i += 6 {
		str := func(j int) string { v, _ := res[i+j].(string); return v }
		t := ClaimedTask{Name: str(0), Raw: str(1), Since: core.MsTime(str(2)), Gen: str(4), Planned: core.MsTime(str(5))}
		if n := str(3); n != "-1" {
			t.Next = core.MsTime(n)
		} else {
			t.Ended = true
		}
		t.Spec, t.SpecErr = events.UnmarshalSpecString(t.Raw)
		c.Tasks = append(c.Tasks, t)
	}
	return c, nil
}

// Op is one slot of a plan: a fire (Fire set) or a miss, with the event
// that records it. A range of missed slots is one Op whose Slot is the last
// of them.
type Op struct {
	Slot  time.Time
	Fire  *events.Fire
	Event events.Event
}

// TaskPlan is what a planner decided for one claimed task.
type TaskPlan struct {
	Name string
	Gen  string
	// Queue and Mode pick the stream the fires go to.
	Queue string
	Mode  events.Mode
	// Ops are the slots handled, in ascending order.
	Ops []Op
	// Next is the next slot to plan; zero when the trigger has none left.
	Next time.Time
	// NextDue is when Next is due, when that is after Next (a jittered
	// task's): the task's due score. Zero: Next.
	NextDue time.Time
	// LastRun is recorded when at least one fire is appended.
	LastRun *events.LastRun
	// Limit is the spec's fire limit (0: none): the script counts the
	// task's fires and ends the task at the limit.
	Limit int
}

// PlanResult counts what a Plan call wrote.
type PlanResult struct {
	Fires  int // fire entries appended
	Events int // events appended
	Lost   int // tasks no longer leased to the token (or changed by a reload): left alone
	// Dropped counts ops refused because their slot was already planned or
	// not yet due; non-zero only when a planner's view was stale.
	Dropped int
}

// Plan records plans for tasks leased to token in one atomic script, and
// ends their leases. A fire's slot may be up to lookahead after the
// server's now (a planner appends fires that far ahead, and workers hold
// them until due). See planScript for the rules.
func (pl *Planning) Plan(ctx context.Context, token string, plans []TaskPlan, lookahead time.Duration) (PlanResult, error) {
	if len(plans) == 0 {
		return PlanResult{}, nil
	}
	n := 7
	for i := range plans {
		n += 5 + 24*len(plans[i].Ops)
	}
	keys := []string{pl.keys.Due(), pl.keys.Planned(), pl.keys.LastRun(), pl.keys.Events()}
	args := scriptArgs(planScript, keys, n)
	args = append(args, pl.keys.State(""), token, pl.maxLen(), len(plans), max(lookahead, 0).Milliseconds(),
		pl.keys.History(""), pl.historyLen)
	var buf []byte // last-run records
	for i := range plans {
		p := &plans[i]
		var next any = int64(-1)
		if !p.Next.IsZero() {
			next = p.Next.UnixMilli()
			if p.NextDue.After(p.Next) {
				next = dueSlot(p.Next, p.NextDue)
			}
		}
		lr := ""
		if p.LastRun != nil {
			from := len(buf)
			buf = events.AppendLastRun(buf, *p.LastRun)
			lr = string(buf[from:])
		}
		var ops any = len(p.Ops)
		if p.Limit > 0 {
			ops = fmt.Sprintf("L%d:%d", p.Limit, len(p.Ops))
		}
		args = append(args, p.Name, p.Gen, next, lr, ops)
		stream := pl.keys.FireStream(p.Queue, p.Mode)
		for j := range p.Ops {
			op := &p.Ops[j]
			if op.Fire != nil {
				var slot any = op.Slot.UnixMilli()
				if op.Fire.Due.After(op.Slot) {
					slot = dueSlot(op.Slot, op.Fire.Due)
				}
				args = append(args, slot, stream, 0)
				at := len(args) - 1
				args = op.Fire.AppendArgs(args)
				args[at] = len(args) - at - 1
			} else {
				args = append(args, op.Slot.UnixMilli(), "", 0)
			}
			args = append(args, 0)
			at := len(args) - 1
			var err error
			if args, err = op.Event.AppendArgs(args); err != nil {
				return PlanResult{}, fmt.Errorf("task %q: %w", p.Name, err)
			}
			args[at] = len(args) - at - 1
		}
	}
	res, err := runScript(ctx, pl.rdb, planScript, args).Int64Slice()
	if err != nil {
		return PlanResult{}, fmt.Errorf("plan %d tasks: %w", len(plans), err)
	}
	return PlanResult{Fires: int(res[0]), Events: int(res[1]), Lost: int(res[2]), Dropped: int(res[3])}, nil
}

// dueSlot is a slot argument of planScript for a slot due after it (a
// jittered task's): "slot:due", both in Unix ms.
func dueSlot(slot, due time.Time) string {
	return strconv.FormatInt(slot.UnixMilli(), 10) + ":" + strconv.FormatInt(due.UnixMilli(), 10)
}

// Release hands back tasks leased to token without planning them, so another
// planner can take them at once. It returns how many were still held.
func (pl *Planning) Release(ctx context.Context, token string, names []string) (int, error) {
	if len(names) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 2+len(names))
	args = append(args, pl.keys.State(""), token)
	for _, n := range names {
		args = append(args, n)
	}
	n, err := releaseScript.Run(ctx, pl.rdb, []string{pl.keys.Due()}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("release %d tasks: %w", len(names), err)
	}
	return n, nil
}

// seenScript records that a planner runs: its state, and when it was seen
// (Redis time); it forgets (at most 100 at a time) the planners not seen
// for ARGV[3] ms.
//
// KEYS[1] -> planners (hash: node -> state JSON)
// KEYS[2] -> planners seen (zset: node -> Unix ms)
// ARGV[1] -> node
// ARGV[2] -> state (JSON)
// ARGV[3] -> how long a planner not seen is kept, ms
var seenScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - tonumber(ARGV[3])), 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
return now
`)

// PlannerState is what a planner publishes of itself.
type PlannerState struct {
	Node        string `json:"node"`
	LookaheadMs int64  `json:"lookahead_ms"`
	// EveryMs is how often it publishes: it is live while seen within a
	// few of these.
	EveryMs int64 `json:"every_ms"`
	// Build is the taskino version it was built with (events.Build).
	Build string `json:"build,omitempty"`
}

// Seen publishes the planner's state in the planners registry
// (store.Keys.Planners), with the time it was seen.
func (pl *Planning) Seen(ctx context.Context, st PlannerState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	keys := []string{pl.keys.Planners(), pl.keys.PlannersSeen()}
	if err := seenScript.Run(ctx, pl.rdb, keys, st.Node, string(b), DefaultForgetWorkers.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("publish planner %s: %w", st.Node, err)
	}
	return nil
}

// Leave removes the planner from the registry (a clean stop).
func (pl *Planning) Leave(ctx context.Context, node string) error {
	pipe := pl.rdb.Pipeline() // a planner's user has no MULTI
	pipe.HDel(ctx, pl.keys.Planners(), node)
	pipe.ZRem(ctx, pl.keys.PlannersSeen(), node)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("remove planner %s from the registry: %w", node, err)
	}
	return nil
}
