package store

import (
	"fmt"
	"regexp"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// DefaultNamespace is the namespace used when none is given.
const DefaultNamespace = "default"

var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidateNamespace reports whether ns can name a namespace: 1 to 64
// letters, digits or . _ - (no braces: the namespace is the Redis Cluster
// hash tag).
func ValidateNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("namespace %q: want 1 to 64 letters, digits or . _ -", ns)
	}
	return nil
}

// Keys builds every Redis key name of one namespace, here and nowhere else
// (the protocol steps under store/internal take theirs from it). All of
// them share the prefix "taskino:{ns}:", whose hash tag keeps a namespace
// on one Redis Cluster slot, so the multi-key scripts are valid on Cluster.
//
// Fires, Broadcast and Events are the Redis contract users see
// (README.md, "The Redis contract"); every other key is internal and may change between versions.
type Keys struct {
	prefix string
}

// NewKeys returns the key names of namespace ns.
func NewKeys(ns string) Keys { return Keys{prefix: "taskino:{" + ns + "}:"} }

// Prefix is the common prefix of the namespace's keys.
func (k Keys) Prefix() string { return k.prefix }

// Fires is the stream of fires of single-mode tasks on queue (one worker
// runs each entry). Users XADD manual triggers here.
func (k Keys) Fires(queue string) string { return k.prefix + "fires:" + queue }

// Broadcast is the stream of fires of broadcast-mode tasks on queue (every
// live worker runs each entry).
func (k Keys) Broadcast(queue string) string { return k.prefix + "broadcast:" + queue }

// FireStream is the stream a fire of a task with this queue and mode goes to.
func (k Keys) FireStream(queue string, mode events.Mode) string {
	if mode == events.ModeBroadcast {
		return k.Broadcast(queue)
	}
	return k.Fires(queue)
}

// Events is the stream of lifecycle events.
func (k Keys) Events() string { return k.prefix + "events" }

// Settings is a hash: the namespace's settings, one value for every
// process and the CLI (see store.Settings): events_max_len,
// events_hard_max_len, events_hard_max_age_ms.
func (k Keys) Settings() string { return k.prefix + "settings" }

// EventsLost is a hash: durable listener group -> "after upTo", the range
// of events the retention's hard bounds trimmed before the group was
// delivered them (ids: the last it was delivered, and the first kept),
// until the listener reads it (Store.TakeEventsLost).
func (k Keys) EventsLost() string { return k.prefix + "events:lost" }

// Dead is the dead-letter stream.
func (k Keys) Dead() string { return k.prefix + "dead" }

// Version is a string: the task-set version in force.
func (k Keys) Version() string { return k.prefix + "version" }

// Specs is a hash: task name -> stored spec (events.MarshalSpec).
func (k Keys) Specs() string { return k.prefix + "specs" }

// Due is a sorted set: task name -> when a planner should next look at it
// (Unix ms). A claimed task's score is moved to the end of its lease, which
// hides it from other planners until then.
func (k Keys) Due() string { return k.prefix + "due" }

// statePrefix + name is a hash with a task's schedule state: since (when
// it was registered, rescheduled or resumed: its first slot is not
// earlier, but for a once instant within the misfire grace before it),
// next (the next slot not yet planned; -1 when no slot is left), gen
// (bumped by every change of the spec), skey (the schedule key), lease and
// lease_until (the planner holding it; absent or empty when none).
func (k Keys) statePrefix() string { return k.prefix + "state:" }

// State is the schedule-state hash of a task.
func (k Keys) State(task string) string { return k.statePrefix() + task }

// Planned is a hash: task name -> the latest slot (Unix ms) fired or
// recorded missed. A slot at or before it is never fired again. It is kept
// when a task is removed, so a task removed and added again cannot fire an
// old slot twice.
func (k Keys) Planned() string { return k.prefix + "planned" }

// LastRun is a hash holding each task's state, in fields named after the
// task (every value an events.MarshalLastRun record; "" or absent: none):
//
//   - task: its latest fire, written by the planner that appended it;
//   - task + "@run": the run of it a worker started (ended once its fire
//     has an outcome: the reader checks);
//   - task + "@out": its last outcome when that is a failure, with Fails,
//     the slots failed since its last success; "" when the last outcome is
//     the last success;
//   - task + "@ok": its last success.
//
// "@" cannot be in a task name. The finish script writes one field per
// outcome (a success: @ok; a failure: @out), as it wrote the last-run
// record before there was more.
func (k Keys) LastRun() string { return k.prefix + "lastrun" }

