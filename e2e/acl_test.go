package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// readmeACL is README.md's Redis ACL lines, verbatim, by user name: the
// lines of its ```acl block.
func readmeACL(t *testing.T) map[string]string {
	t.Helper()
	text, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```acl\n(.*?)```").FindSubmatch(text)
	if m == nil {
		t.Fatal("README.md has no ```acl block")
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(m[1])), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "ACL" || f[1] != "SETUSER" {
			t.Fatalf("README's ACL line %q is not ACL SETUSER user ...", line)
		}
		out[f[2]] = line
	}
	for _, u := range []string{"taskino-planner", "taskino-worker", "taskino-reader"} {
		if out[u] == "" {
			t.Fatalf("README's ACL block has no line for %s", u)
		}
	}
	return out
}

// aclRoles is which store role each README user is.
var aclRoles = map[string]store.Role{"taskino-planner": store.RolePlanner, "taskino-worker": store.RoleWorker, "taskino-reader": store.RoleReader}

// TestReadmeACLMatchesStore holds README's ACL lines to the one list in
// code: each user is allowed exactly store.ACLCommands of its role.
func TestReadmeACLMatchesStore(t *testing.T) {
	t.Parallel()
	for user, line := range readmeACL(t) {
		var cmds []string
		for _, f := range strings.Fields(line) {
			if c, ok := strings.CutPrefix(f, "+"); ok {
				cmds = append(cmds, c)
			}
		}
		slices.Sort(cmds)
		if want := store.ACLCommands(aclRoles[user]); !slices.Equal(cmds, want) {
			t.Errorf("README allows %s %v; store.ACLCommands(%s) is %v", user, cmds, aclRoles[user], want)
		}
	}
}

// applyACL runs line (ACL SETUSER ...) on b's server as the default user.
func applyACL(t *testing.T, b testBundle, line string) {
	t.Helper()
	var args []any
	for _, f := range strings.Fields(line) {
		args = append(args, f)
	}
	if err := b.rdb.Do(b.ctx, args...).Err(); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
}

// userURL is the URL of b's server as user, with the password its README
// line sets (">password").
func userURL(t *testing.T, b testBundle, acl map[string]string, user string) string {
	t.Helper()
	for _, f := range strings.Fields(acl[user]) {
		if pw, ok := strings.CutPrefix(f, ">"); ok {
			return fmt.Sprintf("redis://%s:%s@%s/0", user, pw, b.srv.Addr)
		}
	}
	t.Fatalf("README's line for %s sets no password", user)
	return ""
}

// aclRefusals is what ACL LOG recorded as refused to taskino's users.
func aclRefusals(t *testing.T, b testBundle) []string {
	t.Helper()
	entries, err := b.rdb.Do(b.ctx, "ACL", "LOG").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		fields := map[string]string{}
		switch e := e.(type) {
		case map[any]any: // RESP3
			for k, v := range e {
				fields[fmt.Sprint(k)] = fmt.Sprint(v)
			}
		case []any:
			for i := 0; i+1 < len(e); i += 2 {
				fields[fmt.Sprint(e[i])] = fmt.Sprint(e[i+1])
			}
		}
		if strings.HasPrefix(fields["username"], "taskino-") {
			out = append(out, fmt.Sprintf("%s: %s %s (%s)", fields["username"], fields["reason"], fields["object"], fields["context"]))
		}
	}
	return out
}

