package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// UnmarshalSpecString decodes a spec from its stored form, as UnmarshalSpec
// does, without copying the text first. A planner decodes the spec of
// every task it claims: stored forms written by MarshalSpec are read by a
// plain scan, without reflection (about 5 times faster); anything else (an
// escape inside a string, a key in another case, a null) goes through
// encoding/json, so every input decodes exactly as it would there.
func UnmarshalSpecString(s string) (Spec, error) {
	var w wireSpec
	if !decodeWireFast(s, &w) {
		w = wireSpec{}
		if err := json.Unmarshal([]byte(s), &w); err != nil {
			return Spec{}, fmt.Errorf("decode spec: %w", err)
		}
	}
	return w.spec()
}

// decodeWireFast decodes the flat object MarshalSpec writes: keys spelt as
// the wire tags, string values without escapes or control characters,
// integer values. It reports false for anything else, w then being partly
// set.
func decodeWireFast(s string, w *wireSpec) bool {
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return skipSpace(s, i+1) == len(s)
	}
	for {
		key, j, ok := plainJSONString(s, i)
		if !ok {
			return false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return false
		}
		i = skipSpace(s, i+1)
		if i >= len(s) {
			return false
		}
		if s[i] == '"' {
			v, j, ok := plainJSONString(s, i)
			if !ok || !w.setString(key, v) {
				return false
			}
			i = j
		} else {
			j := i
			if j < len(s) && s[j] == '-' {
				j++
			}
			k := j
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			// JSON forbids leading zeros; fractions and exponents are
			// left to encoding/json (an error for an integer field).
			if k == j || (s[j] == '0' && k > j+1) {
				return false
			}
			n, err := strconv.ParseInt(s[i:k], 10, 64)
			if err != nil || !w.setInt(key, n) {
				return false
			}
			i = k
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return skipSpace(s, i+1) == len(s)
		default:
			return false
		}
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// plainJSONString reads the JSON string at s[i] when it has no escape, no
// control character and only valid UTF-8 (what encoding/json would return
// unchanged), and returns it and the index after its closing quote.
func plainJSONString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			v := s[i+1 : j]
			return v, j + 1, utf8.ValidString(v)
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// setString sets the string field with wire key k; false when k is not one.
func (w *wireSpec) setString(k, v string) bool {
	switch k {
	case "name":
		w.Name = v
	case "kind":
		w.Kind = v
	case "cron":
		w.Cron = v
	case "tz":
		w.TZ = v
	case "queue":
		w.Queue = v
	case "mode":
		w.Mode = v
	case "misfire":
		w.Misfire = v
	case "overlap":
		w.Overlap = v
	case "payload":
		w.Payload = v
	case "dst_gap":
		w.DSTGap = v
	case "dst_overlap":
		w.DSTOverlap = v
	default:
		return false
	}
	return true
}

// setInt sets the integer field with wire key k; false when k is not one
// (or the value does not fit an int field).
func (w *wireSpec) setInt(k string, n int64) bool {
	switch k {
	case "v":
		return setIntField(&w.V, n)
	case "misfire_limit":
		return setIntField(&w.MisfireLimit, n)
	case "attempts":
		return setIntField(&w.Attempts, n)
	case "pause_after_failures":
		return setIntField(&w.PauseAfter, n)
	case "limit":
		return setIntField(&w.Limit, n)
	case "at":
		w.At = &n
	case "every_ms":
		w.EveryMs = n
	case "start":
		w.Start = &n
	case "end":
		w.End = &n
	case "misfire_grace_ms":
		w.GraceMs = n
	case "timeout_ms":
		w.TimeoutMs = n
	case "jitter_ms":
		w.JitterMs = n
	default:
		return false
	}
	return true
}

// setIntField sets an int field, unless n does not fit one (a 32-bit
// int), which encoding/json then reports.
func setIntField(dst *int, n int64) bool {
	if int64(int(n)) != n {
		return false
	}
	*dst = int(n)
	return true
}
