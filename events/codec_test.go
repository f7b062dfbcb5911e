package events

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func pairs(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestFireRoundTrip(t *testing.T) {
	t.Parallel()
	f := Fire{ID: FireID("report", time.UnixMilli(1_800_000_000_123)), Task: "report", At: time.UnixMilli(1_800_000_000_123).UTC(), Payload: "héllo", Attempt: 2}
	got, err := DecodeFire("1-0", pairs(f.Fields()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, f) {
		t.Fatalf("got %+v, want %+v", got, f)
	}
	if f.ID != "report@1800000000123" {
		t.Fatalf("fire id %q, want task@ms", f.ID)
	}
	for _, f := range []Fire{f, {ID: "x", Task: "t", At: f.At, Attempt: 1}} {
		if got, want := f.AppendArgs([]any{"k"}), append([]any{"k"}, strs(f.Fields())...); !reflect.DeepEqual(got, want) {
			t.Fatalf("AppendArgs gave %v, want %v", got, want)
		}
	}
}

// A hand-written XADD (the Redis contract) decodes: task alone, or with
// payload and id.
func TestDecodeManualFire(t *testing.T) {
	t.Parallel()
	f, err := DecodeFire("1800000000000-3", map[string]string{"task": "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if f.ID != "m-1800000000000-3" || !f.At.Equal(time.UnixMilli(1_800_000_000_000)) || f.Attempt != 1 {
		t.Fatalf("got %+v", f)
	}
	f, err = DecodeFire("1800000000000-3", map[string]string{"task": "hello", "payload": "x", "id": "order-42"})
	if err != nil || f.ID != "order-42" || f.Payload != "x" {
		t.Fatalf("got %+v, %v", f, err)
	}
}

func TestDecodeFireErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		fields map[string]string
		field  string
	}{
		{"no task", map[string]string{"payload": "x"}, "task"},
		{"bad task name", map[string]string{"task": "a b"}, "task"},
		{"unknown field", map[string]string{"task": "a", "cmd": "rm -rf /"}, "cmd"},
		{"at not a number", map[string]string{"task": "a", "at": "soon"}, "at"},
		{"negative at", map[string]string{"task": "a", "at": "-5"}, "at"},
		{"attempt zero", map[string]string{"task": "a", "attempt": "0"}, "attempt"},
		{"payload too big", map[string]string{"task": "a", "payload": strings.Repeat("x", MaxPayload+1)}, "payload"},
		{"payload not UTF-8", map[string]string{"task": "a", "payload": "\xc3\x28"}, "payload"},
		{"id not UTF-8", map[string]string{"task": "a", "id": "\xff"}, "id"},
		{"future encoding", map[string]string{"task": "a", "v": "2"}, "v"},
	} {
		_, err := DecodeFire("1-0", c.fields)
		var de *DecodeError
		if !errors.As(err, &de) || de.Field != c.field {
			t.Errorf("%s: got %v, want a DecodeError on field %q", c.name, err, c.field)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("%s: error is %d bytes; errors quote at most a clip of the value", c.name, len(err.Error()))
		}
	}
}

func TestEventEncodeDecode(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_800_000_000_000).UTC()
	for _, e := range []Event{
		{Type: TypeFired, Task: "a", Fire: FireID("a", at), At: at, Queue: "default", Mode: ModeSingle, Worker: "p1"},
		{Type: TypeMissed, Task: "a", At: at, Count: 3, Until: at.Add(2 * time.Second), Policy: MisfireSkip, Reason: "late"},
		{Type: TypeReload, Version: 2, Previous: 1, Added: 1, Changed: 1, Removed: 1},
		{Type: TypeRegistered, Task: "a", Change: ChangeAdded, Version: 1},
		{Type: TypeCompleted, Task: "a", Fire: "f", At: at, CostMs: 12, Worker: "w", Attempt: 1, Status: StatusCompleted},
		{Type: TypeNodeUp, Worker: "w1"},
	} {
		kv, err := e.Encode()
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if kv[0] != FieldV || kv[2] != FieldType {
			t.Fatalf("%s: fields start %v, want v then type", e.Type, kv[:4])
		}
		args, err := e.AppendArgs([]any{"before"})
		if err != nil {
			t.Fatalf("%s: AppendArgs: %v", e.Type, err)
		}
		if want := append([]any{"before"}, strs(kv)...); !reflect.DeepEqual(args, want) {
			t.Fatalf("%s: AppendArgs gave %v, want %v", e.Type, args, want)
		}
		got, err := DecodeEvent("5-0", pairs(kv))
		if err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		e.ID = "5-0"
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("%s: got %+v, want %+v", e.Type, got, e)
		}
	}
}

