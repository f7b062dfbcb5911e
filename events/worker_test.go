package events

import (
	"reflect"
	"testing"
	"time"
)

func TestWorkerStateRoundTrip(t *testing.T) {
	in := WorkerState{Node: "w1", Queues: []string{"default", "q"}, Tasks: []string{"a"}, Version: 7, Visibility: 1500 * time.Millisecond, Stale: true}
	b, err := MarshalWorkerState(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnmarshalWorkerState(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip of %+v: %+v, %v (JSON %s)", in, out, err, b)
	}
	for _, bad := range []string{`{}`, `{"node":"w","visibility_ms":-1}`, `{"node":"w","version":-2}`, `[`} {
		if _, err := UnmarshalWorkerState([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
