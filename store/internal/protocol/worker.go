package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// The worker side. Single-mode fires are read through the consumer group
// core.WorkerGroup, so each entry is handed to one worker and stays pending
// until its outcome is recorded (Finish acks it in the same script).
// Broadcast fires are read without a group, by every worker from its own
// cursor. Retries wait in the Retry set, not in a worker's memory.

// Delivery is one fire handed to this worker.
type Delivery struct {
	// Stream is the stream the entry was read from; Queue its queue.
	Stream string
	Queue  string
	// Broadcast is true for a broadcast fire: nothing to ack, every worker
	// runs it.
	Broadcast bool
	// EntryID is the stream entry id.
	EntryID string
	// Fire is the decoded entry; zero when Err is set.
	Fire events.Fire
	// Err says why the entry does not decode; such an entry is dead-lettered.
	Err error
	// Raw is the entry's fields as they were read.
	Raw map[string]string
	// Deliveries counts how often the entry was handed out, 1 the first
	// time; more means a worker holding it stopped answering.
	Deliveries int64
	// Spec is the task's spec as the worker knows it (the defaults for a
	// task with a handler but no stored spec); set by the consumer.
	Spec events.Spec
	// HandedBackBy names the worker that handed the fire back unstarted or
	// cut by its stop, when a reclaim took it from one; empty for a fire
	// read new or taken from a worker that stopped answering.
	HandedBackBy string
	// Routed is true for a fire a worker that could not run it routed to
	// this one (Route), which a reclaim took.
	Routed bool
}

// Held identifies a fire a worker is running, for heartbeats and hand-backs.
type Held struct {
	Stream  string
	EntryID string // "" for a broadcast fire
	// Task and FireID, with Overlap set, name the running key to extend.
	Task    string
	FireID  string
	Overlap bool
}

// EnsureGroup creates the worker consumer group on a fire stream (and the
// stream) if missing. The group starts at the stream's beginning, so fires
// appended before any worker existed are run.
func (w *Worker) EnsureGroup(ctx context.Context, stream string) error {
	err := w.rdb.XGroupCreateMkStream(ctx, stream, core.WorkerGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group on %s: %w", stream, err)
	}
	return nil
}

func (w *Worker) delivery(stream string, m redis.XMessage, deliveries int64) Delivery {
	q, bc, _ := core.QueueOf(w.keys, stream)
	d := Delivery{Stream: stream, Queue: q, Broadcast: bc, EntryID: m.ID, Raw: core.StringFields(m.Values), Deliveries: deliveries}
	d.Fire, d.Err = events.DecodeFire(m.ID, d.Raw)
	return d
}

// ReadFires reads up to count new entries for consumer from the single-mode
// fire streams, waiting up to block for one to arrive (block <= 0: not at
// all). The entries are pending for consumer until finished. A stream whose
// group is gone (a flush) makes it fail with an error wrapping
// core.ErrNoGroup (store.ErrNoGroup): EnsureGroup sets it up again.
func (w *Worker) ReadFires(ctx context.Context, consumer string, streams []string, count int, block time.Duration) ([]Delivery, error) {
	args := make([]string, 0, 2*len(streams))
	args = append(args, streams...)
	for range streams {
		args = append(args, ">")
	}
	res, err := w.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: core.WorkerGroup, Consumer: consumer, Streams: args, Count: int64(count), Block: core.NoForever(block)}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read fires: %w", core.NoGroup(err))
	}
	var out []Delivery
	for _, st := range res {
		for _, m := range st.Messages {
			out = append(out, w.delivery(st.Stream, m, 1))
		}
	}
	return out, nil
}

