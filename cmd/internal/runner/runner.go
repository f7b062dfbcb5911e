// Package runner holds the handlers the standalone worker binary runs tasks
// with: [Exec] runs a command, [HTTP] makes a request. Both are
// [dispatcher.Handler]s: each fire is one run, bounded by the context the
// dispatcher gives it (the task's timeout, or a hard stop), and what the run
// printed (the command's output, the response body) is recorded with
// [dispatcher.SetOutput], cut to its tail, whether the run succeeded or not.
//
// # Commands
//
// A command runs without a shell, argv[0] looked up in PATH, with the
// worker's environment plus the fire's details:
//
//	TASKINO_TASK          the task name
//	TASKINO_FIRE_ID       the fire id (the key to make a run idempotent)
//	TASKINO_SCHEDULED_AT  the scheduled time, UTC, RFC 3339 with milliseconds
//	                      (2026-11-21T10:00:05.000Z)
//	TASKINO_ATTEMPT       the attempt, 1 for the first
//	TASKINO_PAYLOAD       the payload text (empty when the task has none)
//	TASKINO_NODE          the worker running it (its --node name)
//
// Standard input is empty; standard output and error go, interleaved, into
// one buffer that keeps the last [Options.OutputLimit] bytes. Exit status 0
// is success; otherwise the error says "exit status N" (or "killed by
// signal SIGSEGV") followed by the last non-empty line of output.
//
// The command runs in a process group of its own, which does not outlive
// the run: when the context ends, the group is sent SIGTERM, then SIGKILL
// after [Options.KillGrace] if the command has not exited or the output is
// still open; when the command exits by itself, whatever it left running
// in its group (background children) is stopped the same way. When the
// context ended, Run returns once nothing of the group is left, or at
// SIGKILL: a stopping worker hands a fire back only after that. When the
// command exited by itself, Run returns once it has and its output ended;
// what is still in the group then, no longer holding the output, is sent
// SIGKILL when the grace runs out, Run not waiting for it. A process that should
// outlive a run must leave the group (setsid). A process outside the group
// that holds the output open does not hold Run up: the output is read for
// half a second more after the group is gone (or was sent SIGKILL), then
// cut.
//
// # HTTP requests
//
// A request carries the [Request]'s method, URL, headers and body, plus
// these headers (set after the Request's, so they win):
//
//	X-Taskino-Task          the task name
//	X-Taskino-Fire-Id       the fire id
//	X-Taskino-Scheduled-At  the scheduled time, as TASKINO_SCHEDULED_AT
//	X-Taskino-Attempt       the attempt, 1 for the first
//	X-Taskino-Node          the worker making the request (its --node name)
//	X-Taskino-Payload       the payload, percent-encoded (RFC 3986, as
//	                        Go's url.PathEscape does: decode with
//	                        url.PathUnescape or decodeURIComponent); only
//	                        when the payload is not empty
//
// A 2xx status is success; any other status is an error "HTTP 503 Service
// Unavailable" followed by the start of the response body. Redirects
// follow the client's policy (net/http's default: up to 10). At most
// 64 KiB of the response body is read.
package runner

import (
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
)

// Options tunes the handlers. The zero value is usable.
type Options struct {
	// OutputLimit is how many bytes of a run's output are kept: the last
	// ones (default 4096). The dispatcher keeps at most 8 KiB in its event.
	OutputLimit int
	// KillGrace is how long a command's process group has, after SIGTERM,
	// before SIGKILL (default 5s).
	KillGrace time.Duration
	// Client makes the HTTP requests (default: a client with no overall
	// timeout; the run's context bounds each request).
	Client *http.Client
	// Logger receives the handlers' logs (default: none).
	Logger zerolog.Logger
	// Node is the worker's name, passed to each run as TASKINO_NODE or
	// X-Taskino-Node, so a run can say which worker ran it.
	Node string
	// RedactEnv names variables of the worker's environment that commands
	// do not get (besides every TASKINO_* one, which none gets: the
	// worker's own settings, such as TASKINO_REDIS with its password). A
	// name ending in "*" is a prefix: "AWS_*".
	RedactEnv []string
}

