package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// What operators do by hand: pause and resume a task, list and replay dead
// letters.

// pauseScript pauses a task: no planner claims it until it is resumed.
//
// KEYS[1] -> specs (hash)
// KEYS[2] -> due (zset)
// KEYS[3] -> events (stream)
// KEYS[4] -> changes (zset and channel)
// ARGV[1] -> the task's state key
// ARGV[2] -> task name
// ARGV[3] -> events stream approximate MAXLEN
// ARGV[4] -> the task's since (ms) the pause expects ("": any)
// ARGV[5] -> the failures in a row to record as the pause's baseline
// (fails_base; "": none)
// ARGV[6] -> the pause's reason in short, kept in the state (paused_why)
// ARGV[7..] -> the paused event's fields
//
// The task leaves the due index, its lease ends and its gen moves on (a
// planner holding it has its plan refused), and its state records when it
// was paused; the pause is noted in the changes set and published on its
// channel ("now paused task"), so workers drop the task's fires appended
// ahead. A reload keeps it paused.
// Returns the pause time (ms) of the task, "" if it is not registered,
// {"already", since} when it was paused before, or {"moved"} when its
// since is not the one expected (resumed or rescheduled meanwhile; nothing
// written).
var pauseScript = redis.NewScript(changeLua + `
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return '' end
local st = redis.call('HMGET', ARGV[1], 'paused', 'since')
if st[1] then return {'already', st[1]} end
if ARGV[4] ~= '' and st[2] ~= ARGV[4] then return {'moved'} end
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', ARGV[1], 'paused', now, 'paused_why', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', ARGV[1], 'fails_base', ARGV[5]) end
redis.call('HINCRBY', ARGV[1], 'gen', 1)
redis.call('HDEL', ARGV[1], 'lease', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 7))
noteChange(KEYS[4], tonumber(now), 'paused', ARGV[2])
redis.call('PUBLISH', KEYS[4], now .. ' paused ' .. ARGV[2])
return now
`)

// resumeScript resumes a paused task from a given time on.
//
// KEYS[1] -> specs (hash)
// KEYS[2] -> due (zset)
// KEYS[3] -> events (stream)
// KEYS[4] -> planned (hash)
// KEYS[5] -> the task's history (stream)
// ARGV[1] -> the task's state key
// ARGV[2] -> task name
// ARGV[3] -> events stream approximate MAXLEN
// ARGV[4] -> from (ms): the task's new since
// ARGV[5] -> the last slot the missed event records (ms; "" for none)
// ARGV[6] -> "1" when the task has no slot left from "from" on (the
// missed event says so), else ""
// ARGV[7] -> the task's gen the caller read with its spec (any pause or
// change of the task moves it)
// ARGV[8] -> number of fields of the resumed event
// ARGV[9] -> the task's history approximate MAXLEN
// ARGV[10..] -> the resumed event's fields, then the missed event's fields,
// if any (it goes to the history too)
//
// The slots between the pause and from are not fired (the caller records
// them as missed, and the watermark moves to the last of them, as for any
// slot recorded missed); the task is planned again from "from" on, unless
// it has no slot left now or was done already (its last plan found none
// left, and a later since takes none back: so a once instant recorded
// missed is not recorded again): then it is done.
// Returns 1 when resumed and planned again, 2 when resumed and done, 0
// when the task is not paused, -1 when it is not registered, -2 when its
// gen moved on since the caller read it (nothing written).
var resumeScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return -1 end
if not redis.call('HGET', ARGV[1], 'paused') then return 0 end
if redis.call('HGET', ARGV[1], 'gen') ~= ARGV[7] then return -2 end
redis.call('HDEL', ARGV[1], 'paused', 'paused_why', 'lease', 'lease_until')
local done = ARGV[6] == '1' or redis.call('HGET', ARGV[1], 'next') == '-1'
if done then
  redis.call('HSET', ARGV[1], 'next', '-1', 'since', ARGV[4])
