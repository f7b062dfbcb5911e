package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
)

// TriggerWords says a trigger in words: "every day at 02:30
// (Europe/Berlin)", "every 5 minutes", "on Monday to Friday at 09:00
// (UTC)". A cron expression it has no words for is given as it is, with
// its zone.
func TriggerWords(t events.Trigger) string {
	var s string
	switch t.Kind {
	case events.KindOnce:
		s = "once, at " + t.At.UTC().Format("2006-01-02 15:04:05 UTC")
	case events.KindEvery:
		s = "every " + durationWords(t.Period)
	case events.KindCron:
		tz := t.TZ
		if tz == "" {
			tz = "UTC"
		}
		s = cronWords(t.Cron) + " (" + tz + ")"
	default:
		return t.String()
	}
	if !t.Start.IsZero() {
		s += ", from " + t.Start.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if !t.End.IsZero() {
		s += ", until " + t.End.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	switch t.DSTGap {
	case events.GapSkip:
		s += "; skipped on the day the clocks jump over it"
	case events.GapShift:
		s += "; in a DST gap, when it ends"
	}
	switch t.DSTOverlap {
	case events.OverlapTwice:
		s += "; twice when the clocks repeat it"
	case events.OverlapOnce:
		s += "; once when the clocks repeat it"
	}
	switch n := len(t.Except); {
	case n == 1:
		s += "; except " + t.Except[0]
	case n > 1:
		s += fmt.Sprintf("; except %s and %d more", t.Except[0], n-1)
	}
	if t.Jitter > 0 {
		s += "; each fire delayed by up to " + durationWords(t.Jitter)
	}
	return s
}

// durationWords is d as "5 minutes", "1 hour", "90 seconds", "1h30m0s".
func durationWords(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}, {time.Millisecond, "millisecond"}} {
		if d >= u.d && d%u.d == 0 {
			n := int64(d / u.d)
			if n == 1 {
				return u.name
			}
			return fmt.Sprintf("%d %ss", n, u.name)
		}
	}
	return d.String()
}

var descriptorWords = map[string]string{
	"@yearly": "every year on 1 January at 00:00", "@annually": "every year on 1 January at 00:00",
	"@monthly": "on day 1 of every month at 00:00", "@weekly": "every Sunday at 00:00",
	"@daily": "every day at 00:00", "@midnight": "every day at 00:00", "@hourly": "every hour, on the hour",
}

var dayNames = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

// cronWords says the common cron forms in words, and others as they are.
func cronWords(expr string) string {
	expr = strings.TrimSpace(expr)
	if w, ok := descriptorWords[strings.ToLower(expr)]; ok {
		return w
	}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		if p, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && p > 0 {
			return "every " + durationWords(p)
		}
	}
	f := strings.Fields(expr)
	if len(f) == 5 {
		f = append([]string{"0"}, f...)
	}
	asIs := "cron " + expr
	if len(f) != 6 {
		return asIs
	}
	sec, mins, hour, dom, mon, dow := f[0], f[1], f[2], f[3], f[4], f[5]
	num := func(s string, hi int) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= 0 && n <= hi
	}
	// step reads "*/n" where n divides the field's range (of, 60 or
	// 24): the slots are then evenly n apart; "*/7" of seconds is not
	// (56 to 0 is 4 s), and is given as it is.
	step := func(s string, of int) (int, bool) {
		if r, ok := strings.CutPrefix(s, "*/"); ok {
			n, err := strconv.Atoi(r)
			return n, err == nil && n > 0 && of%n == 0
		}
		return 0, false
	}
	everyDay := dom == "*" && mon == "*" && (dow == "*" || dow == "?")
	if mon != "*" {
		mo, errM := strconv.Atoi(mon)
		d, errD := strconv.Atoi(dom)
		s, okS := num(sec, 59)
		m, okM := num(mins, 59)
		h, okH := num(hour, 23)
		if errM == nil && mo >= 1 && mo <= 12 && errD == nil && d >= 1 && d <= 31 && (dow == "*" || dow == "?") && okS && okM && okH {
			at := fmt.Sprintf("%02d:%02d", h, m)
			if s != 0 {
				at += fmt.Sprintf(":%02d", s)
			}
			return fmt.Sprintf("every year on %d %s at %s", d, time.Month(mo), at)
		}
		return asIs
	}
	// The time of day, when it is one.
	s, okS := num(sec, 59)
	m, okM := num(mins, 59)
	h, okH := num(hour, 23)
	at := ""
	if okS && okM && okH {
		at = fmt.Sprintf("%02d:%02d", h, m)
		if s != 0 {
			at += fmt.Sprintf(":%02d", s)
		}
	}
	switch {
	case everyDay && sec == "*" && mins == "*" && hour == "*":
		return "every second"
	case everyDay && okS && mins == "*" && hour == "*":
		if s == 0 {
			return "every minute"
		}
		return fmt.Sprintf("every minute at second %d", s)
	case everyDay && okS && okM && hour == "*":
		if s == 0 && m == 0 {
			return "every hour, on the hour"
		}
		return fmt.Sprintf("every hour at minute %d", m) + secondsWords(s)
	case everyDay && hour == "*" && mins == "*":
		if n, ok := step(sec, 60); ok {
			return "every " + plural(n, "second")
		}
	case everyDay && okS && hour == "*":
		if n, ok := step(mins, 60); ok {
			return "every " + plural(n, "minute") + secondsWords(s)
		}
	case everyDay && okS && okM:
		if n, ok := step(hour, 24); ok {
			return fmt.Sprintf("every %s at minute %d", plural(n, "hour"), m) + secondsWords(s)
		}
	}
	if at == "" {
		return asIs
	}
	if w, ok := dayRuleWords(dom, dow); ok {
		return w + " at " + at
	}
	switch {
	case everyDay:
		return "every day at " + at
	case dom == "*" || dom == "?":
		if days, ok := dowWords(dow); ok {
			return days + " at " + at
		}
	case dow == "*" || dow == "?":
		if d, ok := num(dom, 31); ok && d >= 1 {
			return fmt.Sprintf("on day %d of every month at %s", d, at)
		}
	}
	return asIs
}

