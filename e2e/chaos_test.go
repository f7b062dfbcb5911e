package e2e

// The chaos harness: real redis-server processes, the planner and worker
// binaries as processes (SIGKILLed or SIGTERMed), a workload of HTTP and
// exec tasks whose runs leave evidence outside taskino (the test's own HTTP
// server, a file), and a checker of the promises over that evidence and the
// events stream. The scenarios are in chaos_scenarios_test.go.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

const chaosNS = "chaos"

// chaosWorkload is how many tasks of each kind run.
type chaosWorkload struct {
	every int // single HTTP tasks, every 1, 2 or 3 s
	cron  int // single HTTP tasks, cron with seconds in a zone
	bcast int // broadcast HTTP tasks, every 2 s
	exec  int // single exec tasks writing to a file, every 3 s
	flaky int // single HTTP tasks, every 3 s, failing their first attempt
	slow  int // single HTTP tasks, every 4 s, each run longer than the visibility timeout
	hang  int // single tasks that never return (one HTTP, one exec), ended by their timeout
}

// chaosTask is one task of the workload, as the checker sees it.
type chaosTask struct {
	spec  events.Spec
	sched planner.Schedule
	kind  string // every cron bcast exec flaky slow hang
}

// execution is one run seen by the evidence: a request to the test's HTTP
// server, or a line in the exec tasks' file.
type execution struct {
	task, fire string
	at         time.Time // scheduled
	attempt    int
	node       string
	ran        time.Time // when the run began
}

// evidence collects the runs, independently of taskino's bookkeeping.
type evidence struct {
	mu     sync.Mutex
	runs   []execution
	srv    *httptest.Server
	file   string // exec tasks append here
	notify func()
	hold   chan struct{} // closed at the end: releases the hanging handlers
}

const schedFormat = "2006-01-02T15:04:05.000Z07:00"

func newEvidence(t *testing.T, dir string, notify func()) *evidence {
	ev := &evidence{file: filepath.Join(dir, "exec-runs.log"), notify: notify, hold: make(chan struct{})}
	ev.srv = httptest.NewServer(http.HandlerFunc(ev.serve))
	t.Cleanup(func() {
		close(ev.hold)
		ev.srv.CloseClientConnections()
		ev.srv.Close()
	})
	return ev
}

