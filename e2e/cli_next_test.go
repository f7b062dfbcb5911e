package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// taskino next TASK reads the stored task's trigger and lists its slots
// in its zone; an unknown task is an error naming it.
func TestCLINextOfAStoredTask(t *testing.T) {
	b := setup(t)
	cli := buildBinary(t, "cmd/taskino")
	tasks := writeFile(t, t.TempDir(), "tasks.yaml", `version: 1
tasks:
  - name: backup
    cron: "30 2 * * *"
    tz: Europe/Berlin
`)
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	out := mustCLI(t, cli, append([]string{"next", "backup", "-n", "2", "--from", "2026-03-28T12:00:00Z", "--json"}, common...)...)
	var slots []struct {
		UTC  time.Time
		Note string
	}
	if err := json.Unmarshal([]byte(out), &slots); err != nil || len(slots) != 2 ||
		!slots[0].UTC.Equal(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)) || !strings.Contains(slots[0].Note, "DST") {
		t.Errorf("next backup printed %s (%v); want 2026-03-29 01:00Z first, noted as moved by DST", out, err)
	}
	table := mustCLI(t, cli, append([]string{"next", "backup", "-n", "1"}, common...)...)
	if !strings.Contains(table, "TIME (Europe/Berlin)") {
		t.Errorf("next backup printed %q; want times in Europe/Berlin", table)
	}
	if _, stderr, code := runCLI(t, cli, append([]string{"next", "nosuch"}, common...)...); code == 0 || !strings.Contains(stderr, "nosuch") {
		t.Errorf("next nosuch: exit %d, stderr %q; want an error naming the task", code, stderr)
	}
}

// taskino tail --no-follow prints what is stored and exits 0, instead of
// waiting for more.
func TestCLITailNoFollow(t *testing.T) {
	b := setup(t)
	cli := buildBinary(t, "cmd/taskino")
	tasks := writeFile(t, t.TempDir(), "tasks.yaml", "version: 1\ntasks:\n  - name: a\n    every: 1h\n  - name: b\n    every: 1h\n")
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	out := mustCLI(t, cli, append([]string{"tail", "--since", "0", "--no-follow", "--type", "registered"}, common...)...)
	if strings.Count(out, "registered") != 2 || strings.Contains(out, "reload") {
		t.Errorf("tail --no-follow --type registered printed %q; want the two registered events alone", out)
	}
	if _, stderr, code := runCLI(t, cli, append([]string{"tail", "--no-follow"}, common...)...); code != 2 || !strings.Contains(stderr, "--no-follow needs --since") {
		t.Errorf("tail --no-follow without --since: exit %d, stderr %q; want 2, saying it needs --since", code, stderr)
	}
}

// A wrong password is reported as a refused login, not as Redis out of
// reach.
func TestCLIWrongPassword(t *testing.T) {
	b := setup(t)
	cli := buildBinary(t, "cmd/taskino")
	user := "wrongpass-" + ns
	if err := b.rdb.Do(b.ctx, "ACL", "SETUSER", user, "on", ">right", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.rdb.Do(b.ctx, "ACL", "DELUSER", user) })
	_, stderr, code := runCLI(t, cli, "ls", "--redis", "redis://"+user+":wrong@"+b.srv.Addr+"/0", "--namespace", ns)
	if code != 1 || !strings.Contains(stderr, "refused the login") || strings.Contains(stderr, "cannot reach") || strings.Contains(stderr, "wrong") {
		t.Errorf("ls with a wrong password: exit %d, stderr %q; want 1, a refused login, the password hidden", code, stderr)
	}
}