// Reclaim takes over up to count entries of stream that have been pending
// with other consumers for at least the namespace's visibility timeout (the
// longest of the live workers', visibility being this worker's), scanning
// from cursor (start with "0-0"). It returns them with their delivery
// counts, and the cursor to go on from ("0-0" when the scan went round).
// It records the worker's pulse in the same step, and in a quiet period
// after an outage (see Heartbeat) takes only fires handed back (HandBack),
// returns the cursor as given, and how long the quiet period still lasts.
func (w *Worker) Reclaim(ctx context.Context, consumer, stream string, visibility time.Duration, cursor string, count int) ([]Delivery, string, time.Duration, error) {
	if count <= 0 {
		return nil, cursor, 0, nil
	}
	res, err := reclaimScript.Run(ctx, w.rdb, []string{w.keys.Pulse(), w.keys.Visibility(), stream},
		visibility.Milliseconds(), core.WorkerGroup, consumer, cursor, count).Slice()
	if err != nil {
		return nil, cursor, 0, fmt.Errorf("reclaim fires of %s: %w", stream, err)
	}
	left, _ := res[0].(int64)
	if len(res) < 2 {
		return nil, cursor, time.Duration(left) * time.Millisecond, nil
	}
	next, _ := res[1].(string)
	var out []Delivery
	for i := 2; i+3 < len(res); i += 4 {
		id, _ := res[i].(string)
		raw, _ := res[i+1].([]any)
		n, _ := res[i+2].(int64)
		from, _ := res[i+3].(string)
		if n == 0 {
			n = 2
		}
		values := make(map[string]any, len(raw)/2)
		for j := 0; j+1 < len(raw); j += 2 {
			k, _ := raw[j].(string)
			values[k] = raw[j+1]
		}
		d := w.delivery(stream, redis.XMessage{ID: id, Values: values}, n)
		d.Routed = strings.HasSuffix(from, routeSuffix)
		if by, ok := strings.CutSuffix(from, handBackSuffix); ok {
			d.HandedBackBy = by
		}
		out = append(out, d)
	}
	return out, next, max(time.Duration(left)*time.Millisecond, 0), nil
}

// ReadBroadcast reads up to count entries after each stream's cursor,
// waiting up to block (block <= 0: not at all), and advances the cursors.
func (w *Worker) ReadBroadcast(ctx context.Context, cursors map[string]string, count int, block time.Duration) ([]Delivery, error) {
	args := make([]string, 0, 2*len(cursors))
	for st := range cursors {
		args = append(args, st)
	}
	for _, st := range args[:len(cursors)] {
		args = append(args, cursors[st])
	}
	res, err := w.rdb.XRead(ctx, &redis.XReadArgs{Streams: args, Count: int64(count), Block: core.NoForever(block)}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read broadcast fires: %w", err)
	}
	var out []Delivery
	for _, st := range res {
		for _, m := range st.Messages {
			out = append(out, w.delivery(st.Stream, m, 1))
			cursors[st.Stream] = m.ID
		}
	}
	return out, nil
}

// Heartbeat records that consumer reached Redis with its visibility
// timeout, extends its hold on the fires in held (see heartbeatScript; in
// calls of a few hundred fires, so Redis serves others in between), and
// returns those it no longer holds, how long reclaims must wait before
// taking over idle fires, the namespace's visibility timeout and the
// server's time. Reclaim records the pulse too, in the same step as its
// claim. It also records, in the workers registry, that consumer was seen
// (and its state, when self has one), and forgets the workers not seen
// for self.Forget.
//
// A fire's idle time grows while its worker cannot reach Redis to extend
// its claim, and it grows the same for every worker when the fault is
// Redis's own (frozen, restarted from its AOF, failed over to a replica)
// or the network's: afterwards every pending fire looks abandoned, though
// its worker is alive and about to extend the claim. So each worker calls
// Heartbeat often, with or without fires (with those whose claims need
// it): the pulse alone at least every third of its visibility timeout.
// When no worker has reached Redis for longer than half the namespace's
// visibility timeout (the longest of the workers seen in the last 10
// minutes), a quiet period of that length starts, in which reclaims wait
// and live workers extend their claims. Fires of workers that really died
// are then reclaimed one visibility timeout later than otherwise.
func (w *Worker) Heartbeat(ctx context.Context, consumer string, visibility time.Duration, held []Held, self Self) (HeartbeatResult, error) {
	var r HeartbeatResult
	state := ""
	if self.State != nil {
		b, err := events.MarshalWorkerState(*self.State)
		if err != nil {
			return r, err
		}
		state = string(b)
	}
	forget := self.Forget
	if forget <= 0 {
		forget = DefaultForgetWorkers
	}
	for first := true; first || len(held) > 0; first = false {
		chunk := held[:min(len(held), heldChunk)]
		held = held[len(chunk):]
		args := []any{core.WorkerGroup, consumer, visibility.Milliseconds(), state, forget.Milliseconds()}
		state = "" // the first call records it
		for _, h := range chunk {
			rk := ""
			if h.Overlap {
				rk = w.keys.Running(h.Task)
			}
			args = append(args, h.Stream, h.EntryID, rk, h.FireID)
		}
		sent := time.Now()
		res, err := heartbeatScript.Run(ctx, w.rdb, []string{w.keys.Pulse(), w.keys.Visibility(), w.keys.Workers(), w.keys.WorkersSeen()}, args...).Slice()
		if err != nil {
			return HeartbeatResult{}, fmt.Errorf("extend claims: %w", err)
		}
		if first {
			left, _ := res[0].(int64)
			now, _ := res[1].(int64)
			vis, _ := res[2].(int64)
			missing, _ := res[3].(int64)
			r.Quiet = max(time.Duration(left)*time.Millisecond, 0)
			r.Now, r.Sent, r.Answered = time.UnixMilli(now).UTC(), sent, time.Now()
			r.Visibility = time.Duration(vis) * time.Millisecond
			r.StateMissing = missing == 1
		}
		for _, v := range res[4:] {
			if k, ok := v.(int64); ok && k >= 0 && int(k) < len(chunk) {
				r.Lost = append(r.Lost, chunk[k])
			}
		}
	}
	return r, nil
}