func (ev *evidence) serve(w http.ResponseWriter, r *http.Request) {
	at, err := time.Parse(schedFormat, r.Header.Get("X-Taskino-Scheduled-At"))
	attempt, err2 := strconv.Atoi(r.Header.Get("X-Taskino-Attempt"))
	if err != nil || err2 != nil {
		http.Error(w, "bad taskino headers", http.StatusBadRequest)
		return
	}
	ev.add(execution{task: r.Header.Get("X-Taskino-Task"), fire: r.Header.Get("X-Taskino-Fire-Id"), at: at,
		attempt: attempt, node: r.Header.Get("X-Taskino-Node"), ran: time.Now()})
	switch r.URL.Path {
	case "/flaky":
		if attempt == 1 {
			http.Error(w, "first attempts fail", http.StatusInternalServerError)
			return
		}
	case "/slow":
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		case <-ev.hold:
		}
	case "/hang":
		select {
		case <-r.Context().Done():
		case <-ev.hold:
		}
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (ev *evidence) add(x execution) {
	ev.mu.Lock()
	ev.runs = append(ev.runs, x)
	ev.mu.Unlock()
	ev.notify()
}

// all returns every run so far: the HTTP ones and the exec file's lines.
func (ev *evidence) all(t *testing.T) []execution {
	ev.mu.Lock()
	out := slices.Clone(ev.runs)
	ev.mu.Unlock()
	data, err := os.ReadFile(ev.file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 6 {
			continue // a line cut by a SIGKILL at the wrong instant, or still being written
		}
		at, err := time.Parse(schedFormat, f[2])
		attempt, err2 := strconv.Atoi(f[3])
		sec, err3 := strconv.ParseFloat(f[5], 64)
		if err != nil || err2 != nil || err3 != nil {
			t.Fatalf("exec evidence line %q does not parse", line)
		}
		out = append(out, execution{task: f[0], fire: f[1], at: at, attempt: attempt, node: f[4],
			ran: time.UnixMicro(int64(sec * 1e6))})
	}
	return out
}

// window is a stretch of time in which a fault may lose Redis writes (an
// AOF tail, an unreplicated failover): duplicates there are allowed.
type window struct{ from, to time.Time }

func (w window) holds(t time.Time) bool { return !t.Before(w.from) && !t.After(w.to) }

// fault is one injected fault, for the recovery figure.
type fault struct {
	what     string
	from, to time.Time
}

// chaosProc is a planner or worker process of the run.
type chaosProc struct {
	*proc
	slot, node string
}

// chaos is one chaos run.
type chaos struct {
	t          *testing.T
	name       string
	dir        string
	redisURL   string                // what the processes connect to
	workerURL  string                // what workers connect to, when not redisURL (a fault proxy)
	rdb        redis.UniversalClient // the test's own client, never through a proxy
	st         *store.Store
	visibility time.Duration
	tasks      map[string]chaosTask
	tasksFile  string
	ev         *evidence
	plannerBin string
	workerBin  string
	cli        string
	rng        *rand.Rand

	mu     sync.Mutex
	procs  map[string]*chaosProc // by slot: p1.. w1..
	gen    map[string]int
	killed map[string]time.Time // node -> when it was SIGKILLed
	faults []fault
	loss   []window
	start  time.Time // Redis time when every process was up: slots after it are checked

	evMu   sync.Mutex
	evs    []events.Event
	cursor string // the reader's: the id of the last event read
	poke   chan struct{}
	stopRd context.CancelFunc
	rdDone chan struct{}
}

// chaosOptions set a run up.
type chaosOptions struct {
	redisURL   string // required
	workerURL  string // optional
	rdb        redis.UniversalClient
	work       chaosWorkload
	visibility time.Duration // workers' --visibility (default 2s)
}

// short picks the quick figure under -short.
func short[T any](full, quick T) T {
	if testing.Short() {
		return quick
	}
	return full
}

func newChaos(t *testing.T, o chaosOptions) *chaos {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TASKINO_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("chaos seed %d (TASKINO_CHAOS_SEED=%d reproduces the choices)", seed, seed)
	if o.visibility == 0 {
		o.visibility = 2 * time.Second
	}
	st, err := store.New(o.rdb, chaosNS, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &chaos{
		t: t, name: t.Name(), dir: t.TempDir(), redisURL: o.redisURL, workerURL: o.workerURL, rdb: o.rdb, st: st,
		visibility: o.visibility, tasks: map[string]chaosTask{},
		plannerBin: buildBinary(t, "cmd/taskino-planner"), workerBin: buildBinary(t, "cmd/taskino-worker"), cli: buildBinary(t, "cmd/taskino"),
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		procs: map[string]*chaosProc{}, gen: map[string]int{}, killed: map[string]time.Time{},
		poke: make(chan struct{}, 1),
	}
	if c.workerURL == "" {
		c.workerURL = c.redisURL
	}
	c.ev = newEvidence(t, c.dir, c.wake)
	c.writeTasks(o.work)
	return c
}

func (c *chaos) wake() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// recordRun is the exec tasks' evidence: it appends the run's line to the
// file named by $0, in one write of a line shorter than PIPE_BUF to an
// O_APPEND file, so concurrent runs do not interleave.
const recordRun = `printf '%s|%s|%s|%s|%s|%s\n' "$TASKINO_TASK" "$TASKINO_FIRE_ID" "$TASKINO_SCHEDULED_AT" "$TASKINO_ATTEMPT" "$TASKINO_NODE" "$EPOCHREALTIME" >> "$0"`

// writeTasks writes the workload's tasks file and compiles its schedules.
func (c *chaos) writeTasks(w chaosWorkload) {
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	add := func(kind string, spec events.Spec, yaml string) {
		sched, err := planner.Compile(spec.Trigger)
		if err != nil {
			c.t.Fatal(err)
		}
		c.tasks[spec.Name] = chaosTask{spec: spec, sched: sched, kind: kind}
		b.WriteString(yaml)
	}
	url := c.ev.srv.URL
	for i := range w.every {
		p := time.Duration(1+i%3) * time.Second
		n := fmt.Sprintf("every-%03d", i)
		add("every", events.Spec{Name: n, Trigger: events.Every(p)},
			fmt.Sprintf("  - {name: %s, every: %s, http: {url: %q}}\n", n, p, url+"/ok"))
	}
	for i := range w.cron {
		// Seconds fields that differ per task, in a zone with a
		// half-hour offset, so the slots are no plain multiples.
		expr := fmt.Sprintf("%d/2 * * * * *", i%2)
		n := fmt.Sprintf("cron-%03d", i)
		add("cron", events.Spec{Name: n, Trigger: events.Cron(expr).In("Asia/Kolkata")},
			fmt.Sprintf("  - {name: %s, cron: %q, tz: Asia/Kolkata, http: {url: %q}}\n", n, expr, url+"/ok"))
	}
	for i := range w.bcast {
		n := fmt.Sprintf("bcast-%03d", i)
		add("bcast", events.Spec{Name: n, Trigger: events.Every(2 * time.Second), Mode: events.ModeBroadcast},
			fmt.Sprintf("  - {name: %s, every: 2s, mode: broadcast, http: {url: %q}}\n", n, url+"/ok"))
	}
	for i := range w.exec {
		n := fmt.Sprintf("exec-%03d", i)
		add("exec", events.Spec{Name: n, Trigger: events.Every(3 * time.Second)},
			fmt.Sprintf("  - {name: %s, every: 3s, exec: [bash, -c, %q, %q]}\n", n, recordRun, c.ev.file))
	}
	for i := range w.flaky {
		n := fmt.Sprintf("flaky-%03d", i)
		add("flaky", events.Spec{Name: n, Trigger: events.Every(3 * time.Second), Attempts: 3},
			fmt.Sprintf("  - {name: %s, every: 3s, attempts: 3, http: {url: %q}}\n", n, url+"/flaky"))
	}
	for i := range w.slow {
		n := fmt.Sprintf("slow-%03d", i)
		d := 3 * c.visibility
		add("slow", events.Spec{Name: n, Trigger: events.Every(4 * time.Second), Timeout: 10 * c.visibility},
			fmt.Sprintf("  - {name: %s, every: 4s, timeout: %s, http: {url: %q}}\n", n, 10*c.visibility, url+"/slow?d="+d.String()))
	}
	if w.hang > 0 {
		add("hang", events.Spec{Name: "hang-http", Trigger: events.Every(5 * time.Second), Timeout: time.Second, Attempts: 2},
			fmt.Sprintf("  - {name: hang-http, every: 5s, timeout: 1s, attempts: 2, http: {url: %q}}\n", url+"/hang"))
		add("hang", events.Spec{Name: "hang-exec", Trigger: events.Every(5 * time.Second), Timeout: time.Second, Attempts: 2},
			fmt.Sprintf("  - {name: hang-exec, every: 5s, timeout: 1s, attempts: 2, exec: [bash, -c, %q, %q]}\n", recordRun+"; exec sleep 100000", c.ev.file))
	}
	c.tasksFile = writeFile(c.t, c.dir, "tasks.yaml", b.String())
}

// run applies the tasks file with the CLI, starts the event reader, then
// nWorkers workers and, once they are up, nPlanners planners.
func (c *chaos) run(nPlanners, nWorkers int) {
	t := c.t
	t.Helper()
	mustCLI(t, c.cli, "apply", "--redis", c.redisURL, "--namespace", chaosNS, c.tasksFile)
	ctx, cancel := context.WithCancel(context.Background())
	c.stopRd, c.rdDone = cancel, make(chan struct{})
	go c.readEvents(ctx)
	t.Cleanup(func() { c.stopRd(); <-c.rdDone })
	// Workers first: a worker runs the broadcast fires due while it is up,
	// so a fire planned before every worker is up may have no run at all
	// (the CI failed so once, on the first slot).
	var workers, planners []string
	for i := 1; i <= nWorkers; i++ {
		workers = append(workers, c.startProc(fmt.Sprintf("w%d", i)))
	}
	c.awaitUp(workers...)
	for i := 1; i <= nPlanners; i++ {
		planners = append(planners, c.startProc(fmt.Sprintf("p%d", i)))
	}
	c.awaitUp(planners...)
	c.start = c.redisTime()
}

// readEvents keeps every event of the run, across Redis outages (it keeps
// its cursor and tries again), so events lost with a Redis crash are kept
// too.
func (c *chaos) readEvents(ctx context.Context) {
	defer close(c.rdDone)
	cursor := "0"
	for ctx.Err() == nil {
		es, next, err := c.st.ReadEvents(ctx, cursor, 10_000, time.Second)
		cursor = next
		c.evMu.Lock()
		c.cursor = cursor
		c.evMu.Unlock()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond): // Redis is down: try again soon
			}
			continue
		}
		c.evMu.Lock()
		for _, e := range es {
			if e.Err != nil {
				c.t.Errorf("event %s does not decode: %v", e.ID, e.Err)
				continue
			}
			c.evs = append(c.evs, e.Event)
		}
		c.evMu.Unlock()
		if len(es) > 0 {
			c.wake()
		}
	}
}

