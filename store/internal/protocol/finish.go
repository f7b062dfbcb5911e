package protocol

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/internal/core"
)

// The worker's outcomes: what Finish records of a run, atomically with the
// ack of its fire (see finishScript).

// Outcome is what to record of one delivery, atomically with its ack.
type Outcome struct {
	// Delivery is the fire the outcome is of. Its entry is acked unless it
	// is a broadcast fire; a zero Delivery records the events alone.
	Delivery Delivery
	// Events are appended to the events stream.
	Events []events.Event
	// Dead, when set, dead-letters the entry with this reason (and
	// events.DeadError, the last failure, if any).
	Dead      string
	DeadError string
	// RetryIn, when positive, appends Delivery's fire again after this
	// long, with its attempt count one higher.
	RetryIn time.Duration
	// LastRun, when set, is the run's record for the task's state: its
	// last outcome, and its last success when completed (see finishScript
	// for when it is kept). Its Fired time, when zero, is taken from the
	// entry of a first attempt (a retry's entry is younger than the slot's
	// first).
	LastRun *events.LastRun
	// EndOverlap ends the run's hold of the task's overlap policy, and
	// releases the buffered fire if there is one.
	EndOverlap bool
}

// MaxDeadFields bounds the original fields a dead letter copies (a script
// passes at most about 8,000 values); events.DeadTruncated counts the rest.
const MaxDeadFields = 2000

// DefaultDeadMaxLen bounds the dead-letter stream (approximately).
const DefaultDeadMaxLen = 1_000_000

