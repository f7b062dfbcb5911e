package store

import (
	"github.com/taskino/taskino/store/internal/core"
	"github.com/taskino/taskino/store/internal/protocol"
)

// PlanningProtocol returns the planning steps on s's namespace (claim due
// tasks, plan or release them), for package planner and this module's
// benchmarks and tests. A claim must be planned or released before its
// lease ends; called out of that order (or by two callers sharing a lease
// token) the steps no longer keep their promises. The returned type is
// internal: a program outside this module cannot name it, but it can call
// its methods; doing so is unsupported, outside every promise, and may
// break in any version.
func PlanningProtocol(s *Store) *protocol.Planning { return s.planning }

// WorkerProtocol returns the worker steps on s's namespace (read, reclaim,
// begin, heartbeat, finish or hand back fires; move retries, trim), for
// package consumer and this module's benchmarks and tests. A fire read must
// be heartbeated while it runs and then finished or handed back; called out
// of that order (or for a consumer name another live worker uses) the steps
// no longer keep their promises (at-least-once, no fire taken from a live
// worker). The returned type is internal: a program outside this module
// cannot name it, but it can call its methods; doing so is unsupported,
// outside every promise, and may break in any version.
func WorkerProtocol(s *Store) *protocol.Worker { return s.worker }

// The data the protocol steps take and return. It is defined in
// store/internal/protocol, beside the steps (go doc
// ./store/internal/protocol documents every field), and named here so
// that the steps' callers (planner, consumer, dispatcher) and their tests
// can name it: it is values, not steps.
type (
	// ClaimedTask is one task leased to a planner, with what it needs to
	// plan it.
	ClaimedTask = protocol.ClaimedTask
	// Claim is the result of a claim: the tasks leased, the server's clock
	// when they were, and when the next unclaimed task is due.
	Claim = protocol.Claim
	// Op is one slot of a plan: a fire (Fire set) or a miss, with the
	// event that records it.
	Op = protocol.Op
	// TaskPlan is what a planner decided for one claimed task.
	TaskPlan = protocol.TaskPlan
	// PlanResult counts what a plan wrote.
	PlanResult = protocol.PlanResult

	// Delivery is one fire handed to a worker: its stream and entry, the
	// decoded fire (or why it does not decode), how often it was handed
	// out.
	Delivery = protocol.Delivery
	// Held identifies a fire a worker is running, for heartbeats and
	// hand-backs.
	Held = protocol.Held
	// HeartbeatResult is what a heartbeat found.
	HeartbeatResult = protocol.HeartbeatResult
	// Change is a task paused, changed or removed, at a Redis server
	// time (see Keys.Changes).
	Change = protocol.Change
	// ChangeNote is a note of the changes channel: one change, or a
	// resync.
	ChangeNote = protocol.ChangeNote
	// Self is what a heartbeat records of its worker in the workers
	// registry (see Store.Workers).
	Self = protocol.Self
	// BeginResult says what the overlap policy made of a fire.
	BeginResult = protocol.BeginResult
	// Outcome is what to record of one delivery, atomically with its ack.
	Outcome = protocol.Outcome
	// Retention is what a pass of the events stream's trim found and did.
	Retention = protocol.Retention
	// PlannerAdvert is what a planner publishes of itself in the planners
	// registry (see Store.Planners).
	PlannerAdvert = protocol.PlannerState
)

// The begin results.
const (
	BeginRun      = protocol.BeginRun      // run it
	BeginReplaced = protocol.BeginReplaced // run it; the run under way was told to stop (cancel-previous)
	BeginBuffered = protocol.BeginBuffered // kept waiting for the run under way (buffer-one)
	BeginSkipped  = protocol.BeginSkipped  // dropped, recorded missed
	BeginGone     = protocol.BeginGone     // already acked elsewhere
)

// MaxVisibility (1h) bounds a worker's visibility timeout: workers refuse
// a longer one, and the reclaims of a namespace ignore any recorded above
// it (a forged entry cannot hold them off).
const MaxVisibility = protocol.MaxVisibility

// MaxDeadFields (2,000) bounds the original fields a dead letter copies (a
// script passes at most about 8,000 values); events.DeadTruncated counts
// the rest.
const MaxDeadFields = protocol.MaxDeadFields

// DefaultDeadMaxLen (1,000,000) bounds the dead-letter stream
// (approximately).
const DefaultDeadMaxLen = protocol.DefaultDeadMaxLen

// ErrNoGroup is wrapped by a read through a consumer group that does not
// exist: nobody created it, or the stream was deleted (a flush) and took
// its groups with it. Match it with errors.Is.
var ErrNoGroup = core.ErrNoGroup

// ChangesKeep is how long the changes set keeps a pause, change or
// removal (see Keys.Changes).
const ChangesKeep = protocol.ChangesKeep

// The kinds of a Change.
const (
	ChangePaused  = protocol.ChangePaused
	ChangeChanged = protocol.ChangeChanged
	ChangeRemoved = protocol.ChangeRemoved
)
