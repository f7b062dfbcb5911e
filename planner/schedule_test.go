package planner

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
)

func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestNextFire is the next-fire table: each row starts from `from` and
// expects the listed slots in order ("none" ends the trigger).
func TestNextFire(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time { return ts(t, s) }
	cases := []struct {
		name    string
		trigger events.Trigger
		from    string
		want    []string
	}{
		{"every 5s aligned to the epoch", events.Every(5 * time.Second), "2026-11-21T12:00:03Z",
			[]string{"2026-11-21T12:00:05Z", "2026-11-21T12:00:10Z"}},
		{"every from a slot is strictly after it", events.Every(5 * time.Second), "2026-11-21T12:00:05Z",
			[]string{"2026-11-21T12:00:10Z"}},
		{"every 1500ms anchored to start", events.Every(1500 * time.Millisecond).From(at("2026-11-21T10:00:00.250Z")), "2026-11-21T09:00:00Z",
			[]string{"2026-11-21T10:00:00.250Z", "2026-11-21T10:00:01.750Z", "2026-11-21T10:00:03.250Z"}},
		{"every anchored to start, from inside", events.Every(time.Minute).From(at("2026-11-21T10:00:30Z")), "2026-11-21T10:05:00Z",
			[]string{"2026-11-21T10:05:30Z"}},
		{"every with end (inclusive)", events.Every(10 * time.Second).From(at("2026-11-21T10:00:00Z")).Until(at("2026-11-21T10:00:20Z")), "2026-11-21T10:00:05Z",
			[]string{"2026-11-21T10:00:10Z", "2026-11-21T10:00:20Z", "none"}},
		{"once before its instant", events.Once(at("2026-12-01T09:00:00Z")), "2026-11-21T00:00:00Z",
			[]string{"2026-12-01T09:00:00Z", "none"}},
		{"once at its instant is done", events.Once(at("2026-12-01T09:00:00Z")), "2026-12-01T09:00:00Z",
			[]string{"none"}},
		{"cron with seconds", events.Cron("*/15 * * * * *"), "2026-11-21T10:00:07Z",
			[]string{"2026-11-21T10:00:15Z", "2026-11-21T10:00:30Z", "2026-11-21T10:00:45Z", "2026-11-21T10:01:00Z"}},
		{"cron seconds list", events.Cron("5,50 0 12 * * *"), "2026-11-21T12:00:05Z",
			[]string{"2026-11-21T12:00:50Z", "2026-11-22T12:00:05Z"}},
		{"cron 5 fields in a zone, weekdays", events.Cron("30 9 * * 1-5").In("Europe/Paris"), "2026-11-20T09:00:00Z",
			[]string{"2026-11-23T08:30:00Z", "2026-11-24T08:30:00Z"}},
		{"cron 0 0 1 1 * fires once a year", events.Cron("0 0 1 1 *"), "2026-03-01T00:00:00Z",
			[]string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"}},
		{"cron descriptor in a zone", events.Cron("@daily").In("Asia/Tokyo"), "2026-11-21T16:00:00Z",
			[]string{"2026-11-22T15:00:00Z", "2026-11-23T15:00:00Z"}},
		{"cron with start and end", events.Cron("0 0 * * * *").From(at("2026-11-21T10:30:00Z")).Until(at("2026-11-21T12:00:00Z")), "2026-11-21T00:00:00Z",
			[]string{"2026-11-21T11:00:00Z", "2026-11-21T12:00:00Z", "none"}},
		// New York springs forward on 2026-03-08: 02:00 EST becomes 03:00 EDT.
		{"spring forward: a wall time in the gap fires when the gap ends", events.Cron("30 2 * * *").In("America/New_York"), "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"spring forward: hourly fires once at 03:00", events.Cron("0 * * * *").In("America/New_York"), "2026-03-08T06:30:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}},
		{"spring forward: times outside the gap are unaffected", events.Cron("30 3 * * *").In("America/New_York"), "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:30:00Z", "2026-03-09T07:30:00Z"}},
		// New York falls back on 2026-11-01: 02:00 EDT becomes 01:00 EST.
		{"fall back: a repeated wall time fires once", events.Cron("30 1 * * *").In("America/New_York"), "2026-11-01T04:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"fall back: every hour runs the repeated hour too", events.Cron("30 * * * *").In("America/New_York"), "2026-11-01T04:45:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"}},
		{"fall back in Paris: 02:30 fires once", events.Cron("0 30 2 * * *").In("Europe/Paris"), "2026-10-24T23:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sched, err := Compile(c.trigger)
			if err != nil {
				t.Fatalf("compile %s: %v", c.trigger, err)
			}
			cur := at(c.from)
			for i, w := range c.want {
				got, ok := sched.Next(cur)
				if w == "none" {
					if ok {
						t.Fatalf("slot %d: got %s, want none", i, got.Format(time.RFC3339Nano))
					}
					return
				}
				if !ok || !got.Equal(at(w)) {
					t.Fatalf("slot %d after %s: got %s (ok=%v), want %s", i, cur.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), ok, w)
				}
				if got.Location() != time.UTC {
					t.Fatalf("slot %d is in %s, want UTC", i, got.Location())
				}
				cur = got
			}
		})
	}
}

