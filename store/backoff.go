package store

import (
	"fmt"
	"sync"
	"time"
)

// Backoff paces retries of a failing Redis call: Min after the first
// failure, doubling up to Max, back to Min after Reset. Every long-running
// component uses one, so an unreachable Redis meets a call a second or so
// per loop, not a flood, and a Redis that is back is noticed within Max.
// Report keeps the logs of a long outage to a few lines.
type Backoff struct {
	Min, Max time.Duration
	// ReportEvery is how often Report says yes while failures go on.
	ReportEvery time.Duration
	cur         time.Duration
	failures    int
	reported    time.Time
}

// NewBackoff returns the usual pacing: 50ms doubling to 1s; failures
// reported at the first and then every 10s.
func NewBackoff() *Backoff {
	return &Backoff{Min: 50 * time.Millisecond, Max: time.Second, ReportEvery: 10 * time.Second}
}

// Next counts a failure and returns the wait before the next try.
func (b *Backoff) Next() time.Duration {
	b.failures++
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(2*b.cur, b.Max)
	}
	return b.cur
}

// Report says whether the failure Next just counted should be logged: the
// first of a run of failures, then one every ReportEvery.
func (b *Backoff) Report() bool {
	if b.failures <= 1 || time.Since(b.reported) >= b.ReportEvery {
		b.reported = time.Now()
		return true
	}
	return false
}

// Failures is how many failures Next counted since the last Reset.
func (b *Backoff) Failures() int { return b.failures }

// Reset starts the pacing over, after a success.
func (b *Backoff) Reset() { b.cur, b.failures = 0, 0 }

// HealthThreshold is how many failures in a row make a Health report an
// error.
const HealthThreshold = 3

// Health says whether one loop's Redis calls keep failing (a planner's
// rounds, a worker's heartbeats or reclaims): Err is an error naming the
// loop and its last failure from the HealthThreshold-th failure in a row
// until the next success, nil otherwise. It counts calls, not time, so a
// loop that retries fast reports sooner. Safe for concurrent use; the
// zero value is not usable (NewHealth).
type Health struct {
	what     string
	mu       sync.Mutex
	failures int
	last     error
}

// NewHealth returns a Health of the loop named what ("planning rounds").
func NewHealth(what string) *Health { return &Health{what: what} }

// Failed counts a failure of the loop's call.
func (h *Health) Failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	h.last = err
}

// Succeeded counts a success: the loop is healthy again.
func (h *Health) Succeeded() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures, h.last = 0, nil
}

// Err is nil while the loop is healthy, else an error naming the loop, the
// failures in a row and the last one.
func (h *Health) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures < HealthThreshold {
		return nil
	}
	return fmt.Errorf("%s failing (%d in a row): %w", h.what, h.failures, h.last)
}
