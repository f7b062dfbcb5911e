package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CallgrindEnv names the environment variable that makes StartCounted run
// redis-server under valgrind's callgrind, so a benchmark can report the
// instructions Redis ran for it. Wall times on a shared machine vary by half
// from one hour to the next; instruction counts are the same on every run of
// the same code, so a change to a script shows as a figure of its own.
//
//	REDISTEST_CALLGRIND=1 go test ./store -run '^$' -bench . -benchtime 2048x
//
// A value that is a directory (not "1") also keeps each count's profile
// there, as <benchmark>.<n>.callgrind, for callgrind_annotate.
const CallgrindEnv = "REDISTEST_CALLGRIND"

// StartCounted is Start, under callgrind when CallgrindEnv is set (Redis
// then runs about 50 times slower). Only the commands Redis runs count:
// parsing a request and running it, scripts included, not the idle loop
// nor writing replies to sockets; and only while a count is on (Count).
func StartCounted(t testing.TB, extra ...string) *Server {
	t.Helper()
	if os.Getenv(CallgrindEnv) == "" {
		return Start(t, extra...)
	}
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		t.Fatalf("%s is set but valgrind is not installed: %v", CallgrindEnv, err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (bash .ci/run installs it): %v", err)
	}
	s := startWith(t, vg, func(dir string, port int) []string {
		return append([]string{"--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
			"--toggle-collect=processInputBuffer", "--callgrind-out-file=" + filepath.Join(dir, "callgrind.out"),
			bin}, append(serverArgs(dir, port), extra...)...)
	})
	s.counted = true
	return s
}

// Count starts counting the instructions Redis runs, when it was started
// by StartCounted under callgrind, and returns the function that stops and
// returns the count. ok is false (and the count 0) otherwise.
func (s *Server) Count(t testing.TB) (stop func() (n int64, ok bool)) {
	t.Helper()
	if !s.counted {
		return func() (int64, bool) { return 0, false }
	}
	s.callgrindControl(t, "-i", "on")
	return func() (int64, bool) {
		s.callgrindControl(t, "-i", "off")
		return s.dumpTotal(t), true
	}
}

func (s *Server) callgrindControl(t testing.TB, args ...string) {
	t.Helper()
	args = append(args, strconv.Itoa(s.cmd.Process.Pid))
	if out, err := exec.Command("callgrind_control", args...).CombinedOutput(); err != nil {
		t.Fatalf("callgrind_control %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// dumpTotal has callgrind write its counts since the last dump (the dump
// zeroes them) and returns their total.
func (s *Server) dumpTotal(t testing.TB) int64 {
	t.Helper()
	s.dumps++
	s.callgrindControl(t, "-d")
	path := filepath.Join(s.Dir, fmt.Sprintf("callgrind.out.%d", s.dumps))
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "totals: "); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					t.Fatalf("callgrind dump %s: totals %q: %v", path, v, err)
				}
				if dir := os.Getenv(CallgrindEnv); dir != "1" {
					name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
					keep := filepath.Join(dir, fmt.Sprintf("%s.%d.callgrind", name, s.dumps))
					if err := os.WriteFile(keep, raw, 0o644); err != nil {
						t.Fatalf("keep the callgrind profile: %v", err)
					}
				}
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("callgrind dump %s: no totals line after 30 s", path)
		}
		time.Sleep(50 * time.Millisecond) // the dump is written by valgrind, with nothing to await
	}
}
