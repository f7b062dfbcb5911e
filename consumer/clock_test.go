package consumer

import (
	"testing"
	"time"
)

// TestClockKeepsFastMeasures: a measure with a slow round trip does not
// replace a recent fast one (its error is up to the round trip); a
// fast one does, and a slow one does once the last is a minute old.
func TestClockKeepsFastMeasures(t *testing.T) {
	var c redisClock
	if !c.now().IsZero() || c.until(time.Now().Add(time.Hour)) != 0 {
		t.Fatal("the clock tells a time before its first measure")
	}
	base := time.Now()
	redis := time.UnixMilli(1_700_000_000_000).UTC()
	c.set(base, base.Add(2*time.Millisecond), redis)
	// The server's time is taken as of the reply: the clock told is then
	// never ahead of the server's.
	if c.redisAt != redis || c.localAt != base.Add(2*time.Millisecond) {
		t.Fatalf("first measure not taken: %s at %s", c.redisAt, c.localAt)
	}
	// A slow measure (100ms round trip) is refused...
	c.set(base.Add(time.Second), base.Add(time.Second+100*time.Millisecond), redis.Add(time.Hour))
	if c.redisAt != redis {
		t.Errorf("a slow measure replaced a fast one: %s", c.redisAt)
	}
	// ...a fast one is taken...
	c.set(base.Add(2*time.Second), base.Add(2*time.Second+time.Millisecond), redis.Add(2*time.Second))
	if c.redisAt != redis.Add(2*time.Second) {
		t.Errorf("a fast measure was refused: %s", c.redisAt)
	}
	// ...and a slow one once the last is over a minute old.
	late := base.Add(2 * time.Minute)
	c.set(late, late.Add(100*time.Millisecond), redis.Add(2*time.Minute))
	if c.redisAt != redis.Add(2*time.Minute) || c.rtt != 100*time.Millisecond {
		t.Errorf("a slow measure did not replace one two minutes old: %s, rtt %s", c.redisAt, c.rtt)
	}
}

// TestClockTellsServerTime: now runs on from the measure by the local
// monotonic clock, so until is about the distance in the server's time,
// whatever this host's wall clock says.
func TestClockTellsServerTime(t *testing.T) {
	var c redisClock
	before := time.Now()
	server := before.Add(-24 * time.Hour) // the server's clock is a day behind
	c.set(before, before, server)
	if now := c.now(); now.Before(server) || !now.Before(server.Add(time.Hour)) {
		t.Errorf("now = %s, want the server's time %s plus the moments since", now, server)
	}
	if d := c.until(server.Add(time.Hour)); d <= 0 || d > time.Hour {
		t.Errorf("until an hour after the measure: %s, want under an hour and positive", d)
	}
	if d := c.until(server.Add(-time.Second)); d >= 0 {
		t.Errorf("until a time before the measure: %s, want negative", d)
	}
}
