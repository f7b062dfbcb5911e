package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// A tail line shows the date of what is not from the day it is read on,
// and of a slot not on its event's day.
func TestTailLineDates(t *testing.T) {
	today := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)
	id := func(at time.Time) string { return strconv.FormatInt(at.UnixMilli(), 10) + "-0" }
	yearAgo := time.Date(2025, 11, 21, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		e    events.Event
		want []string
	}{
		{"today, slot today", events.Event{ID: id(today), Type: events.TypeFired, Task: "t", Fire: events.FireID("t", today), At: today},
			[]string{"23:00:00.000Z fired", "at=23:00:00.000Z"}},
		{"yesterday's event", events.Event{ID: id(today.Add(-24 * time.Hour)), Type: events.TypeCompleted, Task: "t",
			Fire: events.FireID("t", today.Add(-24*time.Hour)), At: today.Add(-24 * time.Hour), CostMs: 5},
			[]string{"2026-11-20 23:00:00.000Z completed", "at=23:00:00.000Z"}},
		{"a window over a year before its missed event", events.Event{ID: id(today), Type: events.TypeMissed, Task: "t", At: yearAgo,
			Count: 1, Policy: events.MisfireSkip, Reason: "no slot"},
			[]string{"23:00:00.000Z missed", "at=2025-11-21 00:00:00.000Z"}},
		{"a range of missed slots", events.Event{ID: id(today), Type: events.TypeMissed, Task: "t", At: yearAgo, Until: today.Add(-time.Hour),
			Count: 3, Policy: events.MisfireSkip},
			[]string{"at=2025-11-21 00:00:00.000Z", "count=3", "until=22:00:00.000Z"}},
	} {
		var b bytes.Buffer
		p := &printer{w: &b, now: func() time.Time { return today.Add(30 * time.Minute) }}
		p.print(c.e)
		for _, w := range c.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: line %q, want it to hold %q", c.name, b.String(), w)
			}
		}
	}
}

// A fire id or worker name from Redis holding ESC, CR or LF is printed
// quoted: it cannot move the cursor, recolour the terminal or forge a line.
func TestTailLineEscapesControlCharacters(t *testing.T) {
	now := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)
	e := events.Event{ID: strconv.FormatInt(now.UnixMilli(), 10) + "-0", Type: events.TypeCompleted, Task: "t",
		Fire: "t@x\x1b]0;owned\x07", At: now, Worker: "w1\r\n23:00:00.000Z completed fake"}
	var b bytes.Buffer
	p := &printer{w: &b, now: func() time.Time { return now }}
	p.print(e)
	line := b.String()
	if strings.ContainsAny(strings.TrimSuffix(line, "\n"), "\x1b\x07\r\n") {
		t.Errorf("tail line %q holds a control character", line)
	}
	for _, w := range []string{`fire="t@x\x1b]0;owned\a"`, `worker="w1\r\n23:00:00.000Z completed fake"`} {
		if !strings.Contains(line, w) {
			t.Errorf("tail line %q, want it to hold %s", line, w)
		}
	}
}
