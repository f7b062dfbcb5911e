package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartSentinel starts a master redis-server and one redis-sentinel
// (redis-server --sentinel with a generated config in t.TempDir())
// monitoring it under the given master name, on free ports; returns the
// sentinel address and the master address; both stopped in t.Cleanup. It
// waits until the sentinel reports the master (SENTINEL
// get-master-addr-by-name) and is connected to it. It skips the test when
// redis-server is not installed.
func StartSentinel(t testing.TB, master string) (sentinelAddr, masterAddr string) {
	t.Helper()
	bin := lookPath(t, "redis-server")
	m := Start(t)
	s := startSentinel(t, bin, master, m.Addr)

	c := sentinelClient(s)
	defer c.Close()
	waitFor(t, 10*time.Second, func() error {
		return sentinelMasterUp(c, master, m.Addr)
	}, "sentinel on "+s.Addr+" to report master "+master)
	return s.Addr, m.Addr
}

// SentinelSet is a master with a replica, watched by one sentinel: a
// Sentinel deployment whose master can fail over to the replica.
type SentinelSet struct {
	// Sentinel is the redis-sentinel; clients ask it for the master.
	Sentinel *Server
	// Master is the master the set started with, and Replica its replica.
	// After AwaitFailover, Replica is the master (Master may be killed).
	Master, Replica *Server
	// Name is the master name the sentinel monitors it under.
	Name string
}

// StartSentinelReplica starts a master redis-server, a replica of it
// (--replicaof), and one redis-sentinel monitoring the master under name
// (quorum 1, down-after-milliseconds 1000, failover-timeout 5000), all on
// free ports and stopped in t.Cleanup. It returns the set once a failover
// can happen: the replica's INFO replication says master_link_status:up,
// and the sentinel reports the master (SENTINEL get-master-addr-by-name),
// connected, and lists the replica (SENTINEL REPLICAS) connected, neither
// subjectively down nor disconnected, with its link to the master ok. So a
// master that dies (Server.Kill) is replaced by the replica some 2 to 5 s
// later: see AwaitFailover. It skips the test when redis-server is not
// installed.
func StartSentinelReplica(t testing.TB, name string) *SentinelSet {
	t.Helper()
	bin := lookPath(t, "redis-server")
	// The replica's first full sync starts at once rather than after the
	// default 5 s wait for other replicas to join it.
	m := Start(t, "--repl-diskless-sync-delay", "0")
	host, port, _ := strings.Cut(m.Addr, ":")
	r := Start(t, "--replicaof", host, port)
	ctx := context.Background()
	waitFor(t, 30*time.Second, func() error {
		return replicationSays(r, "master_link_status:up")
	}, "replica "+r.Addr+" to sync with master "+m.Addr)

	// Started after the replica's link is up, the sentinel finds the
	// replica in the master's first INFO reply rather than 10 s later.
	s := startSentinel(t, bin, name, m.Addr)
	set := &SentinelSet{Sentinel: s, Master: m, Replica: r, Name: name}
	c := sentinelClient(s)
	defer c.Close()
	waitFor(t, 30*time.Second, func() error {
		if err := sentinelMasterUp(c, name, m.Addr); err != nil {
			return err
		}
		replicas, err := c.Replicas(ctx, name).Result()
		if err != nil {
			return err
		}
		for _, rep := range replicas {
			if rep["ip"]+":"+rep["port"] != r.Addr {
				continue
			}
			flags := strings.Split(rep["flags"], ",")
			for _, bad := range []string{"s_down", "o_down", "disconnected"} {
				if slices.Contains(flags, bad) {
					return fmt.Errorf("sentinel flags replica %s %q", r.Addr, rep["flags"])
				}
			}
			if st := rep["master-link-status"]; st != "ok" {
				return fmt.Errorf("sentinel reports replica %s's link to the master %q", r.Addr, st)
			}
			return nil
		}
		return fmt.Errorf("sentinel does not list replica %s of %s: %v", r.Addr, name, replicas)
	}, "sentinel on "+s.Addr+" to know master "+name+" and its replica "+r.Addr)
	return set
}

// AwaitFailover waits up to limit until the sentinel reports the replica as
// the master (SENTINEL get-master-addr-by-name) and the replica itself says
// role:master in INFO replication, and fails the test when limit passes
// first. Kill the master first: with the master up, no failover happens.
func (s *SentinelSet) AwaitFailover(t testing.TB, limit time.Duration) {
	t.Helper()
	c := sentinelClient(s.Sentinel)
	defer c.Close()
	waitFor(t, limit, func() error {
		if err := sentinelMasterIs(c, s.Name, s.Replica.Addr); err != nil {
			return err
		}
		return replicationSays(s.Replica, "role:master")
	}, "the sentinel to promote replica "+s.Replica.Addr+" of "+s.Name)
}

