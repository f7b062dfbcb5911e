package planner

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

// Independent readings of the day rules, by the calendar.
func lastOfMonth(w time.Time) int {
	return time.Date(w.Year(), w.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func isWeekday(y int, m time.Month, d int) bool {
	wd := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

// nearestTo is the weekday nearest day n in w's month: the closest day
// Monday to Friday, the earlier one on a tie, never outside the month.
func nearestTo(w time.Time, n int) int {
	last := lastOfMonth(w)
	if n > last {
		return -1
	}
	best := -1
	for d := 1; d <= last; d++ {
		if !isWeekday(w.Year(), w.Month(), d) {
			continue
		}
		if best < 0 || abs(d-n) < abs(best-n) {
			best = d
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func at(w time.Time, h, m int) bool { return w.Hour() == h && w.Minute() == m && w.Second() == 0 }

// dayRuleCases are expressions with the day syntax robfig/cron lacks, each
// with its meaning written by the calendar.
var dayRuleCases = []struct {
	expr  string
	match func(w time.Time) bool
}{
	{"0 0 * * 7", func(w time.Time) bool { return w.Weekday() == time.Sunday && at(w, 0, 0) }},
	{"30 2 * * 1-7", func(w time.Time) bool { return at(w, 2, 30) }},
	{"30 2 * * 5-7", func(w time.Time) bool {
		return (w.Weekday() == time.Friday || w.Weekday() == time.Saturday || w.Weekday() == time.Sunday) && at(w, 2, 30)
	}},
	{"0 3 L * *", func(w time.Time) bool { return w.Day() == lastOfMonth(w) && at(w, 3, 0) }},
	{"30 1 L-2 * *", func(w time.Time) bool { return w.Day() == lastOfMonth(w)-2 && at(w, 1, 30) }},
	{"0 9 15W * *", func(w time.Time) bool { return w.Day() == nearestTo(w, 15) && at(w, 9, 0) }},
	{"0 0 1W * *", func(w time.Time) bool { return w.Day() == nearestTo(w, 1) && at(w, 0, 0) }},
	{"0 8 31W * *", func(w time.Time) bool { return w.Day() == nearestTo(w, 31) && at(w, 8, 0) }},
	{"0 18 LW * *", func(w time.Time) bool {
		last := lastOfMonth(w)
		for d := last; d > 0; d-- {
			if isWeekday(w.Year(), w.Month(), d) {
				return w.Day() == d && at(w, 18, 0)
			}
		}
		return false
	}},
	{"30 2 * * 0L", func(w time.Time) bool {
		return w.Weekday() == time.Sunday && w.Day()+7 > lastOfMonth(w) && at(w, 2, 30)
	}},
	{"0 2 * * 0#2", func(w time.Time) bool {
		return w.Weekday() == time.Sunday && w.Day() > 7 && w.Day() <= 14 && at(w, 2, 0)
	}},
	{"0 1 * * 0#1", func(w time.Time) bool { return w.Weekday() == time.Sunday && w.Day() <= 7 && at(w, 1, 0) }},
	{"30 1 * * SUN#1", func(w time.Time) bool { return w.Weekday() == time.Sunday && w.Day() <= 7 && at(w, 1, 30) }},
	{"0,30 2 * * 7#1", func(w time.Time) bool {
		return w.Weekday() == time.Sunday && w.Day() <= 7 && (at(w, 2, 0) || at(w, 2, 30))
	}},
	{"0 0 * * 0#2", func(w time.Time) bool {
		return w.Weekday() == time.Sunday && w.Day() > 7 && w.Day() <= 14 && at(w, 0, 0)
	}},
	{"0 12 * * 5#5", func(w time.Time) bool { return w.Weekday() == time.Friday && w.Day() > 28 && at(w, 12, 0) }},
	// Both day fields restricted: either matches (cron's OR rule).
	{"0 12 L * 5L", func(w time.Time) bool {
		last := lastOfMonth(w)
		return (w.Day() == last || (w.Weekday() == time.Friday && w.Day()+7 > last)) && at(w, 12, 0)
	}},
	{"0 12 13 * 5", func(w time.Time) bool { return (w.Day() == 13 || w.Weekday() == time.Friday) && at(w, 12, 0) }},
	{"0 12 */10 * MON", func(w time.Time) bool {
		return (w.Day()%10 == 1 || w.Weekday() == time.Monday) && at(w, 12, 0)
	}},
	// One day field * or ?: both must match.
	{"0 12 ? * 1#1", func(w time.Time) bool { return w.Weekday() == time.Monday && w.Day() <= 7 && at(w, 12, 0) }},
	{"0 12 L * *", func(w time.Time) bool { return w.Day() == lastOfMonth(w) && at(w, 12, 0) }},
	{"0 6 1-7 * 1", func(w time.Time) bool { return (w.Day() <= 7 || w.Weekday() == time.Monday) && at(w, 6, 0) }},
}

// Every new day rule, against a brute-force reading of the calendar:
// every half hour of real time from 2026 to 2028 walked in New York,
// Berlin, Lord Howe (half-hour shifts) and Havana (midnight shifts), a
// gap's wall times firing once when it ends and a repeated wall time once.
func TestCronDayRulesAgainstBruteForce(t *testing.T) {
	t.Parallel()
	for _, tz := range []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Havana"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, loc), time.Date(2029, 1, 1, 0, 0, 0, 0, loc)
		for _, c := range dayRuleCases {
			sched, err := Compile(events.Cron(c.expr).In(tz))
			if err != nil {
				t.Fatalf("%q: %v", c.expr, err)
			}
			want := referenceSlotsBy(c.match, loc, from, to, false, 30*time.Minute)
			got := slotsIn(sched, from, to)
			if len(want) < 3 {
				t.Fatalf("%s %q: the reference has %d slots; the case tests nothing", tz, c.expr, len(want))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %q: %d slots, want %d; first difference: %s", tz, c.expr, len(got), len(want), firstDiff(got, want, loc))
			}
		}
	}
}

func firstDiff(got, want []time.Time, loc *time.Location) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i].In(loc).Format(time.RFC3339)
		}
		if i < len(want) {
			w = want[i].In(loc).Format(time.RFC3339)
		}
		if g != w {
			return fmt.Sprintf("slot %d: got %q, want %q", i, g, w)
		}
	}
	return "none"
}

// 7 is Sunday, alone and in ranges, as 0 is; a step's implicit end is
// Saturday.
func TestSundayIsSevenToo(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]string{{"0 0 * * 7", "0 0 * * 0"}, {"0 0 * * 5-7", "0 0 * * 0,5,6"}, {"0 0 * * 1-7", "0 0 * * *"},
		{"0 0 * * 7L", "0 0 * * 0L"}, {"0 0 * * 7#2", "0 0 * * SUN#2"}, {"0 0 * * */7", "0 0 * * 0"},
		// A step with no written end stops at Saturday, as robfig/cron's did.
		{"0 0 * * 1/2", "0 0 * * 1,3,5"}, {"0 0 * * MON/2", "0 0 * * 1,3,5"}, {"0 0 * * 5/2", "0 0 * * 5"}, {"0 0 * * 5-7/2", "0 0 * * 5,0"}} {
		a, err := Compile(events.Cron(pair[0]).In("Europe/Berlin"))
		if err != nil {
			t.Fatalf("%q: %v", pair[0], err)
		}
		b, err := Compile(events.Cron(pair[1]).In("Europe/Berlin"))
		if err != nil {
			t.Fatalf("%q: %v", pair[1], err)
		}
		ca, cb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for range 200 {
			na, _ := a.Next(ca)
			nb, _ := b.Next(cb)
			if !na.Equal(nb) {
				t.Fatalf("%q gives %s where %q gives %s", pair[0], na, pair[1], nb)
			}
			ca, cb = na, nb
		}
	}
}

