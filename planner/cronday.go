package planner

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The day fields of a cron expression, read here rather than by
// robfig/cron, which knows neither 7 as Sunday nor the day rules of Quartz
// and BullMQ: L (last day of the month), L-n (n days before it), nW (the
// weekday nearest day n, within the month), LW (the last weekday) in the
// day-of-month; nL (the last weekday n of the month) and n#k (the k-th
// weekday n) in the day-of-week. Plain fields are handed to robfig/cron as
// a list of numbers (7 read as 0), so they cost nothing more; a field
// with a rule makes the schedule check each day itself (days).

// dayNames are the day-of-week names, Sunday first.
var dayNames = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}

// dayFields is a parsed day-of-month and day-of-week pair.
type dayFields struct {
	dom, dow         uint64 // days 1-31, weekdays 0-6 (bit n: n matches)
	domStar, dowStar bool   // the field is * or ? (robfig's rule: */2 is not)
	lastDom          []int  // L-n: n days before the month's last (L: 0)
	nearest          []int  // nW
	lastWeekday      bool   // LW
	lastDow          []int  // nL: weekday n
	nthDow           [][2]int
}

// special reports whether a rule needs the schedule to check days itself.
func (d *dayFields) special() bool {
	return len(d.lastDom) > 0 || len(d.nearest) > 0 || d.lastWeekday || len(d.lastDow) > 0 || len(d.nthDow) > 0
}

// plain is a field robfig/cron reads the same: "*" for a star, else the
// list of its values.
func plain(bits uint64, star bool, lo, hi int) string {
	if star {
		return "*"
	}
	var vs []string
	for v := lo; v <= hi; v++ {
		if bits&(1<<v) != 0 {
			vs = append(vs, strconv.Itoa(v))
		}
	}
	return strings.Join(vs, ",")
}

// matches reports whether the wall-clock day of t matches: both fields,
// or, when neither is * or ?, either one (the day-of-month OR
// day-of-week rule of cron).
func (d *dayFields) matches(t time.Time) bool {
	dom, dow := d.domMatch(t), d.dowMatch(t)
	if d.domStar || d.dowStar {
		return dom && dow
	}
	return dom || dow
}

func lastDay(t time.Time) int {
	return time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (d *dayFields) domMatch(t time.Time) bool {
	day := t.Day()
	if d.dom&(1<<day) != 0 {
		return true
	}
	last := lastDay(t)
	for _, n := range d.lastDom {
		if day == last-n {
			return true
		}
	}
	for _, n := range d.nearest {
		if n <= last && day == nearestWeekday(t.Year(), t.Month(), n, last) {
			return true
		}
	}
	return d.lastWeekday && day == nearestWeekday(t.Year(), t.Month(), last, last)
}

// nearestWeekday is the weekday (Monday to Friday) nearest day n of the
// month, never in another month: a Saturday goes to Friday (Monday when n
// is the 1st), a Sunday to Monday (Friday when n is the last day).
func nearestWeekday(y int, m time.Month, n, last int) int {
	switch time.Date(y, m, n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3
		}
		return n - 1
	case time.Sunday:
		if n == last {
			return n - 2
		}
		return n + 1
	}
	return n
}

func (d *dayFields) dowMatch(t time.Time) bool {
	wd := int(t.Weekday())
	if d.dow&(1<<wd) != 0 {
		return true
	}
	for _, n := range d.lastDow {
		if wd == n && t.Day()+7 > lastDay(t) {
			return true
		}
	}
	for _, nk := range d.nthDow {
		if wd == nk[0] && (t.Day()-1)/7+1 == nk[1] {
			return true
		}
	}
	return false
}

const (
	domAllowed = "1-31, ranges, steps, *, ?, L (last day), L-n (n days before it), nW (the weekday nearest day n), LW (the last weekday)"
	dowAllowed = "0-7 (0 and 7 are Sunday) or SUN-SAT, ranges, steps, *, ?, nL (the last weekday n of the month: 5L), n#k (the k-th weekday n: 1#1)"
)

