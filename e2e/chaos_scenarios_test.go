package e2e

// The chaos scenarios: each runs the workload under one kind of fault and
// checks every promise with the harness of chaos_test.go. Under -short each
// runs a quick version (fewer tasks, a shorter run).

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/store/redistest"
)

// The load: 500 tasks every 1 to 3 s, some cron with seconds,
// some broadcast, some exec, some failing their first attempt.
func chaosLoad() chaosWorkload {
	return short(chaosWorkload{every: 400, cron: 40, bcast: 20, exec: 20, flaky: 20, slow: 10},
		chaosWorkload{every: 40, cron: 6, bcast: 3, exec: 3, flaky: 3, slow: 2})
}

// pace waits d: the scenario's own clock, between faults (nothing is
// synchronised by it; the checks await events).
func pace(d time.Duration) { time.Sleep(d) }

// chaosScenario is one scenario of the suite.
type chaosScenario struct {
	name string
	run  func(t *testing.T)
}

// chaosChains are the scenarios in two chains of about equal length (3
// minutes each on 2 cores): each chain runs its scenarios one after
// another, and the two chains run side by side. Each scenario has its own
// Redis, processes, evidence and namespace, so they share only the
// machine: two at once stay within 2 cores (the planners and workers are
// plain builds, not -race), where three at once doubled the catch-up
// after a kill. The scenarios that forbid any unexplained duplicate
// (kills, network, slow handlers) come last in their chain, after the
// rest of the package's tests have mostly finished.
var chaosChains = [][]chaosScenario{
	{{"GarbageEntries", chaosGarbageEntries}, {"SentinelFailover", chaosSentinelFailover}, {"WorkerNetwork", chaosWorkerNetwork}, {"Kills", chaosKills}},
	{{"RedisRestart", chaosRedisRestart}, {"ClusterFailover", chaosClusterFailover}, {"RedisFrozen", chaosRedisFrozen}, {"SlowAndHungHandlers", chaosSlowAndHungHandlers}},
}

// TestChaos is the chaos suite: every scenario, as a subtest
// (-run 'TestChaos/Kills' runs one). It is a parallel test, so the rest of
// the package's tests run beside it instead of after it; it takes one
// parallel slot for both chains. With $TASKINO_CHAOS_REPORT set (figures
// for README's table) the scenarios run one at a time, as those figures
// were taken.
func TestChaos(t *testing.T) {
	t.Parallel()
	chains := chaosChains
	if os.Getenv("TASKINO_CHAOS_REPORT") != "" {
		chains = [][]chaosScenario{slices.Concat(chaosChains...)}
	}
	var wg sync.WaitGroup
	for _, chain := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range chain {
				t.Run(s.name, s.run)
			}
		}()
	}
	wg.Wait()
}

// 1. Planners and workers SIGKILLed at random every 2 to 4 s for 60 s, a
// successor started at once each time.
func chaosKills(t *testing.T) {
	srv := redistest.Start(t)
	c := newChaos(t, chaosOptions{redisURL: "redis://" + srv.Addr + "/0", rdb: srv.Client(t), work: chaosLoad()})
	began := time.Now()
	c.run(3, 3)
	kills := c.killRandomly(short(60*time.Second, 12*time.Second))
	res := c.finish("1 SIGKILL planners and workers", began)
	if res.Faults != kills || kills == 0 {
		t.Errorf("%d kills recorded, %d done", res.Faults, kills)
	}
}

// 2. Redis SIGKILLed and restarted from its AOF (appendfsync everysec):
// what Redis had not written when it died is lost, so fires near the crash
// may run twice; outside that window every promise holds.
func chaosRedisRestart(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "everysec")
	c := newChaos(t, chaosOptions{redisURL: "redis://" + srv.Addr + "/0", rdb: srv.Client(t), work: chaosLoad()})
	began := time.Now()
	c.run(3, 3)
	for range short(2, 1) {
		pace(short(15*time.Second, 5*time.Second))
		from := time.Now()
		srv.Kill()
		pace(3 * time.Second)
		srv.Restart()
		c.noteFault("Redis SIGKILL and restart", from, time.Now(), true)
	}
	pace(short(15*time.Second, 5*time.Second))
	c.finish("2 Redis killed and restarted (AOF everysec)", began)
}

