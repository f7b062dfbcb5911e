package events

import (
	"fmt"
	"strings"
	"time"
)

// TriggerKind says which of the three trigger forms a Trigger is.
type TriggerKind string

// The trigger kinds.
const (
	KindOnce  TriggerKind = "once"  // one fire at an instant
	KindEvery TriggerKind = "every" // a fixed period, anchored to Start (or the Unix epoch)
	KindCron  TriggerKind = "cron"  // a cron expression in a time zone
)

// Trigger says when a task fires. Build one with Once, Every or Cron; the
// zero Trigger is invalid. Times are kept to the millisecond.
type Trigger struct {
	Kind TriggerKind
	// At is the instant of a once trigger.
	At time.Time
	// Period is the interval of an every trigger: a whole number of
	// milliseconds, at least 1ms.
	Period time.Duration
	// Cron is the expression of a cron trigger: 5 fields (minute first) or
	// 6 (seconds first), or a descriptor such as @daily.
	Cron string
	// TZ is the IANA time zone a cron expression is read in; empty means UTC.
	TZ string
	// Start and End bound an every or cron trigger: no slot before Start or
	// after End (both inclusive). Zero means unbounded. An every trigger's
	// slots are Start + k*Period; without Start they are whole multiples of
	// Period since the Unix epoch, so every 1m fires on the minute.
	Start, End time.Time
	// DSTGap and DSTOverlap say what a cron trigger in a zone does when
	// the clocks change ("": the defaults, GapShift and, for the repeated
	// hour, OverlapOnce unless the hour field covers all 24 hours, when it
	// runs twice like any other hour).
	DSTGap     DSTGap
	DSTOverlap DSTOverlap
	// Except are the days and times on which no slot of an every or cron
	// trigger fires (each such slot is recorded missed, with the rule
	// that excluded it): "2026-12-25" (a day), "2026-12-24..2026-12-31"
	// (days, both included), or "cron: EXPR" (the slots whose wall-clock
	// minute, or second with six fields, the expression matches:
	// "cron: * * 25 12 *" is every 25 December). Days and expressions are
	// read in the trigger's zone (UTC for an every trigger).
	Except []string
	// Jitter, when above zero, delays each slot's fire by a pseudo-random
	// amount in [0, Jitter) that depends only on the task's name and the
	// slot (JitterDelay), so every planner computes the same delay. The
	// fire keeps the slot's id and time, carries the delayed time as its
	// due time (Fire.Due), and never becomes due at or after the next
	// slot. Whole milliseconds, at most MaxJitter; an every trigger's
	// must be below its period.
	Jitter time.Duration
}

// MaxJitter bounds Trigger.Jitter.
const MaxJitter = 24 * time.Hour

// MaxExcept bounds Trigger.Except.
const MaxExcept = 1000

// DSTGap is what a cron trigger does with a wall time the clocks skip
// (spring forward).
type DSTGap string

// The gap policies.
const (
	GapShift DSTGap = "shift" // fire once, at the instant the gap ends (02:30 in a 02:00-03:00 gap fires at 03:00)
	GapSkip  DSTGap = "skip"  // fire nothing for the wall times that do not exist that day
)

// DSTOverlap is what a cron trigger does with a wall time the clocks repeat
// (fall back).
type DSTOverlap string

// The overlap policies.
const (
	OverlapOnce  DSTOverlap = "once"  // fire at its first occurrence only
	OverlapTwice DSTOverlap = "twice" // fire at both occurrences
)

// Excluding returns the trigger with rules added to its Except.
func (t Trigger) Excluding(rules ...string) Trigger {
	t.Except = append(append([]string(nil), t.Except...), rules...)
	return t
}

// DST returns the cron trigger with its daylight-saving policies (an
// empty value keeps the default).
func (t Trigger) DST(gap DSTGap, overlap DSTOverlap) Trigger {
	t.DSTGap, t.DSTOverlap = gap, overlap
	return t
}

// Once fires a single time, at the instant at.
func Once(at time.Time) Trigger { return Trigger{Kind: KindOnce, At: at} }

// Every fires every period, on slots anchored as Trigger.Start describes.
func Every(period time.Duration) Trigger { return Trigger{Kind: KindEvery, Period: period} }