// parseDays reads the two day fields, or says which is wrong and what it
// allows.
func parseDays(dom, dow string) (*dayFields, error) {
	d := &dayFields{}
	for _, item := range strings.Split(dom, ",") {
		u := strings.ToUpper(item)
		switch {
		case u == "L":
			d.lastDom = append(d.lastDom, 0)
		case strings.HasPrefix(u, "L-"):
			n, err := strconv.Atoi(u[2:])
			if err != nil || n < 1 || n > 30 {
				return nil, fmt.Errorf("day-of-month field %q: %q: want L-n with n from 1 to 30; the field allows %s", dom, item, domAllowed)
			}
			d.lastDom = append(d.lastDom, n)
		case u == "LW":
			d.lastWeekday = true
		case strings.HasSuffix(u, "W"):
			n, err := strconv.Atoi(u[:len(u)-1])
			if err != nil || n < 1 || n > 31 {
				return nil, fmt.Errorf("day-of-month field %q: %q: want nW with n from 1 to 31; the field allows %s", dom, item, domAllowed)
			}
			d.nearest = append(d.nearest, n)
		default:
			bits, star, err := rangeBits(item, 1, 31, nil)
			if err != nil {
				if strings.HasSuffix(u, "L") || strings.Contains(u, "#") {
					err = fmt.Errorf("%v (nL and n#k belong in the day-of-week field)", err)
				}
				return nil, fmt.Errorf("day-of-month field %q: %v; the field allows %s", dom, err, domAllowed)
			}
			d.dom |= bits
			d.domStar = d.domStar || star
		}
	}
	for _, item := range strings.Split(dow, ",") {
		u := strings.ToUpper(item)
		switch {
		case u == "L":
			return nil, fmt.Errorf("day-of-week field %q: a bare L is ambiguous (Quartz reads it as Saturday); write 6 for Saturday, or nL for the last weekday n of the month (5L: the last Friday); the field allows %s", dow, dowAllowed)
		case strings.HasSuffix(u, "L"):
			n, err := weekday(u[:len(u)-1])
			if err != nil {
				return nil, fmt.Errorf("day-of-week field %q: %q: %v; the field allows %s", dow, item, err, dowAllowed)
			}
			d.lastDow = append(d.lastDow, n)
		case strings.Contains(u, "#"):
			a, b, _ := strings.Cut(u, "#")
			n, err := weekday(a)
			if err != nil {
				return nil, fmt.Errorf("day-of-week field %q: %q: %v; the field allows %s", dow, item, err, dowAllowed)
			}
			k, err := strconv.Atoi(b)
			if err != nil || k < 1 || k > 5 {
				return nil, fmt.Errorf("day-of-week field %q: %q: want n#k with k from 1 to 5 (the k-th weekday n of the month); the field allows %s", dow, item, dowAllowed)
			}
			d.nthDow = append(d.nthDow, [2]int{n, k})
		default:
			bits, star, err := rangeBitsTo(item, 0, 7, 6, dayNames)
			if err != nil {
				if strings.HasSuffix(u, "W") {
					err = fmt.Errorf("%v (W belongs in the day-of-month field)", err)
				}
				return nil, fmt.Errorf("day-of-week field %q: %v; the field allows %s", dow, err, dowAllowed)
			}
			if bits&(1<<7) != 0 { // 7 is Sunday
				bits = bits&^(1<<7) | 1
			}
			d.dow |= bits
			d.dowStar = d.dowStar || star
		}
	}
	return d, nil
}

// weekday reads a day of the week: 0-7 (7 is Sunday) or SUN-SAT.
func weekday(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 7 {
			return 0, fmt.Errorf("weekday %d is out of range: want 0-7 or SUN-SAT", n)
		}
		return n % 7, nil
	}
	for i, name := range dayNames {
		if strings.EqualFold(s, name) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%q is not a weekday: want 0-7 or SUN-SAT", s)
}

