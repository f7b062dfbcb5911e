package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones resolve the same on every host, even one without tzdata
	"unicode/utf8"
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

// Mode says how many workers run each fire of a task.
type Mode string

// The modes.
const (
	ModeSingle    Mode = "single"    // one worker runs each fire (the seed's Concurrent=false)
	ModeBroadcast Mode = "broadcast" // every live worker of the queue runs it (Concurrent=true)
)

// Misfire says what a planner does with slots that are later than the
// spec's MisfireGrace when it gets to them (all planners were down, or Redis
// was unreachable).
type Misfire string

// The misfire policies. Every slot not fired is recorded as a missed event.
const (
	MisfireFireOnce Misfire = "fire-once" // fire the latest late slot, record the others missed
	MisfireFireAll  Misfire = "fire-all"  // fire the latest MisfireLimit late slots, record older ones missed
	MisfireSkip     Misfire = "skip"      // fire none of them, record them all missed
)

// Overlap says what happens when a fire is due while the previous run of the
// same task is still running. Workers enforce it.
type Overlap string

// The overlap policies.
const (
	OverlapAllow     Overlap = "allow"      // run it anyway
	OverlapSkip      Overlap = "skip"       // drop it (recorded as a missed event)
	OverlapBufferOne Overlap = "buffer-one" // keep one waiting; drop further ones
	// OverlapCancelPrevious cancels the running run for the new fire: the
	// run's context is cancelled (a command's process group stopped), it
	// is recorded cancelled (final: not run again), and the new fire runs.
	// Single-mode tasks only.
	OverlapCancelPrevious Overlap = "cancel-previous"
)

// Defaults applied by Spec.WithDefaults.
const (
	DefaultQueue        = "default"
	DefaultMisfireLimit = 100
	DefaultMisfireGrace = 10 * time.Second
	DefaultAttempts     = 3
)

// Limits that Validate enforces.
const (
	MaxNameLen      = 200
	MaxQueueLen     = 64
	MaxPayload      = 64 << 10 // bytes
	MaxMisfireLimit = 10000
	MaxAttempts     = 100
	// MaxPauseAfterFailures bounds Spec.PauseAfterFailures.
	MaxPauseAfterFailures = 10000
	// MaxLimit bounds Spec.Limit.
	MaxLimit = 1_000_000_000
)

// Spec is one task: its name, trigger, and how its fires are handled.
type Spec struct {
	// Name identifies the task in its namespace: 1 to 200 letters, digits
	// and . _ - : / characters.
	Name    string
	Trigger Trigger
	// Queue is the stream the task's fires go to (default "default").
	Queue string
	// Mode is single (default) or broadcast.
	Mode Mode
	// Misfire is the catch-up policy for late slots (default fire-once).
	Misfire Misfire
	// MisfireLimit bounds how many late slots fire-all fires (default 100).
	MisfireLimit int
	// MisfireGrace is how late a slot may be planned and still count as on
	// time (default 10s). Late slots beyond it fall under Misfire.
	MisfireGrace time.Duration
	// Overlap is the policy for a fire due while the previous run still runs
	// (default allow).
	Overlap Overlap
	// Timeout bounds one run of the task; zero means no limit.
	Timeout time.Duration
	// Attempts is how many times a failing fire is tried before it is
	// dead-lettered (default 3).
	Attempts int
	// Payload is text handed to every run of the task (UTF-8, at most 64 KiB).
	Payload string
	// PauseAfterFailures, when above zero, pauses the task once that many
	// of its slots in a row ended dead-lettered (a retried slot counts
	// once), with a paused event saying why; zero never does.
	PauseAfterFailures int
	// Limit, when above zero, is how many fires the planners append for
	// the task (manual triggers aside): the fire that reaches it is the
	// last, and the task is done. It counts from the task's registration
	// or reschedule (a change of trigger, except, dst or limit); zero
	// never ends it.
	Limit int
}

