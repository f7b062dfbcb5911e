package consumer

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/store"
)

// retryMover moves due retries from the namespace's retry set back to
// their streams (any worker's retries: the set is shared): at the earliest
// due retry, at most poll apart, and at once when this worker scheduled
// one (poke). It owns nothing but its wake-up.
type retryMover struct {
	st   workerStore
	log  zerolog.Logger
	poll time.Duration // the longest wait between two moves (1s in production)
	sig  chan struct{} // capacity 1: a retry was scheduled here
}

// retryBatch is the most retries moved per round trip.
const retryBatch = 500

func newRetryMover(st workerStore, log zerolog.Logger, poll time.Duration) *retryMover {
	return &retryMover{st: st, log: log, poll: poll, sig: make(chan struct{}, 1)}
}

// poke says a retry was scheduled: run moves retries at once.
func (m *retryMover) poke() {
	select {
	case m.sig <- struct{}{}:
	default:
	}
}

// run moves due retries until ctx ends.
func (m *retryMover) run(ctx context.Context) {
	wait := time.Duration(0)
	b := store.NewBackoff() // only for its reports
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.sig:
		case <-time.After(wait):
		}
		n, next, err := m.st.PromoteRetries(ctx, retryBatch)
		if err == nil {
			b.Reset()
		}
		switch {
		case err != nil:
			if b.Next(); ctx.Err() == nil && b.Report() {
				m.log.Warn().Err(err).Int("failures", b.Failures()).Msg("move due retries")
			}
			wait = m.poll
		case n == retryBatch:
			wait = 0
		case next.IsZero():
			wait = m.poll
		default:
			now, terr := m.st.Time(ctx)
			wait = m.poll
			if terr == nil {
				wait = min(max(next.Sub(now), time.Millisecond), m.poll)
			}
		}
	}
}
