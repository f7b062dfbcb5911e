package dispatcher

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Handlers maps task names to what runs their fires.
type Handlers map[string]Handler

// WorkerConfig tunes a Worker. The zero value is usable: zero fields take
// their defaults; a value out of range is an error from NewWorker.
type WorkerConfig struct {
	// Namespace of the task set (default "default").
	Namespace string
	// Queues read, single and broadcast (default: the queues of Tasks, or
	// "default" without Tasks).
	Queues []string
	// Node names this worker in the group, in events and logs (default:
	// host-pid-random). Two live workers must not share one.
	Node string
	// Tasks, when set, are the specs this program registers (the ones it
	// gives its planner): NewWorker then checks them against the handlers
	// and refuses to start on a handler for a task not among them, or a
	// task on one of the worker's queues without a handler.
	Tasks []events.Spec
	// Version is the task-set version of the tasks this program registers
	// (planner.Config.Version; a tasks file's version). The worker
	// publishes it with its heartbeats (store.Store.Workers) and, while
	// the namespace's stored version is higher, logs a warning naming both
	// versions and the tasks whose definitions differ from TaskSet's (or
	// Tasks'), and publishes itself stale. 0: not said, never stale.
	Version int64
	// TaskSet is the task set of Version compared with the stored one for
	// that warning, for a program whose handlers cover only part of the
	// tasks it registers (a tasks file whose Go tasks other workers run),
	// which therefore cannot give Tasks. It is only compared; nil: Tasks.
	TaskSet []events.Spec
	// Concurrency is the most runs at once (default 10).
	Concurrency int
	// Grace is how long Run, when its context is cancelled, lets runs under
	// way finish before it cancels them (default 30s).
	Grace time.Duration
	// CancelWait is how long a stop waits for cancelled runs to return
	// before it abandons them (default 10s; see Config.CancelWait).
	CancelWait time.Duration
	// RetryDelay is the wait before the next attempt (see Config.RetryDelay).
	RetryDelay func(attempt int, err error, f events.Fire) time.Duration
	// Logger receives the worker's logs (default: warnings and errors, as
	// JSON lines on stderr; zerolog.Nop() for none).
	Logger zerolog.Logger
	// Metrics, when set, is told of runs, reclaims and dead letters.
	Metrics WorkerMetrics
	// Stream tunes the stream side: visibility timeout, read-ahead, early
	// fires, trims (see consumer.Config). Its Namespace, Queues, Node,
	// Logger and Metrics must be left unset: the fields above set them.
	Stream consumer.Config
}

// WorkerMetrics receives all of a worker's counts.
type WorkerMetrics interface {
	Metrics
	consumer.Metrics
}

// Worker is a taskino worker: a consumer reading the fires of its queues
// from Redis and a dispatcher running their handlers. It is how a program
// runs a worker, and how taskino-worker runs one.
type Worker struct {
	d      *Dispatcher
	c      *consumer.Consumer
	queues []string
	// checked: the handlers were checked against WorkerConfig.Tasks at
	// New; otherwise Run compares them with the stored task set.
	checked bool
}

