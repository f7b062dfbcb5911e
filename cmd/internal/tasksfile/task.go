package tasksfile

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"go.yaml.in/yaml/v3"
)

// One task entry of the file: its fields read into a Task, each error
// naming the task, the field and its line.

// taskParse is the state of one task's parse.
type taskParse struct {
	p      *parser
	label  string // "task \"x\"" or "task #3"
	line   int
	fields map[string]pair
}

func (t *taskParse) errorf(line int, field, format string, args ...any) {
	t.p.errorf(line, "%s: %s: %s", t.label, field, fmt.Sprintf(format, args...))
}

// bad reports a value that is not of the wanted form.
func (t *taskParse) bad(field string, n *yaml.Node, want string) {
	t.errorf(n.Line, field, "want %s, got %s", want, describe(n))
}

// text returns a scalar's text; nonEmpty refuses "" (which would silently
// mean the default).
func (t *taskParse) text(field string, n *yaml.Node, want string, nonEmpty bool) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) || (nonEmpty && n.Value == "") {
		t.bad(field, n, want)
		return "", false
	}
	return n.Value, true
}

func (t *taskParse) time(field string, n *yaml.Node) (time.Time, bool) {
	const want = "an RFC 3339 time like 2026-12-01T09:00:00Z"
	s, ok := t.text(field, n, want, true)
	if !ok {
		return time.Time{}, false
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.bad(field, n, want)
		return time.Time{}, false
	}
	return v.UTC(), true
}

func (t *taskParse) duration(field string, n *yaml.Node, want string) (time.Duration, bool) {
	s, ok := t.text(field, n, want, true)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.bad(field, n, want)
		return 0, false
	}
	return d, true
}

// millis reads a duration that a spec keeps to the millisecond: 500us
// would be stored as nothing at all, so it is refused, as is 0 unless
// zeroOK (where 0 would silently mean the default).
func (t *taskParse) millis(field string, n *yaml.Node, want string, zeroOK bool) time.Duration {
	d, ok := t.duration(field, n, want)
	if ok && (d%time.Millisecond != 0 || (d == 0 && !zeroOK)) {
		t.bad(field, n, want)
	}
	return d
}

// count reads a whole number from 1 to max; 0 would silently mean the
// default, so it is refused (the range itself is Validate's, which names
// it).
func (t *taskParse) count(field string, n *yaml.Node, max int) int {
	want := fmt.Sprintf("a whole number from 1 to %d", max)
	s, ok := t.text(field, n, want, true)
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil || v == 0 {
		t.bad(field, n, want)
	}
	return int(v)
}