// startSentinel starts a redis-sentinel (bin --sentinel with a generated
// config in its directory) monitoring the master at masterAddr under name:
// quorum 1, down after 1 s without answers, failover timeout 5 s.
func startSentinel(t testing.TB, bin, name, masterAddr string) *Server {
	t.Helper()
	host, port, _ := strings.Cut(masterAddr, ":")
	return startWith(t, bin, func(dir string, p int) []string {
		conf := filepath.Join(dir, "sentinel.conf")
		// The sentinel rewrites its config file, so it lives in the
		// test's directory.
		text := strings.Join([]string{
			"port " + strconv.Itoa(p),
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "log"),
			"pidfile " + filepath.Join(dir, "pid"),
			fmt.Sprintf("sentinel monitor %s %s %s 1", name, host, port),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", name),
			fmt.Sprintf("sentinel failover-timeout %s 5000", name),
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatalf("write sentinel config: %v", err)
		}
		return []string{conf, "--sentinel"}
	})
}

// sentinelClient returns a client of the sentinel s that gives up quickly
// when s does not answer.
func sentinelClient(s *Server) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
}

// sentinelMasterIs returns nil when the sentinel reports want as the
// address of master name.
func sentinelMasterIs(c *redis.SentinelClient, name, want string) error {
	addr, err := c.GetMasterAddrByName(context.Background(), name).Result()
	if err != nil {
		return err
	}
	if got := strings.Join(addr, ":"); got != want {
		return fmt.Errorf("sentinel reports master %s at %s, want %s", name, got, want)
	}
	return nil
}

// sentinelMasterUp checks that the sentinel reports master name at want
// and connected: flagged "master" alone ("master,disconnected" until its
// link is up).
func sentinelMasterUp(c *redis.SentinelClient, name, want string) error {
	if err := sentinelMasterIs(c, name, want); err != nil {
		return err
	}
	info, err := c.Master(context.Background(), name).Result()
	if err != nil {
		return err
	}
	if flags := info["flags"]; flags != "master" {
		return fmt.Errorf("sentinel flags the master %q", flags)
	}
	return nil
}

// StartCluster starts n (>=3) cluster-enabled redis-servers on free ports,
// joins them with `redis-cli --cluster create ... --cluster-replicas 0
// --cluster-yes`, waits until CLUSTER INFO says cluster_state:ok on every
// node, and returns their addresses; stopped in t.Cleanup. It skips the
// test when redis-server or redis-cli is not installed.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	if n < 3 {
		t.Fatalf("StartCluster: %d nodes; a cluster needs at least 3 masters", n)
	}
	bin := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")
	c := &Cluster{Nodes: startClusterNodes(t, bin, n, "--cluster-node-timeout", "2000")}
	addrs := c.Addrs()
	createCluster(t, cli, addrs, 0)
	for _, s := range c.Nodes {
		waitFor(t, 30*time.Second, func() error { return clusterOK(s) }, "cluster_state:ok on "+s.Addr)
	}
	return addrs
}

// Cluster is a Redis Cluster started for one test.
type Cluster struct {
	// Nodes are the cluster's redis-servers, masters and replicas, in the
	// order they were started. Which of them is a master changes with
	// failovers: ask MasterOf.
	Nodes []*Server
}

// StartClusterReplicas starts masters*(1+replicas) cluster-enabled
// redis-servers on free ports (masters >= 3), joins them with `redis-cli
// --cluster create ... --cluster-replicas <replicas> --cluster-yes`, and
// returns the cluster once, on every node, CLUSTER INFO says
// cluster_state:ok, CLUSTER NODES lists the given numbers of masters and of
// replicas per master, all connected and none flagged failing, and, on
// every replica, INFO replication says master_link_status:up. A replica may
// then take over a master that fails: nodes are flagged failing after a
// cluster-node-timeout of 1 s, and a replica may be promoted however long
// it was cut off from its master (cluster-replica-validity-factor 0). The
// servers are stopped in t.Cleanup. It skips the test when redis-server or
// redis-cli is not installed.
func StartClusterReplicas(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	if masters < 3 || replicas < 0 {
		t.Fatalf("StartClusterReplicas: %d masters, %d replicas each; a cluster needs at least 3 masters", masters, replicas)
	}
	bin := lookPath(t, "redis-server")
	cli := lookPath(t, "redis-cli")
	c := &Cluster{Nodes: startClusterNodes(t, bin, masters*(1+replicas),
		"--cluster-node-timeout", "1000",
		"--cluster-replica-validity-factor", "0",
		// A replica's first full sync starts at once rather than after the
		// default 5 s wait for other replicas to join it.
		"--repl-diskless-sync-delay", "0")}
	createCluster(t, cli, c.Addrs(), replicas)
	for _, s := range c.Nodes {
		waitFor(t, 30*time.Second, func() error {
			if err := clusterOK(s); err != nil {
				return err
			}
			return replicaReady(s, masters, replicas)
		}, "node "+s.Addr+" to be ready for failover")
	}
	return c
}