// NewWorker returns a worker of cfg.Namespace on rdb (a single server,
// Sentinel or Cluster client) running handlers. It fails, naming the
// problem, on a config field out of range, a handler name no task can
// have, and (with cfg.Tasks) handlers and tasks that do not match.
func NewWorker(rdb redis.UniversalClient, cfg WorkerConfig, handlers Handlers) (*Worker, error) {
	if err := checkHandlers(handlers); err != nil {
		return nil, err
	}
	sc := cfg.Stream
	for _, f := range []struct {
		field string
		set   bool
	}{{"Namespace", sc.Namespace != ""}, {"Queues", len(sc.Queues) > 0}, {"Node", sc.Node != ""},
		{"Logger", !reflect.ValueOf(sc.Logger).IsZero()}, {"Metrics", sc.Metrics != nil}} {
		if f.set {
			return nil, fmt.Errorf("dispatcher: WorkerConfig.Stream.%s is set; set WorkerConfig.%s instead", f.field, f.field)
		}
	}
	if cfg.Version < 0 {
		return nil, fmt.Errorf("dispatcher: WorkerConfig.Version: %d is negative; want 0 (not said) or the task-set version, from 1", cfg.Version)
	}
	queues := cfg.Queues
	if len(queues) == 0 {
		queues = queuesOf(cfg.Tasks)
	}
	if err := matchTasks(cfg.Tasks, queues, handlers); err != nil {
		return nil, err
	}
	dc := Config{Concurrency: cfg.Concurrency, Grace: cfg.Grace, CancelWait: cfg.CancelWait, RetryDelay: cfg.RetryDelay, Logger: cfg.Logger}
	if err := dc.validate("WorkerConfig"); err != nil {
		return nil, err
	}
	dc = dc.WithDefaults()
	sc.Namespace, sc.Queues, sc.Node, sc.Logger = cfg.Namespace, queues, cfg.Node, dc.Logger
	if cfg.Metrics != nil {
		sc.Metrics, dc.Metrics = cfg.Metrics, cfg.Metrics
	}
	c, err := consumer.New(rdb, sc)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: WorkerConfig.Stream: %w", err)
	}
	d, err := New(c, dc)
	if err != nil {
		return nil, err
	}
	for name, h := range handlers {
		d.handlers[name] = h
	}
	set := cfg.TaskSet
	if set == nil {
		set = cfg.Tasks
	}
	c.Advertise(consumer.Advert{Tasks: sortedKeys(handlers), Version: cfg.Version, Specs: set})
	return &Worker{d: d, c: c, queues: sc.WithDefaults().Queues, checked: cfg.Tasks != nil}, nil
}

// checkHandlers refuses an empty set of handlers, a name no task can have
// and a nil handler.
func checkHandlers(handlers Handlers) error {
	if len(handlers) == 0 {
		return fmt.Errorf("dispatcher: a worker without handlers has nothing to run")
	}
	for name, h := range handlers {
		if err := events.ValidateName(name); err != nil {
			return fmt.Errorf("dispatcher: handler %q: %w", name, err)
		}
		if isNil(h) {
			return fmt.Errorf("dispatcher: handler %q is nil", name)
		}
	}
	return nil
}

// SetHandlers replaces all of the worker's handlers with handlers, and
// what it publishes with them: version and taskSet, as
// WorkerConfig.Version and WorkerConfig.TaskSet (nil: none). It is safe
// while Run runs: a run under way goes on with the handler it started
// with, and every fire started after the call runs the new one (a task
// left without a handler has its fires dead-lettered, as at start). The
// queues read stay those of NewWorker. It refuses, changing nothing, what
// NewWorker refuses of handlers: none, a name no task can have, a nil one.
// Unlike NewWorker with WorkerConfig.Tasks, it does not check the
// handlers against a registered task set.
func (w *Worker) SetHandlers(handlers Handlers, version int64, taskSet []events.Spec) error {
	if err := checkHandlers(handlers); err != nil {
		return err
	}
	hs := make(map[string]Handler, len(handlers))
	for name, h := range handlers {
		hs[name] = h
	}
	w.d.mu.Lock()
	w.d.handlers = hs
	w.d.mu.Unlock()
	w.c.Advertise(consumer.Advert{Tasks: sortedKeys(handlers), Version: version, Specs: taskSet})
	return nil
}

// Run reads and runs fires until ctx is cancelled or Stop is called, then
// stops (gracefully, within Grace, when ctx ended) and returns nil once
// every outcome is recorded (see Dispatcher.Run).
//
// A worker given no WorkerConfig.Tasks first compares its handlers with
// the namespace's stored task set and logs a warning for a handler of no
// stored task (a typo, say) and for a stored task of its queues without a
// handler: other programs may register tasks on the same queues, so this
// is not an error.
func (w *Worker) Run(ctx context.Context) error {
	if w.checked {
		return w.d.Run(ctx)
	}
	wctx, cancel := context.WithCancel(ctx)
	warned := make(chan struct{})
	go func() {
		defer close(warned)
		if specs, ok := w.c.LoadedSpecs(wctx); ok {
			w.warnMismatch(specs)
		}
	}()
	err := w.d.Run(ctx)
	cancel()
	<-warned
	return err
}

