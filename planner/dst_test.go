package planner

import (
	"fmt"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// repeatedWallTime reports whether t's wall-clock time already occurred
// earlier, in the stretch that a fall-back change repeats.
func repeatedWallTime(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, before := start.Add(-time.Nanosecond).Zone()
	_, now := t.Zone()
	return before > now && t.Sub(start) < time.Duration(before-now)*time.Second
}

// referenceSlots is the DST rules applied by brute force: every minute of
// real time from `from` to `to`, in the zone; a wall time that matches fires
// (a repeated one only when every hour is matched); a spring-forward gap
// with a matching wall time fires when it ends.
func referenceSlots(t *testing.T, expr string, loc *time.Location, from, to time.Time, everyHour bool) []time.Time {
	naive, err := cronParser.Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	matches := func(wall time.Time) bool { return naive.Next(wall.Add(-time.Second)).Equal(wall) }
	seen := map[int64]bool{}
	var out []time.Time
	add := func(x time.Time) {
		if !seen[x.UnixMilli()] {
			seen[x.UnixMilli()] = true
			out = append(out, x.UTC())
		}
	}
	for x := from; !x.After(to); x = x.Add(time.Minute) {
		prev := x.Add(-time.Minute)
		_, o1 := prev.In(loc).Zone()
		_, o2 := x.In(loc).Zone()
		if o2 > o1 {
			_, end := prev.In(loc).ZoneBounds()
			for w := end.UTC().Add(time.Duration(o1) * time.Second); w.Before(end.UTC().Add(time.Duration(o2) * time.Second)); w = w.Add(time.Minute) {
				if matches(w) {
					add(end)
					break
				}
			}
		}
		lt := x.In(loc)
		wall := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), lt.Second(), 0, time.UTC)
		if matches(wall) && (everyHour || !repeatedWallTime(lt)) {
			add(x)
		}
	}
	return out
}

// TestCronDSTAgainstReference compares Next with the brute-force rules
// around every transition of a year in zones with one-hour, half-hour,
// midnight and year-round shifts.
func TestCronDSTAgainstReference(t *testing.T) {
	t.Parallel()
	zones := []string{"America/New_York", "Europe/Paris", "Australia/Lord_Howe", "Asia/Gaza", "America/Santiago", "Asia/Beirut", "Antarctica/Troll", "America/Asuncion"}
	exprs := []string{"0 30 2 * * *", "0 0 * * * *", "0 */15 * * * *", "0 0 0 * * *", "0 30 1 * * *", "0 0 1 * * *", "0 */20 1-2 * * *", "0 15 0 * * *", "0 45 23 * * *", "0 0 3 * * *"}
	for _, tz := range zones {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		for _, year := range []int{2011, 2024} {
			var transitions []time.Time
			for p := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).In(loc); ; {
				_, end := p.ZoneBounds()
				if end.IsZero() || end.Year() > year {
					break
				}
				transitions = append(transitions, end)
				p = end
			}
			for _, tr := range transitions {
				from, to := tr.Add(-30*time.Hour).Truncate(time.Minute), tr.Add(30*time.Hour)
				for _, expr := range exprs {
					sched, err := Compile(events.Cron(expr).In(tz))
					if err != nil {
						t.Fatal(err)
					}
					want := referenceSlots(t, expr, loc, from, to, sched.(cronSchedule).everyHour)
					var got []time.Time
					for cur := from.Add(-time.Millisecond); ; {
						n, ok := sched.Next(cur)
						if !ok || n.After(to) {
							break
						}
						got = append(got, n)
						cur = n
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%s %q around %s:\n got  %v\n want %v", tz, expr, tr.In(loc), got, want)
					}
				}
			}
		}
	}
}