// rangeBits reads one list item of a field whose values run from lo to hi
// (names, when given, are lo, lo+1, ...): *, ?, n, a-b, with /step, as
// robfig/cron does ("n/step" runs from n to hi). star is true for * or ?
// without a step above 1.
func rangeBits(item string, lo, hi int, names []string) (bits uint64, star bool, err error) {
	return rangeBitsTo(item, lo, hi, hi, names)
}

// rangeBitsTo is rangeBits where a range with no written end ("*/n",
// "n/step") ends at top, which may be below hi: the day-of-week's 7 is
// Sunday again, and "1/2" means Monday, Wednesday, Friday, as robfig/cron
// read it.
func rangeBitsTo(item string, lo, hi, top int, names []string) (bits uint64, star bool, err error) {
	value := func(s string) (int, error) {
		if n, err := strconv.Atoi(s); err == nil {
			return n, nil
		}
		for i, name := range names {
			if strings.EqualFold(s, name) {
				return lo + i, nil
			}
		}
		return 0, fmt.Errorf("%q is not a number%s", s, map[bool]string{true: " or a name", false: ""}[names != nil])
	}
	rangePart, stepPart, hasStep := strings.Cut(item, "/")
	start, end := lo, top
	switch {
	case rangePart == "*" || rangePart == "?":
		star = true
	case rangePart == "":
		return 0, false, fmt.Errorf("an empty item")
	default:
		a, b, isRange := strings.Cut(rangePart, "-")
		if start, err = value(a); err != nil {
			return 0, false, err
		}
		end = start
		if isRange {
			if end, err = value(b); err != nil {
				return 0, false, err
			}
		} else if hasStep {
			end = max(top, start) // "7/2" is Sunday alone
		}
	}
	step := 1
	if hasStep {
		if step, err = strconv.Atoi(stepPart); err != nil || step < 1 {
			return 0, false, fmt.Errorf("step %q: want a whole number of 1 or more", stepPart)
		}
		if step > 1 {
			star = false
		}
	}
	switch {
	case start < lo:
		return 0, false, fmt.Errorf("%d is below %d", start, lo)
	case end > hi:
		return 0, false, fmt.Errorf("%d is above %d", end, hi)
	case start > end:
		return 0, false, fmt.Errorf("range %d-%d runs backwards", start, end)
	}
	for v := start; v <= end; v += step {
		bits |= 1 << v
	}
	return bits, star, nil
}

// The other fields, for errors that name the field and what it allows.
var otherFields = []struct {
	name    string
	lo, hi  int
	names   []string
	allowed string
}{
	{"second", 0, 59, nil, "0-59, ranges, steps, *"},
	{"minute", 0, 59, nil, "0-59, ranges, steps, *"},
	{"hour", 0, 23, nil, "0-23, ranges, steps, *"},
	{"month", 1, 12, []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}, "1-12 or JAN-DEC, ranges, steps, *"},
}

// fieldError names the first field of f (5 or 6 fields) that is not
// right, and what it allows; nil when each reads.
func fieldError(f []string) error {
	named := map[int]int{} // index in f -> index in otherFields
	if len(f) == 6 {
		named = map[int]int{0: 0, 1: 1, 2: 2, 4: 3}
	} else {
		named = map[int]int{0: 1, 1: 2, 3: 3}
	}
	for i := range f {
		k, ok := named[i]
		if !ok {
			continue
		}
		of := otherFields[k]
		for _, item := range strings.Split(f[i], ",") {
			if _, _, err := rangeBits(item, of.lo, of.hi, of.names); err != nil {
				return fmt.Errorf("%s field %q: %v; the field allows %s", of.name, f[i], err, of.allowed)
			}
		}
	}
	return nil
}

// naiveNext is the first wall-clock time after t (read on UTC) that the
// fields match, days included; zero when none within about eight years.
func (c cronSchedule) naiveNext(t time.Time) time.Time {
	m := c.naive.Next(t)
	for i := 0; c.days != nil && !m.IsZero() && !c.days.matches(m); i++ {
		if i > 3000 {
			return time.Time{}
		}
		m = c.naive.Next(time.Date(m.Year(), m.Month(), m.Day(), 23, 59, 59, 999_999_999, time.UTC)) // the next day's first
	}
	return m
}
