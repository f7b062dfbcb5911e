package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/store"
)

// PrefetchRunLimit is the average run time under which a worker reads
// fires ahead of its free runs (see Config.Prefetch).
const PrefetchRunLimit = 10 * time.Millisecond

// reader hands out this worker's share of the single-mode fire streams:
// new fires, read (XREADGROUP) one blocking read at a time by its loop
// (run) at Fetch's request, and idle fires of workers that stopped
// answering, reclaimed (XAUTOCLAIM) by Fetch's goroutine. Each fire is
// held (claims) before Fetch sees it. It owns the read under way, the
// reclaim cursors and pacing, and the recent runs' average that sets how
// far it reads ahead.
type reader struct {
	st         workerStore
	log        zerolog.Logger
	node       string
	streams    []string // fire streams
	block      time.Duration
	visibility time.Duration
	// reclaimEvery is the least time between two reclaim sweeps (a quarter
	// of the visibility timeout in production) unless the last left more.
	reclaimEvery time.Duration
	prefetch     int // Config.Prefetch; 0: none (NoPrefetch)
	metrics      Metrics
	claims       *claims
	health       *store.Health // whether the reclaims keep failing

	want    chan int        // a read of up to n fires to start (one at a time: see reading)
	results chan readResult // a finished read (capacity 1: one at a time)
	runAvg  atomic.Int64    // recent runs' average duration, ns (see readAhead)

	// Fetch's goroutine only:
	reading     bool              // a read was asked for and its result not taken
	cursor      map[string]string // each stream's reclaim cursor
	quietLogged bool              // the quiet period after an outage was logged (see the worker protocol's Heartbeat)
	lastReclaim time.Time
	more        bool // the last sweep left more to take: the next Fetch reclaims again
}

type readResult struct {
	ds  []store.Delivery
	err error
}

func newReader(st workerStore, log zerolog.Logger, cfg Config, streams []string, reclaimEvery time.Duration, claims *claims) *reader {
	r := &reader{st: st, log: log, node: cfg.Node, streams: streams, block: cfg.Block, visibility: cfg.VisibilityTimeout,
		reclaimEvery: reclaimEvery, prefetch: cfg.Prefetch, metrics: cfg.Metrics, claims: claims,
		want: make(chan int, 1), results: make(chan readResult, 1), cursor: map[string]string{},
		health: store.NewHealth("reclaims")}
	// No read-ahead until runs have shown they are short.
	r.runAvg.Store(int64(time.Second))
	return r
}

// run does the reads start asks for until ctx ends. A read under way when
// ctx ends returns within the block time, its fires held: the caller
// waits for run to return before handing back what is held.
func (r *reader) run(ctx context.Context) {
	for {
		var n int
		select {
		case <-ctx.Done():
			return
		case n = <-r.want:
		}
		if ctx.Err() != nil {
			return
		}
		sent := time.Now()
		ds, err := r.st.ReadFires(ctx, r.node, r.streams, n, r.block)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil
		}
		// Held at once, so heartbeats extend them even while no Fetch
		// takes them, and a stop hands them back.
		r.claims.hold(ds, sent)
		r.results <- readResult{ds, err}
	}
}

// start asks for a blocking read of up to n new fires, unless one is
// under way; its result arrives on results, and is given to finished.
func (r *reader) start(n int) {
	if r.reading {
		return
	}
	r.reading = true
	r.want <- n
}

// finished takes note of a read's result: another may start. A read that
// found the stream or group gone (a flush) sets them up again.
func (r *reader) finished(ctx context.Context, res readResult) {
	r.reading = false
	if errors.Is(res.err, store.ErrNoGroup) {
		for _, s := range r.streams {
			_ = r.st.EnsureGroup(ctx, s)
		}
	}
}

// rewind makes the next Fetch sweep every stream from its start at once:
// fires were handed back or routed, maybe behind the cursors.
func (r *reader) rewind() {
	r.more = true
	clear(r.cursor)
}

