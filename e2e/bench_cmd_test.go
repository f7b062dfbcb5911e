package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskino/taskino/store/redistest"
)

// taskino-bench runs its ceiling, burst and periodic modes against a real
// server (small sizes) and reports what it measured: every fire ran once,
// none was missed, and the burst's rate is put against the ceiling's. It leaves no
// key behind.
func TestBenchCommand(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	bin := buildBinary(t, "cmd/taskino-bench")
	out, errOut, code := runCLI(t, bin, "--redis", "redis://"+srv.Addr+"/0", "--n", "2000", "--tasks", "100", "--for", "3s", "--lead", "3s", "--json", "ceiling", "burst", "periodic")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	type result struct {
		Mode       string  `json:"mode"`
		N          int     `json:"n"`
		PerSec     float64 `json:"per_s"`
		P99Ms      float64 `json:"lateness_p99_ms"`
		Duplicates int     `json:"duplicates"`
		Misses     int     `json:"misses"`
		Expected   int     `json:"expected"`
		Ratio      float64 `json:"ratio_to_ceiling"`
	}
	var rs []result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	if len(rs) != 3 || rs[0].Mode != "ceiling" || rs[1].Mode != "burst" || rs[2].Mode != "periodic" {
		t.Fatalf("results %+v, want ceiling, burst, periodic", rs)
	}
	if p := rs[2]; p.Expected != 300 || p.N != 300 || p.Duplicates != 0 || p.Misses != 0 || p.P99Ms <= 0 {
		t.Errorf("periodic, 100 tasks for 3s: %+v, want 300 runs, none twice, none missed", p)
	}
	c, b := rs[0], rs[1]
	if c.N != 2000 || c.PerSec <= 0 || b.N != 2000 || b.PerSec <= 0 || b.P99Ms <= 0 {
		t.Errorf("figures missing: %+v", rs)
	}
	if b.Duplicates != 0 || b.Misses != 0 {
		t.Errorf("burst: %d duplicates, %d misses, want none", b.Duplicates, b.Misses)
	}
	if b.Ratio <= 0 || b.Ratio != b.PerSec/c.PerSec {
		t.Errorf("burst ratio %v, want its rate over the ceiling's (%v / %v)", b.Ratio, b.PerSec, c.PerSec)
	}
	if keys, err := srv.Client(t).Keys(t.Context(), "taskino:*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("keys left behind: %v (%v)", keys, err)
	}

	// A wrong mode is bad usage, named.
	_, errOut, code = runCLI(t, bin, "--redis", "redis://"+srv.Addr+"/0", "fastest")
	if code != 2 || !strings.Contains(errOut, `mode "fastest"`) {
		t.Errorf("unknown mode: exit %d, %q", code, errOut)
	}
}
