package planner

import (
	"archive/zip"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
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
	return referenceSlotsBy(matches, loc, from, to, everyHour, time.Minute)
}

// refRules are the DST policies a reference applies.
type refRules struct {
	twice, gapSkip bool
}

// referenceSlotsBy is referenceSlots for a matcher of wall-clock times
// (read on UTC), walking real time in steps of step (every slot must fall
// on one; a gap's wall times are walked minute by minute).
func referenceSlotsBy(matches func(wall time.Time) bool, loc *time.Location, from, to time.Time, everyHour bool, step time.Duration) []time.Time {
	return referenceSlotsRules(matches, loc, from, to, refRules{twice: everyHour}, step)
}

// referenceSlotsRules is referenceSlotsBy with the DST policies spelt out:
// a repeated wall time fires twice or once, a gap's wall times once at its
// end or not at all.
func referenceSlotsRules(matches func(wall time.Time) bool, loc *time.Location, from, to time.Time, rules refRules, step time.Duration) []time.Time {
	seen := map[int64]bool{}
	var out []time.Time
	add := func(x time.Time) {
		if !seen[x.UnixMilli()] {
			seen[x.UnixMilli()] = true
			out = append(out, x.UTC())
		}
	}
	for x := from; !x.After(to); x = x.Add(step) {
		prev := x.Add(-step)
		_, o1 := prev.In(loc).Zone()
		_, o2 := x.In(loc).Zone()
		if o2 > o1 && !rules.gapSkip {
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
		if matches(wall) && (rules.twice || !repeatedWallTime(lt)) {
			add(x)
		}
	}
	return out
}

// goZone loads a zone from the data shipped with Go (what time/tzdata
// embeds): it lists transitions only to about 2007 and covers later years
// by rule, which is where Go's ZoneBounds goes wrong at the end of leap
// years.
func goZone(t *testing.T, name string) *time.Location {
	t.Helper()
	r, err := zip.OpenReader(filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Skipf("Go's zoneinfo.zip is not available: %v", err)
	}
	defer r.Close()
	f, err := r.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocationFromTZData(name, data)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// compileIn compiles a cron expression and reads it in loc.
func compileIn(t *testing.T, expr string, loc *time.Location) cronSchedule {
	t.Helper()
	sched, err := Compile(events.Cron(expr))
	if err != nil {
		t.Fatal(err)
	}
	c := sched.(cronSchedule)
	c.loc = loc
	return c
}

// A daily and an hourly task in a DST zone go on across the end of a leap
// year, with the zone data that covers later years by rule (Go's ZoneBounds
// returns an end before the instant asked about there).
func TestCronAcrossLeapYearEndWithRuleBasedZoneData(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"America/New_York", "Europe/Paris", "Australia/Sydney"} {
		loc := goZone(t, name)
		for _, year := range []int{2028, 2040} {
			for _, c := range []struct {
				expr string
				step time.Duration
			}{{"0 0 20 * * *", 24 * time.Hour}, {"0 0 * * * *", time.Hour}} {
				sched := compileIn(t, c.expr, loc)
				from := time.Date(year, 12, 29, 0, 0, 0, 0, loc)
				cur := from
				for cur.Before(from.AddDate(0, 0, 4)) {
					n, ok := sched.Next(cur)
					if !ok {
						t.Fatalf("%s %q: no slot after %s", name, c.expr, cur.In(loc))
					}
					if cur != from && n.Sub(cur) != c.step {
						t.Fatalf("%s %q: %s then %s, want %s apart", name, c.expr, cur.In(loc), n.In(loc), c.step)
					}
					cur = n
				}
			}
		}
	}
}

// TestCronDSTAgainstReference compares Next with the brute-force rules
// around every transition of a year in zones with one-hour, half-hour,
// midnight and year-round shifts, with the host's zone data and with Go's.
func TestCronDSTAgainstReference(t *testing.T) {
	t.Parallel()
	zones := []string{"America/New_York", "Europe/Paris", "Australia/Lord_Howe", "Asia/Gaza", "America/Santiago", "Asia/Beirut", "Antarctica/Troll", "America/Asuncion"}
	exprs := []string{"0 30 2 * * *", "0 0 * * * *", "0 */15 * * * *", "0 0 0 * * *", "0 30 1 * * *", "0 0 1 * * *", "0 */20 1-2 * * *", "0 15 0 * * *", "0 45 23 * * *", "0 0 3 * * *"}
	var locs []*time.Location
	for _, tz := range zones {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	for _, tz := range []string{"America/New_York", "Australia/Lord_Howe", "America/Santiago"} {
		locs = append(locs, goZone(t, tz))
	}
	for _, loc := range locs {
		tz := loc.String()
		for _, year := range []int{2011, 2024, 2028} {
			var transitions []time.Time
			for p := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).In(loc); ; {
				_, end := zoneBounds(p)
				if end.IsZero() || end.Year() > year {
					break
				}
				if _, before := end.Add(-time.Second).Zone(); func() bool { _, after := end.Zone(); return after != before }() {
					transitions = append(transitions, end)
				}
				p = end.In(loc)
			}
			for _, tr := range transitions {
				from, to := tr.Add(-30*time.Hour).Truncate(time.Minute), tr.Add(30*time.Hour)
				for _, expr := range exprs {
					sched := compileIn(t, expr, loc)
					want := referenceSlots(t, expr, loc, from, to, sched.everyHour)
					got := slotsIn(sched, from, to)
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%s %q around %s:\n got  %v\n want %v", tz, expr, tr.In(loc), got, want)
					}
				}
			}
		}
	}
}

// slotsIn lists sched's slots from from to to, both included.
func slotsIn(sched Schedule, from, to time.Time) []time.Time {
	var out []time.Time
	for cur := from.Add(-time.Millisecond); ; {
		n, ok := sched.Next(cur)
		if !ok || n.After(to) {
			return out
		}
		out = append(out, n)
		cur = n
	}
}