// task parses the index-th entry of tasks. It returns the task's name (""
// when it has no usable one) for duplicate checks, and ok when the task is
// valid.
func (p *parser) task(index int, item *yaml.Node) (task Task, name string, ok bool) {
	before := len(p.errs)
	t := &taskParse{p: p, label: fmt.Sprintf("task #%d", index), line: item.Line}
	m := p.resolve(item)
	if m.Kind != yaml.MappingNode {
		p.errorf(item.Line, "%s: want a mapping with name, a trigger and other fields, got %s", t.label, describe(m))
		return Task{}, "", false
	}
	// The name first, so every other error can say which task it is about.
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := p.resolve(m.Content[i]), p.resolve(m.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == "name" && v.Kind == yaml.ScalarNode && !isNull(v) && v.Value != "" {
			name = v.Value
			shown := name
			if len(shown) > 60 {
				shown = shown[:40] + "..."
			}
			t.label = fmt.Sprintf("task %q", shown)
			break
		}
	}
	t.fields = map[string]pair{}
	pairs := p.pairs(m, t.label+": ")

	spec := events.Spec{Name: name}
	var (
		kinds          []pair // triggers, in file order
		tz             string
		start, end     time.Time
		run            []pair // exec and http, in file order
		tr             events.Trigger
		haveTZ         bool
		haveStartOrEnd bool
		dstGap         events.DSTGap
		dstOverlap     events.DSTOverlap
		except         []string
		jitter         time.Duration
	)
	for _, kv := range pairs {
		t.fields[kv.key] = kv
		n := kv.val
		switch kv.key {
		case "name":
			if s, ok := t.text("name", n, "a task name of letters, digits and . _ - : /", false); ok {
				spec.Name = s
			}
		case "every":
			kinds = append(kinds, kv)
			if d, ok := t.duration("every", n, "a duration like 5s or 1m30s"); ok {
				tr = events.Every(d)
			}
		case "cron":
			kinds = append(kinds, kv)
			if s, ok := t.text("cron", n, `a cron expression like "*/5 * * * * *"`, false); ok {
				tr = events.Cron(s)
			}
		case "once":
			kinds = append(kinds, kv)
			if at, ok := t.time("once", n); ok {
				tr = events.Once(at)
			}
		case "tz":
			tz, haveTZ = t.text("tz", n, "an IANA time zone like Europe/Paris", true)
		case "dst":
			if n.Kind != yaml.MappingNode {
				t.p.errorf(n.Line, "%s: dst: want a mapping like {gap: skip, overlap: twice}, got %s", t.label, describe(n))
				break
			}
			if len(n.Content) == 0 {
				t.p.errorf(n.Line, "%s: dst: empty; want gap (shift or skip) or overlap (once or twice), or no dst for the defaults", t.label)
				break
			}
			for _, d := range p.pairs(n, t.label+": dst: ") {
				switch d.key {
				case "gap":
					if s, ok := t.text("dst.gap", d.val, "shift (fire once when the gap ends) or skip", true); ok {
						dstGap = events.DSTGap(s)
					}
				case "overlap":
					if s, ok := t.text("dst.overlap", d.val, "once (the first occurrence) or twice", true); ok {
						dstOverlap = events.DSTOverlap(s)
					}
				default:
					t.p.errorf(d.line, "%s: dst: unknown field %q (fields: gap, overlap)", t.label, d.key)
				}
			}
		case "except":
			except = t.except(n)
		case "jitter":
			jitter = t.millis("jitter", n, "a duration like 2s (whole milliseconds), below the period", true)
		case "start":
			if v, ok := t.time("start", n); ok {
				start, haveStartOrEnd = v, true
			}
		case "end":
			if v, ok := t.time("end", n); ok {
				end, haveStartOrEnd = v, true
			}
		case "queue":
			if s, ok := t.text("queue", n, "a queue name like default", true); ok {
				spec.Queue = s
			}
		case "mode":
			if s, ok := t.text("mode", n, "single or broadcast", true); ok {
				spec.Mode = events.Mode(s)
			}
		case "misfire":
			if s, ok := t.text("misfire", n, "fire-once, fire-all or skip", true); ok {
				spec.Misfire = events.Misfire(s)
			}
		case "misfire_limit":
			spec.MisfireLimit = t.count("misfire_limit", n, events.MaxMisfireLimit)
		case "misfire_grace":
			// 0 would silently mean the default.
			spec.MisfireGrace = t.millis("misfire_grace", n, "a duration like 10s (whole milliseconds)", false)
		case "overlap":
			if s, ok := t.text("overlap", n, "allow, skip, buffer-one or cancel-previous", true); ok {
				spec.Overlap = events.Overlap(s)
			}
		case "timeout":
			spec.Timeout = t.millis("timeout", n, "a duration like 30s (whole milliseconds), or 0 for none", true)
		case "attempts":
			spec.Attempts = t.count("attempts", n, events.MaxAttempts)
		case "limit":
			spec.Limit = t.count("limit", n, events.MaxLimit)
		case "pause_after_failures":
			spec.PauseAfterFailures = t.count("pause_after_failures", n, events.MaxPauseAfterFailures)
		case "payload":
			if s, ok := t.text("payload", n, "text", false); ok {
				spec.Payload = s
			}
		case "exec":
			run = append(run, kv)
			task.Exec = t.exec(n)
		case "http":
			run = append(run, kv)
			task.HTTP = t.http(n)
		default:
			t.p.errorf(kv.line, "%s: unknown field %q (fields: %s)", t.label, kv.key, strings.Join(taskFields, ", "))
		}
	}

	switch len(kinds) {
	case 0:
		t.p.errorf(item.Line, "%s: want exactly one trigger of %s; got none", t.label, strings.Join(triggers, ", "))
	case 1:
	default:
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = k.key
		}
		got := strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
		t.p.errorf(kinds[1].line, "%s: want exactly one trigger of %s; got %s", t.label, strings.Join(triggers, ", "), got)
	}
	if len(run) > 1 {
		t.p.errorf(run[1].line, "%s: exec and http both set; want one of them", t.label)
	}
	if len(p.errs) > before {
		return Task{}, name, false
	}

	// The trigger's other fields are set whatever its kind, so that
	// validation refuses tz without cron, or start with once.
	if haveTZ {
		tr.TZ = tz
	}
	if haveStartOrEnd {
		tr = tr.From(start).Until(end)
	}
	tr = tr.DST(dstGap, dstOverlap)
	if except != nil {
		tr = tr.Excluding(except...)
	}
	tr = tr.Jittered(jitter)
	spec.Trigger = tr
	if err := planner.Validate(spec); err != nil {
		var se *events.SpecError
		if !errors.As(err, &se) {
			t.p.errs = append(t.p.errs, t.p.newError(item.Line, err, "%s: %v", t.label, err))
		} else {
			t.specError(se)
		}
		return Task{}, name, false
	}
	if kv, ok := t.fields["misfire_limit"]; ok && spec.Misfire != events.MisfireFireAll {
		// Only fire-all fires more than one late slot: a limit on any
		// other policy would be ignored without a word.
		misfire := cmp.Or(spec.Misfire, events.Spec{}.WithDefaults().Misfire)
		t.p.errorf(kv.val.Line, "%s: misfire_limit: bounds the late slots of misfire: fire-all only; this task's misfire is %s", t.label, misfire)
		return Task{}, name, false
	}
	task.Spec, task.Line = spec, item.Line
	return task, name, true
}

