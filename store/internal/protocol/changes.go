package protocol

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ChangesKeep is how long the changes set (Keys.Changes) keeps a pause,
// change or removal: longer than any lookahead (a planner lookahead is at most planner.MaxLookahead), so
// a fire appended ahead is checked against every change since.
const ChangesKeep = time.Hour

// The kinds of a Change.
const (
	ChangePaused  = "paused"
	ChangeChanged = "changed"
	ChangeRemoved = "removed"
)

// Change is a task paused, changed (a new definition applied) or removed,
// at a Redis server time.
type Change struct {
	Task string
	Kind string // ChangePaused, ChangeChanged or ChangeRemoved
	At   time.Time
}

// Changes reads the namespace's changes of the last ChangesKeep, oldest
// first.
func (w *Worker) Changes(ctx context.Context) ([]Change, error) {
	zs, err := w.rdb.ZRangeWithScores(ctx, w.keys.Changes(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read task changes: %w", err)
	}
	out := make([]Change, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		kind, task, ok := strings.Cut(m, " ")
		if !ok {
			continue // not written by taskino
		}
		out = append(out, Change{Task: task, Kind: kind, At: time.UnixMilli(int64(z.Score)).UTC()})
	}
	return out, nil
}

// ChangeNote is what WatchChanges delivers: Resync when the subscription
// was (re)confirmed or an apply changed tasks (reread them with Changes:
// pub/sub keeps nothing across a reconnect), else one pause.
type ChangeNote struct {
	Resync bool
	Change Change
}

// WatchChanges subscribes to the namespace's changes channel. The returned
// channel gets a Resync note each time the subscription is confirmed (the
// first time, and after every reconnect) and whenever a task-set apply
// changed or removed tasks, and a note per pause, until close is called.
// Notes are dropped, never queued without bound, when the
// reader lags; a Resync is then sent in their place.
func (w *Worker) WatchChanges(ctx context.Context) (notes <-chan ChangeNote, close func() error) {
	ps := w.rdb.Subscribe(ctx, w.keys.Changes())
	out := make(chan ChangeNote, 256)
	go func() {
		for msg := range ps.ChannelWithSubscriptions() {
			n := ChangeNote{Resync: true}
			if m, ok := msg.(*redis.Message); ok {
				n = parseChangeNote(m.Payload)
			}
			select {
			case out <- n:
			default:
				// The reader lags: make room for a resync, which covers
				// what is dropped.
				select {
				case <-out:
				default:
				}
				select {
				case out <- ChangeNote{Resync: true}:
				default:
				}
			}
		}
	}()
	return out, ps.Close
}

// parseChangeNote reads a changes channel message: "ms kind task" is a
// change, anything else a resync.
func parseChangeNote(p string) ChangeNote {
	ms, rest, ok := strings.Cut(p, " ")
	kind, task, ok2 := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || !ok2 || err != nil || task == "" {
		return ChangeNote{Resync: true}
	}
	return ChangeNote{Change: Change{Task: task, Kind: kind, At: time.UnixMilli(n).UTC()}}
}
