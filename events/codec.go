package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Stream field names. FieldType, FieldTask, FieldFire, FieldAt, FieldPayload
// and FieldID are part of the Redis contract users see (README.md, "The Redis contract"): they do
// not change without a migration note.
const (
	FieldV        = "v"        // encoding version, "1"; may be absent on a hand-written fire
	FieldType     = "type"     // event type
	FieldTask     = "task"     // task name
	FieldFire     = "fire"     // fire id, on events
	FieldID       = "id"       // fire id, on fire entries (idempotency key of a manual trigger)
	FieldAt       = "at"       // scheduled time, Unix milliseconds
	FieldPayload  = "payload"  // task payload text
	FieldAttempt  = "attempt"  // 1 for the first try
	FieldQueue    = "queue"    // the queue a fire went to
	FieldMode     = "mode"     // single or broadcast
	FieldWorker   = "worker"   // the worker or planner node that did it
	FieldStatus   = "status"   // outcome
	FieldCostMs   = "cost_ms"  // run time, milliseconds
	FieldError    = "error"    // failure text
	FieldVersion  = "version"  // task-set version
	FieldPrevious = "previous" // task-set version replaced
	FieldAdded    = "added"    // tasks added by a reload
	FieldChanged  = "changed"  // tasks changed by a reload
	FieldRemoved  = "removed"  // tasks removed by a reload
	FieldChange   = "change"   // registered: added, changed or removed
	FieldCount    = "count"    // missed: slots this event stands for
	FieldUntil    = "until"    // missed: last slot, when count > 1
	FieldPolicy   = "policy"   // missed: the policy that decided it
	FieldReason   = "reason"   // why (a dead letter, a miss)
	FieldOutput   = "output"   // the tail of what a run printed
	FieldFired    = "fired"    // an outcome: when its fire entry was appended, Unix milliseconds
	FieldStarted  = "started"  // an outcome: when the run started (the worker's clock), Unix milliseconds
	FieldLastRun  = "lastrun"  // an outcome: "1" when it became the task's last outcome (see Event.LastRun)
	FieldDue      = "due"      // a jittered fire: when it is due (its slot plus the jitter delay), Unix milliseconds
	FieldOrigin   = "origin"   // a fire not planned by a planner for its slot: "backfill" (taskino backfill)
)

// ReplacedPrefix begins the reason of a cancelled event that is final: its
// run was replaced by a newer fire under overlap cancel-previous ("replaced
// by fire X (overlap: cancel-previous)"). A cancelled event without it was
// cut by its worker's stop, and the fire runs again.
const ReplacedPrefix = "replaced by "

// OriginBackfill is the FieldOrigin of a fire appended by a backfill (and
// of its events).
const OriginBackfill = "backfill"

// EncodingVersion is the value of FieldV written by this package.
const EncodingVersion = "1"

// Dead-letter entry fields. An entry on the dead-letter stream
// (taskino:{ns}:dead) carries the reason, where it came from, and the
// original entry's fields, each prefixed with DeadFieldPrefix, byte for
// byte (up to a bound the store sets; DeadTruncated counts those not
// copied). The store writes and reads them; they are named here, with
// every other stream field.
const (
	DeadReason      = "reason"    // why it was dead-lettered
	DeadError       = "error"     // the last failure, if any
	DeadSource      = "source"    // the stream the entry came from
	DeadEntry       = "entry"     // the entry's id there
	DeadWorker      = "worker"    // the worker that dead-lettered it
	DeadFieldPrefix = "f:"        // prefix of each original field's name
	DeadTruncated   = "truncated" // on a huge entry: how many original fields were not copied
	DeadCut         = "cut"       // original fields kept only in part: "name:size,..." (their full sizes in bytes)
)

