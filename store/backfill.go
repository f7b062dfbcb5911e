package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
)

// backfillScript appends the fires of a backfill, each slot at most once
// ever: a slot already in the task's backfilled hash is left alone.
//
// KEYS[1] -> the task's backfilled hash (slot ms -> fire entry id)
// KEYS[2] -> the fire stream
// KEYS[3] -> events (stream)
// ARGV[1] -> events stream approximate MAXLEN
// ARGV[2] -> number of slots
// ARGV[3..] -> per slot: slot ms, number of fire fields, the fire fields,
// number of event fields, the fired event's fields
//
// Returns, per slot, the fire's entry id, or "" when the slot was
// backfilled before.
var backfillScript = redis.NewScript(`
local out = {}
local i = 3
for k = 1, tonumber(ARGV[2]) do
  local ms, nf = ARGV[i], tonumber(ARGV[i + 1])
  local fs = i + 2
  local ne = tonumber(ARGV[fs + nf])
  local es = fs + nf + 1
  i = es + ne
  if redis.call('HEXISTS', KEYS[1], ms) == 1 then
    out[k] = ''
  else
    local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, fs, fs + nf - 1))
    redis.call('HSETNX', KEYS[1], ms, id)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, es, es + ne - 1))
    out[k] = id
  end
end
return out
`)

// AppendBackfill appends a fire for each of slots of the task spec (its
// queue and mode, its payload), marked as a backfill's (origin backfill,
// on the fire and its fired event, whose worker is by), and returns each
// one's entry id: "" for a slot a backfill appended before (the task's
// backfilled hash remembers every one, until the task's key is deleted by
// hand), which it does not append again. It does not check what planners
// fired: planner.Backfill does, and calls this with the slots left.
func (s *Store) AppendBackfill(ctx context.Context, spec events.Spec, slots []time.Time, by string) ([]string, error) {
	if len(slots) == 0 {
		return nil, nil
	}
	spec = spec.WithDefaults()
	args := make([]any, 0, 2+len(slots)*24)
	args = append(args, s.eventsMaxLen.Load(), len(slots))
	for _, slot := range slots {
		f := events.Fire{ID: events.FireID(spec.Name, slot), Task: spec.Name, At: slot, Payload: spec.Payload, Attempt: 1, Origin: events.OriginBackfill}
		args = append(args, strconv.FormatInt(slot.UnixMilli(), 10), 0)
		at := len(args) - 1
		args = f.AppendArgs(args)
		args[at] = len(args) - at - 1
		e := events.Event{Type: events.TypeFired, Task: spec.Name, Fire: f.ID, At: slot, Queue: spec.Queue, Mode: spec.Mode, Worker: by, Origin: events.OriginBackfill}
		args = append(args, 0)
		at = len(args) - 1
		var err error
		if args, err = e.AppendArgs(args); err != nil {
			return nil, err
		}
		args[at] = len(args) - at - 1
	}
	keys := []string{s.keys.Backfilled(spec.Name), s.keys.FireStream(spec.Queue, spec.Mode), s.keys.Events()}
	res, err := backfillScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("backfill %q: %w", spec.Name, err)
	}
	return res, nil
}

// ForgetBackfill removes slot from task's backfilled hash, so a later
// backfill may fire it again: its backfilled fire did not run (the task's
// overlap policy dropped it, or a newer fire replaced it).
func (s *Store) ForgetBackfill(ctx context.Context, task string, slot time.Time) error {
	return s.rdb.HDel(ctx, s.keys.Backfilled(task), strconv.FormatInt(slot.UnixMilli(), 10)).Err()
}
