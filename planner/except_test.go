package planner

import (
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Except rules read in the trigger's zone: days, ranges of days, and cron
// calendars to the minute (five fields) or the second (six).
func TestExceptRules(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	sched, err := Compile(events.Cron("0 */30 * * * *").In("Europe/Berlin").
		Excluding("2026-12-25", "2026-12-31..2027-01-01", "cron: * 12 * * SAT", "cron: 0 30 9 * * *"))
	if err != nil {
		t.Fatal(err)
	}
	ex, ok := sched.(Excluder)
	if !ok {
		t.Fatal("a schedule with except rules is not an Excluder")
	}
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 12, 24, 23, 30, 0, 0, berlin), ""},
		{time.Date(2026, 12, 25, 0, 0, 0, 0, berlin), "2026-12-25"},   // 23:00 UTC on the 24th: the day is Berlin's
		{time.Date(2026, 12, 25, 23, 30, 0, 0, berlin), "2026-12-25"}, // 22:30 UTC
		{time.Date(2026, 12, 26, 0, 0, 0, 0, berlin), ""},             // a Saturday, but not 12:xx
		{time.Date(2026, 12, 31, 12, 0, 0, 0, berlin), "2026-12-31..2027-01-01"},
		{time.Date(2027, 1, 1, 23, 30, 0, 0, berlin), "2026-12-31..2027-01-01"},
		{time.Date(2027, 1, 2, 0, 0, 0, 0, berlin), ""},
		{time.Date(2027, 1, 2, 12, 30, 0, 0, berlin), "cron: * 12 * * SAT"}, // a Saturday, any minute of 12
		{time.Date(2027, 1, 4, 9, 30, 0, 0, berlin), "cron: 0 30 9 * * *"},
		{time.Date(2027, 1, 4, 9, 0, 0, 0, berlin), ""},
	} {
		got := ex.Excluded(c.at)
		if got != c.want {
			t.Errorf("%s: excluded by %q, want %q", c.at, got, c.want)
		}
	}
	for _, c := range []struct{ rule, want string }{
		{"2026-13-01", `"2026-13-01" is not a day`},
		{"2026-12-31..2026-12-01", "the range ends before it starts"},
		{"cron: 61 * * * *", `minute field "61"`},
		{"cron:", "want cron: and 5 or 6 fields"},
		{"christmas", `"christmas" is not a day`},
	} {
		_, err := Compile(events.Every(time.Hour).Excluding(c.rule))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "except") {
			t.Errorf("rule %q: %v, want an except error saying %q", c.rule, err, c.want)
		}
	}
	if _, err := Compile(events.Once(time.Now()).Excluding("2026-12-25")); err == nil || !strings.Contains(err.Error(), "a once trigger has one slot") {
		t.Errorf("except on a once trigger: %v, want it refused", err)
	}
}

// The planner records an excluded slot missed, with the rule, and fires
// the others; a late excluded slot gives the rule too, not its lateness.
func TestPlanTaskExcept(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC)
	spec := events.Spec{Name: "t", Trigger: events.Every(12 * time.Hour).Excluding("2026-12-25")}.WithDefaults()
	sched, err := Compile(spec.Trigger)
	if err != nil {
		t.Fatal(err)
	}
	now := base.Add(72 * time.Hour) // 24 at 00:00 .. 27 at 00:00 due; fire-all fires the late ones
	spec.Misfire, spec.MisfireLimit = events.MisfireFireAll, 100
	p := planTask(store.ClaimedTask{Name: "t", Spec: spec, Since: base, Gen: "1"}, sched, now, 0, "n", 1000)
	var fired, excluded []string
	for _, op := range p.Ops {
		switch {
		case op.Fire != nil:
			fired = append(fired, op.Slot.Format("02 15"))
		case op.Event.Policy == PolicyExcept:
			if op.Event.Reason != "excluded by except 2026-12-25" || op.Event.Type != events.TypeMissed {
				t.Errorf("excluded slot %s: %+v", op.Slot, op.Event)
			}
			excluded = append(excluded, op.Slot.Format("02 15"))
		default:
			t.Errorf("unexpected op %+v", op.Event)
		}
	}
	if strings.Join(fired, ",") != "24 00,24 12,26 00,26 12,27 00" || strings.Join(excluded, ",") != "25 00,25 12" {
		t.Errorf("fired %v, excluded %v; want 24 00,24 12,26 00,26 12,27 00 fired and 25 00,25 12 excluded", fired, excluded)
	}
}

// Rules that exclude every coming slot are refused.
func TestExceptAllRefused(t *testing.T) {
	t.Parallel()
	_, err := Compile(events.Every(time.Second).Excluding("cron: * * * * * *"))
	if err == nil || !strings.Contains(err.Error(), "the rules exclude every one of the next 10000 slots") {
		t.Errorf("except excluding every slot: %v, want it refused", err)
	}
	if _, err := Compile(events.Every(time.Second).Excluding("cron: */2 * * * * *")); err != nil {
		t.Errorf("except excluding half the slots: %v", err)
	}
}