// awaitReader waits until the reader has read every event appended so
// far.
func (c *chaos) awaitReader() {
	c.t.Helper()
	var last string
	c.await(60*time.Second, "read the end of the events stream", func() error {
		m, err := c.rdb.XRevRangeN(context.Background(), c.st.Keys().Events(), "+", "-", 1).Result()
		if err != nil || len(m) == 0 {
			return fmt.Errorf("read the last event: %v", err)
		}
		last = m[0].ID
		return nil
	})
	c.await(60*time.Second, "the reader to read up to "+last, func() error {
		c.evMu.Lock()
		cur := c.cursor
		c.evMu.Unlock()
		if store.LessID(cur, last) {
			return fmt.Errorf("reader at %s", cur)
		}
		return nil
	})
}

func (c *chaos) events() []events.Event {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return slices.Clone(c.evs)
}

// await waits until cond holds, re-checking it whenever events or runs
// arrive (and at least every second, for conditions on Redis state). It
// fails the test after limit, saying what it waited for.
func (c *chaos) await(limit time.Duration, what string, cond func() error) {
	c.t.Helper()
	deadline := time.After(limit)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-c.poke:
		case <-tick.C:
		case <-deadline:
			c.t.Fatalf("%s: not after %s: %v", what, limit, err)
		}
	}
}