// MaxDeadFieldBytes bounds each original field a dead letter copies: a
// longer value keeps its first MaxDeadFieldBytes bytes, and DeadCut names
// it with its full size. A field a bounded reader got as a CutValue (over
// MaxReadBytes) keeps nothing, and DeadCut names its size too. An entry
// with a 100 MB payload then costs its dead letter a few bytes, not a copy
// of the payload.
const MaxDeadFieldBytes = 64 << 10

// MaxReadBytes is the longest string a taskino process reads from Redis
// (see store.BoundReplies): a longer one, which taskino never writes (a
// payload is at most MaxPayload, a task's definition at most MaxReadBytes),
// reaches it as CutValue(its size) and is never held in its memory whole.
// A fire entry with such a field is dead-lettered naming it and its size.
const MaxReadBytes = 1 << 20

// cutPrefix begins a CutValue: a NUL, which no field taskino reads takes
// as valid text, so a marker is never mistaken for a value.
const cutPrefix = "\x00taskino:cut:"

// CutValue is what a reader bounded by MaxReadBytes gets in place of a
// string of size bytes.
func CutValue(size int64) string { return cutPrefix + strconv.FormatInt(size, 10) }

// CutSize says whether v is a CutValue, and the size of the string it
// stands for.
func CutSize(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, cutPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil && n >= 0
}

// DecodeError is a stream entry that does not decode: which field, and what
// is wrong with it.
type DecodeError struct {
	Field   string
	Problem string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return fmt.Sprintf("field %q: %s", e.Field, e.Problem)
}

func decodeErr(field, format string, args ...any) error {
	return &DecodeError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Type is the kind of a lifecycle event.
type Type string

// The event types.
const (
	TypeRegistered Type = "registered" // a task was added, changed or removed by a reload
	TypeReload     Type = "reload"     // a new task-set version was applied
	TypeFired      Type = "fired"      // a planner appended a fire
	TypeMissed     Type = "missed"     // slots that were not fired, under the misfire policy
	TypeStarted    Type = "started"    // a worker started a run
	TypeCompleted  Type = "completed"  // a run succeeded
	TypeFailed     Type = "failed"     // a run failed
	TypeCancelled  Type = "cancelled"  // a run was cut: by its worker's stop (the fire runs again), or by a newer fire under overlap cancel-previous (final)
	TypeStuck      Type = "stuck"      // a task's fires wait: no live worker of their queue runs it
	TypeRetried    Type = "retried"    // a failed fire was scheduled again
	TypeDead       Type = "dead"       // a fire or entry was dead-lettered
	TypeNodeUp     Type = "node_up"    // a planner or worker started
	TypeNodeDown   Type = "node_down"  // a planner or worker stopped
	TypePaused     Type = "paused"     // a task was paused: it is not planned until resumed
	TypeResumed    Type = "resumed"    // a paused task was resumed; it plans from now on
)

// Event is one entry of the events stream. Which fields an event carries
// depends on its type (see the fields table in this file); the others are
// zero.
type Event struct {
	// ID is the stream entry id; set by the reader, never encoded.
	ID       string
	Type     Type
	Task     string
	Fire     string
	At       time.Time
	Payload  string
	Attempt  int
	Queue    string
	Mode     Mode
	Worker   string
	Status   string
	CostMs   int64
	Error    string
	Version  int64
	Previous int64
	Added    int
	Changed  int
	Removed  int
	Change   string
	Count    int64
	Until    time.Time
	Policy   Misfire
	Reason   string
	Output   string
	// Fired is when the fire's entry was appended, and Started when the
	// run started (an outcome's).
	Fired, Started time.Time
	// Due is the fire's due time when it has one (Fire.Due: a jittered
	// fire's); lateness is measured from DueAt.
	Due time.Time
	// Origin is the fire's Origin (OriginBackfill), on its events.
	Origin string
	// LastRun, on an outcome (completed, failed, dead), is set
	// by the store, never by the writer: the outcome became the task's
	// last outcome (and, completed, its last success) in the per-task
	// state, in the same step that appended the event. An outcome that
	// is not set lost to a later slot's, already recorded.
	LastRun bool
}

// field describes one event field: whether an Event carries it (a zero
// value is not written), its text, and how to set it from text.
type field struct {
	isSet func(e *Event) bool
	text  func(e *Event) string
	set   func(e *Event, v string) error
}

// get returns the field's text and whether it is set.
func (f field) get(e *Event) (string, bool) {
	if !f.isSet(e) {
		return "", false
	}
	return f.text(e), true
}

func strField(p func(e *Event) *string) field {
	return field{
		isSet: func(e *Event) bool { return *p(e) != "" },
		text:  func(e *Event) string { return *p(e) },
		set:   func(e *Event, v string) error { *p(e) = v; return nil },
	}
}

func intField(name string, p func(e *Event) *int64) field {
	return field{
		isSet: func(e *Event) bool { return *p(e) != 0 },
		text:  func(e *Event) string { return strconv.FormatInt(*p(e), 10) },
		set: func(e *Event, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return decodeErr(name, "%q is not a whole number", clip(v))
			}
			*p(e) = n
			return nil
		},
	}
}