// A wrong field is named, with what it allows.
func TestCronErrorsNameTheField(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ expr, want string }{
		{"0 0 * * 8", `day-of-week field "8": 8 is above 7; the field allows 0-7 (0 and 7 are Sunday)`},
		{"0 0 * * 1#6", `day-of-week field "1#6": "1#6": want n#k with k from 1 to 5`},
		{"0 0 * * 8#1", `day-of-week field "8#1": "8#1": weekday 8 is out of range`},
		{"0 0 * * L", `day-of-week field "L": a bare L is ambiguous`},
		{"0 0 * * XL", `day-of-week field "XL": "XL": "X" is not a weekday`},
		{"0 0 * * 15W", `day-of-week field "15W"`},
		{"0 0 L-31 * *", `day-of-month field "L-31": "L-31": want L-n with n from 1 to 30`},
		{"0 0 32W * *", `day-of-month field "32W": "32W": want nW with n from 1 to 31`},
		{"0 0 5L * *", `day-of-month field "5L"`},
		{"0 0 0 * *", `day-of-month field "0": 0 is below 1`},
		{"0 0 2#1 * *", `nL and n#k belong in the day-of-week field`},
		{"61 * * * *", `minute field "61": 61 is above 59`},
		{"0 24 * * *", `hour field "24": 24 is above 23`},
		{"0 0 * 13 *", `month field "13": 13 is above 12`},
		{"60 0 0 * * *", `second field "60": 60 is above 59`},
		{"0 0 * FOO *", `month field "FOO": "FOO" is not a number or a name`},
		{"0 5-1 * * *", `hour field "5-1": range 5-1 runs backwards`},
		{"*/0 * * * *", `minute field "*/0": step "0": want a whole number of 1 or more`},
		{"0 0 30 2 *", "never fires"},
		{"0 0 0 * * 5#5 2029", "want 5 fields"},
	} {
		_, err := Compile(events.Cron(c.expr))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to say %q", c.expr, err, c.want)
		}
	}
}

