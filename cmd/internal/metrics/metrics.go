// Package metrics is the Prometheus instrumentation of taskino's binaries:
// a planner's and a worker's, each its own: counters and histograms fed by
// the planner, consumer and dispatcher hooks, and gauges read from Redis at
// scrape time (each task's state, the fire streams' lag), and the HTTP
// server of --http (/metrics and /healthz). It reads Redis only through
// store, and writes nothing there.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// Metrics holds one process's metrics: a planner's (NewPlanner) or a
// worker's (NewWorker), each registering only its own, on a registry of its
// own with the Go and process collectors. It implements planner.Metrics,
// consumer.Metrics, dispatcher.Metrics and their MissedMetrics; a hook of
// the other role is a no-op.
type Metrics struct {
	reg       *prometheus.Registry
	planned   prometheus.Counter
	missed    *prometheus.CounterVec
	runs      *prometheus.CounterVec
	lateness  *prometheus.HistogramVec
	duration  *prometheus.HistogramVec
	reclaimed prometheus.Counter
	dead      *prometheus.CounterVec
}

// DefaultBuckets are the bounds (seconds) of the run duration and lateness
// histograms: from 5 ms to a day, so an hour-long backup lands in a bucket
// of its own, not in +Inf.
var DefaultBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}

// ParseBuckets reads a comma-separated list of histogram bounds in
// seconds, ascending (the --metrics-buckets flag).
func ParseBuckets(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("--metrics-buckets %q: %q is not a positive number of seconds", s, f)
		}
		if len(out) > 0 && v <= out[len(out)-1] {
			return nil, fmt.Errorf("--metrics-buckets %q: want ascending bounds, %v after %v", s, v, out[len(out)-1])
		}
		out = append(out, v)
	}
	return out, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func missedVec() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taskino_missed_slots_total",
		Help: "Slots this process recorded missed (not run), by task, the policy that decided it, and reason: overlap, duplicate_id, paused, late (planned past the misfire grace), waited (its fire waited past the grace for a worker), no_slot or other."},
		[]string{"task", "policy", "reason"})
}

// NewPlanner returns a planner's metrics: fires planned and missed slots;
// WatchTasks adds what it reads from Redis.
func NewPlanner() *Metrics {
	m := &Metrics{
		reg: newRegistry(),
		planned: prometheus.NewCounter(prometheus.CounterOpts{Name: "taskino_fires_planned_total",
			Help: "Fires this planner appended to fire streams."}),
		missed: missedVec(),
	}
	m.reg.MustRegister(m.planned, m.missed)
	return m
}

// WatchTasks adds gauges read from st at scrape time: each task's state
// (last success, next fire, period, paused, stuck, failures in a row) and
// the lag and pending entries of the task set's fire streams. A planner
// exports them, so that they read true while no worker runs.
func (m *Metrics) WatchTasks(st *store.Store) {
	m.reg.MustRegister(&taskCollector{st: st, max: MaxTaskGauges}, &lagCollector{st: st})
}

// WatchStreams adds gauges of the workers' group on each of streams, read
// from Redis at scrape time: taskino_stream_lag (entries not yet handed to a
// worker) and taskino_stream_pending (handed out, not yet acked).
func (m *Metrics) WatchStreams(st *store.Store, streams []string) {
	m.reg.MustRegister(&lagCollector{st: st, streams: append([]string{}, streams...)})
}