func smallIntField(name string, p func(e *Event) *int) field {
	return field{
		isSet: func(e *Event) bool { return *p(e) != 0 },
		text:  func(e *Event) string { return strconv.Itoa(*p(e)) },
		set: func(e *Event, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return decodeErr(name, "%q is not a whole number", clip(v))
			}
			*p(e) = n
			return nil
		},
	}
}

func timeField(name string, p func(e *Event) *time.Time) field {
	return field{
		isSet: func(e *Event) bool { return !p(e).IsZero() },
		text:  func(e *Event) string { return ms(*p(e)) },
		set: func(e *Event, v string) error {
			t, err := parseMs(name, v)
			*p(e) = t
			return err
		},
	}
}

var fields = map[string]field{
	FieldTask:     strField(func(e *Event) *string { return &e.Task }),
	FieldFire:     strField(func(e *Event) *string { return &e.Fire }),
	FieldAt:       timeField(FieldAt, func(e *Event) *time.Time { return &e.At }),
	FieldPayload:  strField(func(e *Event) *string { return &e.Payload }),
	FieldAttempt:  smallIntField(FieldAttempt, func(e *Event) *int { return &e.Attempt }),
	FieldQueue:    strField(func(e *Event) *string { return &e.Queue }),
	FieldMode:     strField(func(e *Event) *string { return (*string)(&e.Mode) }),
	FieldWorker:   strField(func(e *Event) *string { return &e.Worker }),
	FieldStatus:   strField(func(e *Event) *string { return &e.Status }),
	FieldCostMs:   intField(FieldCostMs, func(e *Event) *int64 { return &e.CostMs }),
	FieldError:    strField(func(e *Event) *string { return &e.Error }),
	FieldVersion:  intField(FieldVersion, func(e *Event) *int64 { return &e.Version }),
	FieldPrevious: intField(FieldPrevious, func(e *Event) *int64 { return &e.Previous }),
	FieldAdded:    smallIntField(FieldAdded, func(e *Event) *int { return &e.Added }),
	FieldChanged:  smallIntField(FieldChanged, func(e *Event) *int { return &e.Changed }),
	FieldRemoved:  smallIntField(FieldRemoved, func(e *Event) *int { return &e.Removed }),
	FieldChange:   strField(func(e *Event) *string { return &e.Change }),
	FieldCount:    intField(FieldCount, func(e *Event) *int64 { return &e.Count }),
	FieldUntil:    timeField(FieldUntil, func(e *Event) *time.Time { return &e.Until }),
	FieldPolicy:   strField(func(e *Event) *string { return (*string)(&e.Policy) }),
	FieldReason:   strField(func(e *Event) *string { return &e.Reason }),
	FieldOutput:   strField(func(e *Event) *string { return &e.Output }),
	FieldFired:    timeField(FieldFired, func(e *Event) *time.Time { return &e.Fired }),
	FieldStarted:  timeField(FieldStarted, func(e *Event) *time.Time { return &e.Started }),
	FieldDue:      timeField(FieldDue, func(e *Event) *time.Time { return &e.Due }),
	FieldOrigin:   strField(func(e *Event) *string { return &e.Origin }),
	FieldLastRun: {
		isSet: func(e *Event) bool { return e.LastRun },
		text:  func(*Event) string { return "1" },
		set: func(e *Event, v string) error {
			if v != "1" {
				return decodeErr(FieldLastRun, "%q; want 1 (or no field)", clip(v))
			}
			e.LastRun = true
			return nil
		},
	},
}

