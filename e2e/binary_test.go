package e2e

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// buildBinary builds a command of this module, once per test run, and
// returns its path.
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	bd := v.(*build)
	bd.once.Do(func() {
		dir, err := os.MkdirTemp("", "taskino-e2e-bin-")
		if err != nil {
			bd.err = err
			return
		}
		bd.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", bd.path, "github.com/taskino/taskino/"+pkg)
		if msg, err := cmd.CombinedOutput(); err != nil {
			bd.err = fmt.Errorf("build %s: %v\n%s", pkg, err, msg)
		}
	})
	if bd.err != nil {
		t.Fatal(bd.err)
	}
	return bd.path
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // package path -> *build

// defaultParallel is how many of this package's parallel tests run at once
// when -parallel is not given (Go's default is the CPU count). They spend
// most of their time waiting (on slots of a schedule, on Redis, on child
// processes), not computing: 2 at once on 2 cores left the CPU idle most
// of the run, and the chaos suite (one test) held one of the 2 for minutes.
const defaultParallel = 8

// TestMain runs the tests (defaultParallel at once unless -parallel says
// otherwise) and removes the binaries they built.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		if err := flag.Set("test.parallel", strconv.Itoa(defaultParallel)); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	builds.Range(func(_, v any) bool {
		if p := v.(*build).path; p != "" {
			_ = os.RemoveAll(filepath.Dir(p))
		}
		return true
	})
	os.Exit(code)
}

// The planner binary plans, and on SIGTERM stops cleanly: exit 0, a
// node_down event, nothing on stderr but its JSON log lines.
func TestPlannerBinaryStopsCleanlyOnSIGTERM(t *testing.T) {
	b := setup(t)
	bin := buildBinary(t, "cmd/taskino-planner")
	if _, err := planner.Apply(b.ctx, b.st, 1, []events.Spec{{Name: "tick", Trigger: events.Every(200 * time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--redis", "redis://"+b.srv.Addr+"/0", "--namespace", ns, "--node", "bin")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	awaitEvent(t, b, 30*time.Second, events.TypeFired, func(e events.Event) bool { return e.Worker == "bin" })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("stderr line is not a JSON log line: %q", line)
		}
	}
	awaitEvent(t, b, 10*time.Second, events.TypeNodeDown, func(e events.Event) bool { return e.Worker == "bin" })
}

// A planner that cannot start says why in one line and exits non-zero.
func TestPlannerBinaryBadInput(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t, "cmd/taskino-planner")
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--redis", "redis://127.0.0.1:1/0"}, "cannot reach Redis at 127.0.0.1:1", 1},
		{[]string{"--redis", "http://example"}, `--redis "http://example"`, 1},
		{[]string{"--namespace", "a b"}, `namespace "a b"`, 2},
		{[]string{"--log-level", "loud", "--redis", "redis://127.0.0.1:1/0"}, `--log-level "loud"`, 2},
		{[]string{"extra"}, `unexpected argument "extra"`, 2},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != c.code {
			t.Errorf("%v: %v, want exit code %d", c.args, err, c.code)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.HasPrefix(lines[0], "taskino-planner: ") {
			t.Errorf("%v: output %q, want one line naming %q", c.args, out, c.want)
		}
	}
}