// Addrs returns every node's address (masters and replicas), the seed list
// for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// Kill kills node s of the cluster (Server.Kill). A killed node is no longer
// live: MasterOf and AwaitFailover stop asking it, until it is restarted.
func (c *Cluster) Kill(s *Server) {
	t := s.t
	t.Helper()
	if !slices.Contains(c.Nodes, s) {
		t.Fatalf("kill %s: not a node of this cluster", s.Addr)
	}
	s.Kill()
}

// MasterOf returns the node that every live node (every node whose process
// runs: not killed, or restarted since) reports, in CLUSTER SLOTS, as the
// master serving key's hash slot. It waits up to 10 s for the live nodes to
// agree, and fails the test when they do not. The master may be a killed
// node, while no replica has taken over.
func (c *Cluster) MasterOf(t testing.TB, key string) *Server {
	t.Helper()
	var m *Server
	waitFor(t, 10*time.Second, func() (err error) {
		m, err = c.slotMaster(key)
		return err
	}, "the live nodes to agree on the master of "+key)
	return m
}

// AwaitFailover waits up to limit until every live node (as in MasterOf)
// reports the same live node other than old as the master of key's hash
// slot, and cluster_state:ok; it returns that master, and fails the test
// when limit passes first. A paused node counts as live: resume it first.
func (c *Cluster) AwaitFailover(t testing.TB, key string, old *Server, limit time.Duration) *Server {
	t.Helper()
	var m *Server
	waitFor(t, limit, func() (err error) {
		if m, err = c.slotMaster(key); err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("%s is still the master of %s", m.Addr, key)
		}
		if !running(m) {
			return fmt.Errorf("the master of %s is %s, which is not running", key, m.Addr)
		}
		for _, s := range c.live() {
			if err := clusterOK(s); err != nil {
				return err
			}
		}
		return nil
	}, "a failover of "+key+" away from "+old.Addr)
	return m
}

// slotMaster returns the master of key's slot if every live node reports
// the same one.
func (c *Cluster) slotMaster(key string) (*Server, error) {
	live := c.live()
	if len(live) == 0 {
		return nil, errors.New("no node is running")
	}
	ctx := context.Background()
	slot := -1
	for _, s := range live {
		n, err := withNode(s, func(rdb *redis.Client) (int64, error) { return rdb.ClusterKeySlot(ctx, key).Result() })
		if err == nil {
			slot = int(n)
			break
		}
	}
	if slot < 0 {
		return nil, fmt.Errorf("no live node answers CLUSTER KEYSLOT %s", key)
	}
	var master *Server
	for _, s := range live {
		slots, err := withNode(s, func(rdb *redis.Client) ([]redis.ClusterSlot, error) { return rdb.ClusterSlots(ctx).Result() })
		if err != nil {
			return nil, err
		}
		var m *Server
		for _, r := range slots {
			if r.Start <= slot && slot <= r.End && len(r.Nodes) > 0 {
				if m = c.node(r.Nodes[0].Addr); m == nil {
					return nil, fmt.Errorf("%s reports %s, not a node of the cluster, as the master of slot %d", s.Addr, r.Nodes[0].Addr, slot)
				}
			}
		}
		switch {
		case m == nil:
			return nil, fmt.Errorf("%s reports no master of slot %d", s.Addr, slot)
		case master != nil && m != master:
			return nil, fmt.Errorf("%s reports %s as the master of slot %d, another node %s", s.Addr, m.Addr, slot, master.Addr)
		}
		master = m
	}
	return master, nil
}

// live returns the nodes whose process runs.
func (c *Cluster) live() []*Server {
	var live []*Server
	for _, s := range c.Nodes {
		if running(s) {
			live = append(live, s)
		}
	}
	return live
}

// node returns the node listening on addr, or nil.
func (c *Cluster) node(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// running reports whether s's process runs (it may be paused).
func running(s *Server) bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// startClusterNodes starts n cluster-enabled redis-servers, each with the
// extra arguments.
func startClusterNodes(t testing.TB, bin string, n int, extra ...string) []*Server {
	t.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = startWith(t, bin, func(dir string, port int) []string {
			// The cluster bus gets a free port of its own, rather than the
			// default port+10000, which may be taken or above 65535.
			bus, err := freePort()
			for err == nil && bus == port {
				bus, err = freePort()
			}
			if err != nil {
				t.Fatalf("find a free port: %v", err)
			}
			args := append(serverArgs(dir, port),
				"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(bus))
			return append(args, extra...)
		})
	}
	return nodes
}

// createCluster joins the nodes at addrs into a cluster, with replicas
// replicas for each master.
func createCluster(t testing.TB, cli string, addrs []string, replicas int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create %s: %v\n%s", strings.Join(addrs, " "), err, tail(out))
	}
}