// The suffixes of a task's fields in LastRun.
const (
	StateRunning = "@run"
	StateOutcome = "@out"
	StateSuccess = "@ok"
)

// History is a stream: the task's outcome events (completed, failed,
// cancelled, dead) and its missed slots, as on the events stream, trimmed
// per task (Options.HistoryLen), so no other task's traffic erases them.
func (k Keys) History(task string) string { return k.prefix + "history:" + task }

// Wake is the pub/sub channel that tells planners the due index changed
// earlier than they planned to look (a new task set).
func (k Keys) Wake() string { return k.prefix + "wake" }

// Changes is a sorted set of the namespace's recent pauses, definition
// changes and removals of tasks (member "kind task": kind paused, changed
// or removed; score the Redis server time, ms), each kept an hour
// (ChangesKeep); and the pub/sub channel that announces them ("ms kind
// task" for a pause, "ms reload" for a task-set apply that changed or
// removed tasks). A worker drops a fire appended ahead of its slot whose
// task changed after the fire was appended (Store.Changes).
func (k Keys) Changes() string { return k.prefix + "changes" }

// Retry is a sorted set of fires waiting to be tried again: member a JSON
// array [stream, field, value, ...] (the fire entry to append), score the
// Unix ms it is due. Workers move due members back to their streams.
func (k Keys) Retry() string { return k.prefix + "retry" }

// Pulse is a hash: "last", the Redis time (Unix ms) a worker of the
// namespace last reached Redis, and "quiet", until when reclaims wait (see
// the worker protocol's Heartbeat).
func (k Keys) Pulse() string { return k.prefix + "pulse" }

// Visibility is a sorted set of the workers' visibility timeouts (member:
// ms; score: when a worker with it last reached Redis, Unix ms). Reclaims
// use the longest seen in the last 10 minutes.
func (k Keys) Visibility() string { return k.prefix + "visibility" }

// HandBacks is the pub/sub channel on which a worker that handed fires
// back publishes its name, so workers with free runs reclaim them at once.
func (k Keys) HandBacks() string { return k.prefix + "handback" }

// Workers is a hash: worker node -> its published state
// (events.MarshalWorkerState), written by its heartbeats when the state
// changed or is missing, and removed when it stops cleanly.
func (k Keys) Workers() string { return k.prefix + "workers" }

// WorkersSeen is a sorted set: worker node -> when it last reached Redis
// (Unix ms, Redis time), set by each heartbeat. A worker not seen for a
// day is removed from it and from Workers.
func (k Keys) WorkersSeen() string { return k.prefix + "workers:seen" }

// Planners is a hash: planner node -> its published state (JSON: node,
// lookahead_ms, every_ms), written every second while it runs and removed
// when it stops cleanly.
func (k Keys) Planners() string { return k.prefix + "planners" }

// PlannersSeen is a sorted set: planner node -> when it last published its
// state (Unix ms, Redis time). A planner not seen for a day is removed
// from it and from Planners.
func (k Keys) PlannersSeen() string { return k.prefix + "planners:seen" }

// Running is a string: the id of the fire of task now running, for the
// overlap policies skip, buffer-one and cancel-previous. It expires unless the worker
// running it keeps extending it, so a dead worker does not hold it.
func (k Keys) Running(task string) string { return k.prefix + "running:" + task }

// Backfilled is a hash: the slots a backfill appended a fire for (Unix ms
// -> the fire's entry id), so that no slot is backfilled twice.
func (k Keys) Backfilled(task string) string { return k.prefix + "backfilled:" + task }

// Cancel is the pub/sub channel on which a fire that begins under the
// overlap policy cancel-previous names the fire it replaces ("old new"):
// the worker running the old one cancels its run.
func (k Keys) Cancel() string { return k.prefix + "cancel" }

// Buffer is a string: the one fire of task kept waiting under the overlap
// policy buffer-one, in the form of a Retry member.
func (k Keys) Buffer(task string) string { return k.prefix + "buffer:" + task }

// TriggerID is a string: the entry id of the first manual trigger of task
// that gave this fire id, kept for TriggerIDTTL, so a repeated trigger with
// the same id is not run again. ("@" cannot be in a task name.)
func (k Keys) TriggerID(task, id string) string { return k.prefix + "trigger:" + task + "@" + id }

// TriggerIDTTL (24 hours) is how long a manual trigger's id is remembered.
const TriggerIDTTL = core.TriggerIDTTL

// WorkerGroup ("workers") is the consumer group of workers on every
// single-mode fire stream.
const WorkerGroup = core.WorkerGroup