// reclaimDue says whether Fetch is to reclaim now: the last sweep left
// more, or was reclaimEvery ago.
func (r *reader) reclaimDue() bool {
	return r.more || time.Since(r.lastReclaim) >= r.reclaimEvery
}

// sweep reclaims up to max idle fires over the streams. On an error it
// returns those taken before it.
func (r *reader) sweep(ctx context.Context, max int) ([]store.Delivery, error) {
	r.lastReclaim = time.Now()
	r.more = false
	var out []store.Delivery
	for _, s := range r.streams {
		if max <= 0 {
			r.more = true
			break
		}
		ds, more, err := r.reclaim(ctx, s, max)
		if err != nil {
			if ctx.Err() == nil {
				r.health.Failed(err)
			}
			return out, err
		}
		r.health.Succeeded()
		out = append(out, ds...)
		max -= len(ds)
		r.more = r.more || more
	}
	return out, nil
}

// reclaim takes up to max idle fires of stream from workers that stopped
// answering (or handed them back), following the stream's cursor. More
// says the sweep of the stream's pending fires is not over, or took some:
// the next Fetch goes on at once instead of after a quarter of the
// visibility timeout, so a stopped worker's hundreds of fires read ahead
// are not taken a few at a time.
func (r *reader) reclaim(ctx context.Context, stream string, max int) (ds []store.Delivery, more bool, err error) {
	cur := r.cursor[stream]
	if cur == "" {
		cur = "0-0"
	}
	// After Redis or the network was out for every worker, the holders of
	// idle fires get a visibility timeout to extend their claims first.
	sent := time.Now()
	ds, next, wait, err := r.st.Reclaim(ctx, r.node, stream, r.visibility, cur, max)
	r.cursor[stream] = next
	if err != nil {
		return nil, false, err
	}
	if wait > 0 {
		if !r.quietLogged {
			r.quietLogged = true
			r.log.Info().Dur("wait", wait).Msg("no worker reached Redis for a while (a new namespace, or an outage): reclaims of idle fires wait, so live workers extend their claims first")
		}
		// Only fires handed back were taken: they were given up.
		more = len(ds) > 0
	} else {
		more = len(ds) > 0 || (next != "0-0" && next != "")
		r.quietLogged = false
	}
	// One this worker holds already went idle (its heartbeats failed): it
	// is running or queued here, and must not run twice.
	fresh := r.claims.notHeld(ds)
	r.logReclaimed(stream, fresh)
	r.claims.hold(fresh, sent)
	return fresh, more, nil
}

// logReclaimed says what a reclaim took: fires routed here, fires a
// stopping worker handed back (named), and fires of workers that stopped answering (counted in
// the metrics as reclaimed).
func (r *reader) logReclaimed(stream string, ds []store.Delivery) {
	dead, routed := 0, 0
	handedBack := map[string]int{}
	for _, d := range ds {
		switch {
		case d.Routed:
			routed++
		case d.HandedBackBy != "":
			handedBack[d.HandedBackBy]++
		default:
			dead++
		}
	}
	if routed > 0 {
		r.log.Info().Int("fires", routed).Str("stream", stream).Msg("took fires routed here by a worker that has no handler for them")
	}
	for node, n := range handedBack {
		r.log.Info().Int("fires", n).Str("stream", stream).Str("from", node).Msg("took fires handed back by a stopping worker")
	}
	if dead > 0 {
		r.log.Info().Int("fires", dead).Str("stream", stream).Msg("reclaimed fires of a worker that stopped answering")
		if r.metrics != nil {
			r.metrics.Reclaimed(stream, dead)
		}
	}
}

// readAhead is how many fires to read beyond the free runs:
// Config.Prefetch while the recent runs were short, else none.
func (r *reader) readAhead() int {
	if time.Duration(r.runAvg.Load()) >= PrefetchRunLimit {
		return 0
	}
	return r.prefetch
}

// noteRun folds a run's duration into the recent average (weight 1/8).
// Runs end concurrently; an update lost to a race only delays the average.
func (r *reader) noteRun(d time.Duration) {
	avg := r.runAvg.Load()
	r.runAvg.Store(avg + (int64(max(d, 0))-avg)/8)
}
