package events

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// FireID is the id of the fire of task at scheduled time at: the same task
// and slot give the same id on every planner, which is what lets a store
// refuse a second fire for one slot and a handler be idempotent.
func FireID(task string, at time.Time) string {
	return task + "@" + strconv.FormatInt(at.UnixMilli(), 10)
}

// Fire is one entry of a fire stream: a request to run a task once.
type Fire struct {
	// ID identifies the fire: FireID for planned fires, the caller's id
	// for a manual trigger that gave one, "m-" and the entry id otherwise.
	ID string
	// Task names the task to run.
	Task string
	// At is the scheduled time (for a manual trigger without one, the time
	// the entry was added).
	At time.Time
	// Payload is the task's payload text.
	Payload string
	// Attempt counts tries, 1 for the first.
	Attempt int
	// Due, on the fire of a task with a jitter, is when it is due: At
	// plus the task's JitterDelay. Zero otherwise (due at At).
	Due time.Time
	// Origin is OriginBackfill for a fire a backfill appended for a past
	// slot (it runs however late it is); "" for a planner's or a manual
	// trigger's.
	Origin string
}

// DueAt is when the fire is due: Due, or At when it has none.
func (f *Fire) DueAt() time.Time { return DueTime(f.At, f.Due) }

// DueTime is when a fire of slot at with due time due (zero: none) is
// due: due when it is after at, else at. Fires, events, last-run records
// and history slots all go by it.
func DueTime(at, due time.Time) time.Time {
	if due.After(at) {
		return due
	}
	return at
}

// MaxFireIDLen bounds the id a manual trigger may give.
const MaxFireIDLen = 256

// Fields encodes the fire as stream fields, in XADD order (what
// AppendArgs appends, as strings).
func (f Fire) Fields() []string { return argStrings(f.AppendArgs(nil)) }

// AppendArgs appends the fire's stream fields, in XADD order, to dst as
// command arguments (go-redis takes []any): the hot paths' form.
func (f *Fire) AppendArgs(dst []any) []any {
	dst = append(dst, boxedV, boxedVersion, boxedTask, f.Task, boxedID, f.ID, boxedAt, ms(f.At))
	if f.Payload != "" {
		dst = append(dst, boxedPayload, f.Payload)
	}
	if f.Attempt > 1 {
		dst = append(dst, boxedAttempt, strconv.Itoa(f.Attempt))
	}
	if f.Due.After(f.At) {
		dst = append(dst, boxedDue, ms(f.Due))
	}
	if f.Origin != "" {
		dst = append(dst, boxedOrigin, f.Origin)
	}
	return dst
}

// Fire field names boxed once, for Fire.AppendArgs.
var boxedTask, boxedID, boxedAt, boxedPayload, boxedAttempt, boxedDue, boxedOrigin any = FieldTask, FieldID, FieldAt, FieldPayload, FieldAttempt, FieldDue, FieldOrigin

// DecodeFire decodes a fire entry. entryID is the stream entry id; it gives
// the fire's id and time when a hand-written entry has neither. Fields not
// in the fire form, a bad task name, a payload over MaxPayload, text that
// is not UTF-8 and a field cut by a bounded reader (CutValue) are errors.
func DecodeFire(entryID string, fields map[string]string) (Fire, error) {
	if err := checkCut(fields); err != nil {
		return Fire{}, err
	}
	if err := checkVersion(fields); err != nil {
		return Fire{}, err
	}
	f := Fire{Attempt: 1}
	for k, v := range fields {
		switch k {
		case FieldV:
		case FieldTask:
			f.Task = v
		case FieldID:
			if v == "" || len(v) > MaxFireIDLen || !utf8.ValidString(v) {
				return Fire{}, decodeErr(k, "want 1 to %d bytes of UTF-8 text", MaxFireIDLen)
			}
			if i := controlAt(v); i >= 0 {
				return Fire{}, decodeErr(k, "a control character (%q at byte %d); want printable text", []rune(v[i:])[0], i)
			}
			f.ID = v
		case FieldAt:
			t, err := parseMs(k, v)
			if err != nil {
				return Fire{}, err
			}
			f.At = t
		case FieldPayload:
			if err := validatePayload("", v); err != nil {
				return Fire{}, decodeErr(k, "%s", err.(*SpecError).Problem)
			}
			f.Payload = v
		case FieldAttempt:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return Fire{}, decodeErr(k, "%q; want a whole number from 1", clip(v))
			}
			f.Attempt = n
		case FieldDue:
			t, err := parseMs(k, v)
			if err != nil {
				return Fire{}, err
			}
			f.Due = t
		case FieldOrigin:
			if v != OriginBackfill {
				return Fire{}, decodeErr(k, "%q; want backfill (or no field)", clip(v))
			}
			f.Origin = v
		default:
			return Fire{}, decodeErr(k, "not a field of a fire entry; want task, and optionally id, payload, at")
		}
	}
	if _, ok := fields[FieldTask]; !ok {
		return Fire{}, decodeErr(FieldTask, "missing; a fire entry names the task to run")
	}
	if err := ValidateName(f.Task); err != nil {
		return Fire{}, decodeErr(FieldTask, "%s", err.(*SpecError).Problem)
	}
	if f.ID == "" {
		f.ID = "m-" + entryID
	}
	if f.At.IsZero() {
		t, err := EntryTime(entryID)
		if err != nil {
			return Fire{}, err
		}
		f.At = t
	}
	if !f.Due.IsZero() && f.Due.Before(f.At) {
		return Fire{}, decodeErr(FieldDue, "%s is before at %s; a fire is due at or after its slot", ms(f.Due), ms(f.At))
	}
	return f, nil
}

// controlAt is the byte index of the first C0 or C1 control character (or
// DEL) of s, -1 when it has none: what a terminal acts on instead of
// printing.
func controlAt(s string) int {
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return i
		}
	}
	return -1
}