// Self is what a heartbeat records of its worker in the workers registry
// (store.Keys.Workers): it was seen, and, when State is set, its state.
type Self struct {
	// State, when set, replaces the worker's published state. Send it when
	// it changed, and when a heartbeat reported it missing; otherwise the
	// heartbeat only records that the worker was seen.
	State *events.WorkerState
	// Forget is how long the registry keeps a worker not seen (0:
	// DefaultForgetWorkers).
	Forget time.Duration
}

// DefaultForgetWorkers (a day) is how long the workers registry keeps a
// worker that stopped without saying so (a crash, a kill), for operators
// to see when it was last seen.
const DefaultForgetWorkers = 24 * time.Hour

// Leave removes consumer from the workers registry: a worker stopping
// cleanly.
func (w *Worker) Leave(ctx context.Context, consumer string) error {
	pipe := w.rdb.TxPipeline()
	pipe.HDel(ctx, w.keys.Workers(), consumer)
	pipe.ZRem(ctx, w.keys.WorkersSeen(), consumer)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("remove worker %s from the registry: %w", consumer, err)
	}
	return nil
}

// heldChunk bounds the fires one heartbeat or hand-back call sends. Each
// costs Redis about 70,000 instructions (an XPENDING, and an XCLAIM that
// looks the entry up in its stream), so one call over 20,000 fires would
// keep every other client waiting for most of a second; 500 a call keep
// them waiting about 10 ms at a time.
const heldChunk = 500

// HeartbeatResult is what a heartbeat found.
type HeartbeatResult struct {
	// Lost are the held fires no longer this consumer's (another worker
	// took them over, or they were acked).
	Lost []Held
	// Quiet is how long reclaims must still wait (0: they may go ahead).
	Quiet time.Duration
	// Visibility is the namespace's visibility timeout: the longest of the
	// workers' seen in the last 10 minutes, which reclaims wait for.
	Visibility time.Duration
	// StateMissing: the workers registry has no state of this worker (it
	// was never sent, or removed meanwhile: a flush, or a day unseen).
	// Send it with the next heartbeat.
	StateMissing bool
	// Now is the Redis server's time during the heartbeat's first call,
	// which was sent at Sent and answered at Answered (this process's
	// clock): a measure of the server's clock, read somewhere in that
	// round trip.
	Now, Sent, Answered time.Time
}

// HandBack makes the single-mode fires in held that consumer still holds
// reclaimable by any worker at once, in calls of a few hundred, and tells
// the subscribers of HandBacks. It returns how many it handed back (with
// an error, at least how many).
func (w *Worker) HandBack(ctx context.Context, consumer string, idle time.Duration, held []Held) (int, error) {
	n, err := w.giveUp(ctx, consumer, consumer+handBackSuffix, idle, consumer, held)
	if err != nil {
		return n, fmt.Errorf("hand back fires: %w", err)
	}
	return n, nil
}

