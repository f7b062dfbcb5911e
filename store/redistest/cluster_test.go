package redistest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterFailover kills the master of a key's slot in a cluster of 3
// masters with 1 replica each, and checks that its replica takes over with
// the write it had acknowledged, and serves new writes.
func TestClusterFailover(t *testing.T) {
	start := time.Now()
	c := StartClusterReplicas(t, 3, 1)
	t.Logf("cluster of 6 nodes ready in %v", time.Since(start).Round(time.Millisecond))
	if got := len(c.Addrs()); got != 6 {
		t.Fatalf("Addrs() has %d addresses, want 6", got)
	}
	ctx := context.Background()
	const key = "taskino:{chaos}:x"

	// WAIT below may block up to the read timeout.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ReadTimeout: 30 * time.Second})
	defer cc.Close()
	node, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatalf("cluster client: master for %s: %v", key, err)
	}
	// WAIT counts the replicas that acknowledged this connection's writes,
	// so the write and WAIT share one connection.
	conn := node.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
	if n, err := conn.Do(ctx, "WAIT", 1, 0).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 0 = %d, %v; want 1 replica to have the write", n, err)
	}

	old := c.MasterOf(t, key)
	if old.Addr != node.Options().Addr {
		t.Fatalf("MasterOf(%s) = %s, the cluster client writes to %s", key, old.Addr, node.Options().Addr)
	}
	replica := replicaOf(t, c, old)

	killed := time.Now()
	c.Kill(old)
	m := c.AwaitFailover(t, key, old, 30*time.Second)
	t.Logf("%s took over from %s in %v", m.Addr, old.Addr, time.Since(killed).Round(time.Millisecond))
	if m != replica {
		t.Fatalf("AwaitFailover: master of %s is %s, want its replica %s (old master %s)", key, m.Addr, replica.Addr, old.Addr)
	}
	if got := c.MasterOf(t, key); got != m {
		t.Fatalf("MasterOf(%s) after failover = %s, want %s", key, got.Addr, m.Addr)
	}
	if role := info(t, m, "role"); role != "master" {
		t.Fatalf("new master %s says role:%s", m.Addr, role)
	}

	fresh := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer fresh.Close()
	if got, err := fresh.Get(ctx, key).Result(); err != nil || got != "before" {
		t.Fatalf("GET %s after failover = %q, %v; want the acknowledged %q", key, got, err, "before")
	}
	if err := fresh.Set(ctx, key, "after", 0).Err(); err != nil {
		t.Fatalf("SET %s after failover: %v", key, err)
	}
	if got, err := fresh.Get(ctx, key).Result(); err != nil || got != "after" {
		t.Fatalf("GET %s after failover = %q, %v; want %q", key, got, err, "after")
	}
	if node, err := fresh.MasterForKey(ctx, key); err != nil {
		t.Fatalf("fresh cluster client: master for %s: %v", key, err)
	} else if got := node.Options().Addr; got != m.Addr {
		t.Fatalf("fresh cluster client: master for %s is %s, want %s", key, got, m.Addr)
	}
}

// replicaOf returns master's one replica, from its INFO replication.
func replicaOf(t *testing.T, c *Cluster, master *Server) *Server {
	t.Helper()
	if n := info(t, master, "connected_slaves"); n != "1" {
		t.Fatalf("%s has connected_slaves:%s, want 1", master.Addr, n)
	}
	// slave0:ip=127.0.0.1,port=6380,state=online,offset=...,lag=0
	var ip, port string
	for _, kv := range strings.Split(info(t, master, "slave0"), ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "ip":
			ip = v
		case "port":
			port = v
		}
	}
	addr := net.JoinHostPort(ip, port)
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("%s's replica %s is not a node of the cluster", master.Addr, addr)
	return nil
}

// info returns field's value in s's INFO replication.
func info(t *testing.T, s *Server, field string) string {
	t.Helper()
	text, err := s.Client(t).Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatalf("INFO replication on %s: %v", s.Addr, err)
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO replication on %s has no %s:\n%s", s.Addr, field, text)
	return ""
}
