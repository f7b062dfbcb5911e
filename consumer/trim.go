package consumer

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// trimmer keeps the namespace's streams bounded: every interval it trims
// the acked entries older than retention from the fire streams, removes
// from the worker group the consumers of workers idle for pruneIdle that
// hold nothing, and, with eventsMaxAge, trims the events stream by age. It
// owns no state.
type trimmer struct {
	st           workerStore
	log          zerolog.Logger
	every        time.Duration // Config.TrimInterval
	fires        []string      // fire and broadcast streams, trimmed
	groups       []string      // fire streams, whose stopped consumers are removed
	retention    time.Duration // Config.FireRetention
	pruneIdle    time.Duration // a consumer idle this long holding nothing is removed (1h in production)
	eventsMaxAge time.Duration // Config.EventsMaxAge; 0: none
	retainEvery  time.Duration // Config.RetainInterval
	eventsMaxLen int64         // Config.EventsMaxLen: stored as the namespace's when it has none
}

// retain stores the events bound as the namespace's if it has none, then
// trims the events stream to the namespace's settings every retainEvery
// until ctx ends (see store.Settings). Errors are logged.
func (tr *trimmer) retain(ctx context.Context) {
	if n := tr.eventsMaxLen; n > 0 {
		if stored, err := tr.st.InitEventsMaxLen(ctx, n); err != nil && ctx.Err() == nil {
			tr.log.Warn().Err(err).Msg("store the events bound")
		} else if err == nil && stored != n {
			tr.log.Warn().Int64("stored", stored).Int64("given", n).Msg("the namespace stores another events max len (taskino settings), which this worker keeps to")
		}
	}
	t := time.NewTicker(tr.retainEvery)
	defer t.Stop()
	for {
		if _, err := tr.st.RetainEvents(ctx); err != nil && ctx.Err() == nil {
			tr.log.Warn().Err(err).Msg("trim the events stream")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// run trims every interval until ctx ends.
func (tr *trimmer) run(ctx context.Context) {
	t := time.NewTicker(tr.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tr.pass(ctx)
	}
}

// pass trims once; errors are logged.
func (tr *trimmer) pass(ctx context.Context) {
	for _, s := range tr.fires {
		if _, err := tr.st.TrimFires(ctx, s, tr.retention); err != nil && ctx.Err() == nil {
			tr.log.Warn().Err(err).Str("stream", s).Msg("trim")
		}
	}
	for _, s := range tr.groups {
		if _, err := tr.st.PruneConsumers(ctx, s, tr.pruneIdle); err != nil && ctx.Err() == nil {
			tr.log.Warn().Err(err).Str("stream", s).Msg("remove consumers of stopped workers")
		}
	}
	if tr.eventsMaxAge > 0 {
		if _, err := tr.st.TrimEvents(ctx, tr.eventsMaxAge); err != nil && ctx.Err() == nil {
			tr.log.Warn().Err(err).Msg("trim events by age")
		}
	}
}
