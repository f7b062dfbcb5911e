package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/protocol"
)

// Settings are the namespace's settings, kept in Redis (Keys.Settings) so
// that its planners, workers and the CLI cannot disagree on them.
//
// The events stream keeps about EventsMaxLen entries, and more while a
// durable listener's group has not yet been delivered them: it is never
// trimmed past an entry a group was not delivered, up to the hard bounds,
// EventsHardMaxLen entries and, when set, EventsHardMaxAge. What the hard
// bounds cut, a listener is told it lost. Planners and workers apply them
// every second (and every append keeps to the hard length).
type Settings struct {
	EventsMaxLen     int64
	EventsHardMaxLen int64
	// EventsHardMaxAge, when positive, also drops events older than it,
	// delivered or not.
	EventsHardMaxAge time.Duration
	// FiresMaxBacklog bounds the fires a queue's stream holds that no
	// worker has read: at it, planners record the queue's slots missed
	// (policy backlog) instead of appending more, until workers read
	// them. Nothing a group holds is ever trimmed. 0: no bound.
	FiresMaxBacklog int64
	// PayloadMax bounds a payload in bytes, 1 to events.MaxPayload (64
	// KiB; 0 stores that default, and Settings reads it back as 64 KiB):
	// a spec's (Apply refuses it), a manual trigger's (Trigger refuses
	// it), and a hand-written fire entry's (the worker dead-letters it,
	// naming the size and the bound).
	PayloadMax int64
}

// DefaultFiresMaxBacklog is Settings.FiresMaxBacklog when the namespace
// stores none.
const DefaultFiresMaxBacklog = 1_000_000

// DefaultSettings are a namespace's settings until it stores others.
var DefaultSettings = Settings{EventsMaxLen: DefaultEventsMaxLen, EventsHardMaxLen: DefaultEventsHardMaxLen, FiresMaxBacklog: DefaultFiresMaxBacklog,
	PayloadMax: events.MaxPayload}

// DefaultEventsHardMaxLen is the events stream's hard bound when the
// namespace stores none: ten times DefaultEventsMaxLen.
const DefaultEventsHardMaxLen = protocol.DefaultEventsHardMaxLen

// Validate says what is wrong with s, naming the setting.
func (s Settings) Validate() error {
	switch {
	case s.EventsMaxLen < 1:
		return fmt.Errorf("events max len %d: want 1 or more entries", s.EventsMaxLen)
	case s.EventsHardMaxLen < s.EventsMaxLen:
		return fmt.Errorf("events hard max len %d is below the events max len %d: want the hard bound at least the bound (raise both, or lower the bound)", s.EventsHardMaxLen, s.EventsMaxLen)
	case s.EventsHardMaxAge < 0 || (s.EventsHardMaxAge > 0 && s.EventsHardMaxAge < time.Minute):
		return fmt.Errorf("events hard max age %s: want 0 (none) or 1m or more", s.EventsHardMaxAge)
	case s.FiresMaxBacklog < 0:
		return fmt.Errorf("fires max backlog %d: want 0 (none) or more fires", s.FiresMaxBacklog)
	case s.PayloadMax < 0 || s.PayloadMax > events.MaxPayload:
		return fmt.Errorf("payload max %d: want 1 to %d bytes (0: %d)", s.PayloadMax, events.MaxPayload, events.MaxPayload)
	}
	return nil
}

// Settings are the namespace's stored settings, each at its default
// (DefaultSettings) when not stored.
func (s *Store) Settings(ctx context.Context) (Settings, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.Settings()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Settings{}, fmt.Errorf("read the namespace's settings: %w", err)
	}
	out := DefaultSettings
	for name, p := range map[string]*int64{"events_max_len": &out.EventsMaxLen, "events_hard_max_len": &out.EventsHardMaxLen, "fires_max_backlog": &out.FiresMaxBacklog, "payload_max": &out.PayloadMax} {
		if v, ok := m[name]; ok {
			if *p, err = strconv.ParseInt(v, 10, 64); err != nil {
				return Settings{}, fmt.Errorf("setting %s: %q is not a whole number", name, v)
			}
		}
	}
	if v, ok := m["events_hard_max_age_ms"]; ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Settings{}, fmt.Errorf("setting events_hard_max_age_ms: %q is not a whole number", v)
		}
		out.EventsHardMaxAge = time.Duration(ms) * time.Millisecond
	}
	out.PayloadMax = payloadMax(out.PayloadMax)
	return out, nil
}

