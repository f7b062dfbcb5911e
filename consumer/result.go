package consumer

import "time"

// Result is how a run of a fire ended and what becomes of the fire, as the
// dispatcher decided it. Finish records it as it is: whether a fire is
// retried or dead-lettered is decided in one place, the dispatcher.
type Result struct {
	// Next is what becomes of the fire.
	Next Next
	// Started and Finished bound the run (host clock); zero when it never
	// started.
	Started, Finished time.Time
	// Err is the run's failure, nil on success.
	Err error
	// Output is the tail of what the run printed, for its completed or
	// failed event; empty for none.
	Output string
	// RetryIn is the wait before the next attempt, when Next is Retry.
	RetryIn time.Duration
	// Reason says why, in the retried, dead or cancelled event, when Next
	// is Retry, Dead, Abandon, Replaced, or HandBack of a run that started.
	Reason string
}

// Next is what becomes of a fire after its run.
type Next uint8

const (
	// Record records the run (completed, or failed with nothing more to
	// do: a broadcast fire's failure) and ends the fire.
	Record Next = iota
	// Retry records the failed run and appends the fire again, one attempt
	// higher, due after RetryIn.
	Retry
	// Dead records the failed run, if it ran, and dead-letters the fire.
	Dead
	// HandBack gives the fire up unfinished (a stopping worker): another
	// worker takes it at once. A run that started and was cut (Started
	// set) is recorded first as a cancelled event, with Reason, Err, the
	// cost so far and Output.
	HandBack
	// Abandon gives up a fire whose run was cancelled but did not end (a
	// handler that ignores its context): it cannot be handed back while
	// the run may still be alive, so it is recorded as a cancelled event,
	// no longer extended, and another worker reclaims it after the
	// visibility timeout, as it would a stopped worker's.
	Abandon
	// Replaced records a run cut because a newer fire of its task began
	// under the overlap policy cancel-previous: a cancelled event with
	// Reason, Err, the cost and Output, and the fire ends (acked, not run
	// again).
	Replaced
)