// childEnv is the environment of a command: the worker's (environ), minus
// every TASKINO_* variable and those redact names, plus the fire's
// TASKINO_* values (fire).
func childEnv(environ, redact, fire []string) []string {
	out := make([]string, 0, len(environ)+len(fire))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TASKINO_") || redacted(name, redact) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, fire...)
}

// redacted says whether name is one of redact (a name, or a prefix ending
// in "*").
func redacted(name string, redact []string) bool {
	for _, r := range redact {
		if p, ok := strings.CutSuffix(r, "*"); ok && strings.HasPrefix(name, p) || r == name {
			return true
		}
	}
	return false
}

const (
	// drainWait is how long, once the command's group is gone (or was sent
	// SIGKILL), the output is still read: what remains holding it open is
	// a process that left the group.
	drainWait = 500 * time.Millisecond

	defaultOutputLimit = 4096
	defaultKillGrace   = 5 * time.Second
	// maxLine bounds the line of output or body snippet an error quotes.
	maxLine = 200
)

// withDefaults returns the options with every unset field at its default.
func (o Options) withDefaults() Options {
	if o.OutputLimit <= 0 {
		o.OutputLimit = defaultOutputLimit
	}
	if o.KillGrace <= 0 {
		o.KillGrace = defaultKillGrace
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	return o
}

// StopWait is the longest a handler made with opts takes to return once
// its context ends: a command's KillGrace from SIGTERM to SIGKILL, then
// the output drained, with a margin. A worker's stop waits that long for
// cancelled runs (dispatcher.Config.CancelWait), so it never hands back a
// fire whose command is still running.
func StopWait(opts Options) time.Duration {
	return opts.withDefaults().KillGrace + drainWait + time.Second
}

// scheduledAt formats a fire's scheduled time for TASKINO_SCHEDULED_AT and
// X-Taskino-Scheduled-At.
func scheduledAt(f events.Fire) string {
	return f.At.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// tail is an io.Writer that keeps the last limit bytes written to it, in at
// most 2*limit bytes of memory. It is safe for concurrent use.
type tail struct {
	mu    sync.Mutex
	limit int
	buf   []byte // the tail is its last limit bytes
	cut   bool   // bytes were dropped from the front
}

func newTail(limit int) *tail { return &tail{limit: limit} }

// Write keeps the end of p; it never fails.
func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) >= t.limit {
		t.cut = t.cut || len(t.buf) > 0 || len(p) > t.limit
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return n, nil
	}
	if len(t.buf)+len(p) > 2*t.limit {
		// Keep only what, with p, makes the last limit bytes.
		keep := t.limit - len(p)
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-keep:]...)
		t.cut = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the last limit bytes written, less the pieces of a UTF-8
// sequence the cut left at the front.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.limit {
		b = b[len(b)-t.limit:]
	}
	if t.cut || len(t.buf) > t.limit {
		b = trimPartialRune(b)
	}
	return string(b)
}

// tailString is s cut to its last limit bytes, as a tail would keep it.
func tailString(s []byte, limit int) string {
	t := newTail(limit)
	t.Write(s)
	return t.String()
}

// trimPartialRune drops the continuation bytes of a UTF-8 sequence whose
// start was cut off (at most utf8.UTFMax-1 of them).
func trimPartialRune(b []byte) []byte {
	i := 0
	for i < len(b) && i < utf8.UTFMax-1 && !utf8.RuneStart(b[i]) {
		i++
	}
	return b[i:]
}

// lastLine returns the last non-empty line of out, trimmed and at most
// maxLine bytes; "" when out has none.
func lastLine(out string) string {
	lines := strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return shorten(l)
		}
	}
	return ""
}

// snippet returns the start of body on one line (runs of white space made
// one space), at most maxLine bytes; "" when body is blank.
func snippet(body []byte) string {
	// Look at a bounded prefix only: the snippet is short.
	if len(body) > 4*maxLine {
		body = body[:4*maxLine]
	}
	return shorten(strings.Join(strings.Fields(string(body)), " "))
}

// shorten cuts s to at most maxLine bytes, ending in "..." when cut, on a
// UTF-8 boundary.
func shorten(s string) string {
	if len(s) <= maxLine {
		return s
	}
	i := maxLine - len("...")
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
