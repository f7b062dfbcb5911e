package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones resolve the same on every host, even one without tzdata
	"unicode/utf8"
)

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