// 3. Redis frozen (SIGSTOP) for 10 s: nothing answers, connections stay
// open. Every process stays up, gets going again and catches up, and logs
// a bounded number of errors while it waits (it backs off).
func chaosRedisFrozen(t *testing.T) {
	srv := redistest.Start(t)
	c := newChaos(t, chaosOptions{redisURL: "redis://" + srv.Addr + "/0", rdb: srv.Client(t), work: chaosLoad()})
	began := time.Now()
	c.run(3, 3)
	pace(short(10*time.Second, 4*time.Second))
	freeze := short(10*time.Second, 5*time.Second)
	logged := c.logLines()
	from := time.Now()
	srv.Pause()
	pace(freeze)
	srv.Resume()
	c.noteFault(fmt.Sprintf("Redis SIGSTOP %s", freeze), from, time.Now(), false)
	pace(short(10*time.Second, 5*time.Second))
	after := c.logLines()
	c.mu.Lock()
	for slot, p := range c.procs {
		if c.gen[slot] != 1 || !alive(p.proc) {
			t.Errorf("%s did not stay up: generation %d, state %v", slot, c.gen[slot], p.cmd.ProcessState)
		}
		// Retrying at most once a second and reporting every 10 s makes
		// a few lines per loop over the freeze; a retry loop without
		// backoff makes thousands.
		if n := after[p.node] - logged[p.node]; n > 100 {
			t.Errorf("%s logged %d warnings and errors during and after a %s freeze, want a bounded few (it should back off)", p.node, n, freeze)
		}
	}
	c.mu.Unlock()
	c.finish(fmt.Sprintf("3 Redis frozen %s (SIGSTOP)", freeze), began)
}

// logLines counts, per node, the warning and error lines it logged so far.
func (c *chaos) logLines() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, p := range c.procs {
		for _, line := range strings.Split(p.stderr(), "\n") {
			if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
				out[p.node]++
			}
		}
	}
	return out
}

// 5. Handlers slower than the visibility timeout are never taken from a
// live worker (each runs once), and a handler that never returns is ended
// by its timeout, retried, then dead-lettered with its reason.
func chaosSlowAndHungHandlers(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	c := newChaos(t, chaosOptions{redisURL: "redis://" + srv.Addr + "/0", rdb: rdb,
		work: chaosWorkload{every: short(50, 10), slow: short(10, 3), hang: 1}})
	began := time.Now()
	c.run(2, 3)
	pace(short(30*time.Second, 12*time.Second))
	res := c.finish("5 slow and hung handlers", began)
	if res.Duplicates != 0 {
		t.Errorf("%d duplicate runs with no fault at all", res.Duplicates)
	}
	dead, err := c.st.ListDead(context.Background(), "-", 10_000)
	if err != nil {
		t.Fatal(err)
	}
	hung := map[string]int{}
	for _, d := range dead {
		if !strings.HasPrefix(d.Task(), "hang-") {
			t.Errorf("dead letter of %s: %s (%s)", d.Task(), d.Reason, d.Error)
			continue
		}
		hung[d.Task()]++
		if !strings.Contains(d.Error, "deadline") && !strings.Contains(d.Error, "timeout") && !strings.Contains(d.Error, "signal") {
			t.Errorf("hung %s dead-lettered with error %q, want its timeout named", d.Task(), d.Error)
		}
	}
	if hung["hang-http"] == 0 || hung["hang-exec"] == 0 {
		t.Errorf("dead letters of hung tasks: %v, want both", hung)
	}
	slowRuns := 0
	for _, x := range c.ev.all(t) {
		if strings.HasPrefix(x.task, "slow-") {
			slowRuns++
		}
	}
	if slowRuns == 0 {
		t.Error("no slow run happened")
	}
}

// 6. Garbage XADDed to the fire streams while the load runs: the workers
// stay up, dead-letter every bad entry with a reason, and run every good
// fire.
func chaosGarbageEntries(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	c := newChaos(t, chaosOptions{redisURL: "redis://" + srv.Addr + "/0", rdb: rdb, work: chaosLoad()})
	began := time.Now()
	c.run(2, 3)
	ctx := context.Background()
	garbage := [][]any{
		{"hello", "world"},                                            // no task field
		{"task", ""},                                                  // empty task
		{"task", "every-000", "at", "yesterday"},                      // bad time
		{"task", "every-000", "attempt", "-3"},                        // bad attempt
		{"task", "every-000", "payload", "\xff\xfe"},                  // not UTF-8
		{"task", "every-000", "v", "99"},                              // an encoding from the future
		{"task", strings.Repeat("x", 300)},                            // over-long name
		{"task", "every-000", "payload", strings.Repeat("p", 70_000)}, // over 64 KiB
	}
	streams := []string{c.st.Keys().Fires("default"), c.st.Keys().Broadcast("default")}
	var bad []string // stream + id
	for i := range short(200, 40) {
		g := garbage[c.rng.IntN(len(garbage))]
		s := streams[i%4/3] // one in four to the broadcast stream
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: g}).Result()
		if err != nil {
			t.Fatal(err)
		}
		bad = append(bad, s+" "+id)
		if i%10 == 9 {
			pace(short(300*time.Millisecond, 200*time.Millisecond))
		}
	}
	res := c.finish("6 garbage entries on the fire streams", began)
	dead, err := c.st.ListDead(ctx, "-", 100_000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range dead {
		got[d.Source+" "+d.Entry] = d.Reason
	}
	for _, b := range bad {
		if r, ok := got[b]; !ok || r == "" {
			t.Errorf("bad entry %s: dead letter %v, reason %q", b, ok, r)
		}
	}
	if res.DeadLetters < len(bad) {
		t.Errorf("%d dead letters for %d bad entries", res.DeadLetters, len(bad))
	}
}
