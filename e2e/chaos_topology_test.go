package e2e

// Chaos scenarios on the network between workers and Redis (a fault proxy)
// and on Redis Cluster (a master killed, its replica taking over).

import (
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/store/redistest"
)

// 4. Latency, connection resets and stalls between the workers and Redis,
// through an in-process toxiproxy (planners connect directly). Every fault
// is shorter than the visibility timeout, so no run may repeat.
func chaosWorkerNetwork(t *testing.T) {
	srv := redistest.Start(t)
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	px := toxiproxy.NewProxy(api, "redis", "127.0.0.1:0", srv.Addr)
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Stop)
	c := newChaos(t, chaosOptions{redisURL: "redis://" + srv.Addr + "/0", workerURL: "redis://" + px.Listen + "/0",
		rdb: srv.Client(t), work: chaosLoad(), visibility: 5 * time.Second})
	began := time.Now()
	c.run(2, 3)

	toxic := func(what, json string, d time.Duration) {
		t.Helper()
		from := time.Now()
		if _, err := px.Toxics.AddToxicJson(strings.NewReader(json)); err != nil {
			t.Fatalf("add toxic %s: %v", json, err)
		}
		pace(d)
		px.Toxics.ResetToxics(t.Context())
		c.noteFault(what, from, time.Now(), false)
		pace(2 * time.Second)
	}
	pace(short(5*time.Second, 2*time.Second))
	// Both directions at once: two toxics, removed together.
	from := time.Now()
	for _, j := range []string{
		`{"name":"lat-up","type":"latency","stream":"upstream","attributes":{"latency":100,"jitter":50}}`,
		`{"name":"lat-down","type":"latency","stream":"downstream","attributes":{"latency":100,"jitter":50}}`,
	} {
		if _, err := px.Toxics.AddToxicJson(strings.NewReader(j)); err != nil {
			t.Fatal(err)
		}
	}
	pace(short(10*time.Second, 4*time.Second))
	px.Toxics.ResetToxics(t.Context())
	c.noteFault("latency 100±50ms each way", from, time.Now(), false)
	for range short(3, 2) {
		toxic("connection resets", `{"name":"rst","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`, time.Second)
	}
	toxic("stall (no data through)", `{"name":"stall","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`, time.Second)
	res := c.finish("4 worker network: latency, resets, stalls", began)
	if res.Duplicates != 0 {
		t.Errorf("%d duplicate runs, with no process killed and no Redis write lost", res.Duplicates)
	}
}

// 7. Redis Cluster, 3 masters with a replica each: the master of the
// namespace's slot is SIGKILLed and its replica takes over. Replication is
// asynchronous, so writes acknowledged just before the kill may be lost:
// duplicates are allowed around the failover, and every promise holds
// outside it.
func chaosClusterFailover(t *testing.T) {
	cl := redistest.StartClusterReplicas(t, 3, 1)
	// As the binaries' client does (cmd/internal/redisurl): go-redis
	// reloads its slot map on MOVED, not on a dead master's refusals.
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ClusterStateReloadInterval: 2 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	c := newChaos(t, chaosOptions{redisURL: "redis+cluster://" + strings.Join(cl.Addrs(), ","), rdb: rdb, work: chaosLoad()})
	began := time.Now()
	c.run(3, 3)
	c.debugf("cluster and processes up in %s", time.Since(began).Round(time.Millisecond))
	pace(short(15*time.Second, 5*time.Second))
	key := c.st.Keys().Events()
	old := cl.MasterOf(t, key)
	from := time.Now()
	cl.Kill(old)
	cl.AwaitFailover(t, key, old, 60*time.Second)
	c.debugf("failover took %s", time.Since(from).Round(time.Millisecond))
	c.noteFault("master SIGKILL, replica promoted", from, time.Now(), true)
	pace(short(15*time.Second, 5*time.Second))
	c.finish("7 Redis Cluster master killed, replica promoted", began)
}