// NewWorker returns a worker's metrics: runs, their duration and lateness
// (histograms with buckets, DefaultBuckets when nil), reclaims, dead
// letters and missed slots; WatchStreams adds its streams' lag.
func NewWorker(buckets []float64) *Metrics {
	if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	m := &Metrics{
		reg:    newRegistry(),
		missed: missedVec(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taskino_runs_total",
			Help: "Runs this worker finished, by task and status (completed or failed)."}, []string{"task", "status"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "taskino_fire_lateness_seconds",
			Help:    "How long after its scheduled time a first attempt started (host clock), by task.",
			Buckets: buckets}, []string{"task"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "taskino_run_duration_seconds",
			Help: "How long runs took, by task.", Buckets: buckets}, []string{"task"}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{Name: "taskino_fires_reclaimed_total",
			Help: "Fires this worker took over from workers that stopped answering."}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taskino_dead_letters_total",
			Help: "Entries this worker sent to the dead-letter stream, by task (\"\" for an entry that names none)."}, []string{"task"}),
	}
	m.reg.MustRegister(m.missed, m.runs, m.lateness, m.duration, m.reclaimed, m.dead)
	return m
}

// Planned counts a plan's fires (planner.Metrics).
func (m *Metrics) Planned(fires, _ int) {
	if m.planned != nil {
		m.planned.Add(float64(fires))
	}
}

// Missed counts the slots of a missed event (planner.MissedMetrics,
// consumer.MissedMetrics).
func (m *Metrics) Missed(e events.Event) {
	m.missed.WithLabelValues(e.Task, string(e.Policy), events.MissedKind(e)).Add(float64(max(e.Count, 1)))
}

// Reclaimed counts reclaimed fires (consumer.Metrics).
func (m *Metrics) Reclaimed(_ string, n int) {
	if m.reclaimed != nil {
		m.reclaimed.Add(float64(n))
	}
}

// DeadLettered counts a dead letter (consumer.Metrics).
func (m *Metrics) DeadLettered(task string) {
	if m.dead != nil {
		m.dead.WithLabelValues(task).Inc()
	}
}

// Ran counts a finished run (dispatcher.Metrics).
func (m *Metrics) Ran(f events.Fire, late, cost time.Duration, err error) {
	if m.runs == nil {
		return
	}
	status := events.StatusCompleted
	if err != nil {
		status = events.StatusFailed
	}
	m.runs.WithLabelValues(f.Task, status).Inc()
	m.duration.WithLabelValues(f.Task).Observe(cost.Seconds())
	if f.Attempt == 1 && f.Origin == "" { // a backfill runs past slots on purpose
		m.lateness.WithLabelValues(f.Task).Observe(max(late, 0).Seconds())
	}
}

var (
	lagDesc = prometheus.NewDesc("taskino_stream_lag",
		"Entries of a fire stream not yet handed to any worker (-1: unknown after a trim).", []string{"stream"}, nil)
	pendingDesc = prometheus.NewDesc("taskino_stream_pending",
		"Entries of a fire stream handed to a worker and not yet acked.", []string{"stream"}, nil)
)

// lagCollector reads the workers' group on each stream at scrape time;
// with no streams, on the fire streams of the stored task set.
type lagCollector struct {
	st      *store.Store
	streams []string
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc; ch <- pendingDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	streams := c.streams
	if streams == nil {
		specs, err := c.st.Specs(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(lagDesc, err)
			return
		}
		seen := map[string]bool{}
		for _, s := range specs {
			s = s.WithDefaults()
			if k := c.st.Keys().FireStream(s.Queue, s.Mode); !seen[k] {
				seen[k] = true
				streams = append(streams, k)
			}
		}
		sort.Strings(streams)
	}
	for _, s := range streams {
		lag, pending, err := c.st.GroupLag(ctx, s)
		if errors.Is(err, store.ErrNotFound) {
			lag, pending, err = 0, 0, nil
		}
		if err != nil {
			ch <- prometheus.NewInvalidMetric(lagDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag), s)
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(pending), s)
	}
}

// MaxTaskGauges bounds the tasks a planner exports per-task gauges of (in
// name order): a namespace of a million tasks would otherwise make each
// scrape read them all, and a series each. taskino_task_gauges_omitted
// counts the rest.
const MaxTaskGauges = 10_000

