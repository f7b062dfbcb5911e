package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
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
