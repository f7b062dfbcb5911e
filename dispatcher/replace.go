package dispatcher

import (
	"fmt"

	"github.com/taskino/taskino/events"
)

// replacer is a Source that learns when a newer fire of a task began under
// the overlap policy cancel-previous, as a *consumer.Consumer does: it
// calls the function given (before its Run) with the old fire's id and
// the new one's, and the dispatcher cancels the old one's run if it holds
// it.
type replacer interface {
	OnReplaced(f func(fire, by string))
}

// ReplacedError is the cause of the context of a run cancelled because a
// newer fire of its task began under overlap cancel-previous.
type ReplacedError struct {
	By string // the newer fire's id
}

func (e *ReplacedError) Error() string {
	return fmt.Sprintf("%sfire %s (overlap: cancel-previous)", events.ReplacedPrefix, e.By)
}

// replace cancels the run of fire, if this dispatcher runs it, because
// the fire by replaced it (overlap cancel-previous): the run ends with a
// *ReplacedError cause and is recorded cancelled, not run again.
func (dp *Dispatcher) replace(fire, by string) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	for j := range dp.inflight {
		if j.d.Fire.ID == fire && j.cancel != nil {
			dp.log.Info().Str("fire", fire).Str("by", by).Msg("run cancelled: a newer fire of the task began (overlap: cancel-previous)")
			j.cancel(&ReplacedError{By: by})
			return
		}
	}
	// Not running here (yet): a fire this worker read ahead and has not
	// started is dropped when it would start.
	if dp.replaced == nil || len(dp.replaced) >= maxReplaced {
		dp.replaced = map[string]string{}
	}
	dp.replaced[fire] = by
}

// maxReplaced bounds Dispatcher.replaced. A consumer passes notes only of
// fires it holds; another Source may pass them all.
const maxReplaced = 10_000