// specError reports a validation error at the line of the field it names.
func (t *taskParse) specError(se *events.SpecError) {
	field := se.Field
	if field == "at" {
		field = "once"
	}
	line := t.line
	if kv, ok := t.fields[field]; ok {
		line = kv.val.Line
	} else {
		// The field validation names is not in the file: the problem is
		// with its companion (tz without cron, end with once).
		alt := map[string]string{"cron": "tz", "start": "end"}[field]
		if kv, ok := t.fields[alt]; ok {
			field, line = alt, kv.val.Line
		}
	}
	t.p.errs = append(t.p.errs, t.p.newError(line, se, "%s: %s: %s", t.label, field, se.Problem))
}

// except reads the except list: days (2026-12-25), ranges of days
// (2026-12-24..2026-12-31), and cron calendars, written "cron: EXPR" or
// as a mapping {cron: EXPR}.
func (t *taskParse) except(n *yaml.Node) []string {
	const want = "a list of days (2026-12-25), ranges of days (2026-12-24..2026-12-31) or cron calendars (cron: \"* * 25 12 *\")"
	if n.Kind != yaml.SequenceNode {
		t.p.errorf(n.Line, "%s: except: want %s, got %s", t.label, want, describe(n))
		return nil
	}
	out := []string{}
	for i, item := range n.Content {
		item = t.p.resolve(item)
		switch item.Kind {
		case yaml.ScalarNode:
			if item.Value == "" {
				t.p.errorf(item.Line, "%s: except[%d]: want %s, got an empty value", t.label, i, want)
				continue
			}
			out = append(out, item.Value)
		case yaml.MappingNode:
			pairs := t.p.pairs(item, fmt.Sprintf("%s: except[%d]: ", t.label, i))
			if len(pairs) != 1 || pairs[0].key != "cron" || pairs[0].val.Kind != yaml.ScalarNode {
				keys := make([]string, len(pairs))
				for k, kv := range pairs {
					keys[k] = kv.key
				}
				t.p.errorf(item.Line, "%s: except[%d]: want {cron: EXPR} (one field, cron), or a day or range of days; got the fields %s", t.label, i, strings.Join(keys, ", "))
				continue
			}
			out = append(out, "cron: "+pairs[0].val.Value)
		default:
			t.p.errorf(item.Line, "%s: except[%d]: want %s, got %s", t.label, i, want, describe(item))
		}
	}
	return out
}