// A planner and a worker whose users lack one command they need exit 1
// at start with one line naming it, before writing anything.
func TestBinariesRefuseAUserWithoutACommand(t *testing.T) {
	b := setup(t)
	plannerBin, workerBin := buildBinary(t, "cmd/taskino-planner"), buildBinary(t, "cmd/taskino-worker")
	acl := readmeACL(t)
	tasks := writeFile(t, t.TempDir(), "tasks.yaml", "version: 1\ntasks:\n  - name: t\n    every: 1s\n    exec: [\"true\"]\n")
	for _, c := range []struct {
		user, drop, want string
		bin              string
		args             []string
	}{
		{"taskino-worker", "hincrby", `taskino-worker: Redis user "taskino-worker" may not run HINCRBY on taskino:{e2e}:state:task (NOPERM); grant it, see README "Redis ACL"`, workerBin, []string{"--tasks", tasks}},
		{"taskino-worker", "xautoclaim", `may not run XAUTOCLAIM on taskino:{e2e}:fires:default (NOPERM)`, workerBin, []string{"--tasks", tasks}},
		{"taskino-planner", "zrangebyscore", `taskino-planner: Redis user "taskino-planner" may not run ZRANGEBYSCORE on taskino:{e2e}:changes, ZRANGEBYSCORE on taskino:{e2e}:due (NOPERM)`, plannerBin, nil},
		{"taskino-planner", "eval", `taskino-planner: Redis user "taskino-planner" may not run EVAL on taskino:{e2e}:events (NOPERM)`, plannerBin, []string{"--tasks", tasks}},
	} {
		applyACL(t, b, acl[c.user]+" -"+c.drop)
		args := append([]string{"--redis", userURL(t, b, acl, c.user), "--namespace", ns}, c.args...)
		_, stderr, code := runCLI(t, c.bin, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s without %s: exit %d, stderr:\n%s\nwant exit 1 and one line with %q", c.user, c.drop, code, stderr, c.want)
		}
	}
	if n, err := b.rdb.Exists(b.ctx, b.st.Keys().Version(), b.st.Keys().Events()).Result(); err != nil || n != 0 {
		t.Errorf("refused processes wrote %d keys (%v), want none", n, err)
	}
}

// README's ACL lines, applied verbatim, run the whole flow: the planner's
// user applies a tasks file and plans, the worker's runs fires to
// completion, and the reader's runs tail, ls and last-run. Redis refuses
// nothing any of them sends (ACL LOG).
func TestReadmeACLRunsTheFlow(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	acl := readmeACL(t)
	for _, line := range acl {
		applyACL(t, b, line)
	}
	planner, worker, reader := userURL(t, b, acl, "taskino-planner"), userURL(t, b, acl, "taskino-worker"), userURL(t, b, acl, "taskino-reader")
	dir := t.TempDir()
	tasks := writeFile(t, dir, "tasks.yaml", `version: 1
tasks:
  - name: tick
    every: 250ms
    exec: [sh, -c, 'echo tick']
  - name: everyone
    every: 500ms
    mode: broadcast
    exec: ["true"]
  - name: flaky
    every: 500ms
    attempts: 2
    exec: [sh, -c, 'exit 3']
`)
	out := mustCLI(t, cli, "apply", tasks, "--redis", planner, "--namespace", ns)
	if !strings.Contains(out, "applied version 1") {
		t.Errorf("apply as taskino-planner printed %q", out)
	}
	tail := startProc(t, "tail", cli, "tail", "--json", "--redis", reader, "--namespace", ns)
	procs := []*proc{
		startProc(t, "planner", plannerBin, "--redis", planner, "--namespace", ns, "--node", "p1", "--tasks", tasks),
		startProc(t, "worker", workerBin, "--redis", worker, "--namespace", ns, "--node", "w1", "--tasks", tasks, "--visibility", "300ms"),
	}
	// Completions, retries and dead letters, with the worker's heartbeats,
	// reclaims and trims going on.
	awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		byTask := func(typ events.Type) map[string]int {
			n := map[string]int{}
			for _, e := range ofType(all, typ) {
				n[e.Task]++
			}
			return n
		}
		c := byTask(events.TypeCompleted)
		return c["tick"] >= 3 && c["everyone"] >= 2 && byTask(events.TypeDead)["flaky"] >= 1
	})
	tail.awaitLine(t, 30*time.Second, func(line string) bool { return strings.Contains(line, `"completed"`) })
	if out := mustCLI(t, cli, "ls", "--redis", reader, "--namespace", ns); !strings.Contains(out, "tick") || !strings.Contains(out, "everyone") {
		t.Errorf("ls as taskino-reader printed %q", out)
	}
	if out := mustCLI(t, cli, "last-run", "--redis", reader, "--namespace", ns); !strings.Contains(out, "tick") {
		t.Errorf("last-run as taskino-reader printed %q", out)
	}
	if out := mustCLI(t, cli, "last-run", "tick", "--redis", reader, "--namespace", ns); !strings.Contains(out, "tick") {
		t.Errorf("last-run tick as taskino-reader printed %q", out)
	}
	if out := mustCLI(t, cli, "history", "flaky", "--redis", reader, "--namespace", ns); !strings.Contains(out, "dead") {
		t.Errorf("history flaky as taskino-reader printed %q", out)
	}
	if out := mustCLI(t, cli, "explain", "flaky", "--redis", reader, "--namespace", ns); !strings.Contains(out, "flaky, slot") {
		t.Errorf("explain flaky as taskino-reader printed %q", out)
	}
	if out := mustCLI(t, cli, "workers", "--redis", reader, "--namespace", ns); !strings.Contains(out, "w1") {
		t.Errorf("workers as taskino-reader printed %q", out)
	}
	// The read-only web console, every page, as the reader.
	webAddr := freeAddr(t)
	web := startProc(t, "web", cli, "web", "--read-only", "--http", webAddr, "--redis", reader, "--namespace", ns)
	base := "http://" + webAddr + "/n/" + ns
	awaitHTTP(t, base+"/", 20*time.Second)
	for _, page := range []string{"/", "/tasks", "/tasks?sort=next", "/task?name=flaky", "/task/timeline?name=flaky", "/dead", "/workers", "/live"} {
		resp, err := http.Get(base + page)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "flaky") && page != "/workers" && page != "/live" {
			t.Errorf("console %s as taskino-reader: %d\n%s", page, resp.StatusCode, body)
		}
	}
	web.stop(t, syscall.SIGTERM)
	for _, p := range procs {
		p.stop(t, syscall.SIGTERM)
	}
	tail.stop(t, syscall.SIGTERM)
	for _, p := range append(procs, web) {
		if strings.Contains(p.stderr(), "NOPERM") {
			t.Errorf("%s logged a refusal:\n%s", p.name, p.stderr())
		}
	}
	if r := aclRefusals(t, b); len(r) > 0 {
		t.Errorf("Redis refused taskino's users (ACL LOG):\n%s", strings.Join(r, "\n"))
	}
}