else
  redis.call('HDEL', ARGV[1], 'next')
  redis.call('HSET', ARGV[1], 'since', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
end
redis.call('HINCRBY', ARGV[1], 'gen', 1)
if ARGV[5] ~= '' then
  local wm = redis.call('HGET', KEYS[4], ARGV[2])
  if not wm or tonumber(wm) < tonumber(ARGV[5]) then redis.call('HSET', KEYS[4], ARGV[2], ARGV[5]) end
end
local n = tonumber(ARGV[8])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 10, 9 + n))
if #ARGV > 9 + n then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 10 + n))
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[9], '*', unpack(ARGV, 10 + n))
end
if done then return 2 end
return 1
`)

// ErrNotPaused is returned by Resume for a task that is not paused.
var ErrNotPaused = errors.New("not paused")

// ErrAlreadyPaused is returned by Pause for a task that is paused.
var ErrAlreadyPaused = errors.New("already paused")

// Pause stops the planning of task until Resume: planners fire none of its
// slots. Fires already appended still run, and manual triggers still do.
// It returns when the task was paused (server time); ErrNotFound for a task
// not in the task set, ErrAlreadyPaused (with the earlier pause time) when
// it is paused.
func (s *Store) Pause(ctx context.Context, task, by string) (time.Time, error) {
	return s.pause(ctx, task, by, "paused by hand", "by hand", "", "")
}

// ErrMovedOn is returned by PauseAfterFailures when the task was resumed
// or rescheduled since the state its decision read.
var ErrMovedOn = errors.New("resumed or rescheduled meanwhile")

// PauseAfterFailures pauses task for its failures in a row, with reason
// in its paused event and why, its short form, in its state
// (TaskState.PausedWhy), unless its since is no longer since (resumed or
// rescheduled meanwhile: ErrMovedOn). fails, the failures in a row it
// counted, becomes the task's baseline (TaskState.FailsBase), so that
// after a resume it counts its failures afresh.
func (s *Store) PauseAfterFailures(ctx context.Context, task, by, reason, why string, since time.Time, fails int) (time.Time, error) {
	return s.pause(ctx, task, by, reason, why, strconv.FormatInt(since.UnixMilli(), 10), strconv.Itoa(fails))
}

func (s *Store) pause(ctx context.Context, task, by, reason, why, since, failsBase string) (time.Time, error) {
	e := events.Event{Type: events.TypePaused, Task: task, Worker: by, Reason: reason}
	args, err := e.AppendArgs([]any{s.keys.State(task), task, s.eventsMaxLen.Load(), since, failsBase, why})
	if err != nil {
		return time.Time{}, err
	}
	res, err := pauseScript.Run(ctx, s.rdb, []string{s.keys.Specs(), s.keys.Due(), s.keys.Events(), s.keys.Changes()}, args...).Result()
	if err != nil {
		return time.Time{}, err
	}
	switch v := res.(type) {
	case string:
		if v == "" {
			return time.Time{}, ErrNotFound
		}
		return core.MsTime(v), nil
	case []any:
		if len(v) == 1 {
			return time.Time{}, ErrMovedOn
		}
		return core.MsTime(v[1]), ErrAlreadyPaused
	}
	return time.Time{}, fmt.Errorf("pause %q: unexpected reply %v", task, res)
}

// Paused is when task was paused; zero when it is not paused.
func (s *Store) Paused(ctx context.Context, task string) (time.Time, error) {
	v, err := s.rdb.HGet(ctx, s.keys.State(task), "paused").Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	return core.MsTime(v), err
}

// Resume plans task again, from the server's now on, and appends a resumed
// event. missed, when not nil, is given the task's spec as stored, the
// time after which its slots were not yet fired or recorded (the later of
// its watermark and the start of its schedule; slots already overdue when
// it was paused count too) and the resume time, and returns the missed
// event recording the slots in between (its Count zero for none), and
// whether the task has no slot left from the resume on; the event is
// appended with the resumed event, and the task's watermark moves to the
// last slot it records, so no planner fires one of them. A task with no
// slot left and such an event to say so is done at once (a planner would
// record its window missed once more), and a task that was done (its
// schedule had no slot left) stays done; done reports either. A reload
// that changes the task meanwhile makes Resume start over with the new
// spec. Errors: ErrNotFound for a task not in the task set, ErrNotPaused
// when it is not paused, and missed's own.
func (s *Store) Resume(ctx context.Context, task, by string, missed func(spec events.Spec, after, now time.Time) (events.Event, bool, error)) (done bool, err error) {
	for range resumeTries {
		done, err = s.resume(ctx, task, by, missed)
		if !errors.Is(err, errChangedMeanwhile) {
			return done, err
		}
	}
	return false, fmt.Errorf("resume %q: the task changed %d times while it was being resumed; try again", task, resumeTries)
}

// resumeTries bounds the attempts of Resume that a reload overtakes.
const resumeTries = 5

var errChangedMeanwhile = errors.New("changed meanwhile")

func (s *Store) resume(ctx context.Context, task, by string, missed func(spec events.Spec, after, now time.Time) (events.Event, bool, error)) (bool, error) {
	// The spec and the state in one transaction, so they belong together;
	// the script refuses to resume when the gen moved on since (a reload
	// or another pause), and the caller's missed event no longer holds.
	pipe := s.rdb.TxPipeline()
	specCmd := pipe.HGet(ctx, s.keys.Specs(), task)
	stCmd := pipe.HMGet(ctx, s.keys.State(task), "since", "gen", "paused", "next")
	plCmd := pipe.HGet(ctx, s.keys.Planned(), task)
	timeCmd := pipe.Time(ctx)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, err
	}
	raw, err := specCmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, err
	}
	st := stCmd.Val()
	since := core.MsTime(st[2])
	if since.IsZero() {
		return false, ErrNotPaused
	}
	gen, _ := st[1].(string)
	// While paused no planner touches the task (it is out of the due index,
	// and a plan under way is refused by the new gen), so this is stable.
	after := core.MsTime(st[0]).Add(-time.Millisecond)
	if planned := core.MsTime(plCmd.Val()); planned.After(after) {
		after = planned
	}
	now := timeCmd.Val().UTC().Truncate(time.Millisecond)
	re := events.Event{Type: events.TypeResumed, Task: task, Worker: by,
		Reason: fmt.Sprintf("paused since %s", since.Format(time.RFC3339))}
	args := []any{s.keys.State(task), task, s.eventsMaxLen.Load(), now.UnixMilli(), "", "", gen, 0, s.historyLen}
	if args, err = re.AppendArgs(args); err != nil {
		return false, err
	}
	args[7] = len(args) - 9                                       // the resumed event's field count
	if done, _ := st[3].(string); missed != nil && done != "-1" { // a task done before its pause owes no slot
		spec, err := events.UnmarshalSpec(raw)
		if err != nil {
			return false, fmt.Errorf("task %q: %w", task, err)
		}
		me, ended, err := missed(spec, after, now)
		if err != nil {
			return false, err
		}
		if me.Count > 0 {
			last := me.At
			if !me.Until.IsZero() {
				last = me.Until
			}
			args[4] = last.UnixMilli()
			if ended {
				args[5] = "1"
			}
			if args, err = me.AppendArgs(args); err != nil {
				return false, err
			}
		}
	}
	n, err := resumeScript.Run(ctx, s.rdb, []string{s.keys.Specs(), s.keys.Due(), s.keys.Events(), s.keys.Planned(), s.keys.History(task)}, args...).Int()
	switch {
	case err != nil:
		return false, err
	case n == -1:
		return false, ErrNotFound
	case n == -2:
		return false, errChangedMeanwhile
	case n == 0:
		return false, ErrNotPaused
	}
	return n == 2, nil
}

// DeadLetter is an entry of the dead-letter stream.
type DeadLetter struct {
	// ID is the dead-letter entry's id.
	ID string
	// Reason says why it was dead-lettered; Error is the last failure.
	Reason, Error string
	// Source is the stream the entry came from; Entry its id there.
	Source, Entry string
	// Worker is the worker that dead-lettered it.
	Worker string
	// Fields are the original entry's fields.
	Fields map[string]string
	// Truncated counts original fields not copied (a huge entry).
	Truncated int
	// Cut are the original fields kept only in part (their first
	// events.MaxDeadFieldBytes bytes), by name, with their full size.
	Cut map[string]int
}

// Task is the task the original entry names, "" if none.
func (d DeadLetter) Task() string { return d.Fields[events.FieldTask] }

// ListDead returns up to count dead letters from start (an entry id, "-"
// for the oldest) on, oldest first.
func (s *Store) ListDead(ctx context.Context, start string, count int64) ([]DeadLetter, error) {
	return deadLetters(s.rdb.XRangeN(ctx, s.keys.Dead(), start, "+", count).Result())
}

// ListDeadBack returns up to count dead letters before the entry id
// before ("+": from the newest), newest first.
func (s *Store) ListDeadBack(ctx context.Context, before string, count int64) ([]DeadLetter, error) {
	end := before
	if before != "+" {
		end = "(" + before
	}
	return deadLetters(s.rdb.XRevRangeN(ctx, s.keys.Dead(), end, "-", count).Result())
}

// deadLetters reads a range of the dead-letter stream.
func deadLetters(msgs []redis.XMessage, err error) ([]DeadLetter, error) {
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, deadLetter(m))
	}
	return out, nil
}

// DeadLetterByID returns one dead letter, or ErrNotFound.
func (s *Store) DeadLetterByID(ctx context.Context, id string) (DeadLetter, error) {
	msgs, err := s.rdb.XRange(ctx, s.keys.Dead(), id, id).Result()
	if err != nil {
		return DeadLetter{}, err
	}
	if len(msgs) == 0 {
		return DeadLetter{}, ErrNotFound
	}
	return deadLetter(msgs[0]), nil
}

func deadLetter(m redis.XMessage) DeadLetter {
	d := DeadLetter{ID: m.ID, Fields: map[string]string{}}
	for k, v := range core.StringFields(m.Values) {
		switch {
		case strings.HasPrefix(k, events.DeadFieldPrefix):
			d.Fields[strings.TrimPrefix(k, events.DeadFieldPrefix)] = v
		case k == events.DeadReason:
			d.Reason = v
		case k == events.DeadError:
			d.Error = v
		case k == events.DeadSource:
			d.Source = v
		case k == events.DeadEntry:
			d.Entry = v
		case k == events.DeadWorker:
			d.Worker = v
		case k == events.DeadTruncated:
			fmt.Sscan(v, &d.Truncated)
		case k == events.DeadCut:
			d.Cut = map[string]int{}
			for _, item := range strings.Split(v, ",") {
				if name, size, ok := strings.Cut(item, ":"); ok {
					n, _ := strconv.Atoi(size)
					d.Cut[name] = n
				}
			}
		}
	}
	return d
}

// replayScript moves a dead letter back to a fire stream, once.
//
// KEYS[1] -> dead (stream)
// KEYS[2] -> events (stream)
// ARGV[1] -> the dead letter's id
// ARGV[2] -> the fire stream to append to
// ARGV[3] -> events stream approximate MAXLEN
// ARGV[4] -> number of fire fields, then the fields
// ARGV[...] -> the event's fields, if any
//
// Returns the new fire entry's id, or "" when the dead letter is gone
// (replayed or deleted by someone else).
var replayScript = redis.NewScript(`
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return '' end
local n = tonumber(ARGV[4])
local id = redis.call('XADD', ARGV[2], '*', unpack(ARGV, 5, 4 + n))
redis.call('XDEL', KEYS[1], ARGV[1])
if #ARGV > 4 + n then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 5 + n))
end
return id
`)

// ErrNotReplayable is returned by Replay for a dead letter that cannot go
// back (it did not come from a fire stream of this namespace, or lost
// fields to truncation).
var ErrNotReplayable = errors.New("cannot be replayed")

// Replay appends a dead letter's fire to its task's fire stream (the one it
// came from when the task is gone or the entry never decoded), as a first
// attempt (same fire id, same scheduled time and payload), deletes
// the dead letter, and appends a retried event; all at once, so two
// replays of one dead letter append one fire. An entry that never decoded
// goes back byte for byte (it is dead-lettered again unless what refused it
// changed, such as a task since registered). Returns the new entry's id;
// ErrNotFound when the dead letter is gone; an error wrapping
// ErrNotReplayable for a broadcast fire (every worker ran it, so a replay
// would run it everywhere again) or one that cannot go back.
func (s *Store) Replay(ctx context.Context, d DeadLetter, by string) (string, error) {
	_, broadcast, ok := core.QueueOf(s.keys, d.Source)
	switch {
	case !ok:
		return "", fmt.Errorf("dead letter %s from %q: %w: not a fire stream of namespace %q", d.ID, d.Source, ErrNotReplayable, s.ns)
	case broadcast:
		// Each worker whose run failed wrote its own dead letter; a replay
		// would run the fire on every worker again, those that succeeded
		// too. Trigger the task instead.
		return "", fmt.Errorf("dead letter %s: %w: a broadcast fire goes to every worker; trigger the task instead", d.ID, ErrNotReplayable)
	case d.Truncated > 0:
		return "", fmt.Errorf("dead letter %s: %w: %d of its fields were not kept", d.ID, ErrNotReplayable, d.Truncated)
	case len(d.Cut) > 0:
		var parts []string
		for name, size := range d.Cut {
			parts = append(parts, fmt.Sprintf("%s (%d bytes)", name, size))
		}
		sort.Strings(parts)
		return "", fmt.Errorf("dead letter %s: %w: only the start of %s was kept", d.ID, ErrNotReplayable, strings.Join(parts, ", "))
	}
	args := []any{d.ID, d.Source, s.eventsMaxLen.Load(), 0} // the target stream, then the field count
	var ev events.Event                                     // the retried event of a fire replayed; none for an entry that is not one
	if f, err := events.DecodeFire(d.Entry, d.Fields); err == nil {
		// A reload may have moved the task to another queue since.
		if spec, err := s.Spec(ctx, f.Task); err == nil {
			spec = spec.WithDefaults()
			if spec.Mode == events.ModeBroadcast {
				return "", fmt.Errorf("dead letter %s: %w: task %q is broadcast now; trigger it instead", d.ID, ErrNotReplayable, f.Task)
			}
			args[1] = s.keys.Fires(spec.Queue)
		}
		f.Attempt = 1
		args = f.AppendArgs(args)
		ev = events.Event{Type: events.TypeRetried, Task: f.Task, Fire: f.ID, At: f.At, Attempt: 1, Worker: by,
			Reason: "replayed from dead letter " + d.ID}
	} else {
		for k, v := range d.Fields {
			args = append(args, k, v)
		}
	}
	args[3] = len(args) - 4 // the entry's field count
	if ev.Type != "" {
		var err error
		if args, err = ev.AppendArgs(args); err != nil {
			return "", err
		}
	}
	id, err := replayScript.Run(ctx, s.rdb, []string{s.keys.Dead(), s.keys.Events()}, args...).Text()
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", ErrNotFound
	}
	return id, nil
}

// GroupLag is how far the workers' group is behind on a fire stream: lag,
// the entries not yet handed to any worker (-1 when Redis cannot tell, after
// a trim or deletion), and pending, the entries handed out and not yet
// acked. ErrNotFound when the stream or its group does not exist yet.
func (s *Store) GroupLag(ctx context.Context, stream string) (lag, pending int64, err error) {
	groups, err := s.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, 0, ErrNotFound
		}
		return 0, 0, err
	}
	for _, g := range groups {
		if g.Name == WorkerGroup {
			return g.Lag, g.Pending, nil
		}
	}
	return 0, 0, ErrNotFound
}

// Backlog is how many fires of a fire stream no worker has read: the
// workers' group's lag, or the stream's length when it has no group yet
// (no worker ever read it) or Redis cannot tell the lag. 0 for a stream
// that does not exist.
func (s *Store) Backlog(ctx context.Context, stream string) (int64, error) {
	lag, _, err := s.GroupLag(ctx, stream)
	switch {
	case err == nil && lag >= 0:
		return lag, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return 0, err
	}
	return s.rdb.XLen(ctx, stream).Result()
}

// DeleteDead deletes dead letters by id and returns how many there were.
func (s *Store) DeleteDead(ctx context.Context, ids ...string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return s.rdb.XDel(ctx, s.keys.Dead(), ids...).Result()
}
