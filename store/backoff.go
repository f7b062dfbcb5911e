package store

import "time"

// Backoff paces retries of a failing Redis call: Min after the first
// failure, doubling up to Max, back to Min after Reset. Every long-running
// component uses one, so an unreachable Redis meets a few calls a second,
// not a flood.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// NewBackoff returns the usual pacing: 50ms doubling to 5s.
func NewBackoff() *Backoff { return &Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second} }

// Next is the wait before the next try.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(2*b.cur, b.Max)
	}
	return b.cur
}

// Reset starts the pacing over, after a success.
func (b *Backoff) Reset() { b.cur = 0 }