var (
	lastSuccessDesc = prometheus.NewDesc("taskino_task_last_success_timestamp_seconds",
		"When the task's last successful run finished (Unix time); absent until it has one.", []string{"task"}, nil)
	sinceDesc = prometheus.NewDesc("taskino_task_scheduled_since_timestamp_seconds",
		"When the task was registered, rescheduled or resumed (Unix time): a task that never succeeded is late from there.", []string{"task"}, nil)
	nextDesc = prometheus.NewDesc("taskino_task_next_fire_timestamp_seconds",
		"The task's next slot not yet planned (Unix time); absent when paused, done or not yet computed.", []string{"task"}, nil)
	periodDesc = prometheus.NewDesc("taskino_task_period_seconds",
		"Time between the task's next two slots (a once task has none).", []string{"task"}, nil)
	pausedDesc = prometheus.NewDesc("taskino_task_paused",
		"1 while the task is paused, else 0.", []string{"task"}, nil)
	stuckDesc = prometheus.NewDesc("taskino_task_stuck",
		"1 while a due fire of the task waits and no live worker can run it (no live worker reads its queue, or none has a handler for it), else 0.", []string{"task"}, nil)
	failsDesc = prometheus.NewDesc("taskino_task_consecutive_failures",
		"Slots of the task that failed since its last success (a slot's retries count once).", []string{"task"}, nil)
	omittedDesc = prometheus.NewDesc("taskino_task_gauges_omitted",
		"Tasks past the first MaxTaskGauges (10000) by name whose per-task gauges this planner does not export.", nil, nil)
)

// taskCollector reads each task's state at scrape time.
type taskCollector struct {
	st  *store.Store
	max int
}

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lastSuccessDesc, sinceDesc, nextDesc, periodDesc, pausedDesc, stuckDesc, failsDesc, omittedDesc} {
		ch <- d
	}
}

func unix(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	specs, err := c.st.Specs(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(lastSuccessDesc, err)
		return
	}
	omitted := max(len(specs)-c.max, 0)
	specs = specs[:len(specs)-omitted]
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	states, err := c.st.States(ctx, names)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(lastSuccessDesc, err)
		return
	}
	workers, err := c.st.Workers(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(stuckDesc, err)
		return
	}
	now, err := c.st.Time(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(stuckDesc, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, task string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, task)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, s := range specs {
		s = s.WithDefaults()
		ts := states[s.Name]
		if r := ts.Success; r != nil && !r.Finished.IsZero() {
			gauge(lastSuccessDesc, unix(r.Finished), s.Name)
		}
		if !ts.Since.IsZero() {
			gauge(sinceDesc, unix(ts.Since), s.Name)
		}
		if !ts.Next.IsZero() && ts.Paused.IsZero() {
			gauge(nextDesc, unix(ts.Next), s.Name)
		}
		if sched, err := planner.Compile(s.Trigger); err == nil {
			if a, ok := sched.Next(now); ok {
				if b, ok := sched.Next(a); ok {
					gauge(periodDesc, b.Sub(a).Seconds(), s.Name)
				}
			}
		}
		status, _ := store.Status(s, ts, workers)
		gauge(pausedDesc, flag(status == store.StatusPaused), s.Name)
		gauge(stuckDesc, flag(status == store.StatusStuck), s.Name)
		fails := 0
		if ts.Outcome != nil {
			fails = ts.Outcome.Fails
		}
		gauge(failsDesc, float64(fails), s.Name)
	}
	ch <- prometheus.MustNewConstMetric(omittedDesc, prometheus.GaugeValue, float64(omitted))
}

// Handler serves /metrics, and /healthz: 200 "ok" while health succeeds,
// 503 with its error, on one line, otherwise.
func (m *Metrics) Handler(health func(ctx context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := health(ctx); err != nil {
			http.Error(w, strings.Join(strings.Fields(err.Error()), " "), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Server serves h on addr until Run's ctx ends.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr (host:port; port 0 picks a free one) for h.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down within 5s and returns nil.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	<-errc
	return nil
}
