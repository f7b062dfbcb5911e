package tasksfile

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

const example = `version: 3
tasks:
  - name: heartbeat
    every: 5s
    exec: [sh, -c, 'echo "beat $TASKINO_FIRE_ID"']
  - name: report
    cron: "0 */5 * * * *"
    tz: Europe/Paris
    mode: broadcast        # single (default) | broadcast
    misfire: skip          # fire-once (default) | fire-all | skip
    overlap: skip          # allow | skip | buffer-one
    timeout: 30s
    attempts: 3
    queue: reports
    payload: "weekly"
    http:
      method: POST
      url: https://example.com/hook
      headers: {Authorization: "Bearer x"}
      body: '{"k": 1}'
  - name: launch
    once: 2026-12-01T09:00:00Z
  - name: window
    every: 1m
    start: 2026-12-01T00:00:00Z
    end: 2026-12-02T00:00:00Z
`

// TestParseRedactEnv: redact_env's names and prefixes reach the file.
func TestParseRedactEnv(t *testing.T) {
	f, err := Parse("tasks.yaml", []byte("version: 1\nredact_env: [AWS_SECRET_ACCESS_KEY, \"DB_*\"]\ntasks: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.RedactEnv, ",") != "AWS_SECRET_ACCESS_KEY,DB_*" {
		t.Errorf("redact_env %v", f.RedactEnv)
	}
}

// TestParseJitter: jitter reaches the trigger.
func TestParseJitter(t *testing.T) {
	f, err := Parse("tasks.yaml", []byte("version: 1\ntasks:\n  - name: a\n    cron: \"0 * * * *\"\n    jitter: 90s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j := f.Tasks[0].Spec.Trigger.Jitter; j != 90*time.Second {
		t.Errorf("jitter %s, want 90s", j)
	}
}

// TestParseMisfireBounds: misfire_limit and misfire_grace reach the spec
// as written.
func TestParseMisfireBounds(t *testing.T) {
	f, err := Parse("tasks.yaml", []byte("version: 1\ntasks:\n  - name: a\n    every: 1s\n    misfire: fire-all\n    misfire_limit: 7\n    misfire_grace: 2500ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Tasks[0].Spec; s.Misfire != events.MisfireFireAll || s.MisfireLimit != 7 || s.MisfireGrace != 2500*time.Millisecond {
		t.Errorf("spec %+v: want fire-all, limit 7, grace 2.5s", s)
	}
}

func TestParseExample(t *testing.T) {
	f, err := Parse("tasks.yaml", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	want := &File{
		Path:    "tasks.yaml",
		Version: 3,
		Tasks: []Task{
			{
				Spec: events.Spec{Name: "heartbeat", Trigger: events.Every(5 * time.Second)},
				Exec: []string{"sh", "-c", `echo "beat $TASKINO_FIRE_ID"`},
				Line: 3,
			},
			{
				Spec: events.Spec{
					Name:    "report",
					Trigger: events.Cron("0 */5 * * * *").In("Europe/Paris"),
					Queue:   "reports",
					Mode:    events.ModeBroadcast,
					Misfire: events.MisfireSkip,
					Overlap: events.OverlapSkip,
					Timeout: 30 * time.Second,
					Payload: "weekly",
					// Attempts as written, though it is the default.
					Attempts: 3,
				},
				HTTP: &HTTP{
					Method:  "POST",
					URL:     "https://example.com/hook",
					Headers: map[string]string{"Authorization": "Bearer x"},
					Body:    `{"k": 1}`,
				},
				Line: 6,
			},
			{
				Spec: events.Spec{Name: "launch", Trigger: events.Once(day.Add(9 * time.Hour))},
				Line: 21,
			},
			{
				Spec: events.Spec{Name: "window", Trigger: events.Every(time.Minute).From(day).Until(day.Add(24 * time.Hour))},
				Line: 23,
			},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got\n%#v\nwant\n%#v", f, want)
	}
	specs := f.Specs()
	if len(specs) != 4 {
		t.Fatalf("Specs: %d specs, want 4", len(specs))
	}
	for i, s := range specs {
		if !reflect.DeepEqual(s, want.Tasks[i].Spec) {
			t.Errorf("Specs()[%d] = %+v, want %+v", i, s, want.Tasks[i].Spec)
		}
		if err := planner.Validate(s); err != nil {
			t.Errorf("Specs()[%d]: %v", i, err)
		}
	}
}

func TestParseForms(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		check    func(t *testing.T, f *File)
	}{
		{"empty list", "version: 1\ntasks: []\n", func(t *testing.T, f *File) {
			if f.Version != 1 || len(f.Tasks) != 0 || len(f.Specs()) != 0 {
				t.Errorf("got %+v", f)
			}
		}},
		{"dst policies", "tasks:\n- name: a\n  cron: '30 2 * * 0L'\n  tz: Europe/Berlin\n  dst: {gap: skip, overlap: twice}\n  exec: ['true']\n- name: b\n  cron: '30 2 * * *'\n  exec: ['true']\n",
			func(t *testing.T, f *File) {
				a, b := f.Tasks[0].Spec.Trigger, f.Tasks[1].Spec.Trigger
				if a.DSTGap != events.GapSkip || a.DSTOverlap != events.OverlapTwice || a.Cron != "30 2 * * 0L" {
					t.Errorf("a: %+v, want gap skip, overlap twice", a)
				}
				if b.DSTGap != "" || b.DSTOverlap != "" {
					t.Errorf("b: %+v, want the default policies", b)
				}
			}},
		{"except forms", "tasks:\n- name: a\n  cron: '0 9 * * MON-FRI'\n  tz: Europe/Berlin\n  except: [2026-12-25, '2026-12-31..2027-01-01', 'cron: * * 24 12 *', {cron: '* 12 * * SAT'}]\n  exec: ['true']\n",
			func(t *testing.T, f *File) {
				got := strings.Join(f.Tasks[0].Spec.Trigger.Except, "|")
				if got != "2026-12-25|2026-12-31..2027-01-01|cron: * * 24 12 *|cron: * 12 * * SAT" {
					t.Errorf("except: %q", got)
				}
			}},
		{"empty tasks field", "tasks:\n# - name: x\n#   every: 1s\n", func(t *testing.T, f *File) {
			if f.Version != 0 || len(f.Tasks) != 0 {
				t.Errorf("got %+v", f)
			}
		}},
		{"http defaults", "tasks:\n- name: a\n  every: 1s\n  http: {url: 'http://127.0.0.1:8080/x'}\n- name: b\n  every: 1s\n  http: {url: 'https://h/', body: hi, headers: {X-A: 1}}\n- name: c\n  every: 1s\n  http: {url: 'https://h/', method: delete}\n",
			func(t *testing.T, f *File) {
				got := []HTTP{*f.Tasks[0].HTTP, *f.Tasks[1].HTTP, *f.Tasks[2].HTTP}
				want := []HTTP{
					{Method: "GET", URL: "http://127.0.0.1:8080/x"},
					{Method: "POST", URL: "https://h/", Body: "hi", Headers: map[string]string{"X-A": "1"}},
					{Method: "DELETE", URL: "https://h/"},
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %+v, want %+v", got, want)
				}
			}},
		{"values as written, block list, aliases, offsets", `tasks:
  - name: a
    cron: '@daily'
    start: 2026-12-01T10:00:00+01:00
    payload: 42
    exec: &cmd
      - /bin/echo
      - ""
  - name: "007"
    once: "2026-12-01T09:00:00.250Z"
    exec: *cmd
`, func(t *testing.T, f *File) {
			want := []events.Spec{
				{Name: "a", Trigger: events.Cron("@daily").From(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)), Payload: "42"},
				{Name: "007", Trigger: events.Once(time.Date(2026, 12, 1, 9, 0, 0, 250e6, time.UTC))},
			}
			if !reflect.DeepEqual(f.Specs(), want) {
				t.Errorf("got %+v, want %+v", f.Specs(), want)
			}
			for _, task := range f.Tasks {
				if !reflect.DeepEqual(task.Exec, []string{"/bin/echo", ""}) {
					t.Errorf("%s: exec %q", task.Spec.Name, task.Exec)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("t.yaml", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, f)
		})
	}
}

// errorCases are refused files, with substrings their error must contain;
// the first is always "tasks.yaml:<line>: ".
var errorCases = []struct {
	name, in string
	want     []string
}{
	{"bad duration", "tasks:\n  - name: report\n    every: five\n",
		[]string{"tasks.yaml:3: ", `task "report": every: want a duration like 5s or 1m30s, got "five"`}},
	{"duration without unit", "tasks:\n  - name: r\n    every: 5\n",
		[]string{"tasks.yaml:3: ", `task "r": every: want a duration`, `got "5"`}},
	{"two triggers", "tasks:\n  - name: x\n    every: 5s\n    cron: '* * * * *'\n",
		[]string{"tasks.yaml:4: ", `task "x": want exactly one trigger of every, cron, once; got every and cron`}},
	{"three triggers", "tasks:\n  - name: x\n    once: 2026-12-01T09:00:00Z\n    every: 5s\n    cron: '* * * * *'\n",
		[]string{"tasks.yaml:4: ", `task "x": want exactly one trigger`, "got once, every and cron"}},
	{"no trigger", "tasks:\n  - name: x\n    queue: q\n",
		[]string{"tasks.yaml:2: ", `task "x": want exactly one trigger of every, cron, once; got none`}},
	{"unknown task field", "tasks:\n  - name: y\n    every: 1s\n    cmd: [ls]\n",
		[]string{"tasks.yaml:4: ", `task "y": unknown field "cmd" (fields: name, every, cron, tz, dst, except, jitter, once, start, end, queue, mode, misfire, misfire_limit, misfire_grace, overlap, timeout, attempts, limit, pause_after_failures, payload, exec, http)`}},
	{"exec and http", "tasks:\n  - name: z\n    every: 1s\n    exec: [ls]\n    http: {url: 'http://h/'}\n",
		[]string{"tasks.yaml:5: ", `task "z": exec and http both set; want one of them`}},
	{"duplicate task", "tasks:\n  - name: heartbeat\n    every: 1s\n  - name: heartbeat\n    every: 2s\n",
		[]string{"tasks.yaml:4: ", `duplicate task "heartbeat" (first at line 2)`}},
	{"bad url", "tasks:\n  - name: w\n    every: 1s\n    http:\n      url: foo\n",
		[]string{"tasks.yaml:5: ", `task "w": http.url: want an absolute http:// or https:// URL, got "foo"`}},
	{"ftp url", "tasks:\n  - name: w\n    every: 1s\n    http: {url: 'ftp://h/x'}\n",
		[]string{"tasks.yaml:4: ", `task "w": http.url: want an absolute http:// or https:// URL, got "ftp://h/x"`}},
	{"no url", "tasks:\n  - name: w\n    every: 1s\n    http:\n      method: GET\n",
		[]string{"tasks.yaml:5: ", `task "w": http.url: missing`}},
	{"bad method", "tasks:\n  - name: w\n    every: 1s\n    http:\n      url: http://h/\n      method: FETCH\n",
		[]string{"tasks.yaml:6: ", `task "w": http.method: want GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS, got "FETCH"`}},
	{"unknown http field", "tasks:\n  - name: w\n    every: 1s\n    http:\n      url: http://h/\n      uri: http://h/\n",
		[]string{"tasks.yaml:6: ", `task "w": http: unknown field "uri" (fields: method, url, headers, secret_headers, body)`}},
	{"http not a mapping", "tasks:\n  - name: w\n    every: 1s\n    http: http://h/\n",
		[]string{"tasks.yaml:4: ", `task "w": http: want a mapping`, `got "http://h/"`}},
	{"bad header name", "tasks:\n  - name: w\n    every: 1s\n    http:\n      url: http://h/\n      headers:\n        'X A': b\n",
		[]string{"tasks.yaml:7: ", `task "w": http.headers: "X A" is not a header name`}},
	{"header value with a line break", "tasks:\n  - name: w\n    every: 1s\n    http:\n      url: http://h/\n      headers:\n        X-A: \"a\\nb\"\n",
		[]string{"tasks.yaml:7: ", `task "w": http.headers.X-A: want a header value without line breaks`}},
	{"header twice", "tasks:\n  - name: w\n    every: 1s\n    http:\n      url: http://h/\n      headers:\n        X-A: a\n        x-a: b\n",
		[]string{"tasks.yaml:8: ", `task "w": http.headers: "x-a" set twice (first at line 7)`}},
	{"syntax error", "tasks:\n  - name: a\n    every: 1s\n   bad\n  x: [\n",
		[]string{"tasks.yaml:", "YAML: "}},
	{"unquoted cron", "tasks:\n  - name: a\n    cron: */5 * * * * *\n",
		[]string{"tasks.yaml:3: ", "YAML: ", `quote cron expressions`}},
	{"tab indent", "tasks:\n\t- name: a\n",
		[]string{"tasks.yaml:2: ", "YAML: "}},
	{"unknown anchor", "tasks:\n  - name: a\n    every: 1s\n    exec: *cmd\n",
		[]string{"tasks.yaml:4: ", "YAML: unknown anchor 'cmd'"}},
	{"two documents", "tasks: []\n---\ntasks: []\n",
		[]string{"tasks.yaml:2: ", "second YAML document"}},
	{"not UTF-8", "tasks:\n  - name: a\xff\n",
		[]string{"tasks.yaml:2: ", "not UTF-8"}},
	{"empty file", "",
		[]string{"tasks.yaml:1: ", `no tasks; want a top-level "tasks:" list`}},
	{"only comments", "# nothing\n",
		[]string{"tasks.yaml:1: ", `no tasks`}},
	{"top level a list", "- name: a\n  every: 1s\n",
		[]string{"tasks.yaml:1: ", "want a mapping with version and tasks at the top, got a list"}},
	{"unknown top-level field", "version: 1\ntask:\n  - name: a\n",
		[]string{"tasks.yaml:2: ", `unknown field "task" (fields: version, redact_env, tasks)`}},
	{"redact_env not a list", "version: 1\nredact_env: AWS_KEY\ntasks: []\n",
		[]string{"tasks.yaml:2: ", `redact_env: want a list of environment variable names`}},
	{"redact_env bad name", "version: 1\nredact_env: [OK_NAME, \"BAD-NAME\"]\ntasks: []\n",
		[]string{"tasks.yaml:2: ", `redact_env[1]: want a variable name of letters, digits and _`}},
	{"missing tasks", "version: 1\n",
		[]string{"tasks.yaml:1: ", `no tasks`}},
	{"tasks a mapping", "tasks:\n  name: a\n  every: 1s\n",
		[]string{"tasks.yaml:2: ", "tasks: want a list of tasks, got a mapping"}},
	{"tasks a string", "tasks: heartbeat\n",
		[]string{"tasks.yaml:1: ", `tasks: want a list of tasks, got "heartbeat"`}},
	{"negative version", "version: -1\ntasks: []\n",
		[]string{"tasks.yaml:1: ", `version: want a whole number from 0 up, got "-1"`}},
	{"version a string", "version: three\ntasks: []\n",
		[]string{"tasks.yaml:1: ", `version: want a whole number from 0 up, got "three"`}},
	{"version a float", "version: 1.5\ntasks: []\n",
		[]string{"tasks.yaml:1: ", `version: want a whole number`, `got "1.5"`}},
	{"version too big", "version: 9223372036854775808\ntasks: []\n",
		[]string{"tasks.yaml:1: ", `version: want a whole number`}},
	{"task not a mapping", "tasks:\n  - heartbeat\n",
		[]string{"tasks.yaml:2: ", `task #1: want a mapping`, `got "heartbeat"`}},
	{"field twice", "tasks:\n  - name: a\n    every: 1s\n    every: 2s\n",
		[]string{"tasks.yaml:4: ", `task "a": field "every" set twice (first at line 3)`}},
	{"merge key", "tasks:\n  - &a {name: a, every: 1s}\n  - <<: *a\n    name: b\n",
		[]string{"tasks.yaml:3: ", `task "b": merge keys (<<) are not supported`}},
	{"exec a string", "tasks:\n  - name: a\n    every: 1s\n    exec: echo hi\n",
		[]string{"tasks.yaml:4: ", `task "a": exec: want a non-empty list of strings`, `got "echo hi"`}},
	{"exec empty", "tasks:\n  - name: a\n    every: 1s\n    exec: []\n",
		[]string{"tasks.yaml:4: ", `task "a": exec: want a non-empty list of strings`, "got an empty list"}},
	{"exec item a list", "tasks:\n  - name: a\n    every: 1s\n    exec:\n      - echo\n      - [hi]\n",
		[]string{"tasks.yaml:6: ", `task "a": exec[1]: want a string, got a list`}},
	{"exec null item", "tasks:\n  - name: a\n    every: 1s\n    exec: [echo, ~]\n",
		[]string{"tasks.yaml:4: ", `task "a": exec[1]: want a string, got nothing`}},
	{"exec empty program", "tasks:\n  - name: a\n    every: 1s\n    exec: ['', x]\n",
		[]string{"tasks.yaml:4: ", `task "a": exec[0]: want the program to run, got ""`}},
	{"exec NUL", "tasks:\n  - name: a\n    every: 1s\n    exec: [echo, \"a\\0b\"]\n",
		[]string{"tasks.yaml:4: ", `task "a": exec[1]: contains a NUL byte`}},
	{"tz without cron", "tasks:\n  - name: a\n    every: 1s\n    tz: Europe/Paris\n",
		[]string{"tasks.yaml:4: ", `task "a": tz: only a cron trigger has`}},
	{"unknown tz", "tasks:\n  - name: a\n    cron: '0 * * * *'\n    tz: Mars/Olympus\n",
		[]string{"tasks.yaml:4: ", `task "a": tz: unknown zone "Mars/Olympus"`}},
	{"Local tz", "tasks:\n  - name: a\n    cron: '0 * * * *'\n    tz: Local\n",
		[]string{"tasks.yaml:4: ", `task "a": tz: zone "Local" depends on the host`}},
	{"empty tz", "tasks:\n  - name: a\n    cron: '0 * * * *'\n    tz: ''\n",
		[]string{"tasks.yaml:4: ", `task "a": tz: want an IANA time zone like Europe/Paris, got ""`}},
	{"except not a list", "tasks:\n  - name: a\n    every: 1h\n    except: 2026-12-25\n",
		[]string{"tasks.yaml:4: ", `task "a": except: want a list of days`}},
	{"except bad day", "tasks:\n  - name: a\n    every: 1h\n    except: [2026-02-30]\n",
		[]string{"tasks.yaml:4: ", `task "a": except: rule "2026-02-30": "2026-02-30" is not a day`}},
	{"except bad cron", "tasks:\n  - name: a\n    every: 1h\n    except: [{cron: '0 0 * * 9'}]\n",
		[]string{"tasks.yaml:4: ", `task "a": except: rule "cron: 0 0 * * 9"`, `day-of-week field "9"`}},
	{"except on once", "tasks:\n  - name: a\n    once: 2026-12-01T00:00:00Z\n    except: [2026-12-25]\n",
		[]string{"tasks.yaml:4: ", `task "a": except: a once trigger has one slot`}},
	{"dst on every", "tasks:\n  - name: a\n    every: 1h\n    dst: {gap: skip}\n",
		[]string{"tasks.yaml:4: ", `task "a": dst: only a cron trigger reads the wall clock`}},
	{"dst gap unknown", "tasks:\n  - name: a\n    cron: '0 * * * *'\n    dst: {gap: later}\n",
		[]string{"tasks.yaml:4: ", `task "a": dst: gap "later"; want shift (fire once when the gap ends) or skip`}},
	{"dst field unknown", "tasks:\n  - name: a\n    cron: '0 * * * *'\n    dst: {gap: skip, when: now}\n",
		[]string{"tasks.yaml:4: ", `task "a": dst: unknown field "when" (fields: gap, overlap)`}},
	{"dst empty", "tasks:\n  - name: a\n    cron: '0 * * * *'\n    dst: {}\n",
		[]string{"tasks.yaml:4: ", `task "a": dst: empty; want gap`}},
	{"dst not a mapping", "tasks:\n  - name: a\n    cron: '0 * * * *'\n    dst: skip\n",
		[]string{"tasks.yaml:4: ", `task "a": dst: want a mapping like {gap: skip, overlap: twice}`}},
	{"cron day rule wrong", "tasks:\n  - name: a\n    cron: '0 0 * * 1#6'\n",
		[]string{"tasks.yaml:3: ", `task "a": cron: "0 0 * * 1#6": day-of-week field "1#6"`}},
	{"bad cron", "tasks:\n  - name: a\n    cron: '61 * * * *'\n",
		[]string{"tasks.yaml:3: ", `task "a": cron: "61 * * * *"`, "minute field \"61\""}},
	{"cron with a newline", "tasks:\n  - name: a\n    cron: \"@foo\\nbar\"\n",
		[]string{"tasks.yaml:3: ", `task "a": cron: `, `@foo\nbar`}},
	{"once not RFC 3339", "tasks:\n  - name: a\n    once: 2026-12-01\n",
		[]string{"tasks.yaml:3: ", `task "a": once: want an RFC 3339 time like 2026-12-01T09:00:00Z, got "2026-12-01"`}},
	{"start not RFC 3339", "tasks:\n  - name: a\n    every: 1s\n    start: tomorrow\n",
		[]string{"tasks.yaml:4: ", `task "a": start: want an RFC 3339 time`, `got "tomorrow"`}},
	{"end not RFC 3339", "tasks:\n  - name: a\n    every: 1s\n    end: 2026-12-01 09:00\n",
		[]string{"tasks.yaml:4: ", `task "a": end: want an RFC 3339 time`}},
	{"end before start", "tasks:\n  - name: a\n    every: 1s\n    start: 2026-12-02T00:00:00Z\n    end: 2026-12-01T00:00:00Z\n",
		[]string{"tasks.yaml:5: ", `task "a": end: 2026-12-01T00:00:00Z is before start`}},
	{"end with once", "tasks:\n  - name: a\n    once: 2026-12-01T00:00:00Z\n    end: 2026-12-02T00:00:00Z\n",
		[]string{"tasks.yaml:4: ", `task "a": end: a once trigger takes no start or end`}},
	{"every too fine", "tasks:\n  - name: a\n    every: 1500us\n",
		[]string{"tasks.yaml:3: ", `task "a": every: period 1.5ms; want a whole number of milliseconds`}},
	{"every zero", "tasks:\n  - name: a\n    every: 0s\n",
		[]string{"tasks.yaml:3: ", `task "a": every: period 0s; want at least 1ms`}},
	{"bad mode", "tasks:\n  - name: a\n    every: 1s\n    mode: all\n",
		[]string{"tasks.yaml:4: ", `task "a": mode: "all"; want single or broadcast`}},
	{"bad misfire", "tasks:\n  - name: a\n    every: 1s\n    misfire: fire_once\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire: "fire_once"; want fire-once, fire-all or skip`}},
	{"bad overlap", "tasks:\n  - name: a\n    every: 1s\n    overlap: queue\n",
		[]string{"tasks.yaml:4: ", `task "a": overlap: "queue"; want allow, skip, buffer-one or cancel-previous`}},
	{"empty mode", "tasks:\n  - name: a\n    every: 1s\n    mode:\n",
		[]string{"tasks.yaml:4: ", `task "a": mode: want single or broadcast, got nothing`}},
	{"bad queue", "tasks:\n  - name: a\n    every: 1s\n    queue: 'a b'\n",
		[]string{"tasks.yaml:4: ", `task "a": queue: "a b"; want 1 to 64`}},
	{"empty queue", "tasks:\n  - name: a\n    every: 1s\n    queue: \"\"\n",
		[]string{"tasks.yaml:4: ", `task "a": queue: want a queue name`, `got ""`}},
	{"bad timeout", "tasks:\n  - name: a\n    every: 1s\n    timeout: soon\n",
		[]string{"tasks.yaml:4: ", `task "a": timeout: want a duration like 30s`, `got "soon"`}},
	{"negative timeout", "tasks:\n  - name: a\n    every: 1s\n    timeout: -1s\n",
		[]string{"tasks.yaml:4: ", `task "a": timeout: -1s; want a positive duration`}},
	{"timeout too fine", "tasks:\n  - name: a\n    every: 1s\n    timeout: 500us\n",
		[]string{"tasks.yaml:4: ", `task "a": timeout: want a duration like 30s (whole milliseconds)`, `got "500us"`}},
	{"jitter not below the period", "tasks:\n  - name: a\n    every: 5s\n    jitter: 5s\n",
		[]string{"tasks.yaml:", `task "a": jitter: 5s is not below the period 5s`}},
	{"jitter not a duration", "tasks:\n  - name: a\n    every: 5s\n    jitter: soon\n",
		[]string{"tasks.yaml:4: ", `task "a": jitter: want a duration like 2s (whole milliseconds), below the period`}},
	{"misfire_limit without fire-all", "tasks:\n  - name: a\n    every: 1s\n    misfire_limit: 5\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire_limit: bounds the late slots of misfire: fire-all only; this task's misfire is fire-once`}},
	{"misfire_limit with skip", "tasks:\n  - name: a\n    every: 1s\n    misfire: skip\n    misfire_limit: 5\n",
		[]string{"tasks.yaml:5: ", `task "a": misfire_limit: bounds the late slots of misfire: fire-all only; this task's misfire is skip`}},
	{"misfire_limit zero", "tasks:\n  - name: a\n    every: 1s\n    misfire_limit: 0\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire_limit: want a whole number from 1 to 10000, got "0"`}},
	{"misfire_limit too many", "tasks:\n  - name: a\n    every: 1s\n    misfire_limit: 10001\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire_limit: 10001; want 1 to 10000`}},
	{"misfire_limit a word", "tasks:\n  - name: a\n    every: 1s\n    misfire_limit: all\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire_limit: want a whole number from 1 to 10000, got "all"`}},
	{"misfire_grace zero", "tasks:\n  - name: a\n    every: 1s\n    misfire_grace: 0s\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire_grace: want a duration like 10s (whole milliseconds), got "0s"`}},
	{"misfire_grace too fine", "tasks:\n  - name: a\n    every: 1s\n    misfire_grace: 1500us\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire_grace: want a duration like 10s (whole milliseconds), got "1500us"`}},
	{"misfire_grace negative", "tasks:\n  - name: a\n    every: 1s\n    misfire_grace: -1s\n",
		[]string{"tasks.yaml:4: ", `task "a": misfire_grace: -1s; want at least 1ms`}},
	{"attempts zero", "tasks:\n  - name: a\n    every: 1s\n    attempts: 0\n",
		[]string{"tasks.yaml:4: ", `task "a": attempts: want a whole number from 1 to 100, got "0"`}},
	{"attempts too many", "tasks:\n  - name: a\n    every: 1s\n    attempts: 101\n",
		[]string{"tasks.yaml:4: ", `task "a": attempts: 101; want 1 to 100`}},
	{"attempts a word", "tasks:\n  - name: a\n    every: 1s\n    attempts: three\n",
		[]string{"tasks.yaml:4: ", `task "a": attempts: want a whole number from 1 to 100, got "three"`}},
	{"payload a list", "tasks:\n  - name: a\n    every: 1s\n    payload: [a]\n",
		[]string{"tasks.yaml:4: ", `task "a": payload: want text, got a list`}},
	{"payload too big", "tasks:\n  - name: a\n    every: 1s\n    payload: " + strings.Repeat("x", events.MaxPayload+1) + "\n",
		[]string{"tasks.yaml:4: ", `task "a": payload: 65537 bytes; want at most 65536`}},
	{"bad name", "tasks:\n  - name: a b\n    every: 1s\n",
		[]string{"tasks.yaml:2: ", `task "a b": name: has a character outside letters`}},
	{"no name", "tasks:\n  - every: 1s\n  - name: b\n    every: 1s\n",
		[]string{"tasks.yaml:2: ", `task #1: name: empty; want 1 to 200 letters`}},
	{"name a list", "tasks:\n  - name: [a]\n    every: 1s\n",
		[]string{"tasks.yaml:2: ", `task #1: name: want a task name`, "got a list"}},
	{"unnamed task's field", "tasks:\n  - name: a\n    every: 1s\n  - every: five\n",
		[]string{"tasks.yaml:4: ", `task #2: every: want a duration`}},
	{"name given after the error", "tasks:\n  - every: five\n    name: late\n",
		[]string{"tasks.yaml:2: ", `task "late": every: want a duration`}},
	{"first error by line", "tasks:\n  - name: a\n    every: 1s\n    exec: []\n  - name: b\n    every: x\n",
		[]string{"tasks.yaml:4: ", `task "a": exec`}},
	{"field key not a name", "tasks:\n  - name: a\n    every: 1s\n    [x]: 1\n",
		[]string{"tasks.yaml:4: ", `task "a": want a field name, got a list`}},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("tasks.yaml", []byte(tc.in))
			if err == nil {
				t.Fatalf("no error; parsed %+v", f)
			}
			if f != nil {
				t.Errorf("a file with the error: %+v", f)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !strings.HasPrefix(msg, tc.want[0]) {
				t.Errorf("error %q does not start with %q", msg, tc.want[0])
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Path != "tasks.yaml" || fe.Error() != msg {
				t.Errorf("error %#v is not an *Error with its path", err)
			}
		})
	}
}

func TestAliases(t *testing.T) {
	// An aliased task is the same task twice.
	_, err := Parse("t.yaml", []byte("tasks:\n  - &t {name: a, every: 1s}\n  - *t\n"))
	if err == nil || err.Error() != `t.yaml:3: duplicate task "a" (first at line 2)` {
		t.Errorf("got %v", err)
	}
	// Aliases cannot make a small file expensive to read.
	var b strings.Builder
	b.WriteString("tasks:\n  - {name: t0, every: 1s, exec: &x [" + strings.Repeat("a,", 1000) + "a]}\n")
	for i := 1; i < 1000; i++ {
		fmt.Fprintf(&b, "  - {name: t%d, every: 1s, exec: *x}\n", i)
	}
	start := time.Now()
	_, err = Parse("t.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "aliases expand to too much") {
		t.Errorf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestValidationErrorUnwraps(t *testing.T) {
	_, err := Parse("t.yaml", []byte("tasks:\n  - name: a\n    every: 1s\n    mode: all\n"))
	var se *events.SpecError
	if !errors.As(err, &se) || se.Task != "a" || se.Field != "mode" {
		t.Fatalf("got %v; want it to wrap the *events.SpecError for a's mode", err)
	}
}

func TestLoad(t *testing.T) {
	path := t.TempDir() + "/tasks.yaml"
	if err := os.WriteFile(path, []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path || len(f.Tasks) != 4 {
		t.Errorf("got path %q and %d tasks", f.Path, len(f.Tasks))
	}
	if _, err := Load(path + ".missing"); err == nil || !strings.Contains(err.Error(), path+".missing") {
		t.Errorf("missing file: got %v, want an error naming it", err)
	}
}

// TestExampleTasksFile holds the example that "taskino dev" runs: it parses,
// every task validates and runs something that needs no network.
func TestExampleTasksFile(t *testing.T) {
	f, err := Load("../../taskino/example-tasks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tasks) < 3 || f.Version < 1 {
		t.Fatalf("got version %d and %d tasks; want a version and at least 3 tasks", f.Version, len(f.Tasks))
	}
	var broadcast, retried bool
	for _, task := range f.Tasks {
		s := task.Spec
		if err := planner.Validate(s); err != nil {
			t.Error(err)
		}
		if len(task.Exec) == 0 || task.HTTP != nil {
			t.Errorf("task %q: want an exec task, which needs no network", s.Name)
		}
		if s.Trigger.Kind == events.KindOnce {
			t.Errorf("task %q: want a recurring trigger, so that a new user sees fires", s.Name)
		}
		if s.Trigger.Kind == events.KindEvery && s.Trigger.Period > 10*time.Second {
			t.Errorf("task %q: every %s; want a few seconds", s.Name, s.Trigger.Period)
		}
		broadcast = broadcast || s.Mode == events.ModeBroadcast
		retried = retried || s.Attempts > 1
	}
	if !broadcast || !retried {
		t.Errorf("want a broadcast task (got %v) and one with retries (got %v)", broadcast, retried)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	for _, tc := range errorCases {
		if len(tc.in) < 4096 {
			f.Add([]byte(tc.in))
		}
	}
	if data, err := os.ReadFile("../../taskino/example-tasks.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("tasks:\n  - &t {name: a, every: 1s, exec: &x [a, b]}\n  - {name: b, every: 1s, exec: *x}\n  - *t\n"))
	f.Add([]byte("tasks: &l [*l]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.yaml", data)
		if err != nil {
			msg := err.Error()
			if file != nil {
				t.Errorf("both a file and an error: %q", msg)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !strings.HasPrefix(msg, "f.yaml:") {
				t.Errorf("error does not start with the path: %q", msg)
			}
			return
		}
		seen := map[string]bool{}
		for _, task := range file.Tasks {
			if err := planner.Validate(task.Spec); err != nil {
				t.Errorf("accepted an invalid spec: %v", err)
			}
			if seen[task.Spec.Name] {
				t.Errorf("accepted task %q twice", task.Spec.Name)
			}
			seen[task.Spec.Name] = true
			if task.Exec != nil && (task.HTTP != nil || task.Exec[0] == "") {
				t.Errorf("task %q: exec %q with http %v", task.Spec.Name, task.Exec, task.HTTP)
			}
		}
	})
}