// withNode runs f with a client of s that gives up quickly on a node that
// does not answer.
func withNode[T any](s *Server, f func(*redis.Client) (T, error)) (T, error) {
	rdb := redis.NewClient(&redis.Options{
		Addr: s.Addr, MaxRetries: -1, PoolSize: 1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	defer rdb.Close()
	v, err := f(rdb)
	if err != nil {
		err = fmt.Errorf("%s: %w", s.Addr, err)
	}
	return v, err
}

// clusterOK returns nil when s reports cluster_state:ok.
func clusterOK(s *Server) error {
	info, err := withNode(s, func(rdb *redis.Client) (string, error) { return rdb.ClusterInfo(context.Background()).Result() })
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return fmt.Errorf("cluster not ok on %s:\n%s", s.Addr, info)
	}
	return nil
}

// replicaReady returns nil when s's CLUSTER NODES lists masters masters
// with replicas replicas each, all connected and none failing, and, if s is
// a replica, its link to its master is up.
func replicaReady(s *Server, masters, replicas int) error {
	ctx := context.Background()
	nodes, err := withNode(s, func(rdb *redis.Client) (string, error) { return rdb.ClusterNodes(ctx).Result() })
	if err != nil {
		return err
	}
	// A line per node: <id> <ip:port@cport> <flags> <master id or ->
	// <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
	var replicaLines [][]string
	replicasOf := map[string]int{} // by master id
	isReplica := false
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return fmt.Errorf("%s: CLUSTER NODES line %q", s.Addr, line)
		}
		flags := strings.Split(f[2], ",")
		for _, bad := range []string{"fail?", "fail", "handshake", "noaddr"} {
			if slices.Contains(flags, bad) {
				return fmt.Errorf("%s flags node %s %s", s.Addr, f[1], f[2])
			}
		}
		if f[7] != "connected" {
			return fmt.Errorf("%s's link to node %s is %s", s.Addr, f[1], f[7])
		}
		if slices.Contains(flags, "master") {
			replicasOf[f[0]] = 0
		}
		if slices.Contains(flags, "slave") {
			replicaLines = append(replicaLines, f)
			isReplica = isReplica || slices.Contains(flags, "myself")
		}
	}
	if len(replicasOf) != masters || len(replicaLines) != masters*replicas {
		return fmt.Errorf("%s knows %d masters and %d replicas, want %d and %d:\n%s", s.Addr, len(replicasOf), len(replicaLines), masters, masters*replicas, nodes)
	}
	for _, f := range replicaLines {
		if _, ok := replicasOf[f[3]]; !ok {
			return fmt.Errorf("%s knows replica %s of %s, not a master:\n%s", s.Addr, f[1], f[3], nodes)
		}
		replicasOf[f[3]]++
	}
	for id, n := range replicasOf {
		if n != replicas {
			return fmt.Errorf("%s knows %d replicas of master %s, want %d:\n%s", s.Addr, n, id, replicas, nodes)
		}
	}
	if !isReplica {
		return nil
	}
	return replicationSays(s, "master_link_status:up")
}

// replicationSays checks that s's INFO replication has the line want
// (master_link_status:up, role:master).
func replicationSays(s *Server, want string) error {
	info, err := withNode(s, func(rdb *redis.Client) (string, error) {
		return rdb.Info(context.Background(), "replication").Result()
	})
	if err != nil {
		return err
	}
	if !strings.Contains(info, want) {
		return fmt.Errorf("%s's INFO replication lacks %s:\n%s", s.Addr, want, info)
	}
	return nil
}

// lookPath finds a Redis binary, or skips the test.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (bash .ci/run installs it): %v", name, err)
	}
	return bin
}

// serverArgs are Start's arguments of a redis-server on port, in dir.
func serverArgs(dir string, port int) []string {
	return []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--pidfile", filepath.Join(dir, "pid"), "--logfile", filepath.Join(dir, "log"),
	}
}

// startWith starts bin with the arguments args gives for a free port (a
// few ports are tried; the server must answer PING and log to dir/log),
// and stops it when the test ends.
func startWith(t testing.TB, bin string, args func(dir string, port int) []string) *Server {
	t.Helper()
	s := &Server{t: t, Dir: t.TempDir()}
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		s.Addr = "127.0.0.1:" + strconv.Itoa(port)
		s.args = args(s.Dir, port)
		if lastErr = s.start(bin); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("start %s: %v", filepath.Base(bin), lastErr)
	return nil
}

// waitFor polls cond every 20ms until it returns nil, and fails the test
// with cond's last error when that takes longer than timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() error, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
