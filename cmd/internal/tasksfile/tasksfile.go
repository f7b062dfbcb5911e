package tasksfile

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"go.yaml.in/yaml/v3"
)

// File is a parsed tasks file.
type File struct {
	Path    string // as given to Parse/Load
	Version int64  // 0 when the file has none
	Tasks   []Task // in file order; names are unique
}

// Task is one task of the file: its spec and what a worker binary runs for
// it (neither Exec nor HTTP: a task whose handler is a Go program's).
type Task struct {
	// Spec is the task's spec as the file gives it: fields the file leaves
	// out are zero (Spec.WithDefaults completes them). It passes
	// planner.Validate.
	Spec events.Spec
	// Exec is the program and its arguments, run without a shell; nil
	// unless the task has exec. Exec[0] is never empty.
	Exec []string
	// HTTP is the request to send; nil unless the task has http.
	HTTP *HTTP
	// Line is the line of the task's entry in the file (from 1).
	Line int
}

// HTTP is an http task's request.
type HTTP struct {
	Method  string            // upper case; default GET, or POST when Body is set
	URL     string            // an absolute http:// or https:// URL, as written
	Headers map[string]string // names are valid header names, values have no line breaks; nil when none
	Body    string
}

// Specs returns the tasks' specs, in file order.
func (f *File) Specs() []events.Spec {
	specs := make([]events.Spec, len(f.Tasks))
	for i, t := range f.Tasks {
		specs[i] = t.Spec
	}
	return specs
}

// Error is a refused tasks file: where and what. Its message is one line.
type Error struct {
	Path string
	Line int    // from 1
	Msg  string // one line: the task, the field, what was expected and what was found
	// Err is the *events.SpecError behind Msg when the problem was found by
	// spec validation, else nil.
	Err error
}

// Error returns "path:line: msg".
func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg) }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Load reads and parses the tasks file at path. An error reading it is
// returned as the os package gives it (it names the path); otherwise as
// Parse.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// The fields of the file, in the order error messages list them.
var (
	topFields  = []string{"version", "tasks"}
	taskFields = []string{"name", "every", "cron", "tz", "once", "start", "end", "queue", "mode", "misfire", "misfire_limit", "misfire_grace", "overlap", "timeout", "attempts", "payload", "exec", "http"}
	httpFields = []string{"method", "url", "headers", "body"}
	triggers   = []string{"every", "cron", "once"}
	methods    = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)

// Parse parses a tasks file; path is only used in errors and File.Path
// ("(tasks file)" when empty). It returns the file, or an *Error for the
// problem found first in the file (see the package doc), never both. It
// does not panic, whatever data holds.
func Parse(path string, data []byte) (f *File, err error) {
	if path == "" {
		path = "(tasks file)"
	}
	p := &parser{path: path, budget: 8*len(data) + 4096}
	defer func() {
		if r := recover(); r != nil {
			abort, ok := r.(abortParse)
			if !ok {
				panic(r)
			}
			f, err = nil, abort.err
		}
	}()
	f = p.file(data)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs[0]
	}
	f.Path = path
	return f, nil
}

// abortParse stops a parse at once (a syntax error, or aliases that expand
// too much); Parse recovers it.
type abortParse struct{ err *Error }

type parser struct {
	path   string
	budget int // nodes left to visit; aliases cannot make a parse expensive
	errs   []*Error
}

func (p *parser) newError(line int, cause error, format string, args ...any) *Error {
	if line < 1 {
		line = 1
	}
	return &Error{Path: p.path, Line: line, Msg: oneLine(fmt.Sprintf(format, args...)), Err: cause}
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, p.newError(line, nil, format, args...))
}

func (p *parser) abortf(line int, format string, args ...any) {
	panic(abortParse{p.newError(line, nil, format, args...)})
}

// resolve follows aliases to the node they name, and counts the visit.
func (p *parser) resolve(n *yaml.Node) *yaml.Node {
	line := n.Line
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			p.abortf(line, "alias *%s names no value", n.Value)
		}
		n = n.Alias
	}
	p.budget--
	if p.budget < 0 {
		p.abortf(line, "aliases expand to too much; write the file out without them")
	}
	return n
}

