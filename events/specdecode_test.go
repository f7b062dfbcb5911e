package events

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestUnmarshalSpecStringMatchesEncodingJSON: the fast decoder gives what
// encoding/json gives, spec and error alike, for stored forms written by
// MarshalSpec (random names, payloads and triggers, with quotes, escapes,
// control bytes and invalid UTF-8) and for hand-edited variants of them
// (keys in another case, nulls, spaces, leading zeros, fractions, unknown
// keys, repeats, truncations).
func TestUnmarshalSpecStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	pieces := []string{"a", "Z", "0", " ", "\"", "\\", "/", "<", "&", "\n", "\t", "\x00", "\x1f", "é", "\u2028", "\xff", "\xc3", "😀", "\"name\":", ","}
	rng := rand.New(rand.NewPCG(3, 4))
	text := func() string {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	at := time.UnixMilli(1_800_000_000_123)
	triggers := []Trigger{Once(at), Every(time.Minute), Every(time.Second).From(at).Until(at.Add(time.Hour)),
		Cron("0 30 9 * * MON-FRI").In("Europe/Paris"), Once(time.UnixMilli(-5))}
	edits := []func(string) string{
		func(s string) string { return s },
		func(s string) string { return strings.Replace(s, `"name"`, `"Name"`, 1) },
		func(s string) string { return strings.Replace(s, `"at":`, `"at":null,"x":`, 1) },
		func(s string) string { return strings.ReplaceAll(s, `,"`, " ,\n\t\"") },
		func(s string) string { return strings.Replace(s, `"attempts":`, `"attempts":0`, 1) },
		func(s string) string { return strings.Replace(s, `"v":1`, `"v":1.0`, 1) },
		func(s string) string { return strings.Replace(s, `"v":1`, `"v":1e0`, 1) },
		func(s string) string { return strings.Replace(s, `"v":1`, `"v":-0`, 1) },
		func(s string) string { return strings.Replace(s, `"v":1`, `"v":2`, 1) },
		func(s string) string { return strings.Replace(s, `{`, `{"extra":"y",`, 1) },
		func(s string) string { return strings.Replace(s, `}`, `,"queue":"again"}`, 1) },
		func(s string) string { return strings.Replace(s, `"queue"`, `"queue\u0020"`, 1) },
		func(s string) string { return strings.Replace(s, `"mode":"`, `"mode":"\u0041`, 1) },
		func(s string) string { return strings.Replace(s, `"mode":"`, "\"mode\":\"\xff", 1) },
		func(s string) string { return strings.Replace(s, `"attempts":`, `"attempts":"`, 1) },
		func(s string) string { return strings.Replace(s, `"attempts":`, `"attempts":99999999999999999999`, 1) },
		func(s string) string { return s[:len(s)/2] },
		func(s string) string { return s + " " },
		func(s string) string { return s + "x" },
		func(s string) string { return "" },
		func(s string) string { return "{}" },
	}
	for i := range 5000 {
		sp := Spec{Name: text(), Trigger: triggers[rng.IntN(len(triggers))], Payload: text(), Attempts: rng.IntN(4),
			Timeout: time.Duration(rng.IntN(3)) * time.Second}
		raw, err := MarshalSpec(sp)
		if err != nil {
			t.Fatal(err)
		}
		in := edits[rng.IntN(len(edits))](string(raw))
		var w wireSpec
		want, wantErr := Spec{}, json.Unmarshal([]byte(in), &w)
		if wantErr == nil {
			want, wantErr = w.spec()
		}
		got, gotErr := UnmarshalSpecString(in)
		if (gotErr == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("input %d %q:\ngot  %+v, %v\nwant %+v, %v", i, in, got, gotErr, want, wantErr)
		}
	}
}
