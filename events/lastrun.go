package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Run statuses kept in a LastRun.
const (
	StatusFired     = "fired"     // appended by a planner; no worker has reported yet
	StatusRunning   = "running"   // a worker started it
	StatusCompleted = "completed" // it succeeded
	StatusFailed    = "failed"    // its last attempt failed
	StatusDead      = "dead"      // its last attempt failed and it was dead-lettered
)

// LastRun is what is known of a task's most recent fire.
type LastRun struct {
	Task string `json:"task"`
	Fire string `json:"fire"`
	// Scheduled is the slot the fire was planned for.
	Scheduled time.Time `json:"-"`
	// Due is when a jittered fire was due (Fire.Due); zero otherwise.
	Due time.Time `json:"-"`
	// Fired is when the planner appended it (Redis server time).
	Fired time.Time `json:"-"`
	// Started and Finished are set by the worker that ran it.
	Started  time.Time `json:"-"`
	Finished time.Time `json:"-"`
	Status   string    `json:"status"`
	Error    string    `json:"error,omitempty"`
	// Attempt and Worker are the try and the worker of a run (a worker's
	// record; zero on a planner's).
	Attempt int    `json:"attempt,omitempty"`
	Worker  string `json:"worker,omitempty"`
	// Fails, on a task's last outcome, counts the slots that failed since
	// its last success (this one included; a slot's retries count once).
	Fails int `json:"fails,omitempty"`
}

type wireLastRun struct {
	LastRun
	Scheduled int64 `json:"scheduled"`
	Due       int64 `json:"due,omitempty"`
	Fired     int64 `json:"fired,omitempty"`
	Started   int64 `json:"started,omitempty"`
	Finished  int64 `json:"finished,omitempty"`
}

func optMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromOptMs(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// MarshalLastRun encodes a last-run record in its stored form.
func MarshalLastRun(r LastRun) ([]byte, error) {
	return AppendLastRun(make([]byte, 0, 128+len(r.Task)+len(r.Fire)+len(r.Error)), r), nil
}

// appendOptMs appends member and t in Unix ms, unless t is zero.
func appendOptMs(dst []byte, member string, t time.Time) []byte {
	if ms := optMs(t); ms != 0 {
		dst = append(dst, member...)
		dst = strconv.AppendInt(dst, ms, 10)
	}
	return dst
}

// AppendLastRun appends r's stored form to dst: JSON with the members
// task, fire, status, error (when set), scheduled, then due, fired, started and
// finished (Unix ms, each when set), attempt, worker and fails (each when
// set), strings escaped as encoding/json
// escapes them. It is what the planner and the worker write for every
// fire, so it is built by hand rather than by reflection.
func AppendLastRun(dst []byte, r LastRun) []byte {
	dst = append(dst, `{"task":`...)
	dst = AppendJSONString(dst, r.Task)
	dst = append(dst, `,"fire":`...)
	dst = AppendJSONString(dst, r.Fire)
	dst = append(dst, `,"status":`...)
	dst = AppendJSONString(dst, r.Status)
	if r.Error != "" {
		dst = append(dst, `,"error":`...)
		dst = AppendJSONString(dst, r.Error)
	}
	dst = append(dst, `,"scheduled":`...)
	dst = strconv.AppendInt(dst, r.Scheduled.UnixMilli(), 10)
	if r.Due.After(r.Scheduled) {
		dst = appendOptMs(dst, `,"due":`, r.Due)
	}
	dst = appendOptMs(dst, `,"fired":`, r.Fired)
	dst = appendOptMs(dst, `,"started":`, r.Started)
	dst = appendOptMs(dst, `,"finished":`, r.Finished)
	if r.Attempt != 0 {
		dst = append(dst, `,"attempt":`...)
		dst = strconv.AppendInt(dst, int64(r.Attempt), 10)
	}
	if r.Worker != "" {
		dst = append(dst, `,"worker":`...)
		dst = AppendJSONString(dst, r.Worker)
	}
	if r.Fails != 0 {
		dst = append(dst, `,"fails":`...)
		dst = strconv.AppendInt(dst, int64(r.Fails), 10)
	}
	return append(dst, '}')
}

// AppendJSONString appends s as a JSON string to dst, escaped exactly as
// encoding/json escapes it (HTML characters, U+2028 and U+2029 as \u
// escapes, invalid UTF-8 as U+FFFD), so text built here and text built by
// json.Marshal match byte for byte.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// UnmarshalLastRun decodes a last-run record from its stored form.
func UnmarshalLastRun(b []byte) (LastRun, error) {
	var w wireLastRun
	if err := json.Unmarshal(b, &w); err != nil {
		return LastRun{}, fmt.Errorf("decode last run: %w", err)
	}
	r := w.LastRun
	r.Scheduled = time.UnixMilli(w.Scheduled).UTC()
	r.Due = fromOptMs(w.Due)
	r.Fired, r.Started, r.Finished = fromOptMs(w.Fired), fromOptMs(w.Started), fromOptMs(w.Finished)
	return r, nil
}

// DueAt is when the record's fire was due: Due, or Scheduled when it has
// none. A run's lateness is Started minus DueAt.
func (r *LastRun) DueAt() time.Time { return DueTime(r.Scheduled, r.Due) }
