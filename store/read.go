package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// Reading the streams: the events as they come (a live reader such as
// taskino tail), and the ends of any stream. Reading never changes what
// planners and workers do.

// EventEntry is one entry of the events stream as read by ReadEvents: its
// event, or the error that kept it from decoding.
type EventEntry struct {
	ID    string
	Event events.Event
	Err   error
}

// ReadEvents reads up to count events after the entry id after ("$": only
// events appended from now on; "0": from the oldest), waiting up to block
// for one (block <= 0: not at all). It returns them and the id to read
// after next time, also with an error ("$" pinned to the id it stood for
// once that is known, so nothing appended since is skipped).
func (s *Store) ReadEvents(ctx context.Context, after string, count int64, block time.Duration) ([]EventEntry, string, error) {
	if after == "$" {
		// Pin "$" to the stream's current last id, so the next call reads
		// what came in between.
		last, err := s.LastEntryID(ctx, s.keys.Events())
		if err != nil {
			return nil, after, err
		}
		after = last
	}
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{s.keys.Events(), after}, Count: count, Block: core.NoForever(block)}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, after, nil
	}
	if err != nil {
		return nil, after, err
	}
	out := eventEntries(res[0].Messages)
	if len(out) > 0 {
		after = out[len(out)-1].ID
	}
	return out, after, nil
}

func eventEntries(msgs []redis.XMessage) []EventEntry {
	var out []EventEntry
	for _, m := range msgs {
		e, err := events.DecodeEvent(m.ID, core.StringFields(m.Values))
		out = append(out, EventEntry{ID: m.ID, Event: e, Err: err})
	}
	return out
}

// LastEntryID is the id of the last entry of a stream ("0-0" when it is
// empty): a reader that starts after it sees every entry appended after
// this call (a worker's broadcast cursor, a live listener's start).
func (s *Store) LastEntryID(ctx context.Context, stream string) (string, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("read the end of %s: %w", stream, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// QueueOf is the queue of a fire or broadcast stream of this namespace,
// and whether the stream is a broadcast one ("" for a stream that is
// neither).
func (s *Store) QueueOf(stream string) (queue string, broadcast bool) {
	q, bc, _ := core.QueueOf(s.keys, stream)
	return q, bc
}

// LessID reports whether stream entry id a ("ms-seq") comes before b.
func LessID(a, b string) bool { return core.LessID(a, b) }