// typeFields lists, per type, the fields it may carry; the ones before the
// "|" are required. Encode writes them in this order.
var typeFields = map[Type]string{
	TypeRegistered: "task change | version",
	TypeReload:     "version | previous added changed removed",
	TypeFired:      "task fire at | queue mode payload attempt worker due origin",
	TypeMissed:     "task at count policy | until reason worker fire queue origin",
	TypeStarted:    "task fire at | attempt worker queue due origin",
	TypeCompleted:  "task fire at | attempt worker cost_ms fired started lastrun status queue output due origin",
	TypeFailed:     "task fire at | attempt worker cost_ms error fired started lastrun status queue output due origin",
	TypeCancelled:  "task fire at reason | attempt worker cost_ms error fired started lastrun queue output due origin",
	TypeStuck:      "task reason | fire at queue worker",
	TypeRetried:    "task fire at attempt | worker error reason origin",
	TypeDead:       "reason | task fire at attempt worker error fired lastrun queue origin",
	TypeNodeUp:     "worker | status",
	TypeNodeDown:   "worker | status",
	TypePaused:     "task | worker reason",
	TypeResumed:    "task | worker reason",
}

type fieldSet struct {
	required []string
	allowed  map[string]bool
	order    []string
	// The fields in order, and the fields a type does not carry, for
	// Encode.
	carried, others []namedField
}

type namedField struct {
	name     string
	boxed    any // name, for AppendArgs
	required bool
	field
}

var typeSets = func() map[Type]fieldSet {
	out := make(map[Type]fieldSet, len(typeFields))
	for t, s := range typeFields {
		req, opt, _ := strings.Cut(s, "|")
		fs := fieldSet{allowed: map[string]bool{}}
		fs.required = strings.Fields(req)
		fs.order = append(strings.Fields(req), strings.Fields(opt)...)
		for _, f := range fs.order {
			if _, ok := fields[f]; !ok {
				panic("events: type " + string(t) + " lists unknown field " + f)
			}
			fs.allowed[f] = true
		}
		for _, name := range fs.order {
			fs.carried = append(fs.carried, namedField{name, name, slices.Contains(fs.required, name), fields[name]})
		}
		for name, f := range fields {
			if !fs.allowed[name] {
				fs.others = append(fs.others, namedField{name: name, field: f})
			}
		}
		slices.SortFunc(fs.others, func(a, b namedField) int { return strings.Compare(a.name, b.name) })
		out[t] = fs
	}
	return out
}()

// DueAt is when the event's fire was due: Due, or At when it has none.
// A run's lateness is its Started minus DueAt.
func (e *Event) DueAt() time.Time { return DueTime(e.At, e.Due) }

// Encode returns the event as stream fields in XADD order: v, type, then the
// type's fields that are set. It fails on an unknown type, a missing required
// field, or a field set that the type does not carry.
func (e Event) Encode() ([]string, error) {
	args, err := e.AppendArgs(nil)
	if err != nil {
		return nil, err
	}
	return argStrings(args), nil
}

// argStrings is what AppendArgs appended (strings only) as strings.
func argStrings(args []any) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a.(string)
	}
	return out
}

