package consumer

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/store"
)

// broadcaster reads the broadcast fire streams, which every live worker
// reads in full from cursors of its own, set when it comes up (setUp), and
// hands what it reads to Fetch on out. It owns the cursors and the marks
// of where each stream stood at the start; run is its loop.
type broadcaster struct {
	st        workerStore
	log       zerolog.Logger
	streams   []string
	block     time.Duration
	holdEarly time.Duration // Config.HoldEarly (0 when early fires are not held)
	out       chan []store.Delivery

	// Set by setUp, before run.
	cursors map[string]string
	start   map[string]string // each stream's last entry when this worker came up
	upSince time.Time         // Redis time then
}

func newBroadcaster(st workerStore, log zerolog.Logger, streams []string, block, holdEarly time.Duration) *broadcaster {
	return &broadcaster{st: st, log: log, streams: streams, block: block, holdEarly: holdEarly, out: make(chan []store.Delivery, 16)}
}

// setUp sets the cursors, up being the Redis server's time now.
// Broadcast fires are run by the workers up at their slot. Fires are
// appended up to a planner's lookahead early, so reading starts HoldEarly
// back, and of the entries appended before now only those due from now on
// run.
func (b *broadcaster) setUp(ctx context.Context, up time.Time) error {
	cur, last := map[string]string{}, map[string]string{}
	for _, s := range b.streams {
		id, err := b.st.LastEntryID(ctx, s)
		if err != nil {
			return err
		}
		cur[s], last[s] = id, id
		if back := fmt.Sprintf("%d-0", up.Add(-b.holdEarly).UnixMilli()); b.holdEarly > 0 && store.LessID(back, id) {
			cur[s] = back
		}
	}
	b.cursors, b.start, b.upSince = cur, last, up
	return nil
}

// sinceUp drops the broadcast entries appended before this worker was up
// whose slot was before then too.
func (b *broadcaster) sinceUp(ds []store.Delivery) []store.Delivery {
	out := ds[:0]
	for _, d := range ds {
		if last := b.start[d.Stream]; !store.LessID(last, d.EntryID) && (d.Err != nil || d.Fire.At.Before(b.upSince)) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// run reads broadcast fires from the cursors set at start until ctx ends.
func (b *broadcaster) run(ctx context.Context) {
	bo := store.NewBackoff()
	for ctx.Err() == nil {
		ds, err := b.st.ReadBroadcast(ctx, b.cursors, 100, b.block)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := bo.Next()
			if bo.Report() {
				b.log.Warn().Err(err).Int("failures", bo.Failures()).Dur("retry_in", d).Msg("read broadcast fires")
			}
			sleep(ctx, d)
			continue
		}
		bo.Reset()
		if ds = b.sinceUp(ds); len(ds) > 0 {
			select {
			case b.out <- ds:
			case <-ctx.Done():
				return
			}
		}
	}
}

// take returns the fires read and not yet taken, without waiting.
func (b *broadcaster) take() []store.Delivery {
	var out []store.Delivery
	for {
		select {
		case ds := <-b.out:
			out = append(out, ds...)
		default:
			return out
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