// Finish records outcomes, each atomically with the ack of its entry (see
// finishScript), in one round trip. It returns how many were recorded: an
// entry acked before (another worker reclaimed and finished it) records
// nothing.
func (w *Worker) Finish(ctx context.Context, worker string, outs []*Outcome) (int, error) {
	if len(outs) == 0 {
		return 0, nil
	}
	keys := []string{w.keys.Events(), w.keys.Dead(), w.keys.Retry(), w.keys.LastRun()}
	args := scriptArgs(finishScript, keys, 8+len(outs)*40)
	args = append(args, core.WorkerGroup, w.maxLen(), DefaultDeadMaxLen, len(outs), w.historyLen, w.keys.History(""))
	// The headers: each stream's range of entries to ack, and the tasks
	// whose state the batch reads.
	type span struct {
		lo, hi string
		n      int
	}
	var order []string
	spans := map[string]*span{}
	var names []string
	seen := map[string]bool{}
	for _, o := range outs {
		d := &o.Delivery
		if d.EntryID != "" && !d.Broadcast {
			sp := spans[d.Stream]
			if sp == nil {
				sp = &span{lo: d.EntryID, hi: d.EntryID}
				spans[d.Stream] = sp
				order = append(order, d.Stream)
			} else if core.LessID(d.EntryID, sp.lo) {
				sp.lo = d.EntryID
			} else if core.LessID(sp.hi, d.EntryID) {
				sp.hi = d.EntryID
			}
			sp.n++
		}
		if o.LastRun != nil && !seen[o.LastRun.Task] {
			seen[o.LastRun.Task] = true
			names = append(names, o.LastRun.Task)
		}
	}
	args = append(args, len(order))
	for _, st := range order {
		sp := spans[st]
		args = append(args, st, sp.lo, sp.hi, sp.n)
	}
	args = append(args, len(names))
	for _, n := range names {
		args = append(args, n)
	}
	var buf []byte // last-run records, sliced into strings
	for _, o := range outs {
		d := &o.Delivery
		ack := d.EntryID
		if d.Broadcast {
			ack = ""
		}
		// The op count goes before the ops: reserve its place.
		args = append(args, d.Stream, ack, 0)
		at, nops := len(args)-1, 0
		// op appends an op's code and its argument count (filled in by
		// done) and returns where the count is.
		op := func(code string) int {
			args = append(args, code, 0)
			nops++
			return len(args) - 1
		}
		done := func(n int) { args[n] = len(args) - n - 1 }
		if o.LastRun != nil {
			r := *o.LastRun
			if r.Fired.IsZero() && d.Fire.Attempt <= 1 && d.EntryID != "" {
				r.Fired, _ = events.EntryTime(d.EntryID)
			}
			from := len(buf)
			buf = events.AppendLastRun(buf, r)
			rec := string(buf[from:])
			fire := string(events.AppendJSONString(append(buf[len(buf):], `"fire":`...), r.Fire)) + ","
			success := "0"
			if r.Status == events.StatusCompleted {
				success = "1"
			}
			n := op("L")
			args = append(args, r.Task, rec, fire, r.Scheduled.UnixMilli(), success)
			done(n)
		}
		for j := range o.Events {
			e := &o.Events[j]
			var n, h int
			if inHistory(e.Type) && e.Task != "" {
				n = op("O")
				args = append(args, e.Task, "")
				h = len(args) - 1
			} else {
				n = op("E")
			}
			// The run's fired and started times go to the history alone:
			// the events stream has the started event, and the fire.
			fired, started := e.Fired, e.Started
			if h > 0 {
				e.Fired, e.Started = time.Time{}, time.Time{}
			}
			from := len(args)
			var err error
			args, err = e.AppendArgs(args)
			e.Fired, e.Started = fired, started
			if err != nil {
				return 0, fmt.Errorf("event %s of fire %s: %w", e.Type, d.Fire.ID, err)
			}
			if h > 0 {
				at := len(buf)
				buf = events.AppendHistory(buf, args[from:], fired, started)
				args[h] = string(buf[at:])
			}
			done(n)
		}
		if o.Dead != "" {
			n := op("D")
			args = append(args, events.DeadReason, o.Dead, events.DeadSource, d.Stream, events.DeadEntry, d.EntryID, events.DeadWorker, worker)
			if o.DeadError != "" {
				args = append(args, events.DeadError, o.DeadError)
			}
			k := 0
			var cut []string
			for f, v := range d.Raw {
				if k == MaxDeadFields {
					args = append(args, events.DeadTruncated, strconv.Itoa(len(d.Raw)-k))
					break
				}
				if n, ok := events.CutSize(v); ok {
					// Never read whole (store.BoundReplies): nothing of it to keep.
					cut = append(cut, f+":"+strconv.FormatInt(n, 10))
					v = ""
				} else if len(v) > events.MaxDeadFieldBytes {
					cut = append(cut, f+":"+strconv.Itoa(len(v)))
					v = v[:events.MaxDeadFieldBytes]
				}
				args = append(args, events.DeadFieldPrefix+f, v)
				k++
			}
			if len(cut) > 0 {
				args = append(args, events.DeadCut, strings.Join(cut, ","))
			}
			done(n)
		}
		if o.RetryIn > 0 {
			f := d.Fire
			f.Attempt++
			m, err := retryMember(d.Stream, f)
			if err != nil {
				return 0, err
			}
			n := op("R")
			args = append(args, o.RetryIn.Milliseconds(), m)
			done(n)
		}
		if o.EndOverlap {
			n := op("U")
			args = append(args, w.keys.Running(d.Fire.Task), w.keys.Buffer(d.Fire.Task), d.Fire.ID)
			done(n)
		}
		args[at] = nops
	}
	n, err := runScript(ctx, w.rdb, finishScript, args).Int()
	if err != nil {
		return 0, fmt.Errorf("record %d outcomes: %w", len(outs), err)
	}
	return n, nil
}

// inHistory reports whether events of type t go to their task's history:
// those that end a run, a fire or a slot.
func inHistory(t events.Type) bool {
	switch t {
	case events.TypeCompleted, events.TypeFailed, events.TypeCancelled, events.TypeDead, events.TypeMissed:
		return true
	}
	return false
}
