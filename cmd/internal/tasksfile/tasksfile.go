package tasksfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/taskino/taskino/events"
	"go.yaml.in/yaml/v3"
)

// File is a parsed tasks file.
type File struct {
	Path    string // as given to Parse/Load
	Version int64  // 0 when the file has none
	Tasks   []Task // in file order; names are unique
	// RedactEnv names the worker's environment variables its commands do
	// not get (redact_env; besides TASKINO_*, which none gets): names,
	// or prefixes ending in "*".
	RedactEnv []string
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
	// SecretHeaders names headers whose values are secrets (besides
	// Authorization, Cookie and X-Api-Key): never logged, and dropped on a
	// redirect to another host.
	SecretHeaders []string
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
	topFields  = []string{"version", "redact_env", "tasks"}
	taskFields = []string{"name", "every", "cron", "tz", "dst", "except", "jitter", "once", "start", "end", "queue", "mode", "misfire", "misfire_limit", "misfire_grace", "overlap", "timeout", "attempts", "limit", "pause_after_failures", "payload", "exec", "http"}
	httpFields = []string{"method", "url", "headers", "secret_headers", "body"}
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
		case "redact_env":
			f.RedactEnv = p.redactEnv(kv.val)
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

// envNameRE is an environment variable name redact_env takes, with an
// optional "*" ending a prefix.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\*?$`)

// redactEnv reads redact_env: a list of variable names (or prefixes
// ending in "*").
func (p *parser) redactEnv(n *yaml.Node) []string {
	const want = `a list of environment variable names such as [AWS_SECRET_ACCESS_KEY, "DB_*"]`
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "redact_env: want %s, got %s", want, describe(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		if item.Kind != yaml.ScalarNode || !envNameRE.MatchString(item.Value) {
			p.errorf(item.Line, "redact_env[%d]: want a variable name of letters, digits and _ (a trailing * for a prefix), got %s", i, describe(item))
			continue
		}
		out = append(out, item.Value)
	}
	return out
}