// Cron fires on the slots of a cron expression, read in UTC unless In is
// used.
func Cron(expr string) Trigger { return Trigger{Kind: KindCron, Cron: expr} }

// Jittered returns the trigger with each slot's fire delayed by up to d
// (see Trigger.Jitter).
func (t Trigger) Jittered(d time.Duration) Trigger { t.Jitter = d; return t }

// In returns the trigger with its cron expression read in the IANA zone tz.
func (t Trigger) In(tz string) Trigger { t.TZ = tz; return t }

// From returns the trigger with its first slot at or after start (an every
// trigger's slots are anchored to start).
func (t Trigger) From(start time.Time) Trigger { t.Start = start; return t }

// Until returns the trigger with no slot after end.
func (t Trigger) Until(end time.Time) Trigger { t.End = end; return t }

// String describes the trigger for people: "every 5s", "cron 0 0 * * * (Europe/Paris)".
func (t Trigger) String() string {
	var b strings.Builder
	switch t.Kind {
	case KindOnce:
		fmt.Fprintf(&b, "once %s", t.At.UTC().Format(time.RFC3339Nano))
	case KindEvery:
		fmt.Fprintf(&b, "every %s", t.Period)
	case KindCron:
		fmt.Fprintf(&b, "cron %s", t.Cron)
		if t.TZ != "" {
			fmt.Fprintf(&b, " (%s)", t.TZ)
		}
	default:
		fmt.Fprintf(&b, "trigger %q", string(t.Kind))
	}
	if !t.Start.IsZero() {
		fmt.Fprintf(&b, " from %s", t.Start.UTC().Format(time.RFC3339Nano))
	}
	if !t.End.IsZero() {
		fmt.Fprintf(&b, " until %s", t.End.UTC().Format(time.RFC3339Nano))
	}
	if t.DSTGap != "" {
		fmt.Fprintf(&b, " dst-gap %s", t.DSTGap)
	}
	if t.DSTOverlap != "" {
		fmt.Fprintf(&b, " dst-overlap %s", t.DSTOverlap)
	}
	if len(t.Except) > 0 {
		fmt.Fprintf(&b, " except %s", strings.Join(t.Except, "; "))
	}
	if t.Jitter > 0 {
		fmt.Fprintf(&b, " jitter %s", t.Jitter)
	}
	return b.String()
}