// file parses the document and checks every task; problems go to p.errs.
func (p *parser) file(data []byte) *File {
	if !utf8.Valid(data) {
		line := 1 + bytes.Count(data[:firstInvalidUTF8(data)], []byte("\n"))
		p.abortf(line, "not UTF-8 text; want a UTF-8 YAML file")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		p.abortf(1, "no tasks; want a top-level \"tasks:\" list (\"tasks: []\" for none)")
	case err != nil:
		panic(abortParse{p.syntaxError(data, err)})
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		panic(abortParse{p.syntaxError(data, err)})
	default:
		p.abortf(more.Line, "a second YAML document; want one (remove the \"---\" line)")
	}

	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = p.resolve(root)
	if root.Kind != yaml.MappingNode {
		p.abortf(root.Line, "want a mapping with version and tasks at the top, got %s", describe(root))
	}
	f := &File{}
	var tasks *yaml.Node
	unknown := false
	for _, kv := range p.pairs(root, "") {
		switch kv.key {
		case "version":
			v, err := strconv.ParseInt(kv.val.Value, 10, 64)
			if kv.val.Kind != yaml.ScalarNode || isNull(kv.val) || err != nil || v < 0 {
				p.errorf(kv.val.Line, "version: want a whole number from 0 up, got %s", describe(kv.val))
				continue
			}
			f.Version = v
		case "tasks":
			tasks = kv.val
		default:
			p.errorf(kv.line, "unknown field %q (fields: %s)", kv.key, strings.Join(topFields, ", "))
			unknown = true
		}
	}
	switch {
	case tasks == nil && unknown:
		return f // a misspelt "tasks", most likely: say that rather than "no tasks"
	case tasks == nil:
		p.errorf(root.Line, "no tasks; want a top-level \"tasks:\" list (\"tasks: []\" for none)")
		return f
	case isNull(tasks):
		return f
	case tasks.Kind != yaml.SequenceNode:
		p.errorf(tasks.Line, "tasks: want a list of tasks, got %s", describe(tasks))
		return f
	}
	first := map[string]int{} // task name -> line of its first entry
	for i, item := range tasks.Content {
		t, name, ok := p.task(i+1, item)
		if name != "" {
			if at, dup := first[name]; dup {
				p.errorf(item.Line, "duplicate task %q (first at line %d)", name, at)
				ok = false
			} else {
				first[name] = item.Line
			}
		}
		if ok {
			f.Tasks = append(f.Tasks, t)
		}
	}
	return f
}

var yamlLineRE = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)
var anchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// syntaxError turns a YAML library error into an *Error with its line.
func (p *parser) syntaxError(data []byte, err error) *Error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else if m := anchorRE.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line = 1 + bytes.Count(data[:i], []byte("\n"))
		}
		msg = strings.TrimPrefix(msg, "yaml: ")
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	lines := bytes.Split(data, []byte("\n"))
	if line >= 1 && line <= len(lines) && cronUnquotedRE.Match(lines[line-1]) {
		msg += ` (quote cron expressions: cron: "*/5 * * * * *")`
	}
	return p.newError(line, nil, "YAML: %s", msg)
}

var cronUnquotedRE = regexp.MustCompile(`^[\s-]*cron\s*:\s*\*`)

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// pair is one field of a mapping: its name, the line of the name and its
// value (aliases resolved).
type pair struct {
	key  string
	line int
	val  *yaml.Node
}

// pairs returns the fields of mapping m, refusing keys that are not plain
// names and keys set twice. where prefixes the errors ("task \"x\": ").
func (p *parser) pairs(m *yaml.Node, where string) []pair {
	var out []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := p.resolve(m.Content[i])
		v := p.resolve(m.Content[i+1])
		line := m.Content[i].Line
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			p.errorf(line, "%smerge keys (<<) are not supported; write the fields out", where)
			continue
		case k.Kind != yaml.ScalarNode || isNull(k):
			p.errorf(line, "%swant a field name, got %s", where, describe(k))
			continue
		}
		if at, dup := seen[k.Value]; dup {
			p.errorf(line, "%sfield %q set twice (first at line %d)", where, k.Value, at)
			continue
		}
		seen[k.Value] = line
		out = append(out, pair{key: k.Value, line: line, val: v})
	}
	return out
}

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
			if s, ok := t.text("overlap", n, "allow, skip or buffer-one", true); ok {
				spec.Overlap = events.Overlap(s)
			}
		case "timeout":
			spec.Timeout = t.millis("timeout", n, "a duration like 30s (whole milliseconds), or 0 for none", true)
		case "attempts":
			spec.Attempts = t.count("attempts", n, events.MaxAttempts)
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

