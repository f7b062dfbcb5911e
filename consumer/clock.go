package consumer

import (
	"sync"
	"time"
)

// redisClock tells the Redis server's time from this process's monotonic
// clock: early fires are held until they are due by the server's clock
// (planners stamp fires with it), whatever this host's wall clock says. It
// owns the last good measure; set-up and heartbeats feed it, admission and
// Fetch ask it. Safe for concurrent use.
type redisClock struct {
	mu sync.Mutex
	// The Redis server's time read by a round trip, and our monotonic
	// clock when its reply came: when an early fire is due.
	redisAt, localAt time.Time
	rtt              time.Duration // that measure's round trip
}

// set records the Redis server's time now, read by a call sent at
// before whose reply came at after. The server read its clock somewhere
// in that round trip, so now is taken to be its time at after: the clock
// told is then behind the server's by up to the round trip, never ahead,
// and an early fire is never released before its slot (a midpoint would
// release one up to half a round trip early). A slow measure (Redis busy)
// does not replace a recent fast one.
func (c *redisClock) set(before, after, now time.Time) {
	rtt := after.Sub(before)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.redisAt.IsZero() || rtt <= 2*c.rtt+time.Millisecond || after.Sub(c.localAt) > time.Minute {
		c.redisAt, c.localAt, c.rtt = now, after, rtt
	}
}

// now is the Redis server's time now, as measured by set (zero before the
// first measure).
func (c *redisClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.redisAt.IsZero() {
		return time.Time{}
	}
	return c.redisAt.Add(time.Since(c.localAt))
}

// until is how long before t, by the Redis server's clock (0 before the
// first measure).
func (c *redisClock) until(t time.Time) time.Duration {
	if now := c.now(); !now.IsZero() {
		return t.Sub(now)
	}
	return 0
}