func secondsWords(s int) string {
	if s == 0 {
		return ""
	}
	return fmt.Sprintf(", second %d", s)
}

func plural(n int, unit string) string {
	if n == 1 {
		return unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// dowWords says a day-of-week field: "every Monday", "on Monday to
// Friday", "on Monday and Thursday".
func dowWords(f string) (string, bool) {
	day := weekdayName
	if d, ok := day(f); ok {
		return "every " + d, true
	}
	if a, b, ok := strings.Cut(f, "-"); ok {
		da, ok1 := day(a)
		db, ok2 := day(b)
		if ok1 && ok2 {
			return "on " + da + " to " + db, true
		}
		return "", false
	}
	var names []string
	for _, p := range strings.Split(f, ",") {
		d, ok := day(p)
		if !ok {
			return "", false
		}
		names = append(names, d)
	}
	if len(names) < 2 {
		return "", false
	}
	return "on " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1], true
}

var ordinals = []string{"", "first", "second", "third", "fourth", "fifth"}

// dayRuleWords says a day rule of one day field, the other * or ?: L,
// LW, nW, nL, n#k.
func dayRuleWords(dom, dow string) (string, bool) {
	star := func(f string) bool { return f == "*" || f == "?" }
	day := weekdayName
	u := strings.ToUpper(dom)
	switch {
	case star(dow) && u == "L":
		return "on the last day of every month", true
	case star(dow) && u == "LW":
		return "on the last weekday of every month", true
	case star(dow) && strings.HasPrefix(u, "L-"):
		if n, err := strconv.Atoi(u[2:]); err == nil {
			return fmt.Sprintf("%s before the last day of every month", plural(n, "day")), true
		}
	case star(dow) && strings.HasSuffix(u, "W"):
		if n, err := strconv.Atoi(u[:len(u)-1]); err == nil {
			return fmt.Sprintf("on the weekday nearest day %d of every month", n), true
		}
	}
	if !star(dom) {
		return "", false
	}
	u = strings.ToUpper(dow)
	if d, ok := strings.CutSuffix(u, "L"); ok {
		if name, ok := day(d); ok {
			return "on the last " + name + " of every month", true
		}
	}
	if d, k, ok := strings.Cut(u, "#"); ok {
		name, ok1 := day(d)
		n, err := strconv.Atoi(k)
		if ok1 && err == nil && n >= 1 && n <= 5 {
			return "on the " + ordinals[n] + " " + name + " of every month", true
		}
	}
	return "", false
}

// weekdayName is a day-of-week value's name: 0-7 (7 is Sunday) or a
// three-letter name.
func weekdayName(s string) (string, bool) {
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 7 {
		return dayNames[n%7], true
	}
	for _, d := range dayNames {
		if strings.EqualFold(s, d[:3]) {
			return d, true
		}
	}
	return "", false
}
