package events

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// The hand-built last-run encoding must match what encoding/json wrote
// before it (stored records and the finish script's text matches rely on
// it), for any text.
func TestAppendLastRunMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	pieces := []string{"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"é", "€", "\u2028", "\u2029", "\ufffd", "\xff", "\xc3", "\xe2\x80", "😀", "\"fire\":", ","}
	rng := rand.New(rand.NewPCG(1, 2))
	text := func() string {
		s := ""
		for range rng.IntN(12) {
			s += pieces[rng.IntN(len(pieces))]
		}
		return s
	}
	at := time.UnixMilli(1_800_000_000_123)
	times := []time.Time{{}, at, at.Add(time.Second), time.UnixMilli(-5)}
	for i := range 5000 {
		r := LastRun{Task: text(), Fire: text(), Status: text(), Error: text(),
			Scheduled: times[1+rng.IntN(3)], Fired: times[rng.IntN(4)], Started: times[rng.IntN(4)], Finished: times[rng.IntN(4)]}
		want, err := json.Marshal(wireLastRun{LastRun: r, Scheduled: r.Scheduled.UnixMilli(), Fired: optMs(r.Fired),
			Started: optMs(r.Started), Finished: optMs(r.Finished)})
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendLastRun(nil, r); string(got) != string(want) {
			t.Fatalf("record %d: got\n%s\nwant\n%s", i, got, want)
		}
		s := text()
		q, _ := json.Marshal(s)
		if got := AppendJSONString([]byte("x"), s); string(got) != "x"+string(q) {
			t.Fatalf("string %q: got %s, want %s", s, got[1:], q)
		}
	}
}
