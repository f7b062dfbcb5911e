package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/store"
)

// aclUser creates Redis user name on b's server allowed cmds on the keys
// and channels taskino:*, and returns a store of b's namespace as that
// user.
func aclUser(t *testing.T, b testBundle, name string, cmds []string) *store.Store {
	t.Helper()
	admin := b.srv.Client(t)
	rule := []any{"ACL", "SETUSER", name, "reset", "on", ">pw-" + name, "~taskino:*", "&taskino:*"}
	for _, c := range cmds {
		rule = append(rule, "+"+c)
	}
	if err := admin.Do(b.ctx, rule...).Err(); err != nil {
		t.Fatalf("%v: %v", rule, err)
	}
	c := redis.NewClient(&redis.Options{Addr: b.srv.Addr, Username: name, Password: "pw-" + name})
	t.Cleanup(func() { _ = c.Close() })
	st, err := store.New(c, b.st.Namespace(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func without(cmds []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(cmds), func(c string) bool { return slices.Contains(drop, c) })
}

func TestCheckACL(t *testing.T) {
	b := setup(t)
	for _, role := range []store.Role{store.RolePlanner, store.RoleWorker} {
		cmds := store.ACLCommands(role)
		if err := aclUser(t, b, "full-"+string(role), cmds).CheckACL(b.ctx, role); err != nil {
			t.Errorf("%s with every command of store.ACLCommands: %v", role, err)
		}
		var aclErr *store.ACLError
		err := aclUser(t, b, "nohincrby-"+string(role), without(cmds, "hincrby")).CheckACL(b.ctx, role)
		if !errors.As(err, &aclErr) || !strings.Contains(err.Error(), `Redis user "nohincrby-`+string(role)+`" may not run HINCRBY on taskino:{test}:state:task (NOPERM)`) ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("%s without hincrby: %v, want an ACLError naming HINCRBY, on one line", role, err)
		}
		err = aclUser(t, b, "noeval-"+string(role), without(cmds, "eval")).CheckACL(b.ctx, role)
		if !errors.As(err, &aclErr) || !strings.Contains(err.Error(), "may not run EVAL on") {
			t.Errorf("%s without eval: %v, want an ACLError naming EVAL", role, err)
		}
		err = aclUser(t, b, "noevalsha-"+string(role), without(cmds, "evalsha")).CheckACL(b.ctx, role)
		if !errors.As(err, &aclErr) || !strings.Contains(err.Error(), "may not run EVALSHA on") {
			t.Errorf("%s without evalsha: %v, want an ACLError naming EVALSHA", role, err)
		}
	}
	// Key and channel patterns count: a worker confined to another
	// namespace may not touch this one's.
	admin := b.srv.Client(t)
	rule := []any{"ACL", "SETUSER", "elsewhere", "reset", "on", ">pw-elsewhere", "~taskino:{other}:*", "&taskino:*"}
	for _, c := range store.ACLCommands(store.RoleWorker) {
		rule = append(rule, "+"+c)
	}
	if err := admin.Do(b.ctx, rule...).Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: b.srv.Addr, Username: "elsewhere", Password: "pw-elsewhere"})
	defer c.Close()
	other, err := store.New(c, "other", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.CheckACL(b.ctx, store.RoleWorker); err != nil {
		t.Errorf("worker of namespace other, allowed its keys: %v", err)
	}
	mine, err := store.New(c, "test", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := mine.CheckACL(b.ctx, store.RoleWorker); err == nil || !strings.Contains(err.Error(), "may not run EVAL on taskino:{test}:events") {
		t.Errorf("worker of namespace test, allowed only other's keys: %v, want EVAL refused on test's key", err)
	}
	if err := b.st.CheckACL(b.ctx, store.RoleReader); err == nil {
		t.Error("CheckACL(RoleReader) did not refuse: the reader's user runs no scripts")
	}
}

// scriptCommand finds the commands a Lua script calls by name:
// redis.call('CMD', ...) and the bulk helper's bulk('CMD', ...).
var scriptCommand = regexp.MustCompile(`(?:redis\.call|bulk)\('([A-Za-z]+)'`)

// goRedisCommands maps the go-redis methods the protocol steps call to
// the commands they send. A method not here fails the test: add it, and
// its command to the role's list in store/acl.go.
var goRedisCommands = map[string][]string{
	"Time": {"time"}, "XGroupCreateMkStream": {"xgroup|create"}, "XReadGroup": {"xreadgroup"}, "XRead": {"xread"},
	"XInfoGroups": {"xinfo|groups"}, "XPending": {"xpending"}, "XInfoConsumers": {"xinfo|consumers"}, "Subscribe": {"subscribe"},
	"XGroupDelConsumer": {"xgroup|delconsumer"}, "TxPipeline": {"multi", "exec"}, "Pipeline": nil, "Process": nil, "Do": nil,
}

// TestACLCommandsCoverTheCode reads the scripts and the protocol steps'
// go-redis calls in the source, and fails on a command the code sends
// that store.ACLCommands does not list for the role that sends it. (The
// go-redis calls of Store's own methods that the processes use are
// covered by e2e's TestReadmeACLRunsTheFlow, which runs every binary with
// users allowed the README's lines and finds no refusal in ACL LOG.)
func TestACLCommandsCoverTheCode(t *testing.T) {
	t.Parallel()
	planner, worker := store.ACLCommands(store.RolePlanner), store.ACLCommands(store.RoleWorker)
	both := func(c string) bool { return slices.Contains(planner, c) && slices.Contains(worker, c) }
	for _, f := range []struct {
		file string
		has  func(cmd string) bool
		role string
	}{
		{"scripts.go", both, "planner and worker (apply)"},
		{"internal/protocol/lua.go", both, "planner and worker"},
		{"internal/protocol/planscripts.go", func(c string) bool { return slices.Contains(planner, c) }, "planner"},
		{"internal/protocol/planning.go", func(c string) bool { return slices.Contains(planner, c) }, "planner"},
		// The planner appends its events one by one (XADD, which it has
		// for apply); only the worker batches them in MULTI/EXEC.
		{"internal/protocol/protocol.go", func(c string) bool { return slices.Contains(worker, c) }, "worker"},
		{"internal/protocol/workscripts.go", func(c string) bool { return slices.Contains(worker, c) }, "worker"},
		{"internal/protocol/worker.go", func(c string) bool { return slices.Contains(worker, c) }, "worker"},
	} {
		raw, err := os.ReadFile(filepath.FromSlash(f.file))
		if err != nil {
			t.Fatal(err)
		}
		src := string(raw)
		var cmds []string
		for _, m := range scriptCommand.FindAllStringSubmatch(src, -1) {
			c := strings.ToLower(m[1])
			switch c { // the subcommands the scripts send
			case "xinfo":
				c = "xinfo|consumers"
			case "xgroup":
				c = "xgroup|delconsumer"
			}
			cmds = append(cmds, c)
		}
		for _, m := range regexp.MustCompile(`\.rdb\.(\w+)\(`).FindAllStringSubmatch(src, -1) {
			mapped, ok := goRedisCommands[m[1]]
			if !ok {
				t.Errorf("%s calls go-redis's %s: add it to goRedisCommands, and its command to store/acl.go", f.file, m[1])
			}
			cmds = append(cmds, mapped...)
		}
		for _, m := range regexp.MustCompile(`Do\(ctx, "(\w+)"`).FindAllStringSubmatch(src, -1) {
			cmds = append(cmds, m[1])
		}
		for _, m := range regexp.MustCompile(`"(evalsha|xadd)", `).FindAllStringSubmatch(src, -1) {
			cmds = append(cmds, m[1])
		}
		if strings.Contains(src, "Script.Run(") || strings.Contains(src, "script.Eval(") {
			cmds = append(cmds, "evalsha", "eval") // go-redis falls back from EVALSHA to EVAL
		}
		if len(cmds) == 0 {
			t.Errorf("%s: found no command; is the scan still right?", f.file)
		}
		for _, c := range cmds {
			if !f.has(c) {
				t.Errorf("%s sends %s, not in store.ACLCommands for the %s role (store/acl.go)", f.file, strings.ToUpper(c), f.role)
			}
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	h := store.NewHealth("rounds")
	boom := errors.New("NOPERM no")
	for i := 1; i < store.HealthThreshold; i++ {
		h.Failed(boom)
		if err := h.Err(); err != nil {
			t.Fatalf("after %d failures: %v, want healthy until %d", i, err, store.HealthThreshold)
		}
	}
	h.Failed(boom)
	if err := h.Err(); !errors.Is(err, boom) || err.Error() != "rounds failing (3 in a row): NOPERM no" {
		t.Fatalf("after %d failures: %v", store.HealthThreshold, err)
	}
	h.Succeeded()
	if err := h.Err(); err != nil {
		t.Fatalf("after a success: %v", err)
	}
}