// taskino apply --dry-run prints what an apply would change, with the
// next fire of each added or rescheduled task, and writes nothing.
func TestCLIApplyDryRun(t *testing.T) {
	b := setup(t)
	cli := buildBinary(t, "cmd/taskino")
	dir := t.TempDir()
	v1 := writeFile(t, dir, "v1.yaml", `version: 1
tasks:
  - name: same
    every: 1h
  - name: payload
    every: 1h
  - name: moved
    cron: "0 3 * * *"
  - name: gone
    every: 1h
`)
	v2 := writeFile(t, dir, "v2.yaml", `version: 2
tasks:
  - name: same
    every: 1h
  - name: payload
    every: 1h
    payload: new
  - name: moved
    cron: "30 2 * * *"
    tz: Europe/Berlin
  - name: fresh
    every: 1h
`)
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", v1}, common...)...)
	before, err := b.st.RangeEvents(b.ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, cli, append([]string{"apply", "--dry-run", v2}, common...)...)
	for _, want := range []string{"would apply version 2 over 1 (4 tasks); nothing written", "  + fresh (next fire ", "  ~ payload\n",
		"  ~ moved (rescheduled) (next fire ", " CE", "  - gone\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply --dry-run printed\n%s\nwant %q in it", out, want)
		}
	}
	if strings.Contains(out, "same") {
		t.Errorf("apply --dry-run printed\n%s\nwant nothing of the unchanged task", out)
	}
	after, err := b.st.RangeEvents(b.ctx, "-", "+")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.st.Version(b.ctx); err != nil || v != 1 || len(after) != len(before) {
		t.Errorf("after the dry run: version %d (err %v), %d events (%d before); want version 1 and nothing written", v, err, len(after), len(before))
	}
	if out := mustCLI(t, cli, append([]string{"apply", "--dry-run", v1}, common...)...); !strings.Contains(out, "already applied") {
		t.Errorf("dry run of the stored version printed %q", out)
	}
	// An older version fails the dry run as it fails the apply.
	mustCLI(t, cli, append([]string{"apply", v2}, common...)...)
	if _, stderr, code := runCLI(t, cli, append([]string{"apply", "--dry-run", v1}, common...)...); code != 1 || !strings.Contains(stderr, "version 2 is stored") {
		t.Errorf("dry run of an older version: exit %d, stderr %q; want 1, naming the stored version", code, stderr)
	}
}

// taskino settings shows the namespace's events retention (the defaults
// until set), changes what its flags give, refuses a hard bound below the
// bound in one line, and lists the durable listeners with how far behind
// each is.
func TestCLISettings(t *testing.T) {
	b := setup(t)
	cli := buildBinary(t, "cmd/taskino")
	common := redisFlags(b)
	if out := mustCLI(t, cli, append([]string{"settings"}, common...)...); !strings.Contains(out, "events max len       100000") ||
		!strings.Contains(out, "events hard max len  1000000") || !strings.Contains(out, "no durable listeners") {
		t.Errorf("settings of a new namespace printed\n%s\nwant the defaults and no durable listeners", out)
	}
	if err := b.st.EnsureEventGroup(b.ctx, "audit", "0"); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, cli, append([]string{"settings", "--events-max-len", "500", "--events-hard-max-len", "5000", "--events-hard-max-age", "48h"}, common...)...)
	var got struct {
		EventsMaxLen       int64 `json:"events_max_len"`
		EventsHardMaxLen   int64 `json:"events_hard_max_len"`
		EventsHardMaxAgeMs int64 `json:"events_hard_max_age_ms"`
		Listeners          []struct {
			Name   string `json:"name"`
			Behind int64  `json:"behind"`
		} `json:"durable_listeners"`
	}
	out := mustCLI(t, cli, append([]string{"settings", "--json"}, common...)...)
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.EventsMaxLen != 500 || got.EventsHardMaxLen != 5000 ||
		got.EventsHardMaxAgeMs != 48*3600*1000 || len(got.Listeners) != 1 || got.Listeners[0].Name != "audit" {
		t.Errorf("settings --json printed %s (%v); want 500, 5000, 48h and the listener audit", out, err)
	}
	if st, err := b.st.Settings(b.ctx); err != nil || st.EventsMaxLen != 500 || st.EventsHardMaxLen != 5000 {
		t.Errorf("stored settings %+v (%v)", st, err)
	}
	_, errOut, code := runCLI(t, cli, append([]string{"settings", "--events-hard-max-len", "10"}, common...)...)
	if code != 2 || !strings.Contains(errOut, "events hard max len 10 is below the events max len 500") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("settings with a hard bound below the bound: exit %d, stderr %q; want 2 and one line naming both", code, errOut)
	}
	if _, errOut, code := runCLI(t, cli, append([]string{"settings", "--events-max-len", "-5"}, common...)...); code != 2 || !strings.Contains(errOut, "events max len -5") {
		t.Errorf("settings --events-max-len -5: exit %d, stderr %q; want 2, naming it", code, errOut)
	}
}
