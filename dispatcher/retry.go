package dispatcher

import (
	"errors"
	"fmt"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// SkipRetry, wrapped in a handler's error (fmt.Errorf("...: %w",
// dispatcher.SkipRetry)), says the failure is permanent: the fire is
// dead-lettered at once, whatever attempts are left. The dead letter's
// reason names SkipRetry and the attempt; its error is the handler's.
// Use it for input that no retry can fix.
var SkipRetry = errors.New("not retried (SkipRetry)")

// RetryAfterError is a handler's failure that asks for the next attempt
// after Delay instead of after Config.RetryDelay's wait. Make one with
// RetryAfter.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (asked to retry in %s)", e.Err, e.Delay)
}

// Unwrap returns the failure.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns err as a failure whose next attempt comes after d
// (at least 1ms), when the task has attempts left: a rate-limited API's
// Retry-After, say. With none left, the fire is dead-lettered as usual.
// A nil err gets a generic text.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("the handler asked to be retried")
	}
	return &RetryAfterError{Delay: d, Err: err}
}

// retry decides what becomes of a single-mode fire whose run failed with
// err: tried again after retryIn, or dead-lettered, with the reason for
// the retried or dead event. This is the one place that decides; the
// consumer records the decision as it is.
func (dp *Dispatcher) retry(dl *store.Delivery, err error) (next consumer.Next, retryIn time.Duration, reason string) {
	attempt, attempts := dl.Fire.Attempt, dl.Spec.Attempts
	if errors.Is(err, SkipRetry) {
		return consumer.Dead, 0, fmt.Sprintf("failed at attempt %d of %d; the handler said not to retry (SkipRetry)", attempt, attempts)
	}
	if attempt >= attempts {
		return consumer.Dead, 0, fmt.Sprintf("failed %d of %d attempts", attempt, attempts)
	}
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		retryIn = ra.Delay
	} else {
		retryIn = dp.retryDelay(attempt, err, dl.Fire)
	}
	retryIn = max(retryIn, time.Millisecond)
	return consumer.Retry, retryIn, fmt.Sprintf("attempt %d of %d failed; next in %s", attempt, attempts, retryIn.Round(time.Millisecond))
}

// retryDelay asks Config.RetryDelay, whose panic (user code) would
// otherwise end the worker: it is logged, and DefaultRetryDelay answers.
func (dp *Dispatcher) retryDelay(attempt int, err error, f events.Fire) (d time.Duration) {
	defer func() {
		if v := recover(); v != nil {
			dp.log.Error().Str("fire", f.ID).Interface("panic", v).Msg("RetryDelay panicked; the default delay is used")
			d = DefaultRetryDelay(attempt, err, f)
		}
	}()
	return dp.cfg.RetryDelay(attempt, err, f)
}
