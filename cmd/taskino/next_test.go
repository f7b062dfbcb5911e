package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// taskino next lists a cron expression's slots in its zone and in UTC,
// noting the DST change that moves one (Berlin's 02:30 does not exist on
// 2026-03-29: the slot fires at 03:00 CEST), with no Redis.
func TestNextShowsDSTChanges(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"next", "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-27T12:00:00Z", "-n", "3", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var slots []struct {
		At, UTC time.Time
		Note    string
	}
	if err := json.Unmarshal(out.Bytes(), &slots); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	want := []string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}
	if len(slots) != 3 {
		t.Fatalf("%d slots, want 3: %s", len(slots), out.String())
	}
	for i, s := range slots {
		if got := s.UTC.Format(time.RFC3339); got != want[i] || !s.At.Equal(s.UTC) {
			t.Errorf("slot %d: utc %s, at %s; want %s", i+1, got, s.At, want[i])
		}
		if hasNote := s.Note != ""; hasNote != (i == 1) || (i == 1 && !strings.Contains(s.Note, "+01:00 -> +02:00")) {
			t.Errorf("slot %d: note %q; want one on the DST day alone", i+1, s.Note)
		}
	}
	if got := slots[1].At.Format("15:04 -07:00"); got != "03:00 +02:00" {
		t.Errorf("DST day's slot at %s local, want 03:00 +02:00 (CEST)", got)
	}
}

// Bad input is one line, exit 2.
func TestNextBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"next"}, "want one of TASK, --cron EXPR or --every D"},
		{[]string{"next", "--cron", "* * *"}, `--cron "* * *"`},
		{[]string{"next", "--every", "-1s"}, "--every \"-1s\": want a positive duration"},
		{[]string{"next", "--every", "1h", "-n", "0"}, "-n 0: want 1 to 1000"},
		{[]string{"next", "--cron", "@daily", "--tz", "Mars/Olympus"}, "Mars/Olympus"},
		{[]string{"next", "--cron", "@daily", "--from", "yesterday"}, `--from "yesterday"`},
	} {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), c.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", c.args, code, errOut.String(), c.want)
		}
	}
}

// taskino next lists, across the DST changes of Europe/Berlin and
// America/New_York (spring and autumn), the slots the planner's schedule
// gives, one for one, in the zone and in UTC; and the known ones: New
// York's 02:30 fires at 03:00 EDT on the spring day, and its 01:30 once
// on the autumn day (EDT, the first of the two).
func TestNextMatchesThePlannerAcrossDST(t *testing.T) {
	type window struct{ zone, from string }
	for _, w := range []window{
		{"Europe/Berlin", "2026-03-28T00:00:00Z"}, {"Europe/Berlin", "2026-10-24T00:00:00Z"},
		{"America/New_York", "2026-03-07T00:00:00Z"}, {"America/New_York", "2026-10-31T00:00:00Z"},
	} {
		for _, expr := range []string{"30 2 * * *", "30 1 * * *", "0 */20 1-3 * * *", "@hourly"} {
			var out, errOut bytes.Buffer
			args := []string{"next", "--cron", expr, "--tz", w.zone, "--from", w.from, "-n", "40", "--json"}
			if code := Run(context.Background(), args, &out, &errOut); code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
			}
			var slots []struct{ At, UTC time.Time }
			if err := json.Unmarshal(out.Bytes(), &slots); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			sched, err := planner.Compile(events.Trigger{Kind: events.KindCron, Cron: expr, TZ: w.zone})
			if err != nil {
				t.Fatal(err)
			}
			from, _ := time.Parse(time.RFC3339, w.from)
			loc, _ := time.LoadLocation(w.zone)
			i := 0
			for at, ok := sched.Next(from); ok && i < 40; at, ok = sched.Next(at) {
				if i >= len(slots) || !slots[i].UTC.Equal(at) || !slots[i].At.Equal(at) || slots[i].At.Format("-07:00") != at.In(loc).Format("-07:00") {
					t.Fatalf("%s in %s from %s: slot %d is %v; the planner's is %s", expr, w.zone, w.from, i+1, slots[i], at)
				}
				i++
			}
			if i != len(slots) {
				t.Errorf("%s in %s: next listed %d slots, the planner's schedule %d", expr, w.zone, len(slots), i)
			}
		}
	}
	// The known ones.
	ny, _ := time.LoadLocation("America/New_York")
	var out, errOut bytes.Buffer
	Run(context.Background(), []string{"next", "--cron", "30 2 * * *", "--tz", "America/New_York", "--from", "2026-03-07T12:00:00Z", "-n", "2", "--json"}, &out, &errOut)
	var slots []struct{ At, UTC time.Time }
	if err := json.Unmarshal(out.Bytes(), &slots); err != nil || len(slots) != 2 || slots[0].UTC.In(ny).Format("2006-01-02 15:04 MST") != "2026-03-08 03:00 EDT" {
		t.Errorf("New York's 02:30 on 2026-03-08: %v (%v); want it at 03:00 EDT", slots, err)
	}
	out.Reset()
	Run(context.Background(), []string{"next", "--cron", "30 1 * * *", "--tz", "America/New_York", "--from", "2026-10-31T12:00:00Z", "-n", "2", "--json"}, &out, &errOut)
	if err := json.Unmarshal(out.Bytes(), &slots); err != nil || len(slots) != 2 || slots[0].UTC.In(ny).Format("2006-01-02 15:04 MST") != "2026-11-01 01:30 EDT" ||
		slots[1].UTC.In(ny).Format("2006-01-02 15:04 MST") != "2026-11-02 01:30 EST" {
		t.Errorf("New York's 01:30 around 2026-11-01: %v (%v); want once at 01:30 EDT, then 01:30 EST the next day", slots, err)
	}
}