// redisTime is the server's clock: the one planners plan by.
func (c *chaos) redisTime() time.Time {
	c.t.Helper()
	var now time.Time
	c.await(60*time.Second, "read Redis TIME", func() error {
		var err error
		now, err = c.rdb.Time(context.Background()).Result()
		return err
	})
	return now
}

// startProc starts the planner or worker of slot (p1, w2, ...) under a
// new node name, and returns the name.
func (c *chaos) startProc(slot string) string {
	c.mu.Lock()
	c.gen[slot]++
	node := fmt.Sprintf("%s.%d", slot, c.gen[slot])
	c.mu.Unlock()
	var p *proc
	if strings.HasPrefix(slot, "p") {
		p = startProc(c.t, node, c.plannerBin, "--redis", c.redisURL, "--namespace", chaosNS, "--node", node)
	} else {
		p = startProc(c.t, node, c.workerBin, "--redis", c.workerURL, "--namespace", chaosNS, "--node", node,
			"--tasks", c.tasksFile, "--visibility", c.visibility.String(), "--concurrency", "50", "--grace", "5s")
	}
	c.mu.Lock()
	c.procs[slot] = &chaosProc{proc: p, slot: slot, node: node}
	c.mu.Unlock()
	return node
}

// awaitUp waits for the node_up events of nodes.
func (c *chaos) awaitUp(nodes ...string) {
	c.t.Helper()
	c.await(60*time.Second, "node_up of "+strings.Join(nodes, " "), func() error {
		up := map[string]bool{}
		for _, e := range c.events() {
			if e.Type == events.TypeNodeUp {
				up[e.Worker] = true
			}
		}
		for _, n := range nodes {
			if !up[n] {
				return fmt.Errorf("%s is not up", n)
			}
			c.mu.Lock()
			p := c.procs[n[:strings.IndexByte(n, '.')]]
			c.mu.Unlock()
			if !alive(p.proc) {
				return fmt.Errorf("%s exited: %s", n, p.stderr())
			}
		}
		return nil
	})
}

