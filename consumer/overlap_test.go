package consumer

import (
	"testing"
	"time"
)

// TestLocalOverlap: a broadcast task runs once at a time here; under
// buffer-one one fire waits for the run under way, and is released for the
// next Fetch when it ends; others are dropped.
func TestLocalOverlap(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	l := newLocalOverlap()
	for i, want := range []struct{ run, kept bool }{{true, false}, {false, true}, {false, false}} {
		if run, kept := l.begin(fireAt("b", at.Add(time.Duration(i)*time.Second)), true); run != want.run || kept != want.kept {
			t.Errorf("buffer-one fire %d: run %v kept %v, want %v %v", i, run, kept, want.run, want.kept)
		}
	}
	if run, kept := l.begin(fireAt("other", at), false); !run || kept {
		t.Errorf("another task's fire: run %v kept %v, want it run", run, kept)
	}
	if run, kept := l.begin(fireAt("other", at.Add(time.Second)), false); run || kept {
		t.Errorf("skip, its task running: run %v kept %v, want it dropped", run, kept)
	}
	if got := l.takeLater(); len(got) != 0 {
		t.Fatalf("released %d before any run ended", len(got))
	}
	l.end("b")
	got := l.takeLater()
	if len(got) != 1 || !got[0].Fire.At.Equal(at.Add(time.Second)) {
		t.Fatalf("released %v at the end of the run, want the fire kept (the second)", got)
	}
	if again := l.takeLater(); len(again) != 0 {
		t.Errorf("released twice: %v", again)
	}
	if run, _ := l.begin(&got[0], true); !run {
		t.Error("the released fire does not take the run: the task is still marked running")
	}
}