func (t *taskParse) exec(n *yaml.Node) []string {
	const want = "a non-empty list of strings like [sh, -c, 'echo hi']"
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		if n.Kind == yaml.SequenceNode {
			t.errorf(n.Line, "exec", "want %s, got an empty list", want)
		} else {
			t.bad("exec", n, want)
		}
		return nil
	}
	argv := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		field := fmt.Sprintf("exec[%d]", i)
		v := t.p.resolve(item)
		s, ok := t.text(field, v, "a string", false)
		switch {
		case !ok:
			return nil
		case i == 0 && s == "":
			t.bad(field, v, "the program to run")
			return nil
		case strings.IndexByte(s, 0) >= 0:
			t.errorf(v.Line, field, "contains a NUL byte; want text without one")
			return nil
		}
		argv = append(argv, s)
	}
	return argv
}

func (t *taskParse) http(n *yaml.Node) *HTTP {
	if n.Kind != yaml.MappingNode {
		t.bad("http", n, "a mapping with url and optional method, headers, body")
		return nil
	}
	h := &HTTP{}
	var method, urlField *yaml.Node
	for _, kv := range t.p.pairs(n, t.label+": http: ") {
		v := kv.val
		switch kv.key {
		case "method":
			method = v
		case "url":
			urlField = v
		case "body":
			if s, ok := t.text("http.body", v, "text", false); ok {
				h.Body = s
			}
		case "headers":
			h.Headers = t.headers(v)
		default:
			t.errorf(kv.line, "http", "unknown field %q (fields: %s)", kv.key, strings.Join(httpFields, ", "))
		}
	}
	const wantURL = "an absolute http:// or https:// URL"
	if urlField == nil {
		t.errorf(n.Line, "http.url", "missing; want %s", wantURL)
	} else if s, ok := t.text("http.url", urlField, wantURL, false); ok {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.bad("http.url", urlField, wantURL)
		}
		h.URL = s
	}
	switch {
	case method != nil:
		wantMethod := strings.Join(methods[:len(methods)-1], ", ") + " or " + methods[len(methods)-1]
		if s, ok := t.text("http.method", method, wantMethod, false); ok {
			h.Method = strings.ToUpper(s)
			known := false
			for _, m := range methods {
				known = known || m == h.Method
			}
			if !known {
				t.bad("http.method", method, wantMethod)
			}
		}
	case h.Body != "":
		h.Method = http.MethodPost
	default:
		h.Method = http.MethodGet
	}
	return h
}

func (t *taskParse) headers(n *yaml.Node) map[string]string {
	if n.Kind != yaml.MappingNode {
		t.bad("http.headers", n, "a mapping of header names to values")
		return nil
	}
	h := map[string]string{}
	first := map[string]int{} // canonical name -> line
	for _, kv := range t.p.pairs(n, t.label+": http.headers: ") {
		field := "http.headers." + kv.key
		if !validHeaderName(kv.key) {
			t.errorf(kv.line, "http.headers", "%q is not a header name; want letters, digits and ! # $ %% & ' * + - . ^ _ ` | ~", kv.key)
			continue
		}
		canon := http.CanonicalHeaderKey(kv.key)
		if at, dup := first[canon]; dup {
			t.errorf(kv.line, "http.headers", "%q set twice (first at line %d)", kv.key, at)
			continue
		}
		first[canon] = kv.line
		s, ok := t.text(field, kv.val, "a header value", false)
		if !ok {
			continue
		}
		if !validHeaderValue(s) {
			t.bad(field, kv.val, "a header value without line breaks or control characters")
			continue
		}
		h[kv.key] = s
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describe names what a node is, for "got ..." in errors.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.ScalarNode:
		s := n.Value
		if utf8.RuneCountInString(s) > 60 {
			r := []rune(s)
			s = string(r[:40]) + "..."
		}
		return strconv.Quote(s)
	case n.Kind == yaml.SequenceNode:
		if len(n.Content) == 0 {
			return "an empty list"
		}
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	}
	return "nothing"
}

// oneLine escapes line breaks, so that every error is one line whatever
// text it quotes.
var oneLine = strings.NewReplacer("\r\n", `\r\n`, "\n", `\n`, "\r", `\r`, "\v", `\v`, "\f", `\f`, "\u0085", `\u0085`, "\u2028", `\u2028`, "\u2029", `\u2029`).Replace