// SetSettings stores st as the namespace's settings, after Validate.
func (s *Store) SetSettings(ctx context.Context, st Settings) error {
	if err := st.Validate(); err != nil {
		return err
	}
	return s.rdb.HSet(ctx, s.keys.Settings(), "events_max_len", st.EventsMaxLen, "events_hard_max_len", st.EventsHardMaxLen,
		"events_hard_max_age_ms", st.EventsHardMaxAge.Milliseconds(), "fires_max_backlog", st.FiresMaxBacklog, "payload_max", st.PayloadMax).Err()
}

// InitEventsMaxLen stores n as the namespace's events max len when it
// stores none (a process's --events-max-len), and returns the one stored,
// which wins.
func (s *Store) InitEventsMaxLen(ctx context.Context, n int64) (int64, error) {
	if n < 1 {
		return 0, fmt.Errorf("events max len %d: want 1 or more entries", n)
	}
	if err := s.rdb.HSetNX(ctx, s.keys.Settings(), "events_max_len", n).Err(); err != nil {
		return 0, fmt.Errorf("store the namespace's events max len: %w", err)
	}
	st, err := s.Settings(ctx)
	return st.EventsMaxLen, err
}

// EventGroup is a durable listener's consumer group on the events stream.
type EventGroup struct {
	Name string
	// Behind counts the events not yet delivered to it; -1 when Redis
	// cannot tell (events were trimmed past it).
	Behind int64
	// Pending counts the events delivered and not yet acked.
	Pending int64
	// LastDelivered is the id of the last event delivered to it.
	LastDelivered string
}

// EventGroups lists the durable listeners' groups on the events stream.
func (s *Store) EventGroups(ctx context.Context) ([]EventGroup, error) {
	gs, err := s.rdb.XInfoGroups(ctx, s.keys.Events()).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil, nil
		}
		return nil, fmt.Errorf("read the events stream's groups: %w", err)
	}
	out := make([]EventGroup, 0, len(gs))
	for _, g := range gs {
		out = append(out, EventGroup{Name: g.Name, Behind: g.Lag, Pending: g.Pending, LastDelivered: g.LastDeliveredID})
	}
	return out, nil
}

// takeScript returns and removes a field of a hash (nil when absent).
var takeScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v
`)

// TakeEventsLost returns and forgets the range of events the retention's
// hard bounds trimmed before the durable listener group was delivered
// them: after, the last it was delivered, and upTo, the first event kept
// (both "" when none was lost).
func (s *Store) TakeEventsLost(ctx context.Context, group string) (after, upTo string, err error) {
	// Read and removed in one step: a trim extending the range meanwhile
	// is not lost.
	v, err := takeScript.Run(ctx, s.rdb, []string{s.keys.EventsLost()}, group).Text()
	if errors.Is(err, redis.Nil) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read the events lost by %q: %w", group, err)
	}
	after, upTo, _ = strings.Cut(v, " ")
	return after, upTo, nil
}

// checkPayload says, for a payload of task over the namespace's payload
// max, what is wrong, naming the task, the size and the bound.
func (s *Store) checkPayload(ctx context.Context, task, payload string) error {
	if payload == "" {
		return nil
	}
	limit, err := s.PayloadMax(ctx)
	if err != nil {
		return err
	}
	if int64(len(payload)) > limit {
		return &events.SpecError{Task: task, Field: "payload", Problem: fmt.Sprintf("%d bytes; the namespace allows at most %d (taskino settings --payload-max)", len(payload), limit)}
	}
	return nil
}

// PayloadMax is the namespace's payload bound in bytes (Settings.PayloadMax,
// events.MaxPayload when it stores none), read alone (one HGET).
func (s *Store) PayloadMax(ctx context.Context) (int64, error) {
	v, err := s.rdb.HGet(ctx, s.keys.Settings(), "payload_max").Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return events.MaxPayload, nil
	case err != nil:
		return 0, fmt.Errorf("read the namespace's payload max: %w", err)
	}
	return payloadMax(v), nil
}

// payloadMax is a stored payload max as it applies: events.MaxPayload for
// 0 (none stored) or a value out of range.
func payloadMax(v int64) int64 {
	if v <= 0 || v > events.MaxPayload {
		return events.MaxPayload
	}
	return v
}
