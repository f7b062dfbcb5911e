package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
)

// ErrUnknownTask is wrapped by Trigger when the task set has no such task.
var ErrUnknownTask = errors.New("unknown task")

// Trigger runs a task now, on whichever worker takes it: it appends a fire
// to the task's stream (its queue, and broadcast for a broadcast task),
// with payload (the spec's payload when empty). When id is not empty it is
// the fire id, and it makes the trigger idempotent: a trigger with an id
// used in the last TriggerIDTTL appends nothing and returns the first
// one's entry id. It returns the entry id. A task not in the stored set is
// an error wrapping ErrUnknownTask.
func (s *Store) Trigger(ctx context.Context, task, payload, id string) (string, error) {
	entry, _, err := s.TriggerOnce(ctx, task, payload, id)
	return entry, err
}

// TriggerOnce is Trigger, saying whether it appended a fire: with an id
// used in the last TriggerIDTTL, it appends nothing, and returns the
// first trigger's entry id and false.
func (s *Store) TriggerOnce(ctx context.Context, task, payload, id string) (entry string, appended bool, err error) {
	sp, err := s.Spec(ctx, task)
	if errors.Is(err, ErrNotFound) {
		return "", false, fmt.Errorf("trigger %q: %w in namespace %q (apply a task set that has it)", task, ErrUnknownTask, s.ns)
	}
	if err != nil {
		return "", false, fmt.Errorf("trigger %q: %w", task, err)
	}
	if payload == "" {
		payload = sp.Payload
	}
	if err := s.checkPayload(ctx, task, payload); err != nil {
		return "", false, fmt.Errorf("trigger %q: %w", task, err)
	}
	fields := map[string]string{events.FieldTask: task}
	if payload != "" {
		fields[events.FieldPayload] = payload
	}
	if id != "" {
		fields[events.FieldID] = id
	}
	if _, err := events.DecodeFire("0-1", fields); err != nil {
		return "", false, fmt.Errorf("trigger %q: %w", task, err)
	}
	kv := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		kv = append(kv, k, v)
	}
	sp = sp.WithDefaults()
	stream := s.keys.FireStream(sp.Queue, sp.Mode)
	if id == "" {
		eid, err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: kv}).Result()
		if err != nil {
			return "", false, fmt.Errorf("trigger %q: %w", task, err)
		}
		return eid, true, nil
	}
	args := append([]any{TriggerIDTTL.Milliseconds()}, kv...)
	res, err := addTriggerScript.Run(ctx, s.rdb, []string{s.keys.TriggerID(task, id), stream}, args...).Slice()
	if err != nil {
		return "", false, fmt.Errorf("trigger %q: %w", task, err)
	}
	entry, _ = res[0].(string)
	n, _ := res[1].(int64)
	return entry, n == 1, nil
}

// addTriggerScript appends a manual trigger with an id, unless one with
// that id was appended within the id's memory.
//
// KEYS[1] -> the id's trigger key (string)
// KEYS[2] -> the fire stream
// ARGV[1] -> how long the id is remembered, ms
// ARGV[2..] -> the entry's fields
//
// Returns {entry id, 1} when appended, {the first entry's id, 0} when not.
var addTriggerScript = redis.NewScript(`
local first = redis.call('GET', KEYS[1])
if first then return {first, 0} end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
return {id, 1}
`)