// alive says whether p's process is still running (not exited, not a
// zombie waiting to be reaped).
func alive(p *proc) bool {
	if p.cmd.ProcessState != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return rest != "" && rest[0] != 'Z' && rest[0] != 'X'
}

// kill SIGKILLs the process of slot, starts its successor and waits until
// that is up (a signal before a process sets its handlers would end it).
func (c *chaos) kill(slot string) {
	c.mu.Lock()
	p := c.procs[slot]
	c.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	for range p.lines {
	}
	_ = p.cmd.Wait()
	now := time.Now()
	c.mu.Lock()
	c.killed[p.node] = now
	c.faults = append(c.faults, fault{what: "SIGKILL " + p.node, from: now, to: now})
	c.mu.Unlock()
	c.awaitUp(c.startProc(slot))
}

// killRandomly SIGKILLs a random planner or worker every 2 to 4 s (a
// successor starting at once) until d has passed.
func (c *chaos) killRandomly(d time.Duration) int {
	end := time.Now().Add(d)
	n := 0
	for time.Now().Before(end) {
		time.Sleep(2*time.Second + time.Duration(c.rng.Int64N(int64(2*time.Second))))
		c.mu.Lock()
		slots := make([]string, 0, len(c.procs))
		for s := range c.procs {
			slots = append(slots, s)
		}
		c.mu.Unlock()
		sort.Strings(slots)
		c.kill(slots[c.rng.IntN(len(slots))])
		n++
	}
	return n
}

// noteFault records a fault that lasted from..to, and, when it may lose
// Redis writes, the window in which that may happen.
func (c *chaos) noteFault(what string, from, to time.Time, lossy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, fault{what: what, from: from, to: to})
	if lossy {
		c.loss = append(c.loss, window{from: from.Add(-2 * time.Second), to: to})
	}
}

// killSkew is how much later than its worker's death a run may be seen:
// a request the worker sent just before the SIGKILL reaches the test's
// HTTP server, and is stamped, after kill() noted the death (seen in CI:
// 3 to 6 ms, on a loaded machine).
const killSkew = 2 * time.Second

// chaosResult is one scenario's row of the table.
type chaosResult struct {
	Scenario     string  `json:"scenario"`
	Seconds      float64 `json:"seconds"`
	Slots        int     `json:"slots"`      // slots checked
	Fires        int     `json:"fires"`      // distinct fires run
	Runs         int     `json:"runs"`       // runs seen by the evidence
	Duplicates   int     `json:"duplicates"` // runs beyond the first per fire and attempt (and node, for broadcast)
	Explained    int     `json:"explained"`  // of those, on a SIGKILLed worker or in a loss window
	Missed       int     `json:"missed"`     // slots reported missed
	DeadLetters  int     `json:"dead_letters"`
	Faults       int     `json:"faults"`
	OutageSecs   float64 `json:"outage_s"`   // longest fault
	RecoverySecs float64 `json:"recovery_s"` // longest catch-up after a fault ended
}

