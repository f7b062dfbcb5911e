package events

import (
	"testing"
	"time"
)

// The encodings on a fire's path: a planner encodes the fire and its fired
// event, a worker decodes the fire and encodes started and completed events
// and the last-run record, a listener decodes events.
//
//	go test ./events -run '^$' -bench . -benchmem

var benchAt = time.UnixMilli(1_800_000_000_000).UTC()

func benchEvent() Event {
	return Event{Type: TypeCompleted, Task: "report-daily", Fire: FireID("report-daily", benchAt), At: benchAt,
		Attempt: 1, Worker: "worker-1a2b3c4d", Status: StatusCompleted, CostMs: 12, Queue: DefaultQueue}
}

func BenchmarkEventEncode(b *testing.B) {
	e := benchEvent()
	for b.Loop() {
		if _, err := e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventAppendArgs is the form the planner's and worker's scripts
// take: the fields appended to a reused argument list.
func BenchmarkEventAppendArgs(b *testing.B) {
	e := benchEvent()
	args := make([]any, 0, 64)
	for b.Loop() {
		var err error
		if args, err = e.AppendArgs(args[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventDecode(b *testing.B) {
	kv, err := benchEvent().Encode()
	if err != nil {
		b.Fatal(err)
	}
	in := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		in[kv[i]] = kv[i+1]
	}
	for b.Loop() {
		if _, err := DecodeEvent("1800000000000-0", in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFireFields(b *testing.B) {
	f := Fire{ID: FireID("report-daily", benchAt), Task: "report-daily", At: benchAt, Attempt: 1}
	for b.Loop() {
		_ = f.Fields()
	}
}

func BenchmarkDecodeFire(b *testing.B) {
	f := Fire{ID: FireID("report-daily", benchAt), Task: "report-daily", At: benchAt, Payload: "region=eu", Attempt: 1}
	kv := f.Fields()
	in := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		in[kv[i]] = kv[i+1]
	}
	for b.Loop() {
		if _, err := DecodeFire("1800000000000-0", in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalSpec(b *testing.B) {
	raw, err := MarshalSpec(Spec{Name: "report-daily", Trigger: Cron("0 30 9 * * MON-FRI").In("Europe/Paris"),
		Payload: "region=eu", Attempts: 3})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := UnmarshalSpec(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalLastRun(b *testing.B) {
	r := LastRun{Task: "report-daily", Fire: FireID("report-daily", benchAt), Scheduled: benchAt,
		Started: benchAt, Finished: benchAt.Add(12 * time.Millisecond), Status: StatusCompleted}
	for b.Loop() {
		if _, err := MarshalLastRun(r); err != nil {
			b.Fatal(err)
		}
	}
}
