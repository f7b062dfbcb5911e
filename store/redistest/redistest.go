// Package redistest starts real redis-server processes for tests: each on a
// free loopback port with its own temporary directory, nothing saved to
// disk unless asked, stopped by the test's cleanup. Tests that use it never
// share, flush or stop a server they did not start.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process started for one test.
type Server struct {
	t    testing.TB
	Addr string
	Dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	// counted: under callgrind (StartCounted); dumps: its dumps so far.
	counted bool
	dumps   int
}

// Start starts a redis-server on a free loopback port, with extra
// configuration arguments appended (for example "--appendonly", "yes"), and
// stops it when the test ends. It fails the test when no redis-server is on
// PATH.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (bash .ci/run installs it): %v", err)
	}
	return startWith(t, bin, func(dir string, port int) []string {
		return append(serverArgs(dir, port), extra...)
	})
}

func (s *Server) start(bin string) error {
	s.cmd = exec.Command(bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
			return fmt.Errorf("redis-server on %s exited at start: %s", s.Addr, tail(log))
		default:
		}
		// Dial first: go-redis logs every refused dial of its pool, and a
		// server under valgrind takes a second or two to listen.
		conn, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err != nil {
			if time.Now().After(deadline) {
				s.stop()
				return fmt.Errorf("redis-server on %s did not listen: %v", s.Addr, err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		conn.Close()
		if err := c.Ping(context.Background()).Err(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("redis-server on %s did not answer PING: %v", s.Addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server still dies on SIGKILL, but be plain about it
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Kill ends the server with SIGKILL, as a crash would: nothing is flushed,
// and whatever its configuration kept on disk (AOF, in Dir) stays there
// for Restart.
func (s *Server) Kill() {
	s.t.Helper()
	s.stop()
}

// Restart starts the server again after Kill, on the same port with the
// same arguments and directory (so it loads what it persisted), and waits
// until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	select {
	case <-s.done:
	default:
		s.t.Fatalf("restart redis-server on %s: it is still running (Kill it first)", s.Addr)
	}
	if err := s.start(s.cmd.Path); err != nil {
		s.t.Fatalf("restart redis-server: %v", err)
	}
}

// Pause freezes the server (SIGSTOP): connections stay open, nothing is
// answered, as in a Redis hiccup or a network stall.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("pause redis-server: %v", err)
	}
}

// Resume ends a Pause (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("resume redis-server: %v", err)
	}
}

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return string(b)
}

// SharedAddr is the address of the machine's shared Redis for runnable
// examples: $TASKINO_REDIS's, or 127.0.0.1:6379. Examples using it work in
// a namespace of their own and delete it with DeleteNamespace.
func SharedAddr() string {
	if u := os.Getenv("TASKINO_REDIS"); u != "" {
		if o, err := redis.ParseURL(u); err == nil {
			return o.Addr
		}
	}
	return "127.0.0.1:6379"
}

// DeleteNamespace removes every key of namespace ns, and nothing else (the
// server may be shared).
func DeleteNamespace(rdb redis.UniversalClient, ns string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "taskino:{"+ns+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// CommandStat is one figure of a command in rdb's INFO commandstats:
// field "calls" or "usec" (the time spent in it; for EVALSHA, the
// scripts' own calls included) of cmd ("get", "evalsha"), 0 for a command
// not run since the stats were reset.
func CommandStat(t testing.TB, rdb *redis.Client, cmd, field string) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, field+"="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
	}
	return 0
}