func TestEventStrictness(t *testing.T) {
	t.Parallel()
	if _, err := (Event{Type: TypeFired, Task: "a"}).Encode(); err == nil || !strings.Contains(err.Error(), `"fire"`) {
		t.Fatalf("encode without a required field: %v", err)
	}
	if _, err := (Event{Type: TypeReload, Version: 1, Task: "a"}).Encode(); err == nil || !strings.Contains(err.Error(), `"task"`) {
		t.Fatalf("encode with a field the type does not carry: %v", err)
	}
	if _, err := (&Event{Type: TypeStarted, Task: "a", At: time.UnixMilli(1)}).AppendArgs(nil); err == nil || !strings.Contains(err.Error(), `"fire"`) {
		t.Fatalf("AppendArgs without a required field: %v", err)
	}
	for _, c := range []struct {
		in    map[string]string
		field string
	}{
		{map[string]string{"type": "fired", "task": "a", "fire": "f", "at": "1"}, "v"},
		{map[string]string{"v": "1", "type": "exploded"}, "type"},
		{map[string]string{"v": "1", "type": "reload", "version": "x"}, "version"},
		{map[string]string{"v": "1", "type": "reload", "version": "2", "task": "a"}, "task"},
		{map[string]string{"v": "1", "type": "reload"}, "version"},
		{map[string]string{"v": "1", "type": "failed", "task": "a", "fire": "f", "at": "1", "error": "\xff"}, "error"},
	} {
		_, err := DecodeEvent("1-0", c.in)
		var de *DecodeError
		if !errors.As(err, &de) || de.Field != c.field {
			t.Errorf("%v: got %v, want a DecodeError on %q", c.in, err, c.field)
		}
	}
}

func TestSpecRoundTripAndScheduleKey(t *testing.T) {
	t.Parallel()
	start := time.UnixMilli(1_800_000_000_000).UTC()
	s := Spec{Name: "a", Trigger: Every(1500 * time.Millisecond).From(start).Until(start.Add(time.Hour)), Payload: "p", Timeout: time.Minute}
	b, err := MarshalSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s.WithDefaults()) {
		t.Fatalf("got %+v, want %+v", got, s.WithDefaults())
	}
	b2, _ := MarshalSpec(got)
	if string(b) != string(b2) {
		t.Fatalf("re-encoding differs:\n%s\n%s", b, b2)
	}
	// The payload is not part of the schedule; the period is.
	p := s
	p.Payload = "other"
	if ScheduleKey(p) != ScheduleKey(s) {
		t.Fatal("a payload change changed the schedule key")
	}
	p.Trigger.Period = 2 * time.Second
	if ScheduleKey(p) == ScheduleKey(s) {
		t.Fatal("a period change kept the schedule key")
	}
}

// FuzzEventRoundTrip: whatever fields decode as an event re-encode to fields
// that decode to the same event; nothing panics.
func FuzzEventRoundTrip(f *testing.F) {
	f.Add("fired", "a", "a@1", "1800000000000", "", "0")
	f.Add("missed", "b", "", "5", "3", "1")
	f.Add("reload", "", "", "", "", "2")
	f.Add("nope", "\xff", "x", "-1", "y", "z")
	f.Fuzz(func(t *testing.T, typ, task, fire, at, count, version string) {
		in := map[string]string{"v": "1", "type": typ}
		for k, v := range map[string]string{"task": task, "fire": fire, "at": at, "count": count, "version": version, "policy": "skip"} {
			if v != "" {
				in[k] = v
			}
		}
		e, err := DecodeEvent("1-0", in)
		if err != nil {
			return
		}
		kv, err := e.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", e, err)
		}
		back, err := DecodeEvent("1-0", pairs(kv))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, back)
		}
	})
}

// FuzzFireRoundTrip: a fire built from any valid parts round-trips, and
// DecodeFire never panics on arbitrary fields.
func FuzzFireRoundTrip(f *testing.F) {
	f.Add("hello", "hello@1", int64(1_800_000_000_000), "payload", 1, "extra")
	f.Add("a", "", int64(0), "", 3, "")
	f.Fuzz(func(t *testing.T, task, id string, at int64, payload string, attempt int, junk string) {
		_, _ = DecodeFire("1-0", map[string]string{"task": task, "id": id, "payload": payload, junk: junk})
		if ValidateName(task) != nil || id == "" || len(id) > MaxFireIDLen || !utf8.ValidString(id) ||
			at < 0 || at > 1<<50 || len(payload) > MaxPayload || !utf8.ValidString(payload) || attempt < 1 {
			return
		}
		in := Fire{ID: id, Task: task, At: time.UnixMilli(at).UTC(), Payload: payload, Attempt: attempt}
		out, err := DecodeFire("1-0", pairs(in.Fields()))
		if err != nil {
			t.Fatalf("%+v does not decode: %v", in, err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("round trip changed the fire:\n%+v\n%+v", in, out)
		}
	})
}

func strs(kv []string) []any {
	out := make([]any, len(kv))
	for i, v := range kv {
		out[i] = v
	}
	return out
}
