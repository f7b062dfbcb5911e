package e2e

// A chaos scenario on Redis Sentinel (a master killed, the sentinel
// promoting its replica).

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/store/redistest"
)

// 8. Redis Sentinel, a master with one replica and one sentinel: the master
// is SIGKILLed and the sentinel promotes the replica; the planners and
// workers find the new master through the sentinel. Replication is
// asynchronous, so writes acknowledged just before the kill may be lost:
// duplicates are allowed around the failover, and every promise holds
// outside it.
func chaosSentinelFailover(t *testing.T) {
	const name = "chaos"
	set := redistest.StartSentinelReplica(t, name)
	// As the binaries' client does (cmd/internal/redisurl).
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: name, SentinelAddrs: []string{set.Sentinel.Addr}})
	t.Cleanup(func() { _ = rdb.Close() })
	c := newChaos(t, chaosOptions{redisURL: "redis+sentinel://" + set.Sentinel.Addr + "/" + name, rdb: rdb, work: chaosLoad()})
	began := time.Now()
	c.run(3, 3)
	c.debugf("sentinel set and processes up in %s", time.Since(began).Round(time.Millisecond))
	pace(short(15*time.Second, 5*time.Second))
	from := time.Now()
	set.Master.Kill()
	set.AwaitFailover(t, 60*time.Second)
	c.debugf("failover took %s", time.Since(from).Round(time.Millisecond))
	c.noteFault("master SIGKILL, sentinel promoted the replica", from, time.Now(), true)
	pace(short(15*time.Second, 5*time.Second))
	c.finish("8 Sentinel failover", began)
}
