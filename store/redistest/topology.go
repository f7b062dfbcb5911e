package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	_, mport, _ := strings.Cut(m.Addr, ":")
	s := startWith(t, bin, func(dir string, port int) []string {
		conf := filepath.Join(dir, "sentinel.conf")
		// The sentinel rewrites its config file, so it lives in the
		// test's directory.
		text := strings.Join([]string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "log"),
			"pidfile " + filepath.Join(dir, "pid"),
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %s 1", master, mport),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", master),
			fmt.Sprintf("sentinel failover-timeout %s 5000", master),
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatalf("write sentinel config: %v", err)
		}
		return []string{conf, "--sentinel"}
	})

	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()
	waitFor(t, 10*time.Second, func() error {
		addr, err := c.GetMasterAddrByName(ctx, master).Result()
		if err != nil {
			return err
		}
		if got := strings.Join(addr, ":"); got != m.Addr {
			return fmt.Errorf("sentinel reports master %s, want %s", got, m.Addr)
		}
		info, err := c.Master(ctx, master).Result()
		if err != nil {
			return err
		}
		// "master,disconnected" until the sentinel's link is up.
		if flags := info["flags"]; flags != "master" {
			return fmt.Errorf("sentinel flags the master %q", flags)
		}
		return nil
	}, "sentinel on "+s.Addr+" to report master "+master)
	return s.Addr, m.Addr
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
	addrs := make([]string, n)
	for i := range addrs {
		s := startWith(t, bin, func(dir string, port int) []string {
			// The cluster bus gets a free port of its own, rather than the
			// default port+10000, which may be taken or above 65535.
			bus, err := freePort()
			for err == nil && bus == port {
				bus, err = freePort()
			}
			if err != nil {
				t.Fatalf("find a free port: %v", err)
			}
			return append(serverArgs(dir, port),
				"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000")
		})
		addrs[i] = s.Addr
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create %s: %v\n%s", strings.Join(addrs, " "), err, tail(out))
	}

	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		waitFor(t, 30*time.Second, func() error {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("cluster not ok:\n%s", info)
			}
			return nil
		}, "cluster_state:ok on "+addr)
		_ = c.Close()
	}
	return addrs
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

// startWith starts bin with the arguments args gives for a free port, as
// Start does (a few ports are tried; the server must answer PING, log to
// dir/log), and stops it when the test ends.
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
