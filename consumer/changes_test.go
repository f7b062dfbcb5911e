package consumer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/store"
)

// TestChangeLogStale: a planned fire appended ahead of its due time is
// stale when its task was paused, changed or removed at or after the
// append; not when the change came before, when the fire was appended
// once due, or when it is a manual trigger or a retry.
func TestChangeLogStale(t *testing.T) {
	slot := time.UnixMilli(1_800_000_000_000).UTC()
	ahead := func(task string, appendedBefore time.Duration) *store.Delivery {
		d := fireAt(task, slot)
		d.EntryID = fmt.Sprintf("%d-0", slot.Add(-appendedBefore).UnixMilli())
		return d
	}
	l := newChangeLog(workerStore{}, zerolog.Nop(), time.Minute)
	l.note(store.Change{Task: "p", Kind: store.ChangePaused, At: slot.Add(-100 * time.Millisecond)})
	l.note(store.Change{Task: "c", Kind: store.ChangeChanged, At: slot.Add(-time.Second)}) // the append's very ms
	l.note(store.Change{Task: "old", Kind: store.ChangeChanged, At: slot.Add(-2 * time.Second)})
	l.note(store.Change{Task: "old", Kind: store.ChangeRemoved, At: slot.Add(-3 * time.Second)}) // older: ignored
	l.note(store.Change{Task: "after", Kind: store.ChangeChanged, At: slot.Add(500 * time.Millisecond)})
	for _, tc := range []struct {
		d    *store.Delivery
		want string
	}{
		{ahead("p", time.Second), "paused at "},
		{ahead("c", time.Second), "changed at "},
		{ahead("old", time.Second), ""},   // changed before the append
		{ahead("p", 0), ""},               // appended once due
		{ahead("p", -time.Second), ""},    // appended late
		{ahead("none", time.Second), ""},  // never changed
		{ahead("after", time.Second), ""}, // changed once it was due: it would have run by then
	} {
		got := l.stale(tc.d)
		if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
			t.Errorf("stale(%s appended at %s) = %q, want prefix %q", tc.d.Fire.ID, tc.d.EntryID, got, tc.want)
		}
	}
	manual := ahead("p", time.Second)
	manual.Fire.ID = "order-42"
	retry := ahead("p", time.Second)
	retry.Fire.Attempt = 2
	for _, d := range []*store.Delivery{manual, retry} {
		if got := l.stale(d); got != "" {
			t.Errorf("stale(%s attempt %d) = %q; want \"\": not a planned first attempt", d.Fire.ID, d.Fire.Attempt, got)
		}
	}
	// A jittered fire: ahead of its due time though after its slot.
	l.note(store.Change{Task: "j", Kind: store.ChangePaused, At: slot.Add(500 * time.Millisecond)})
	j := ahead("j", 0)
	j.Fire.Due = slot.Add(time.Second)
	if got := l.stale(j); !strings.HasPrefix(got, "paused at ") {
		t.Errorf("stale(jittered fire appended after its slot, before its due time) = %q; want paused", got)
	}
	var nilLog *changeLog
	if got := nilLog.stale(ahead("p", time.Second)); got != "" {
		t.Errorf("a nil change log found %q", got)
	}
}