// giveUp moves the single-mode fires in held that consumer still holds
// to holder, idle for idle, and publishes name on the hand-back channel
// (see giveUpScript), in calls of a few hundred. It returns how many it
// moved (with an error, at least how many).
func (w *Worker) giveUp(ctx context.Context, consumer, holder string, idle time.Duration, name string, held []Held) (int, error) {
	total := 0
	const head = 5
	for len(held) > 0 {
		args := []any{core.WorkerGroup, consumer, holder, idle.Milliseconds(), name}
		for len(held) > 0 && len(args) < head+2*heldChunk {
			if h := held[0]; h.EntryID != "" {
				args = append(args, h.Stream, h.EntryID)
			}
			held = held[1:]
		}
		if len(args) == head {
			continue // nothing in this part (broadcast fires)
		}
		n, err := giveUpScript.Run(ctx, w.rdb, []string{w.keys.HandBacks()}, args...).Int()
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Route gives fires consumer holds but has no handler for to target, a
// live worker that advertises their task, and tells it so on the
// hand-back channel: its next reclaim takes them (see giveUpScript). It
// returns how many it routed.
func (w *Worker) Route(ctx context.Context, consumer, target string, held []Held) (int, error) {
	n, err := w.giveUp(ctx, consumer, target+routeSuffix, 0, target, held)
	if err != nil {
		return n, fmt.Errorf("route fires to %s: %w", target, err)
	}
	return n, nil
}

// Cancels subscribes to the namespace's cancel channel: for each fire
// that began under cancel-previous while another fire of its task ran,
// the returned channel gets the old fire's id and the new one's. A note
// the reader is too slow for (capacity 64) is dropped; close ends the
// subscription. Pub/sub keeps nothing: a note sent while the subscription
// is down is lost (the old run then goes on to its end).
func (w *Worker) Cancels(ctx context.Context) (cancels <-chan [2]string, close func() error) {
	ps := w.rdb.Subscribe(ctx, w.keys.Cancel())
	out := make(chan [2]string, 64)
	go func() {
		for m := range ps.Channel() {
			old, repl, ok := strings.Cut(m.Payload, " ")
			if !ok {
				continue
			}
			select {
			case out <- [2]string{old, repl}:
			default:
			}
		}
	}()
	return out, ps.Close
}

// HandBacks subscribes to the namespace's hand-back channel: a value
// arrives on the returned channel (capacity 1, never blocking the sender)
// whenever a worker hands fires back (HandBack), so a worker with free
// runs reclaims them at once. close ends the subscription. A subscription
// that cannot be made now is retried in the background; hand-backs
// before it succeeds are taken at the next periodic reclaim.
func (w *Worker) HandBacks(ctx context.Context) (handedBack <-chan struct{}, close func() error) {
	ps := w.rdb.Subscribe(ctx, w.keys.HandBacks())
	return core.Signals(ps), ps.Close
}

// BeginResult says what the overlap policy made of a fire.
type BeginResult string

// The begin results.
const (
	BeginRun      BeginResult = "run"      // run it
	BeginReplaced BeginResult = "replaced" // run it; the run under way is told to stop (cancel-previous)
	BeginBuffered BeginResult = "buffered" // kept waiting for the run under way (buffer-one)
	BeginSkipped  BeginResult = "skipped"  // dropped, recorded missed
	BeginGone     BeginResult = "gone"     // already acked elsewhere
)

// Begin applies a task's overlap policy (skip, buffer-one or
// cancel-previous) to a
// single-mode delivery: see beginScript. ttl is how long the running mark
// lives unless a heartbeat extends it; missed is the event recorded when
// the fire is dropped.
func (w *Worker) Begin(ctx context.Context, d Delivery, policy events.Overlap, ttl time.Duration, missed events.Event) (BeginResult, error) {
	member, err := retryMember(d.Stream, d.Fire)
	if err != nil {
		return "", err
	}
	// A backfill's fire is asked for by hand: it replaces as a manual one.
	late := ""
	if (d.Fire.Attempt > 1 || d.Deliveries > 1) && d.Fire.Origin != events.OriginBackfill {
		late = "1"
	}
	args := []any{d.Fire.ID, ttl.Milliseconds(), string(policy), d.Stream, core.WorkerGroup, d.EntryID, w.maxLen(), member, w.historyLen, d.Fire.Task, late}
	if args, err = missed.AppendArgs(args); err != nil {
		return "", err
	}
	keys := []string{w.keys.Running(d.Fire.Task), w.keys.Buffer(d.Fire.Task), w.keys.Events(), w.keys.History(d.Fire.Task), w.keys.Cancel()}
	res, err := beginScript.Run(ctx, w.rdb, keys, args...).Text()
	if err != nil {
		return "", fmt.Errorf("begin fire %s: %w", d.Fire.ID, err)
	}
	return BeginResult(res), nil
}

func retryMember(stream string, f events.Fire) (string, error) {
	b, err := json.Marshal(append([]string{stream}, f.Fields()...))
	return string(b), err
}

// PromoteRetries appends up to max due retries to their streams. It
// returns how many, and when the next one is due (zero when none waits).
func (w *Worker) PromoteRetries(ctx context.Context, max int) (int, time.Time, error) {
	res, err := promoteScript.Run(ctx, w.rdb, []string{w.keys.Retry()}, max).Int64Slice()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("move due retries: %w", err)
	}
	var next time.Time
	if res[1] >= 0 {
		next = time.UnixMilli(res[1]).UTC()
	}
	return int(res[0]), next, nil
}

// TrimFires trims a fire stream: entries older than keep (by their ids'
// time, which is the Redis clock) go, but never one the worker group has
// not acked: the cut stops at the oldest pending entry and at the group's
// last-delivered entry. A broadcast stream (no group) is trimmed by age
// alone. It returns how many entries went.
func (w *Worker) TrimFires(ctx context.Context, stream string, keep time.Duration) (int64, error) {
	minID, err := w.cutID(ctx, keep)
	if err != nil {
		return 0, err
	}
	if _, bc, _ := core.QueueOf(w.keys, stream); !bc {
		groups, err := w.rdb.XInfoGroups(ctx, stream).Result()
		if err != nil {
			return 0, fmt.Errorf("read groups of %s: %w", stream, err)
		}
		var g *redis.XInfoGroup
		for i := range groups {
			if groups[i].Name == core.WorkerGroup {
				g = &groups[i]
			}
		}
		if g == nil {
			return 0, nil // no group (a flush removed it): nothing is known to be acked
		}
		if core.LessID(g.LastDeliveredID, minID) {
			minID = g.LastDeliveredID
		}
		if g.Pending > 0 {
			p, err := w.rdb.XPending(ctx, stream, core.WorkerGroup).Result()
			if err != nil {
				return 0, fmt.Errorf("read pending of %s: %w", stream, err)
			}
			if p.Count > 0 && core.LessID(p.Lower, minID) {
				minID = p.Lower
			}
		}
	}
	n, err := w.trimMinID(ctx, stream, minID)
	if err != nil {
		return 0, fmt.Errorf("trim %s: %w", stream, err)
	}
	return n, nil
}

// trimMinID drops the whole stream nodes of entries before minID. LIMIT 0
// lifts the cap an approximate trim has otherwise (100 nodes, 10,000
// entries a call), which a stream growing faster than that per trim would
// outrun; dropping a node is freeing it, so the call stays short.
func (w *Worker) trimMinID(ctx context.Context, stream, minID string) (int64, error) {
	return w.rdb.Do(ctx, "xtrim", stream, "minid", "~", minID, "limit", 0).Int64()
}

// TrimEvents trims the events stream by age: entries older than keep (by
// their ids' time, the Redis clock) go, in whole stream nodes, so a few
// older ones may stay until the next trim. It returns how many went.
// Length is bounded by every append (store.Options.EventsMaxLen); this bounds
// time as well, for a namespace that keeps no more history than it must.
func (w *Worker) TrimEvents(ctx context.Context, keep time.Duration) (int64, error) {
	minID, err := w.cutID(ctx, keep)
	if err != nil {
		return 0, err
	}
	n, err := w.trimMinID(ctx, w.keys.Events(), minID)
	if err != nil {
		return 0, fmt.Errorf("trim the events stream: %w", err)
	}
	return n, nil
}

// PruneConsumers removes from a fire stream's group the consumers that
// hold nothing and were idle for longer than idle: workers that stopped.
// A live worker removed this way is added again by its next read. It
// returns how many went.
func (w *Worker) PruneConsumers(ctx context.Context, stream string, idle time.Duration) (int, error) {
	cs, err := w.rdb.XInfoConsumers(ctx, stream, core.WorkerGroup).Result()
	if err != nil {
		return 0, fmt.Errorf("read consumers of %s: %w", stream, err)
	}
	n := 0
	for _, c := range cs {
		if c.Pending == 0 && c.Idle > idle {
			// Removed only if it still holds nothing: a hand-back or a
			// route may have given it fires since, which DELCONSUMER
			// would drop from the group unacked.
			gone, err := pruneScript.Run(ctx, w.rdb, []string{stream}, core.WorkerGroup, c.Name).Int()
			if err != nil {
				return n, fmt.Errorf("remove consumer %s of %s: %w", c.Name, stream, err)
			}
			n += gone
		}
	}
	return n, nil
}

// FirstTrigger makes a manual trigger with an id idempotent when a worker
// reads it (see triggerIDScript): it reports whether d is the first entry
// with its fire id; a repeat is acked and missed recorded.
func (w *Worker) FirstTrigger(ctx context.Context, d Delivery, missed events.Event) (bool, error) {
	args, err := missed.AppendArgs([]any{d.EntryID, core.TriggerIDTTL.Milliseconds(), d.Stream, core.WorkerGroup, w.maxLen()})
	if err != nil {
		return false, err
	}
	n, err := triggerIDScript.Run(ctx, w.rdb, []string{w.keys.TriggerID(d.Fire.Task, d.Fire.ID), w.keys.Events()}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("check trigger id %q: %w", d.Fire.ID, err)
	}
	return n == 1, nil
}