// finish ends the run: it checks that every slot up to now runs or is
// reported missed, stops the planners, waits until every fire has its
// outcome, checks nothing is left pending, stops the workers (SIGTERM, exit
// 0), checks the promises and reports the scenario's figures.
func (c *chaos) finish(scenario string, began time.Time) chaosResult {
	t := c.t
	t.Helper()
	end := c.redisTime()
	c.await(120*time.Second, "every slot up to the end runs or is reported missed", func() error {
		return c.uncovered(end)
	})
	c.debugf("all slots covered, %s after the end", time.Since(end).Round(time.Millisecond))

	// No more fires: then every fire planned must get its outcome.
	c.mu.Lock()
	var planners, workers []*chaosProc
	for _, p := range c.procs {
		if strings.HasPrefix(p.slot, "p") {
			planners = append(planners, p)
		} else {
			workers = append(workers, p)
		}
	}
	c.mu.Unlock()
	for _, p := range planners {
		p.stop(t, syscall.SIGTERM)
	}
	c.awaitReader()
	c.await(120*time.Second, "every fire has its outcome", c.unfinished)
	c.debugf("every fire has its outcome, %s after the end", time.Since(end).Round(time.Millisecond))
	for _, q := range []string{c.st.Keys().Fires("default")} {
		p, err := c.rdb.XPending(context.Background(), q, store.WorkerGroup).Result()
		if err != nil {
			t.Fatal(err)
		}
		if p.Count != 0 {
			t.Errorf("%d entries still pending on %s after every fire had its outcome", p.Count, q)
		}
	}
	if n, err := c.rdb.ZCard(context.Background(), c.st.Keys().Retry()).Result(); err != nil || n != 0 {
		t.Errorf("retry set holds %d (%v), want none left", n, err)
	}
	for _, p := range workers {
		p.stop(t, syscall.SIGTERM)
	}
	return c.check(scenario, began, end)
}

func (c *chaos) debugf(format string, args ...any) {
	if os.Getenv("CHAOS_DEBUG") != "" {
		c.t.Helper()
		c.t.Logf(format, args...)
	}
}

// slots are the slots of task in (from, to].
func (ct chaosTask) slots(from, to time.Time) []time.Time {
	var out []time.Time
	for s, ok := ct.sched.Next(from); ok && !s.After(to); s, ok = ct.sched.Next(s) {
		out = append(out, s)
	}
	return out
}

type slot struct {
	task string
	at   int64
}

// missedSlots expands the missed events into slots.
func (c *chaos) missedSlots(evs []events.Event) map[slot]int {
	out := map[slot]int{}
	for _, e := range evs {
		if e.Type != events.TypeMissed {
			continue
		}
		ct, ok := c.tasks[e.Task]
		if !ok {
			continue
		}
		until := e.Until
		if until.IsZero() {
			until = e.At
		}
		ss := ct.slots(e.At.Add(-time.Millisecond), until)
		if int64(len(ss)) != e.Count {
			c.t.Errorf("missed event %s of %s: count %d, but %d slots from %s to %s", e.ID, e.Task, e.Count, len(ss), e.At, until)
		}
		for _, s := range ss {
			out[slot{e.Task, s.UnixMilli()}]++
		}
	}
	return out
}