// WithDefaults returns the spec with every unset optional field at its default.
func (s Spec) WithDefaults() Spec {
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if s.Mode == "" {
		s.Mode = ModeSingle
	}
	if s.Misfire == "" {
		s.Misfire = MisfireFireOnce
	}
	if s.MisfireLimit == 0 {
		s.MisfireLimit = DefaultMisfireLimit
	}
	if s.MisfireGrace == 0 {
		s.MisfireGrace = DefaultMisfireGrace
	}
	if s.Overlap == "" {
		s.Overlap = OverlapAllow
	}
	if s.Attempts == 0 {
		s.Attempts = DefaultAttempts
	}
	return s
}

// SpecError is a refused spec: which task, which field, what was wrong and
// what form was expected.
type SpecError struct {
	Task    string
	Field   string
	Problem string
}

func (e *SpecError) Error() string {
	task := e.Task
	if task == "" {
		task = "(unnamed)"
	}
	return fmt.Sprintf("task %q: %s: %s", task, e.Field, e.Problem)
}

// onlyOf reports whether s is not empty and each of its bytes is an ASCII
// letter, a digit or one of extra: the name and queue forms, checked for
// every fire a worker reads (a regexp took 3% of a burst's CPU).
func onlyOf(s, extra string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// The punctuation a task name and a queue name may hold.
const (
	nameExtra  = "._:/-"
	queueExtra = "._-"
)

// ValidateName reports whether name is a valid task name, with an error
// that says the expected form.
func ValidateName(name string) error {
	switch {
	case name == "":
		return &SpecError{Field: "name", Problem: "empty; want 1 to 200 letters, digits or . _ - : /"}
	case len(name) > MaxNameLen:
		return &SpecError{Task: name[:40] + "...", Field: "name", Problem: fmt.Sprintf("%d bytes long; want at most %d", len(name), MaxNameLen)}
	case !onlyOf(name, nameExtra):
		return &SpecError{Task: name, Field: "name", Problem: "has a character outside letters, digits and . _ - : /"}
	}
	return nil
}

// Validate checks the spec as WithDefaults would complete it and returns a
// *SpecError for the first problem. It checks everything but the syntax of
// a cron expression, which needs a parser: planner.Validate checks that too.
func (s Spec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	s = s.WithDefaults()
	bad := func(field, format string, args ...any) error {
		return &SpecError{Task: s.Name, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	if err := s.Trigger.validate(s.Name); err != nil {
		return err
	}
	if len(s.Queue) > MaxQueueLen || !onlyOf(s.Queue, queueExtra) {
		return bad("queue", "%q; want 1 to %d letters, digits or . _ -", s.Queue, MaxQueueLen)
	}
	if s.Mode != ModeSingle && s.Mode != ModeBroadcast {
		return bad("mode", "%q; want single or broadcast", s.Mode)
	}
	switch s.Misfire {
	case MisfireFireOnce, MisfireFireAll, MisfireSkip:
	default:
		return bad("misfire", "%q; want fire-once, fire-all or skip", s.Misfire)
	}
	if s.MisfireLimit < 1 || s.MisfireLimit > MaxMisfireLimit {
		return bad("misfire_limit", "%d; want 1 to %d", s.MisfireLimit, MaxMisfireLimit)
	}
	if s.MisfireGrace < time.Millisecond {
		return bad("misfire_grace", "%s; want at least 1ms", s.MisfireGrace)
	}
	switch s.Overlap {
	case OverlapAllow, OverlapSkip, OverlapBufferOne:
	case OverlapCancelPrevious:
		if s.Mode == ModeBroadcast {
			return bad("overlap", "cancel-previous cancels a run on whichever worker has it, so it is for single-mode tasks; this one is broadcast (use skip or buffer-one)")
		}
	default:
		return bad("overlap", "%q; want allow, skip, buffer-one or cancel-previous", s.Overlap)
	}
	if s.Timeout < 0 {
		return bad("timeout", "%s; want a positive duration, or 0 for none", s.Timeout)
	}
	if s.Limit < 0 || s.Limit > MaxLimit {
		return bad("limit", "%d; want 1 to %d (or none)", s.Limit, MaxLimit)
	}
	if s.Limit > 0 && s.Trigger.Kind == KindOnce {
		return bad("limit", "a once trigger fires once; drop limit")
	}
	if s.PauseAfterFailures < 0 || s.PauseAfterFailures > MaxPauseAfterFailures {
		return bad("pause_after_failures", "%d; want 1 to %d (or none: never)", s.PauseAfterFailures, MaxPauseAfterFailures)
	}
	if s.PauseAfterFailures > 0 && s.Trigger.Kind == KindOnce {
		return bad("pause_after_failures", "a once trigger has one slot; drop pause_after_failures")
	}
	if s.Attempts < 1 || s.Attempts > MaxAttempts {
		return bad("attempts", "%d; want 1 to %d", s.Attempts, MaxAttempts)
	}
	return validatePayload(s.Name, s.Payload)
}

func validatePayload(task, p string) error {
	if len(p) > MaxPayload {
		return &SpecError{Task: task, Field: "payload", Problem: fmt.Sprintf("%d bytes; want at most %d", len(p), MaxPayload)}
	}
	if !utf8.ValidString(p) {
		return &SpecError{Task: task, Field: "payload", Problem: "not valid UTF-8 text"}
	}
	return nil
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

// wireSpec is the stored form of a Spec: flat, times and durations in
// milliseconds, zero values omitted, so the same spec always encodes to the
// same bytes (the store compares encodings to find what changed).
type wireSpec struct {
	V            int      `json:"v"`
	Name         string   `json:"name"`
	Kind         string   `json:"kind"`
	At           *int64   `json:"at,omitempty"`
	EveryMs      int64    `json:"every_ms,omitempty"`
	Cron         string   `json:"cron,omitempty"`
	TZ           string   `json:"tz,omitempty"`
	Start        *int64   `json:"start,omitempty"`
	End          *int64   `json:"end,omitempty"`
	DSTGap       string   `json:"dst_gap,omitempty"`
	DSTOverlap   string   `json:"dst_overlap,omitempty"`
	Except       []string `json:"except,omitempty"`
	JitterMs     int64    `json:"jitter_ms,omitempty"`
	Queue        string   `json:"queue"`
	Mode         string   `json:"mode"`
	Misfire      string   `json:"misfire"`
	MisfireLimit int      `json:"misfire_limit"`
	GraceMs      int64    `json:"misfire_grace_ms"`
	Overlap      string   `json:"overlap"`
	TimeoutMs    int64    `json:"timeout_ms,omitempty"`
	Attempts     int      `json:"attempts"`
	Payload      string   `json:"payload,omitempty"`
	PauseAfter   int      `json:"pause_after_failures,omitempty"`
	Limit        int      `json:"limit,omitempty"`
}

func msPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}

func fromMsPtr(p *int64) time.Time {
	if p == nil {
		return time.Time{}
	}
	return time.UnixMilli(*p).UTC()
}

// MarshalSpec encodes a spec, completed with its defaults, in its stored
// form. Equal specs encode to equal bytes.
func MarshalSpec(s Spec) ([]byte, error) {
	s = s.WithDefaults()
	w := wireSpec{
		V: 1, Name: s.Name, Kind: string(s.Trigger.Kind),
		At: msPtr(s.Trigger.At), EveryMs: s.Trigger.Period.Milliseconds(), Cron: s.Trigger.Cron, TZ: s.Trigger.TZ,
		Start: msPtr(s.Trigger.Start), End: msPtr(s.Trigger.End),
		DSTGap: string(s.Trigger.DSTGap), DSTOverlap: string(s.Trigger.DSTOverlap), Except: s.Trigger.Except,
		JitterMs: s.Trigger.Jitter.Milliseconds(),
		Queue:    s.Queue, Mode: string(s.Mode), Misfire: string(s.Misfire), MisfireLimit: s.MisfireLimit,
		GraceMs: s.MisfireGrace.Milliseconds(), Overlap: string(s.Overlap), TimeoutMs: s.Timeout.Milliseconds(),
		Attempts: s.Attempts, Payload: s.Payload, PauseAfter: s.PauseAfterFailures, Limit: s.Limit,
	}
	return json.Marshal(w)
}

// UnmarshalSpec decodes a spec from its stored form (see
// UnmarshalSpecString).
func UnmarshalSpec(b []byte) (Spec, error) { return UnmarshalSpecString(string(b)) }

// spec is the Spec w stores, or an error for an encoding version other
// than 1.
func (w *wireSpec) spec() (Spec, error) {
	if w.V != 1 {
		return Spec{}, fmt.Errorf("decode spec %q: encoding version %d; want 1", w.Name, w.V)
	}
	return Spec{
		Name: w.Name,
		Trigger: Trigger{
			Kind: TriggerKind(w.Kind), At: fromMsPtr(w.At), Period: time.Duration(w.EveryMs) * time.Millisecond,
			Cron: w.Cron, TZ: w.TZ, Start: fromMsPtr(w.Start), End: fromMsPtr(w.End),
			DSTGap: DSTGap(w.DSTGap), DSTOverlap: DSTOverlap(w.DSTOverlap), Except: w.Except,
			Jitter: time.Duration(w.JitterMs) * time.Millisecond,
		},
		Queue: w.Queue, Mode: Mode(w.Mode), Misfire: Misfire(w.Misfire), MisfireLimit: w.MisfireLimit,
		MisfireGrace: time.Duration(w.GraceMs) * time.Millisecond, Overlap: Overlap(w.Overlap),
		Timeout: time.Duration(w.TimeoutMs) * time.Millisecond, Attempts: w.Attempts, Payload: w.Payload,
		PauseAfterFailures: w.PauseAfter, Limit: w.Limit,
	}, nil
}

// ScheduleKey is the part of a spec that decides its slots, encoded. When a
// new version of a task keeps its schedule key, the task keeps its place in
// the schedule; when the key changes, it is rescheduled from the apply time.
func ScheduleKey(s Spec) string {
	t := s.Trigger
	var start, end int64
	if !t.Start.IsZero() {
		start = t.Start.UnixMilli()
	}
	if !t.End.IsZero() {
		end = t.End.UnixMilli()
	}
	var at int64
	if !t.At.IsZero() {
		at = t.At.UnixMilli()
	}
	key := fmt.Sprintf("%s|%d|%d|%s|%s|%d|%d", t.Kind, at, t.Period.Milliseconds(), t.Cron, t.TZ, start, end)
	if t.DSTGap != "" || t.DSTOverlap != "" { // only then: a task without them keeps its key of before they existed
		key += "|" + string(t.DSTGap) + "|" + string(t.DSTOverlap)
	}
	if len(t.Except) > 0 {
		key += "|except " + strings.Join(t.Except, "|")
	}
	if s.Limit > 0 { // a new limit counts from the apply
		key += fmt.Sprintf("|limit %d", s.Limit)
	}
	return key
}

// The values of FieldChange on a registered event.
const (
	ChangeAdded   = "added"
	ChangeChanged = "changed"
	ChangeRemoved = "removed"
)

// ExceptRule is one rule of Trigger.Except, read: a range of days (From to
// To, both included, as YYYY-MM-DD), or a cron expression (Cron).
type ExceptRule struct {
	From, To string
	Cron     string
}

// ParseExcept reads a rule of Trigger.Except, or says what is wrong with
// it. It does not check a cron expression's fields (the planner does).
func ParseExcept(r string) (ExceptRule, error) {
	r = strings.TrimSpace(r)
	if expr, ok := strings.CutPrefix(r, "cron:"); ok {
		expr = strings.TrimSpace(expr)
		if expr == "" || strings.HasPrefix(expr, "@") {
			return ExceptRule{}, fmt.Errorf("rule %q: want cron: and 5 or 6 fields, such as \"cron: * * 25 12 *\"", r)
		}
		return ExceptRule{Cron: expr}, nil
	}
	from, to, isRange := strings.Cut(r, "..")
	day := func(s string) (string, error) {
		s = strings.TrimSpace(s)
		if _, err := time.Parse("2006-01-02", s); err != nil {
			return "", fmt.Errorf("rule %q: %q is not a day; want YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD or cron: EXPR", r, s)
		}
		return s, nil
	}
	a, err := day(from)
	if err != nil {
		return ExceptRule{}, err
	}
	b := a
	if isRange {
		if b, err = day(to); err != nil {
			return ExceptRule{}, err
		}
		if b < a {
			return ExceptRule{}, fmt.Errorf("rule %q: the range ends before it starts", r)
		}
	}
	return ExceptRule{From: a, To: b}, nil
}

func checkExcept(r string) error {
	_, err := ParseExcept(r)
	return err
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
