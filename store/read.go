package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// Reading the streams: the events as they come (a live reader such as
// taskino tail), through a durable consumer group of the events stream (a
// listener that resumes where it stopped), and the ends of any stream.
// Reading never changes what planners and workers do; a durable group's
// acks concern that group alone.

// EventEntry is one entry of the events stream as read by ReadEvents or
// ReadEventGroup: its event, or the error that kept it from decoding.
type EventEntry struct {
	ID    string
	Event events.Event
	Err   error
	// Deleted is set on an entry a group read that was trimmed from the
	// stream since it was delivered (ReadEventGroup's backlog): there is
	// nothing to decode, only the id to ack.
	Deleted bool
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

// ReadEventsBack reads up to count events before the entry id before ("+":
// from the newest), newest first: a reader of the recent past.
func (s *Store) ReadEventsBack(ctx context.Context, before string, count int64) ([]EventEntry, error) {
	end := before
	if before != "+" {
		end = "(" + before
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.Events(), end, "-", count).Result()
	if err != nil {
		return nil, err
	}
	return eventEntries(msgs), nil
}

func eventEntries(msgs []redis.XMessage) []EventEntry {
	var out []EventEntry
	for _, m := range msgs {
		if m.Values == nil {
			out = append(out, EventEntry{ID: m.ID, Deleted: true})
			continue
		}
		e, err := events.DecodeEvent(m.ID, core.StringFields(m.Values))
		out = append(out, EventEntry{ID: m.ID, Event: e, Err: err})
	}
	return out
}

// EnsureEventGroup creates the consumer group group on the events stream
// (and the stream) if it is missing, starting after from ("$": the events
// appended from now on; "0": the whole stream; or an entry id). A group
// that exists is left as it is.
func (s *Store) EnsureEventGroup(ctx context.Context, group, from string) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.keys.Events(), group, from).Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("create the events group %q: %w", group, err)
	}
	return nil
}

// ReadEventGroup reads up to count events for consumer through the events
// stream's group: after ">", those never delivered to the group, waiting
// up to block for one (block <= 0: not at all); after an entry id ("0"
// for the first), those delivered to consumer and not yet acked (AckEvents)
// after it, without waiting. A group that does not exist is an error
// wrapping ErrNoGroup.
func (s *Store) ReadEventGroup(ctx context.Context, group, consumer, after string, count int64, block time.Duration) ([]EventEntry, error) {
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: consumer,
		Streams: []string{s.keys.Events(), after}, Count: count, Block: core.NoForever(block)}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the events group %q: %w", group, core.NoGroup(err))
	}
	return eventEntries(res[0].Messages), nil
}

// ClaimEvents takes over, for consumer, up to count events of the events
// stream's group delivered to another consumer and not acked for at least
// minIdle (that consumer's process died), scanning the group's pending
// entries from start ("0-0" for the first); it returns them (undecodable
// and deleted ones marked as ReadEventGroup marks them) and where the next
// scan starts ("0-0" once the scan is through).
func (s *Store) ClaimEvents(ctx context.Context, group, consumer string, minIdle time.Duration, start string, count int64) ([]EventEntry, string, error) {
	msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: s.keys.Events(), Group: group, Consumer: consumer,
		MinIdle: minIdle, Start: start, Count: count}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("take over events of the group %q: %w", group, core.NoGroup(err))
	}
	return eventEntries(msgs), next, nil
}

// AckEvents acknowledges events read through the events stream's group:
// they are no longer delivered again to any of its consumers.
func (s *Store) AckEvents(ctx context.Context, group string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.rdb.XAck(ctx, s.keys.Events(), group, ids...).Err()
}

// EventGroupGap says whether the events stream was trimmed past what the
// events group group had read: trimmedPast is the last entry trimmed and
// readUpTo the last the group was delivered, both "" when the group missed
// nothing (or does not exist).
func (s *Store) EventGroupGap(ctx context.Context, group string) (trimmedPast, readUpTo string, err error) {
	info, err := s.rdb.XInfoStream(ctx, s.keys.Events()).Result()
	if err != nil {
		return "", "", err
	}
	groups, err := s.rdb.XInfoGroups(ctx, s.keys.Events()).Result()
	if err != nil {
		return "", "", err
	}
	for _, g := range groups {
		if g.Name == group && info.MaxDeletedEntryID != "" && info.MaxDeletedEntryID != "0-0" &&
			LessID(g.LastDeliveredID, info.MaxDeletedEntryID) && info.FirstEntry.ID != "" && LessID(g.LastDeliveredID, info.FirstEntry.ID) {
			return info.MaxDeletedEntryID, g.LastDeliveredID, nil
		}
	}
	return "", "", nil
}

// StreamReach is how far back a stream reaches: the zero time when it
// never lost an entry (none trimmed or deleted since it was created: it
// holds all it was ever given), else the time of its oldest entry (the
// Redis server's, from its id), or the server's now when it is empty. A
// stream that does not exist reaches back to the start.
func (s *Store) StreamReach(ctx context.Context, stream string) (time.Time, error) {
	info, err := s.rdb.XInfoStream(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}
	// Redis 7 counts the entries ever added; before, whether any was lost
	// is not known, and the oldest entry is the answer. (Its
	// max-deleted-entry-id does not tell: a trim leaves it at 0-0.)
	if info.EntriesAdded == info.Length && (info.EntriesAdded > 0 || info.FirstEntry.ID == "") {
		return time.Time{}, nil
	}
	if info.FirstEntry.ID == "" {
		return s.Time(ctx)
	}
	return events.EntryTime(info.FirstEntry.ID)
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