// healthz is /healthz's status and body.
func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// awaitHealthz polls addr's /healthz until want holds for its status and
// body, failing the test after limit.
func awaitHealthz(t *testing.T, what, addr string, limit time.Duration, want func(code int, body string) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, body := healthz(t, addr)
		if want(code, body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz still %d %q after %s", what, code, body, limit)
		}
		time.Sleep(20 * time.Millisecond) // polling an HTTP endpoint: nothing to await
	}
}

// /healthz answers 503, naming what fails, while a planner's rounds or a
// worker's heartbeats and reclaims keep failing (here: their users lose a
// command they need while they run), and 200 again once the command is
// granted back.
func TestHealthzFollowsTheACL(t *testing.T) {
	b := setup(t)
	plannerBin, workerBin := buildBinary(t, "cmd/taskino-planner"), buildBinary(t, "cmd/taskino-worker")
	acl := readmeACL(t)
	for _, line := range acl {
		applyACL(t, b, line)
	}
	tasks := writeFile(t, t.TempDir(), "tasks.yaml", "version: 1\ntasks:\n  - name: t\n    every: 1s\n    exec: [\"true\"]\n")
	pAddr, wAddr := freeAddr(t), freeAddr(t)
	procs := []*proc{
		startProc(t, "planner", plannerBin, "--redis", userURL(t, b, acl, "taskino-planner"), "--namespace", ns, "--tasks", tasks, "--http", pAddr),
		startProc(t, "worker", workerBin, "--redis", userURL(t, b, acl, "taskino-worker"), "--namespace", ns, "--tasks", tasks, "--http", wAddr, "--visibility", "300ms"),
	}
	ok := func(code int, body string) bool { return code == http.StatusOK && body == "ok" }
	for _, c := range []struct {
		what, addr, user, drop, reason string
	}{
		{"planner", pAddr, "taskino-planner", "zrangebyscore", "planning rounds failing"},
		{"worker", wAddr, "taskino-worker", "zremrangebyscore", "heartbeats (claim extensions) failing"},
		{"worker", wAddr, "taskino-worker", "xpending", "reclaims failing"},
	} {
		awaitHealthz(t, c.what, c.addr, 30*time.Second, ok)
		applyACL(t, b, "ACL SETUSER "+c.user+" -"+c.drop)
		awaitHealthz(t, c.what+" without "+c.drop, c.addr, 30*time.Second, func(code int, body string) bool {
			return code == http.StatusServiceUnavailable && strings.Contains(body, c.reason) && strings.Contains(body, "may not run "+strings.ToUpper(c.drop)) && !strings.Contains(body, "\n")
		})
		applyACL(t, b, "ACL SETUSER "+c.user+" +"+c.drop)
		awaitHealthz(t, c.what+" with "+c.drop+" again", c.addr, 30*time.Second, ok)
	}
	for _, p := range procs {
		p.stop(t, syscall.SIGTERM)
	}
}
