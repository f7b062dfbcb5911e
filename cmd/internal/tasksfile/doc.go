// Package tasksfile reads the YAML tasks file of taskino's binaries: a
// version and a list of tasks, each with its trigger, how its fires are
// handled and what a worker binary runs for it.
//
// # Format
//
// A tasks file is one YAML document, in UTF-8:
//
//	version: 3
//	tasks:
//	  - name: heartbeat
//	    every: 5s
//	    exec: [sh, -c, 'echo "beat $TASKINO_FIRE_ID"']
//	  - name: report
//	    cron: "0 */5 * * * *"
//	    tz: Europe/Paris
//	    mode: broadcast
//	    timeout: 30s
//	    http:
//	      method: POST
//	      url: https://example.com/hook
//	      headers: {Authorization: "Bearer x"}
//	      body: '{"k": 1}'
//
// Its top level is a mapping with these fields, and no others:
//
//   - version (optional): the version of the task set, a whole number from
//     0 to 2^63-1. Bump it whenever the set changes: a planner replaces the
//     stored set only with a higher one. Absent means 0, no version: the
//     binary that applies the file decides what that means.
//   - tasks (required): the list of tasks. An empty list ("tasks: []", or
//     "tasks:" with nothing under it) is a set with no tasks.
//
// Each task is a mapping with these fields, and no others:
//
//   - name (required): 1 to 200 letters, digits and . _ - : / characters,
//     unique in the file.
//   - every: a trigger with a fixed period, a Go duration such as 5s, 1m30s,
//     250ms or 2h: a whole number of milliseconds, at least 1ms. Without
//     start its slots are whole multiples of the period since the Unix
//     epoch (every: 1m fires on the minute); with start they are start,
//     start + period, and so on.
//   - cron: a trigger on the slots of a cron expression: 5 fields (minute
//     first), 6 (seconds first), or a descriptor (@hourly, @daily, @weekly,
//     @monthly, @yearly). Quote it: in YAML an unquoted * starts an alias.
//   - tz: the IANA time zone the cron expression is read in, such as
//     Europe/Paris (default UTC; Local is refused, as it differs from host
//     to host). Only with cron.
//   - once: a trigger that fires a single time, at an RFC 3339 time such as
//     2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00.
//   - start, end: RFC 3339 times bounding an every or cron trigger: no slot
//     before start or after end (both inclusive). Not with once.
//   - queue: the fire stream the task's fires go to: 1 to 64 letters, digits
//     and . _ - (default "default").
//   - mode: single (default), one worker runs each fire; or broadcast, every
//     live worker of the queue runs it.
//   - misfire: what happens to slots planned late, when all planners were
//     down: fire-once (default) fires the latest and records the others as
//     missed; fire-all fires the latest misfire_limit and records older
//     ones; skip fires none and records them all.
//   - misfire_limit: how many late slots fire-all fires, 1 to 10000
//     (default 100).
//   - misfire_grace: a Go duration, whole milliseconds: how late a slot may
//     be planned and still fire as on time, outside the misfire policy, and
//     how late after its instant a once task may be registered and still
//     fire (default 10s).
//   - overlap: what happens to a fire due while the task's previous run
//     still runs: allow (default) runs it; skip drops it (recorded as
//     missed); buffer-one keeps one waiting and drops further ones;
//     cancel-previous cancels the run under way (recorded cancelled) and
//     runs the new one (single-mode tasks only).
//   - timeout: a Go duration bounding one run, a whole number of
//     milliseconds; 0 or absent means no limit.
//   - attempts: how many times a failing fire is tried before it is
//     dead-lettered, 1 to 100 (default 3).
//   - payload: text handed to every run of the task, at most 64 KiB.
//   - exec: the program a worker binary runs for each fire, and its
//     arguments: a non-empty list of strings whose first item is not empty,
//     such as [sh, -c, 'echo hi']. It runs without a shell; put one in the
//     list, as here, when you need one.
//   - http: the request a worker binary sends for each fire, a mapping with
//     url (required: an absolute http:// or https:// URL), method (GET,
//     HEAD, POST, PUT, PATCH, DELETE or OPTIONS, in any case; default GET,
//     or POST when body is set), headers (a mapping of header names to
//     values) and body (text). No other field.
//
// A task has exactly one trigger (every, cron or once) and at most one of
// exec and http. A task with neither is run by a handler in a Go program.
//
// Values are read as written: "payload: 42" is the text "42". An empty
// value for queue, mode, misfire, misfire_limit, misfire_grace, overlap, tz,
// timeout or attempts (field: with nothing after it, "", or 0 for a number
// or misfire_grace) is refused rather than read as the default: leave the
// field out instead. YAML aliases (*name) are
// followed; merge keys (<<) are refused.
//
// # Errors
//
// Parse checks everything about the file, including all that
// [github.com/taskino/taskino/planner.Validate] checks (cron syntax too), and
// refuses the file with one error: the problem found first in the file
// (spec validation, which stops at its first problem, runs on a task only
// once its fields parse). It is an [*Error], whose message is one line of
// the form
//
//	tasks.yaml:7: task "report": every: want a duration like 5s or 1m30s, got "five"
//
// naming the task (by name, or as "task #N", the N-th entry, when it has
// none), the field, what was expected and what was found.
package tasksfile
