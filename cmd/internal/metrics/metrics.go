// Package metrics is the Prometheus instrumentation of taskino's binaries:
// counters fed by the planner, consumer and dispatcher hooks, the lag of
// the fire streams read at scrape time, and the HTTP server of --http
// (/metrics and /healthz).
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// Metrics holds one process's metrics. It implements planner.Metrics,
// consumer.Metrics and dispatcher.Metrics.
type Metrics struct {
	reg       *prometheus.Registry
	planned   prometheus.Counter
	missed    prometheus.Counter
	runs      *prometheus.CounterVec
	lateness  prometheus.Histogram
	duration  *prometheus.HistogramVec
	reclaimed prometheus.Counter
	dead      prometheus.Counter
}

// New returns metrics registered on a fresh registry (with the Go and
// process collectors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		planned: prometheus.NewCounter(prometheus.CounterOpts{Name: "taskino_fires_planned_total",
			Help: "Fires this planner appended to fire streams."}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{Name: "taskino_missed_events_total",
			Help: "Missed events this planner appended (each stands for one or more slots not fired)."}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taskino_runs_total",
			Help: "Runs this worker finished, by task and status (completed or failed)."}, []string{"task", "status"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "taskino_fire_lateness_seconds",
			Help:    "How long after its scheduled time a first attempt started (host clock).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "taskino_run_duration_seconds",
			Help: "How long runs took, by task.", Buckets: prometheus.DefBuckets}, []string{"task"}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{Name: "taskino_fires_reclaimed_total",
			Help: "Fires this worker took over from workers that stopped answering."}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{Name: "taskino_dead_letters_total",
			Help: "Entries this worker sent to the dead-letter stream."}),
	}
	m.reg.MustRegister(m.planned, m.missed, m.runs, m.lateness, m.duration, m.reclaimed, m.dead,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Planned counts a plan's fires and missed events (planner.Metrics).
func (m *Metrics) Planned(fires, missed int) {
	m.planned.Add(float64(fires))
	m.missed.Add(float64(missed))
}

// Reclaimed counts reclaimed fires (consumer.Metrics).
func (m *Metrics) Reclaimed(_ string, n int) { m.reclaimed.Add(float64(n)) }

// DeadLettered counts a dead letter (consumer.Metrics).
func (m *Metrics) DeadLettered(string) { m.dead.Inc() }

// Ran counts a finished run (dispatcher.Metrics).
func (m *Metrics) Ran(f events.Fire, late, cost time.Duration, err error) {
	status := events.StatusCompleted
	if err != nil {
		status = events.StatusFailed
	}
	m.runs.WithLabelValues(f.Task, status).Inc()
	m.duration.WithLabelValues(f.Task).Observe(cost.Seconds())
	if f.Attempt == 1 {
		m.lateness.Observe(max(late, 0).Seconds())
	}
}

// WatchStreams adds gauges of the workers' group on each stream, read from
// Redis at scrape time: taskino_stream_lag (entries not yet handed to a
// worker) and taskino_stream_pending (handed out, not yet acked).
func (m *Metrics) WatchStreams(st *store.Store, streams []string) {
	m.reg.MustRegister(&lagCollector{st: st, streams: streams})
}

var (
	lagDesc = prometheus.NewDesc("taskino_stream_lag",
		"Entries of a fire stream not yet handed to any worker (-1: unknown after a trim).", []string{"stream"}, nil)
	pendingDesc = prometheus.NewDesc("taskino_stream_pending",
		"Entries of a fire stream handed to a worker and not yet acked.", []string{"stream"}, nil)
)

type lagCollector struct {
	st      *store.Store
	streams []string
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc; ch <- pendingDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range c.streams {
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