// AppendArgs appends the event's stream fields, in XADD order, to dst as
// command arguments (go-redis takes []any): the form every script call
// takes. It refuses an event that lacks a field its type requires or sets
// one its type does not carry.
func (e *Event) AppendArgs(dst []any) ([]any, error) {
	fs, err := e.fieldSet()
	if err != nil {
		return dst, err
	}
	dst = append(dst, boxedV, boxedVersion, boxedType, string(e.Type))
	for _, f := range fs.carried {
		if f.isSet(e) {
			dst = append(dst, f.boxed, f.text(e))
		}
	}
	return dst, nil
}

// MissedKind is the reason of a missed event as one word, for a metric
// label (the event's Reason is text for people): overlap (a run of the task
// still held it), duplicate_id (a manual trigger's id was used already),
// paused (slots passed while the task was paused), late (planned later than
// the misfire grace: planners were down or behind), waited (its fire waited
// past the grace for a worker of its queue that runs the task), no_slot (a
// once instant or a window that ended before the task was planned), stale
// (a fire planned ahead whose task was changed or removed before it was
// due; one paused is paused), backlog (its queue held the namespace's
// fires max backlog of fires no worker read), or other.
func MissedKind(e Event) string {
	switch {
	case strings.HasPrefix(string(e.Policy), "overlap-"):
		return "overlap"
	case e.Policy == "duplicate-id":
		return "duplicate_id"
	case strings.HasPrefix(e.Reason, "paused"):
		return "paused"
	case strings.HasPrefix(e.Reason, "planned ") && strings.Contains(e.Reason, "grace"):
		return "late"
	case strings.HasPrefix(e.Reason, "waited ") || strings.HasPrefix(e.Reason, "read "):
		return "waited"
	case strings.Contains(e.Reason, "no slot"):
		return "no_slot"
	case e.Policy == "stale":
		return "stale"
	case e.Policy == "backlog":
		return "backlog"
	}
	return "other"
}

// FieldHistory is the one field of a compact history entry: the event's
// fields as a JSON object (see AppendHistory).
const FieldHistory = "e"

// AppendHistory appends to dst the compact form of an event a task's
// history keeps, from args, the event's fields as AppendArgs wrote them
// (and fired and started, when set, which the history keeps and the
// events stream need not): a JSON object of every field but v, status,
// queue and output (the type says the status; the queue is the spec's; an
// output may be 8 KB, and a history keeps a hundred entries per task),
// each value a string.
// DecodeHistory reads it back. One field costs Redis less to append than
// a dozen.
func AppendHistory(dst []byte, args []any, fired, started time.Time) []byte {
	dst = append(dst, '{')
	first := true
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{FieldFired, fired}, {FieldStarted, started}} {
		if !f.t.IsZero() {
			dst = AppendJSONString(dst, f.name)
			dst = append(dst, ':', '"')
			dst = strconv.AppendInt(dst, f.t.UnixMilli(), 10)
			dst = append(dst, '"', ',')
		}
	}
	if len(dst) > 0 && dst[len(dst)-1] == ',' {
		dst = dst[:len(dst)-1]
		first = false
	}
	for k := 2; k+1 < len(args); k += 2 {
		name, _ := args[k].(string)
		switch name {
		case FieldStatus, FieldQueue, FieldOutput:
			continue
		}
		v, _ := args[k+1].(string)
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = AppendJSONString(dst, name)
		dst = append(dst, ':')
		dst = AppendJSONString(dst, v)
	}
	return append(dst, '}')
}

// DecodeHistory decodes an entry of a task's history: the compact form
// (one field, FieldHistory) or an event's fields, as DecodeEvent does.
func DecodeHistory(entryID string, in map[string]string) (Event, error) {
	raw, ok := in[FieldHistory]
	if !ok || len(in) != 1 {
		return DecodeEvent(entryID, in)
	}
	m := map[string]string{}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return Event{}, decodeErr(FieldHistory, "not a JSON object of strings: %v", err)
	}
	m[FieldV] = EncodingVersion
	return DecodeEvent(entryID, m)
}