// uncovered says which slots in (start, end] have neither run nor been
// reported missed.
func (c *chaos) uncovered(end time.Time) error {
	ran := map[slot]bool{}
	for _, x := range c.ev.all(c.t) {
		ran[slot{x.task, x.at.UnixMilli()}] = true
	}
	missed := c.missedSlots(c.events())
	var bad []string
	for name, ct := range c.tasks {
		for _, s := range ct.slots(c.start, end) {
			k := slot{name, s.UnixMilli()}
			if !ran[k] && missed[k] == 0 {
				bad = append(bad, fmt.Sprintf("%s@%s", name, s.Format("15:04:05.000")))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%d slots neither ran nor were reported missed, such as %v", len(bad), bad[:min(len(bad), 5)])
	}
	return nil
}

// unfinished says which planned fires have no outcome yet: single fires
// need a completed or dead event (their last attempt's), broadcast fires
// a completed one.
func (c *chaos) unfinished() error {
	done := map[string]bool{}
	fired := map[string]string{}
	for _, e := range c.events() {
		switch e.Type {
		case events.TypeFired:
			fired[e.Fire] = e.Task
		case events.TypeCompleted, events.TypeDead:
			done[e.Fire] = true
		}
	}
	var left []string
	for id, task := range fired {
		if _, ours := c.tasks[task]; ours && !done[id] {
			left = append(left, id)
		}
	}
	if len(left) > 0 {
		sort.Strings(left)
		return fmt.Errorf("%d fires without an outcome, such as %v", len(left), left[:min(len(left), 5)])
	}
	return nil
}

// check verifies the promises over the evidence and the events, and
// returns the figures.
func (c *chaos) check(scenario string, began, end time.Time) chaosResult {
	t := c.t
	t.Helper()
	evs := c.events()
	runs := c.ev.all(t)
	c.mu.Lock()
	killed, loss, faults := c.killed, slices.Clone(c.loss), slices.Clone(c.faults)
	c.mu.Unlock()
	inLoss := func(tm time.Time) bool {
		return slices.ContainsFunc(loss, func(w window) bool { return w.holds(tm) })
	}
	res := chaosResult{Scenario: scenario, Seconds: time.Since(began).Seconds(), Faults: len(faults)}

	// Per slot, at most one fire id, and one fired event (a loss window
	// may have taken the first away, so that a planner planned it again).
	ids := map[slot]map[string]bool{}
	firedAt := map[slot][]time.Time{}
	for _, x := range runs {
		k := slot{x.task, x.at.UnixMilli()}
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][x.fire] = true
	}
	for _, e := range evs {
		if e.Type != events.TypeFired || c.tasks[e.Task].spec.Name == "" {
			continue
		}
		k := slot{e.Task, e.At.UnixMilli()}
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][e.Fire] = true
		firedAt[k] = append(firedAt[k], entryTime(t, e.ID))
	}
	for k, set := range ids {
		if len(set) > 1 {
			t.Errorf("slot %s@%d has %d fire ids: %v", k.task, k.at, len(set), set)
		}
	}
	for k, ts := range firedAt {
		if len(ts) > 1 && !inLoss(ts[0]) {
			t.Errorf("slot %s@%d fired %d times (first at %s, outside any loss window)", k.task, k.at, len(ts), ts[0].Format("15:04:05.000"))
		}
	}

	// Every slot of the run ran, or was reported missed, never both.
	ran := map[slot]time.Time{}
	for _, x := range runs {
		k := slot{x.task, x.at.UnixMilli()}
		if r, ok := ran[k]; !ok || x.ran.Before(r) {
			ran[k] = x.ran
		}
	}
	missed := c.missedSlots(evs)
	for name, ct := range c.tasks {
		for _, s := range ct.slots(c.start, end) {
			res.Slots++
			k := slot{name, s.UnixMilli()}
			_, r := ran[k]
			switch {
			case !r && missed[k] == 0:
				t.Errorf("slot %s@%s neither ran nor was reported missed", name, s.Format(time.RFC3339Nano))
			case r && missed[k] > 0 && !inLoss(ran[k]):
				t.Errorf("slot %s@%s ran and was reported missed", name, s.Format(time.RFC3339Nano))
			}
		}
	}
	// Slots are missed only around a fault, later than the misfire grace.
	for k, n := range missed {
		res.Missed += n
		due := time.UnixMilli(k.at)
		if !slices.ContainsFunc(faults, func(f fault) bool {
			return !due.Before(f.from.Add(-events.DefaultMisfireGrace-time.Second)) && !due.After(f.to.Add(events.DefaultMisfireGrace))
		}) {
			t.Errorf("slot %s@%s reported missed, with no fault near it", k.task, due.Format(time.RFC3339Nano))
		}
	}

	// Every fire planned ran at least once.
	fires := map[string]bool{}
	for _, x := range runs {
		fires[x.fire] = true
	}
	res.Fires, res.Runs = len(fires), len(runs)
	for _, e := range evs {
		if e.Type == events.TypeFired && c.tasks[e.Task].spec.Name != "" && !fires[e.Fire] {
			t.Errorf("fire %s (%s) was planned and never ran", e.Fire, e.Task)
		}
	}

	// More than once only where the worker died holding it, or a loss
	// window took its outcome away.
	// A run's outcome as its worker recorded it: when, by fire, attempt and
	// worker.
	type outKey struct {
		fire    string
		attempt int
		node    string
	}
	outcome := map[outKey]time.Time{}
	for _, e := range evs {
		if e.Type == events.TypeCompleted || e.Type == events.TypeFailed {
			outcome[outKey{e.Fire, e.Attempt, e.Worker}] = entryTime(t, e.ID)
		}
	}
	type runKey struct {
		fire    string
		attempt int
		node    string // broadcast only
	}
	byKey := map[runKey][]execution{}
	for _, x := range runs {
		k := runKey{fire: x.fire, attempt: x.attempt}
		if c.tasks[x.task].spec.Mode == events.ModeBroadcast {
			k.node = x.node
		}
		byKey[k] = append(byKey[k], x)
	}
	for k, xs := range byKey {
		if len(xs) < 2 {
			continue
		}
		sort.Slice(xs, func(i, j int) bool { return xs[i].ran.Before(xs[j].ran) })
		for _, x := range xs[:len(xs)-1] {
			res.Duplicates++
			died, ok := killed[x.node]
			done, recorded := outcome[outKey{x.fire, x.attempt, x.node}]
			lost := slices.ContainsFunc(loss, func(w window) bool {
				return !x.ran.After(w.to) && (!recorded || !done.Before(w.from))
			})
			switch {
			case ok && x.ran.Before(died.Add(killSkew)) && !recorded:
				res.Explained++ // its worker was killed before it recorded the outcome
			case lost:
				res.Explained++ // its outcome was not recorded, or recorded in a loss window
			default:
				t.Errorf("fire %s attempt %d ran %d times (on %v, at %v); its run on %s at %s was not cut by a SIGKILL (killed %v at %s; outcome recorded %v at %s) nor in a loss window",
					k.fire, k.attempt, len(xs), nodesOf(xs), timesOf(xs), x.node, x.ran.Format("15:04:05.000"),
					ok, died.Format("15:04:05.000"), recorded, done.Format("15:04:05.000"))
			}
		}
	}

	// Every dead letter has a reason.
	dead, err := c.st.ListDead(context.Background(), "-", 100_000)
	if err != nil {
		t.Fatal(err)
	}
	res.DeadLetters = len(dead)
	for _, d := range dead {
		if d.Reason == "" {
			t.Errorf("dead letter %s has no reason: %+v", d.ID, d)
		}
	}

	// Recovery: the longest any slot due around a fault waited past the
	// fault's end (or past its due time, when that is later).
	for _, f := range faults {
		res.OutageSecs = max(res.OutageSecs, f.to.Sub(f.from).Seconds())
		for k, r := range ran {
			due := time.UnixMilli(k.at)
			if due.Before(f.from.Add(-2*time.Second)) || due.After(f.to.Add(5*time.Second)) {
				continue
			}
			from := f.to
			if due.After(from) {
				from = due
			}
			if w := r.Sub(from).Seconds(); w > res.RecoverySecs {
				res.RecoverySecs = w
				c.debugf("recovery %s: %s@%s ran %s", f.what, k.task, due.Format("15:04:05.000"), r.Format("15:04:05.000"))
			}
		}
	}
	c.report(res)
	return res
}

func timesOf(xs []execution) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.ran.Format("15:04:05.000"))
	}
	return out
}

func nodesOf(xs []execution) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.node)
	}
	return out
}

// entryTime is when a stream entry was added, from its id.
func entryTime(t *testing.T, id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		t.Fatalf("entry id %q", id)
	}
	return time.UnixMilli(n)
}

// report logs the scenario's row, and appends it as JSON to
// $TASKINO_CHAOS_REPORT when that is set.
func (c *chaos) report(r chaosResult) {
	c.t.Logf("chaos %s: %.0fs, %d slots, %d fires, %d runs, %d duplicates (%d explained), %d missed, %d dead letters, %d faults (longest %.2fs), recovery %.2fs",
		r.Scenario, r.Seconds, r.Slots, r.Fires, r.Runs, r.Duplicates, r.Explained, r.Missed, r.DeadLetters, r.Faults, r.OutageSecs, r.RecoverySecs)
	path := os.Getenv("TASKINO_CHAOS_REPORT")
	if path == "" {
		return
	}
	b, _ := json.Marshal(r)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Errorf("chaos report: %v", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}