func (t Trigger) validate(task string) error {
	bad := func(field, format string, args ...any) error {
		return &SpecError{Task: task, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	// Fields that belong to another kind are refused, so a typo'd spec does
	// not silently mean something else.
	if t.Kind != KindOnce && !t.At.IsZero() {
		return bad("at", "only a once trigger has an instant; this is %q", t.Kind)
	}
	if t.Kind != KindEvery && t.Period != 0 {
		return bad("every", "only an every trigger has a period; this is %q", t.Kind)
	}
	if t.Kind != KindCron && (t.Cron != "" || t.TZ != "") {
		return bad("cron", "only a cron trigger has an expression or a time zone; this is %q", t.Kind)
	}
	if t.Kind != KindCron && (t.DSTGap != "" || t.DSTOverlap != "") {
		return bad("dst", "only a cron trigger reads the wall clock; the slots of this %s trigger are the same instants whatever the clocks do", t.Kind)
	}
	if len(t.Except) > 0 && t.Kind == KindOnce {
		return bad("except", "a once trigger has one slot; drop except, or the trigger")
	}
	if len(t.Except) > MaxExcept {
		return bad("except", "%d rules; want at most %d", len(t.Except), MaxExcept)
	}
	for _, r := range t.Except {
		if err := checkExcept(r); err != nil {
			return bad("except", "%v", err)
		}
	}
	switch {
	case t.Jitter < 0 || t.Jitter > MaxJitter:
		return bad("jitter", "%s; want a duration from 0 to %s", t.Jitter, MaxJitter)
	case t.Jitter%time.Millisecond != 0:
		return bad("jitter", "%s; want a whole number of milliseconds", t.Jitter)
	case t.Jitter > 0 && t.Kind == KindEvery && t.Jitter >= t.Period:
		return bad("jitter", "%s is not below the period %s; a slot's fire would come after the next slot's", t.Jitter, t.Period)
	}
	if g := t.DSTGap; g != "" && g != GapShift && g != GapSkip {
		return bad("dst", "gap %q; want shift (fire once when the gap ends) or skip", g)
	}
	if o := t.DSTOverlap; o != "" && o != OverlapOnce && o != OverlapTwice {
		return bad("dst", "overlap %q; want once (the first occurrence) or twice", o)
	}
	switch t.Kind {
	case KindOnce:
		if t.At.IsZero() {
			return bad("once", "no instant; want a time such as 2026-12-01T09:00:00Z")
		}
		if !t.Start.IsZero() || !t.End.IsZero() {
			return bad("start", "a once trigger takes no start or end")
		}
		return nil
	case KindEvery:
		if t.Period < time.Millisecond {
			return bad("every", "period %s; want at least 1ms", t.Period)
		}
		if t.Period%time.Millisecond != 0 {
			return bad("every", "period %s; want a whole number of milliseconds", t.Period)
		}
	case KindCron:
		if strings.TrimSpace(t.Cron) == "" {
			return bad("cron", "empty expression; want 5 or 6 fields such as \"*/5 * * * * *\", or a descriptor such as @daily")
		}
		if strings.HasPrefix(strings.TrimSpace(t.Cron), "CRON_TZ=") || strings.HasPrefix(strings.TrimSpace(t.Cron), "TZ=") {
			return bad("cron", "%q sets its zone inline; put the zone in tz", t.Cron)
		}
		loc, err := LoadZone(t.TZ)
		if err != nil {
			return bad("tz", "%v", err)
		}
		if (t.DSTGap != "" || t.DSTOverlap != "") && !changesClocks(loc) {
			zone := t.TZ
			if zone == "" {
				zone = "UTC (no tz)"
			}
			return bad("dst", "the zone %s never changes its clocks (1970-2100), so dst has no effect; set tz to the zone whose clocks change, or drop dst", zone)
		}
	case "":
		return bad("trigger", "none; want exactly one of once, every or cron")
	default:
		return bad("trigger", "kind %q; want once, every or cron", t.Kind)
	}
	if !t.Start.IsZero() && !t.End.IsZero() && t.End.Before(t.Start) {
		return bad("end", "%s is before start %s", t.End.UTC().Format(time.RFC3339), t.Start.UTC().Format(time.RFC3339))
	}
	return nil
}

// changesClocks says whether loc's UTC offset changes between 1970 and
// 2100 (sampled on 1 January and 1 July of each year, as DST does).
func changesClocks(loc *time.Location) bool {
	if loc == time.UTC {
		return false
	}
	_, first := time.Date(1970, 1, 1, 0, 0, 0, 0, loc).Zone()
	for y := 1970; y <= 2100; y++ {
		for _, m := range []time.Month{time.January, time.July} {
			if _, off := time.Date(y, m, 1, 0, 0, 0, 0, loc).Zone(); off != first {
				return true
			}
		}
	}
	return false
}

// LoadZone loads an IANA time zone; "" and "UTC" are UTC. "Local" is
// refused: a zone that differs from host to host would break the promise
// that every planner computes the same slots.
func LoadZone(tz string) (*time.Location, error) {
	switch tz {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("zone %q depends on the host; want an IANA zone such as Europe/Paris", tz)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown zone %q; want an IANA zone such as Europe/Paris", tz)
	}
	return loc, nil
}

// JitterDelay is the delay of the fire of task's slot at under a trigger's
// jitter: a pseudo-random amount in [0, jitter) that only the task's name
// and the slot decide (FNV-1a of both), so every planner and worker
// computes the same one. gap is the time to the next slot (0: none): the
// delay stays below it, so a slot's fire is never due at or after the
// next slot's.
func JitterDelay(task string, at time.Time, jitter, gap time.Duration) time.Duration {
	span := jitter.Milliseconds()
	if g := gap.Milliseconds(); g > 0 && g < span {
		span = g
	}
	if span <= 1 {
		return 0
	}
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(task); i++ {
		h = (h ^ uint64(task[i])) * prime
	}
	h = (h ^ '@') * prime
	ms := uint64(at.UnixMilli())
	for i := 0; i < 8; i++ {
		h = (h ^ (ms & 0xff)) * prime
		ms >>= 8
	}
	// FNV's low bits mix poorly for short inputs: fold the high half in.
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return time.Duration(h%uint64(span)) * time.Millisecond
}