// warnMismatch logs what matchTasks would refuse, against the task set the
// consumer loaded at start (nothing when none is stored yet).
func (w *Worker) warnMismatch(specs []events.Spec) {
	if len(specs) == 0 {
		return
	}
	w.d.mu.Lock()
	hs := make(Handlers, len(w.d.handlers))
	for name, h := range w.d.handlers {
		hs[name] = h
	}
	w.d.mu.Unlock()
	if err := matchTasks(specs, w.queues, hs); err != nil {
		w.d.log.Warn().Str("namespace", w.c.Store().Namespace()).Msg(strings.Replace(err.Error(), "registered tasks", "the stored task set", 1) +
			"; fires of a task without a handler here are dead-lettered")
	}
}

// Stop stops taking fires and waits for the runs under way (see
// Dispatcher.Stop).
func (w *Worker) Stop(ctx context.Context) error { return w.d.Stop(ctx) }

// StopAndCancel stops taking fires and cancels the runs under way at once
// (see Dispatcher.StopAndCancel).
func (w *Worker) StopAndCancel(ctx context.Context) error { return w.d.StopAndCancel(ctx) }

// Health is nil while the worker's heartbeats and reclaims succeed, and an
// error naming the failing one while either keeps failing (see
// consumer.Consumer.Health).
func (w *Worker) Health() error { return w.c.Health() }

// Node is the worker's name in the group, in events and logs.
func (w *Worker) Node() string { return w.c.Node() }

// Queues are the queues the worker reads.
func (w *Worker) Queues() []string { return slices.Clone(w.queues) }

// Store is the worker's store (its namespace on Redis), for what an
// operator or tool does: reading state and events, triggering.
func (w *Worker) Store() *store.Store { return w.c.Store() }

// TriggerTask appends a fire of task with payload now, for whichever
// worker of its queue takes it, and returns the fire's entry id.
func (w *Worker) TriggerTask(ctx context.Context, task, payload string) (string, error) {
	return w.c.TriggerTask(ctx, task, payload)
}

// isNil reports whether h is nil or holds a nil func, pointer, map, chan,
// slice or interface: a handler that would panic at every run.
func isNil(h Handler) bool {
	if h == nil {
		return true
	}
	switch v := reflect.ValueOf(h); v.Kind() {
	case reflect.Func, reflect.Pointer, reflect.Map, reflect.Chan, reflect.Slice, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// queuesOf is the queues of specs, in order of first appearance.
func queuesOf(specs []events.Spec) []string {
	var qs []string
	for _, s := range specs {
		if q := s.WithDefaults().Queue; !slices.Contains(qs, q) {
			qs = append(qs, q)
		}
	}
	return qs
}

// matchTasks checks a program's handlers against the tasks it registers
// (none: nothing to check): each handler is for a registered task, and
// each registered task on the worker's queues has a handler. The error
// names both sides.
func matchTasks(specs []events.Spec, queues []string, handlers Handlers) error {
	if specs == nil {
		return nil
	}
	defaults := consumer.Config{Queues: queues}.WithDefaults().Queues
	registered := map[string]bool{}
	var names []string
	var problems []string
	for _, s := range specs {
		if registered[s.Name] {
			return fmt.Errorf("dispatcher: WorkerConfig.Tasks: task %q is there twice; task names are unique in a namespace", s.Name)
		}
		registered[s.Name] = true
		names = append(names, s.Name)
		if _, ok := handlers[s.Name]; !ok && slices.Contains(defaults, s.WithDefaults().Queue) {
			problems = append(problems, fmt.Sprintf("task %q (queue %q) is registered but has no handler", s.Name, s.WithDefaults().Queue))
		}
	}
	var extra []string
	for name := range handlers {
		if !registered[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		problems = append(problems, fmt.Sprintf("handler %q is for no registered task", name))
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(names)
	return fmt.Errorf("dispatcher: handlers and registered tasks do not match: %s (registered: %s; handlers: %s)",
		strings.Join(problems, "; "), strings.Join(names, ", "), strings.Join(sortedKeys(handlers), ", "))
}

func sortedKeys(h Handlers) []string {
	ks := make([]string, 0, len(h))
	for k := range h {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