// Field names and the version boxed once, so AppendArgs does not allocate
// for them.
var boxedV, boxedVersion, boxedType any = FieldV, EncodingVersion, FieldType

// fieldSet returns the fields of e's type, after checking that e sets
// every required one and none the type does not carry.
func (e *Event) fieldSet() (fieldSet, error) {
	fs, ok := typeSets[e.Type]
	if !ok {
		return fieldSet{}, decodeErr(FieldType, "unknown event type %q", clip(string(e.Type)))
	}
	for _, f := range fs.others {
		if f.isSet(e) {
			return fieldSet{}, decodeErr(f.name, "set, but a %s event does not carry it", e.Type)
		}
	}
	for _, f := range fs.carried {
		if f.required && !f.isSet(e) {
			return fieldSet{}, decodeErr(f.name, "missing; a %s event requires it", e.Type)
		}
	}
	return fs, nil
}

// DecodeEvent decodes an events-stream entry, strictly: the encoding
// version must be 1, the type known, required fields present, no field
// outside the type's, numbers well formed, text UTF-8.
func DecodeEvent(entryID string, in map[string]string) (Event, error) {
	if err := checkCut(in); err != nil {
		return Event{}, err
	}
	if err := checkVersion(in); err != nil {
		return Event{}, err
	}
	if _, ok := in[FieldV]; !ok {
		return Event{}, decodeErr(FieldV, "missing; an event carries its encoding version")
	}
	e := Event{ID: entryID, Type: Type(in[FieldType])}
	fs, ok := typeSets[e.Type]
	if !ok {
		return Event{}, decodeErr(FieldType, "unknown event type %q", clip(in[FieldType]))
	}
	for k, v := range in {
		if k == FieldV || k == FieldType {
			continue
		}
		if !fs.allowed[k] {
			return Event{}, decodeErr(k, "not a field of a %s event", e.Type)
		}
		if !utf8.ValidString(v) {
			return Event{}, decodeErr(k, "not valid UTF-8 text")
		}
		if err := fields[k].set(&e, v); err != nil {
			return Event{}, err
		}
	}
	for _, r := range fs.required {
		if _, set := fields[r].get(&e); !set {
			return Event{}, decodeErr(r, "missing; a %s event requires it", e.Type)
		}
	}
	return e, nil
}

// checkCut refuses an entry with a field a bounded reader cut (CutValue),
// naming it and its size. It is checked first, so the reason names the cut
// field whatever else is wrong with the entry.
func checkCut(in map[string]string) error {
	for k, v := range in {
		if n, ok := CutSize(k); ok {
			return decodeErr("", "a field name of %d bytes; taskino reads at most %d", n, MaxReadBytes)
		}
		if n, ok := CutSize(v); ok {
			return decodeErr(k, "%d bytes; taskino reads at most %d (payloads at most %d)", n, MaxReadBytes, MaxPayload)
		}
	}
	return nil
}

func checkVersion(in map[string]string) error {
	if v, ok := in[FieldV]; ok && v != EncodingVersion {
		return decodeErr(FieldV, "encoding version %q; this build reads %q", clip(v), EncodingVersion)
	}
	return nil
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func parseMs(name, v string) (time.Time, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, decodeErr(name, "%q; want Unix milliseconds, a whole number from 0", clip(v))
	}
	return time.UnixMilli(n).UTC(), nil
}

// EntryTime is the time part of a stream entry id "ms-seq": when Redis
// appended the entry, by its clock. An id of another form is an error.
func EntryTime(id string) (time.Time, error) {
	msPart, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, decodeErr("", "stream entry id %q is not of the form ms-seq", clip(id))
	}
	return time.UnixMilli(n).UTC(), nil
}

// clip shortens text quoted in an error, so a 1 MiB field does not make a
// 1 MiB error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Known reports whether t is an event type of this encoding version.
func (t Type) Known() bool {
	_, ok := typeFields[t]
	return ok
}
