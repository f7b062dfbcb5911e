package events

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// onlyOf accepts exactly what the name and queue patterns it replaced
// accept, on random strings over a mixed alphabet and on edge cases.
func TestOnlyOfMatchesThePatterns(t *testing.T) {
	patterns := map[string]*regexp.Regexp{
		nameExtra:  regexp.MustCompile(`^[A-Za-z0-9._:/-]+$`),
		queueExtra: regexp.MustCompile(`^[A-Za-z0-9._-]+$`),
	}
	alphabet := []byte("aZz09._:/-@ \x00\x7f\xc3\xa9+|" + "`[{")
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := []string{"", "a", "é", "a b", "A-Z_0.9:x/y", "\xff", "\n"}
	for range 20000 {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for extra, re := range patterns {
		for _, in := range inputs {
			if got, want := onlyOf(in, extra), re.MatchString(in); got != want {
				t.Fatalf("onlyOf(%q, %q) = %v, the pattern %s says %v", in, extra, got, re, want)
			}
		}
	}
}

// TestJitterDelay: the delay is the same for the same task and slot, below
// the jitter and below the gap to the next slot, and differs across tasks
// and slots.
func TestJitterDelay(t *testing.T) {
	at := time.UnixMilli(1_767_225_600_000)
	seen := map[time.Duration]bool{}
	for i := range 1000 {
		task := fmt.Sprintf("t%d", i)
		d := JitterDelay(task, at, 2*time.Second, 0)
		if d != JitterDelay(task, at, 2*time.Second, 0) {
			t.Fatalf("%s: two delays for one slot", task)
		}
		if d < 0 || d >= 2*time.Second || d%time.Millisecond != 0 {
			t.Fatalf("%s: delay %s; want whole ms in [0, 2s)", task, d)
		}
		if g := JitterDelay(task, at, 2*time.Second, 300*time.Millisecond); g >= 300*time.Millisecond {
			t.Fatalf("%s: delay %s with the next slot 300ms away", task, g)
		}
		seen[d] = true
		seen[JitterDelay("x", at.Add(time.Duration(i)*time.Minute), 2*time.Second, 0)] = true
	}
	if len(seen) < 600 {
		t.Fatalf("%d distinct delays over 2,000 task-slots; want them spread", len(seen))
	}
	if d := JitterDelay("t", at, 0, 0); d != 0 {
		t.Fatalf("no jitter: delay %s", d)
	}
}

// TestJitterValidation: a negative, fractional, too large or (for every)
// not-below-the-period jitter is refused naming the field.
func TestJitterValidation(t *testing.T) {
	for _, tc := range []struct {
		tr   Trigger
		want string
	}{
		{Every(time.Minute).Jittered(-time.Second), "want a duration from 0"},
		{Every(time.Minute).Jittered(1500 * time.Microsecond), "whole number of milliseconds"},
		{Cron("@daily").Jittered(25 * time.Hour), "want a duration from 0 to 24h0m0s"},
		{Every(5 * time.Second).Jittered(5 * time.Second), "not below the period 5s"},
	} {
		err := Spec{Name: "j", Trigger: tc.tr}.Validate()
		if err == nil || !strings.Contains(err.Error(), "jitter") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v; want a jitter error saying %q", tc.tr, err, tc.want)
		}
	}
	s := Spec{Name: "j", Trigger: Cron("0 * * * *").Jittered(90 * time.Second)}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := MarshalSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalSpec(b)
	if err != nil || back.Trigger.Jitter != 90*time.Second {
		t.Fatalf("round trip of %s: jitter %s, %v", b, back.Trigger.Jitter, err)
	}
}

// TestDSTNeedsAZoneThatChanges: dst on a cron read in UTC (or in a zone
// that never changes its clocks) is refused, naming dst; in a zone with
// DST it is taken.
func TestDSTNeedsAZoneThatChanges(t *testing.T) {
	for _, tz := range []string{"", "UTC", "Etc/GMT+5"} {
		err := Spec{Name: "d", Trigger: Cron("30 2 * * *").In(tz).DST(GapSkip, "")}.Validate()
		if err == nil || !strings.Contains(err.Error(), `dst`) || !strings.Contains(err.Error(), "never changes its clocks") {
			t.Errorf("dst in %q: %v; want refused, the zone never changes its clocks", tz, err)
		}
	}
	if err := (Spec{Name: "d", Trigger: Cron("30 2 * * *").In("Europe/Berlin").DST(GapSkip, OverlapTwice)}).Validate(); err != nil {
		t.Errorf("dst in Europe/Berlin: %v", err)
	}
}
