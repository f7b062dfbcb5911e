package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// syncBuffer is a bytes.Buffer safe to write from a child's output copier
// while the test reads it, and to await text in.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // a write happened since the last await looked
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{}, 1)
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

// await waits until the text written contains want.
func (s *syncBuffer) await(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	s.mu.Lock()
	if s.changed == nil {
		s.changed = make(chan struct{}, 1)
	}
	changed := s.changed
	s.mu.Unlock()
	timeout := time.After(limit)
	for !strings.Contains(s.String(), want) {
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %q after %s in:\n%s", want, limit, s.String())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The embedding example README quotes (testdata/embed: three tasks with a
// version, planner, worker and durable listener in one program) runs: its
// tasks are registered at version 1, the every-second task fires and runs,
// the other two run when triggered, the durable listener prints each
// completion, and SIGTERM stops it with exit 0 and nothing on stderr.
func TestEmbeddingExample(t *testing.T) {
	b := setup(t)
	st, err := store.New(b.rdb, "shop", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.st = st
	bin := buildBinary(t, "e2e/testdata/embed")
	var stdout, stderr syncBuffer
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "REDIS_ADDR="+b.srv.Addr)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	awaitEvent(t, b, 30*time.Second, events.TypeCompleted, func(e events.Event) bool { return e.Task == "tick" })
	if v, err := st.Version(b.ctx); err != nil || v != 1 {
		t.Errorf("stored version %d (%v), want 1", v, err)
	}
	specs, err := st.Specs(b.ctx)
	if err != nil || len(specs) != 3 {
		t.Fatalf("stored specs %+v (%v), want the example's 3 tasks", specs, err)
	}
	for _, task := range []string{"report", "cleanup"} {
		if _, err := st.Trigger(b.ctx, task, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		done := map[string]bool{}
		for _, e := range all {
			if e.Type == events.TypeCompleted {
				done[e.Task] = true
			}
		}
		return len(done) == 3
	})
	// The listener has printed a completion once its line is there; wait
	// for the last one before stopping the program.
	var fires []string
	for _, e := range ofType(all, events.TypeCompleted) {
		fires = append(fires, e.Fire)
	}
	stdout.await(t, "completed "+fires[len(fires)-1], 30*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0; stderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, f := range fires {
		if !strings.Contains(out, "running "+f) || !strings.Contains(out, "completed "+f) {
			t.Errorf("fire %s: want a run and a completion printed; stdout:\n%s", f, out)
		}
	}
	if s := stderr.String(); s != "" {
		t.Errorf("stderr of a healthy run: %q, want nothing", s)
	}
	awaitEvent(t, b, 10*time.Second, events.TypeNodeDown, nil)
}

// Every Go snippet in a README is the whole of a program or example the
// tests compile and run: the embedding example (testdata/embed, run by
// TestEmbeddingExample) or a file named example_test.go.
func TestReadmeSnippetsAreTested(t *testing.T) {
	t.Parallel()
	var sources []string
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != ".." {
			return filepath.SkipDir
		}
		if d.Name() == "example_test.go" || (strings.Contains(filepath.ToSlash(path), "e2e/testdata/") && strings.HasSuffix(path, ".go")) {
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sources = append(sources, string(src))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```go\n(.*?)```")
	seen := 0
	for _, readme := range []string{"../README.md", "../cmd/taskino/README.md", "../e2e/README.md", "../cmd/taskino-bench/README.md"} {
		text, err := os.ReadFile(readme)
		if err != nil {
			t.Errorf("%s: %v", readme, err)
			continue
		}
		for _, m := range block.FindAllStringSubmatch(string(text), -1) {
			seen++
			snippet := strings.TrimSpace(m[1])
			found := false
			for _, src := range sources {
				if strings.Contains(src, snippet) || strings.Contains(strings.ReplaceAll(src, "\n\t", "\n"), snippet) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: a Go snippet is in no tested program or example_test.go:\n%s", readme, snippet)
			}
		}
	}
	if seen == 0 {
		t.Error("no Go snippet in any README; cmd/taskino/README.md should quote the embedding example")
	}
}