func TestInvalidSpecsRefused(t *testing.T) {
	t.Parallel()
	start := ts(t, "2026-11-21T10:00:00Z")
	cases := []struct {
		name      string
		spec      events.Spec
		field     string
		problemIn string
	}{
		{"empty name", events.Spec{Trigger: events.Every(time.Second)}, "name", "empty"},
		{"bad name", events.Spec{Name: "hello world", Trigger: events.Every(time.Second)}, "name", "character"},
		{"no trigger", events.Spec{Name: "t"}, "trigger", "exactly one of once, every or cron"},
		{"period 0", events.Spec{Name: "t", Trigger: events.Every(0)}, "every", "at least 1ms"},
		{"period not whole ms", events.Spec{Name: "t", Trigger: events.Every(1500 * time.Microsecond)}, "every", "whole number of milliseconds"},
		{"end before start", events.Spec{Name: "t", Trigger: events.Every(time.Second).From(start).Until(start.Add(-time.Hour))}, "end", "before start"},
		{"bad cron field", events.Spec{Name: "t", Trigger: events.Cron("61 * * * *")}, "cron", "minute field \"61\": 61 is above 59"},
		{"cron with too many fields", events.Spec{Name: "t", Trigger: events.Cron("* * * * * * *")}, "cron", "want 5 fields"},
		{"cron that never fires", events.Spec{Name: "t", Trigger: events.Cron("0 0 30 2 *")}, "cron", "never fires"},
		{"cron @every", events.Spec{Name: "t", Trigger: events.Cron("@every 5s")}, "cron", "use an every trigger"},
		{"empty cron", events.Spec{Name: "t", Trigger: events.Cron(" ")}, "cron", "empty expression"},
		{"unknown zone", events.Spec{Name: "t", Trigger: events.Cron("* * * * *").In("Mars/Olympus")}, "tz", "unknown zone \"Mars/Olympus\""},
		{"host-local zone", events.Spec{Name: "t", Trigger: events.Cron("* * * * *").In("Local")}, "tz", "depends on the host"},
		{"inline zone", events.Spec{Name: "t", Trigger: events.Cron("CRON_TZ=UTC * * * * *")}, "cron", "put the zone in tz"},
		{"once without an instant", events.Spec{Name: "t", Trigger: events.Trigger{Kind: events.KindOnce}}, "once", "no instant"},
		{"once with a window", events.Spec{Name: "t", Trigger: events.Once(start).Until(start)}, "start", "no start or end"},
		{"every with a cron expression", events.Spec{Name: "t", Trigger: events.Trigger{Kind: events.KindEvery, Period: time.Second, Cron: "* * * * *"}}, "cron", "only a cron trigger"},
		{"unknown kind", events.Spec{Name: "t", Trigger: events.Trigger{Kind: "hourly"}}, "trigger", "want once, every or cron"},
		{"bad mode", events.Spec{Name: "t", Trigger: events.Every(time.Second), Mode: "all"}, "mode", "single or broadcast"},
		{"bad misfire", events.Spec{Name: "t", Trigger: events.Every(time.Second), Misfire: "later"}, "misfire", "fire-once, fire-all or skip"},
		{"misfire limit too big", events.Spec{Name: "t", Trigger: events.Every(time.Second), MisfireLimit: 1e6}, "misfire_limit", "want 1 to"},
		{"bad overlap", events.Spec{Name: "t", Trigger: events.Every(time.Second), Overlap: "queue"}, "overlap", "allow, skip, buffer-one or cancel-previous"},
		{"bad queue", events.Spec{Name: "t", Trigger: events.Every(time.Second), Queue: "a b"}, "queue", "letters, digits"},
		{"negative timeout", events.Spec{Name: "t", Trigger: events.Every(time.Second), Timeout: -time.Second}, "timeout", "positive"},
		{"too many attempts", events.Spec{Name: "t", Trigger: events.Every(time.Second), Attempts: 1000}, "attempts", "want 1 to 100"},
		{"payload too big", events.Spec{Name: "t", Trigger: events.Every(time.Second), Payload: strings.Repeat("x", events.MaxPayload+1)}, "payload", "at most"},
		{"payload not UTF-8", events.Spec{Name: "t", Trigger: events.Every(time.Second), Payload: "\xff"}, "payload", "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.spec)
			var se *events.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Validate = %v, want a *events.SpecError", err)
			}
			if se.Field != c.field || !strings.Contains(se.Problem, c.problemIn) {
				t.Fatalf("error %q: want field %q and a problem containing %q", err, c.field, c.problemIn)
			}
			if c.spec.Name != "" && !strings.Contains(err.Error(), "task \""+c.spec.Name) && c.field != "name" {
				t.Fatalf("error %q does not name the task", err)
			}
		})
	}
}

func TestValidSpecsAccepted(t *testing.T) {
	t.Parallel()
	for _, s := range []events.Spec{
		{Name: "a", Trigger: events.Every(time.Millisecond)},
		{Name: "b/c:d.e_f-g", Trigger: events.Cron("0 30 9 * * MON-FRI").In("Europe/Paris")},
		{Name: "c", Trigger: events.Once(time.Now()), Mode: events.ModeBroadcast, Misfire: events.MisfireSkip},
		{Name: "d", Trigger: events.Cron("@hourly"), Misfire: events.MisfireFireAll, MisfireLimit: 10, Payload: "héllo"},
	} {
		if err := Validate(s); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", s.Name, err)
		}
	}
}