// The DST policies of a cron trigger (gap shift or skip, overlap once or
// twice, and the default) against the brute-force rules, around every
// transition of 2026 to 2028 in New York, Berlin, Lord Howe (half-hour
// shifts) and Havana (midnight shifts).
func TestCronDSTPoliciesAgainstBruteForce(t *testing.T) {
	t.Parallel()
	exprs := []string{"0 30 2 * * *", "0 0 * * * *", "0 */30 * * * *", "0 0 0 * * *", "0 30 1 * * *", "0 0,30 2 * * *", "0 0 1-2 * * *", "0 30 0 * * 0"}
	policies := []struct {
		gap     events.DSTGap
		overlap events.DSTOverlap
	}{{"", ""}, {events.GapShift, ""}, {events.GapSkip, ""}, {"", events.OverlapOnce}, {"", events.OverlapTwice}, {events.GapSkip, events.OverlapTwice}}
	for _, tz := range []string{"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Havana"} {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatal(err)
		}
		var transitions []time.Time
		for p := time.Date(2026, 1, 1, 0, 0, 0, 0, loc); ; {
			_, end := zoneBounds(p)
			if end.IsZero() || end.Year() > 2028 {
				break
			}
			if _, before := end.Add(-time.Second).Zone(); func() bool { _, after := end.Zone(); return after != before }() {
				transitions = append(transitions, end)
			}
			p = end.In(loc)
		}
		if len(transitions) < 6 {
			t.Fatalf("%s: %d transitions from 2026 to 2028; the test needs them", tz, len(transitions))
		}
		for _, expr := range exprs {
			naive, err := cronParser.Parse(expr)
			if err != nil {
				t.Fatal(err)
			}
			matches := func(wall time.Time) bool { return naive.Next(wall.Add(-time.Second)).Equal(wall) }
			for _, pol := range policies {
				sched, err := Compile(events.Cron(expr).In(tz).DST(pol.gap, pol.overlap))
				if err != nil {
					t.Fatal(err)
				}
				c := sched.(cronSchedule)
				rules := refRules{twice: pol.overlap == events.OverlapTwice || (pol.overlap == "" && c.everyHour), gapSkip: pol.gap == events.GapSkip}
				for _, tr := range transitions {
					from, to := tr.Add(-30*time.Hour).Truncate(time.Minute), tr.Add(30*time.Hour)
					want := referenceSlotsRules(matches, loc, from, to, rules, time.Minute)
					got := slotsIn(sched, from, to)
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%s %q gap %q overlap %q around %s: %s", tz, expr, pol.gap, pol.overlap, tr.In(loc), firstDiff(got, want, loc))
					}
				}
			}
		}
	}
}

// The policies change what they say they change, on the days they apply:
// Berlin, 2026-03-29 (02:00 -> 03:00) and 2026-10-25 (03:00 -> 02:00).
func TestCronDSTPoliciesOnBerlinsDays(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	slots := func(expr string, gap events.DSTGap, overlap events.DSTOverlap, day time.Time) []string {
		sched, err := Compile(events.Cron(expr).In("Europe/Berlin").DST(gap, overlap))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for cur := day; ; {
			n, _ := sched.Next(cur)
			if n.After(day.Add(24 * time.Hour)) {
				return out
			}
			out = append(out, n.In(berlin).Format("15:04 MST"))
			cur = n
		}
	}
	spring := time.Date(2026, 3, 29, 0, 0, 0, 0, berlin)
	autumn := time.Date(2026, 10, 25, 0, 0, 0, 0, berlin)
	for _, c := range []struct {
		expr    string
		gap     events.DSTGap
		overlap events.DSTOverlap
		day     time.Time
		want    string
	}{
		{"30 2 * * *", "", "", spring, "[03:00 CEST]"},
		{"30 2 * * *", events.GapShift, "", spring, "[03:00 CEST]"},
		{"30 2 * * *", events.GapSkip, "", spring, "[]"},
		{"30 2 * * *", "", "", autumn, "[02:30 CEST]"},
		{"30 2 * * *", "", events.OverlapTwice, autumn, "[02:30 CEST 02:30 CET]"},
		{"30 * * * *", "", events.OverlapOnce, autumn, "[00:30 CEST 01:30 CEST 02:30 CEST 03:30 CET]"},
	} {
		got := slots(c.expr, c.gap, c.overlap, c.day)
		if len(got) > 4 {
			got = got[:4]
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("%q gap %q overlap %q on %s: %v, want %s", c.expr, c.gap, c.overlap, c.day.Format("2006-01-02"), got, c.want)
		}
	}
	if _, err := Compile(events.Every(time.Hour).DST(events.GapSkip, "")); err == nil || !strings.Contains(err.Error(), "only a cron trigger reads the wall clock") {
		t.Errorf("dst on an every trigger: %v, want it refused", err)
	}
	if _, err := Compile(events.Cron("0 * * * *").DST("later", "")); err == nil || !strings.Contains(err.Error(), `gap "later"; want shift`) {
		t.Errorf("dst gap later: %v, want it refused", err)
	}
}
