package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Role is what a process does with a namespace, and so which Redis
// commands, keys and channels its Redis user must be allowed (see
// ACLCommands, CheckACL, and README.md, "Redis ACL").
type Role string

// The roles.
const (
	// RolePlanner is taskino-planner (and a Go program's planner.Planner):
	// it applies a task set, claims and plans tasks, subscribes to
	// wake-ups and appends its events.
	RolePlanner Role = "planner"
	// RoleWorker is taskino-worker (and dispatcher.Worker): it applies its
	// tasks file, reads, reclaims, heartbeats and finishes fires, moves
	// retries, trims the streams and reads the task set.
	RoleWorker Role = "worker"
	// RoleReader is the read-only CLI commands: taskino tail, ls, workers and
	// last-run.
	RoleReader Role = "reader"
)

// aclNeed is one command a role sends, with sample arguments of the right
// shape, so that Redis finds its keys and channels in them: k gives the
// namespace's key names, the sample task "task" and queue "default".
type aclNeed struct {
	cmd  string // lowercase; "xgroup|create" for a subcommand
	args func(k Keys) []string
}

func need(cmd string, args func(k Keys) []string) aclNeed { return aclNeed{cmd: cmd, args: args} }

// The commands each role sends, directly or from a script: this list is
// the one place they are written (README.md's ACL lines are checked
// against it by e2e's TestReadmeACLMatchesStore, and a test fails on a
// command a script calls that is not here). Script commands are checked
// with a key of the kind the script derives (a task's state hash, a fire
// stream), so a user whose key patterns leave those out is refused too.
var (
	// connNeeds: every process. go-redis's HELLO and AUTH need no grant.
	connNeeds = []aclNeed{
		need("ping", nil),
		need("time", nil),
		need("eval", func(k Keys) []string { return []string{"return 1", "1", k.Events()} }),
		need("evalsha", func(k Keys) []string { return []string{"0123456789abcdef0123456789abcdef01234567", "1", k.Events()} }),
	}
	// applyNeeds: Store.Apply (its script), run by the planner and the
	// worker binaries at start (--tasks) and by taskino apply.
	applyNeeds = []aclNeed{
		need("get", func(k Keys) []string { return []string{k.Version()} }),
		need("set", func(k Keys) []string { return []string{k.Version(), "1"} }),
		need("hlen", func(k Keys) []string { return []string{k.Specs()} }),
		need("hget", func(k Keys) []string { return []string{k.Specs(), "task"} }),
		need("hset", func(k Keys) []string { return []string{k.State("task"), "gen", "1"} }),
		need("hexists", func(k Keys) []string { return []string{k.State("task"), "paused"} }),
		need("hincrby", func(k Keys) []string { return []string{k.State("task"), "gen", "1"} }),
		need("hdel", func(k Keys) []string { return []string{k.State("task"), "lease"} }),
		need("hkeys", func(k Keys) []string { return []string{k.Specs()} }),
		need("del", func(k Keys) []string { return []string{k.State("task")} }),
		need("hdel", func(k Keys) []string { return []string{k.LastRun(), "task"} }), // a task added again starts afresh
		need("zadd", func(k Keys) []string { return []string{k.Due(), "0", "task"} }),
		need("zrem", func(k Keys) []string { return []string{k.Due(), "task"} }),
		need("xadd", func(k Keys) []string { return []string{k.Events(), "MAXLEN", "~", "1", "*", "f", "v"} }),
		need("publish", func(k Keys) []string { return []string{k.Wake(), "1"} }),
		// The changes set and channel (apply and pause note each change).
		need("zadd", func(k Keys) []string { return []string{k.Changes(), "0", "changed task"} }),
		need("zrangebyscore", func(k Keys) []string { return []string{k.Changes(), "-inf", "(0", "LIMIT", "0", "100"} }),
		need("zrem", func(k Keys) []string { return []string{k.Changes(), "changed task"} }),
		need("publish", func(k Keys) []string { return []string{k.Changes(), "0 reload"} }),
		// taskino backfill (with the worker's user).
		need("hexists", func(k Keys) []string { return []string{k.Backfilled("task"), "0"} }),
		need("hsetnx", func(k Keys) []string { return []string{k.Backfilled("task"), "0", "0-1"} }),
		need("hdel", func(k Keys) []string { return []string{k.Backfilled("task"), "0"} }),
		need("xadd", func(k Keys) []string { return []string{k.Fires("default"), "*", "f", "v"} }),
		// Pause (taskino pause, a worker's pause_after_failures).
		need("hmget", func(k Keys) []string { return []string{k.State("task"), "paused", "since"} }),
		// taskino apply's warning of tasks no live worker advertises.
		need("time", nil),
		need("hgetall", func(k Keys) []string { return []string{k.Workers()} }),
		need("zrange", func(k Keys) []string { return []string{k.WorkersSeen(), "0", "-1", "WITHSCORES"} }),
	}
	// retainNeeds: the events bound stored when the namespace has none,
	// and the trim of the events stream to its settings (planner and
	// worker, every second).
	retainNeeds = []aclNeed{
		need("hsetnx", func(k Keys) []string { return []string{k.Settings(), "events_max_len", "1"} }),
		need("hgetall", func(k Keys) []string { return []string{k.Settings()} }),
		need("hmget", func(k Keys) []string { return []string{k.Settings(), "events_max_len"} }),
		need("exists", func(k Keys) []string { return []string{k.Events()} }),
		need("xinfo|groups", func(k Keys) []string { return []string{k.Events()} }),
		need("xtrim", func(k Keys) []string { return []string{k.Events(), "MAXLEN", "~", "1"} }),
		need("xlen", func(k Keys) []string { return []string{k.Events()} }),
		need("xrange", func(k Keys) []string { return []string{k.Events(), "-", "+", "COUNT", "1"} }),
		need("hget", func(k Keys) []string { return []string{k.EventsLost(), "group"} }),
		need("hset", func(k Keys) []string { return []string{k.EventsLost(), "group", "0-0 0-1"} }),
	}
	// planNeeds: the planning protocol (claim, plan, release), wake-ups
	// and the planner's events.
	planNeeds = []aclNeed{
		need("subscribe", func(k Keys) []string { return []string{k.Wake()} }),
		need("zrange", func(k Keys) []string { return []string{k.Due(), "0", "0", "WITHSCORES"} }),
		need("zrangebyscore", func(k Keys) []string { return []string{k.Due(), "-inf", "0", "LIMIT", "0", "1"} }),
		need("hmget", func(k Keys) []string { return []string{k.Planned(), "task"} }),
		need("hset", func(k Keys) []string { return []string{k.Planned(), "task", "0"} }),
		need("xadd", func(k Keys) []string { return []string{k.Fires("default"), "*", "f", "v"} }),
		need("xadd", func(k Keys) []string { return []string{k.Broadcast("default"), "*", "f", "v"} }),
		need("hset", func(k Keys) []string { return []string{k.LastRun(), "task", "{}"} }),
		// The backlog of each fire stream it appends to (fires max backlog).
		need("xinfo|groups", func(k Keys) []string { return []string{k.Fires("default")} }),
		need("xlen", func(k Keys) []string { return []string{k.Fires("default")} }),
	}
	// workNeeds: the worker protocol (groups, reads, reclaims, begin,
	// heartbeats, hand-backs, finish, retries, trims), its spec cache and
	// wake-ups, its events and the binary's stream metrics.
	workNeeds = []aclNeed{
		need("subscribe", func(k Keys) []string { return []string{k.Wake()} }),
		need("subscribe", func(k Keys) []string { return []string{k.HandBacks()} }),
		need("subscribe", func(k Keys) []string { return []string{k.Changes()} }),
		need("zrange", func(k Keys) []string { return []string{k.Changes(), "0", "-1", "WITHSCORES"} }),
		need("publish", func(k Keys) []string { return []string{k.HandBacks(), "node"} }),
		need("subscribe", func(k Keys) []string { return []string{k.Cancel()} }),
		// taskino backfill: how far back the events stream reaches.
		need("xinfo|stream", func(k Keys) []string { return []string{k.Events()} }),
		need("publish", func(k Keys) []string { return []string{k.Cancel(), "old new"} }),
		need("hgetall", func(k Keys) []string { return []string{k.Specs()} }),
		need("multi", nil),
		need("exec", nil),
		need("xgroup|create", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup, "0", "MKSTREAM"} }),
		need("xgroup|delconsumer", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup, "node"} }),
		need("xinfo|groups", func(k Keys) []string { return []string{k.Fires("default")} }),
		need("xinfo|consumers", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup} }),
		need("xreadgroup", func(k Keys) []string {
			return []string{"GROUP", WorkerGroup, "node", "COUNT", "1", "STREAMS", k.Fires("default"), ">"}
		}),
		need("xread", func(k Keys) []string { return []string{"COUNT", "1", "STREAMS", k.Broadcast("default"), "0"} }),
		need("xrevrange", func(k Keys) []string { return []string{k.Broadcast("default"), "+", "-", "COUNT", "1"} }),
		need("xpending", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup, "-", "+", "1"} }),
		need("xautoclaim", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup, "node", "0", "0-0"} }),
		need("xclaim", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup, "node", "0", "0-1", "JUSTID"} }),
		need("xack", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup, "0-1"} }),
		need("xtrim", func(k Keys) []string { return []string{k.Fires("default"), "MINID", "~", "0-1", "LIMIT", "0"} }),
		need("xtrim", func(k Keys) []string { return []string{k.Events(), "MINID", "~", "0-1", "LIMIT", "0"} }),
		need("xadd", func(k Keys) []string { return []string{k.Dead(), "MAXLEN", "~", "1", "*", "f", "v"} }),
		need("xadd", func(k Keys) []string { return []string{k.Fires("default"), "*", "f", "v"} }),
		need("hmget", func(k Keys) []string { return []string{k.LastRun(), "task"} }),
		need("hset", func(k Keys) []string { return []string{k.LastRun(), "task", "{}"} }),
		need("hget", func(k Keys) []string { return []string{k.Pulse(), "last"} }),
		need("hset", func(k Keys) []string { return []string{k.Pulse(), "last", "0"} }),
		need("zadd", func(k Keys) []string { return []string{k.Visibility(), "0", "30000"} }),
		need("zadd", func(k Keys) []string { return []string{k.Retry(), "0", "[]"} }),
		need("zrange", func(k Keys) []string { return []string{k.Visibility(), "0", "-1"} }),
		need("zrangebyscore", func(k Keys) []string { return []string{k.Retry(), "-inf", "0", "LIMIT", "0", "1"} }),
		need("zremrangebyscore", func(k Keys) []string { return []string{k.Visibility(), "-inf", "0"} }),
		need("zrem", func(k Keys) []string { return []string{k.Retry(), "[]"} }),
		need("get", func(k Keys) []string { return []string{k.Running("task")} }),
		need("set", func(k Keys) []string { return []string{k.Running("task"), "id", "PX", "1000"} }),
		need("set", func(k Keys) []string { return []string{k.Buffer("task"), "m", "NX"} }),
		need("set", func(k Keys) []string { return []string{k.TriggerID("task", "id"), "0-1", "PX", "1000"} }),
		need("pexpire", func(k Keys) []string { return []string{k.Running("task"), "1000"} }),
		need("del", func(k Keys) []string { return []string{k.Buffer("task")} }),
	}
	// readNeeds: taskino tail, ls, last-run, history, explain, workers
	// and the read-only web console.
	readNeeds = []aclNeed{
		need("xrevrange", func(k Keys) []string { return []string{k.History("task"), "+", "-", "COUNT", "1"} }),
		need("xrange", func(k Keys) []string { return []string{k.Dead(), "-", "+", "COUNT", "1"} }),
		need("xinfo|groups", func(k Keys) []string { return []string{k.Fires("default")} }),
		need("xinfo|consumers", func(k Keys) []string { return []string{k.Fires("default"), WorkerGroup} }),
		need("hgetall", func(k Keys) []string { return []string{k.Workers()} }),
		need("zrange", func(k Keys) []string { return []string{k.WorkersSeen(), "0", "-1", "WITHSCORES"} }),
		need("ping", nil),
		need("time", nil),
		need("get", func(k Keys) []string { return []string{k.Version()} }),
		need("hget", func(k Keys) []string { return []string{k.LastRun(), "task"} }),
		need("hgetall", func(k Keys) []string { return []string{k.Specs()} }),
		need("hgetall", func(k Keys) []string { return []string{k.LastRun()} }),
		need("hmget", func(k Keys) []string { return []string{k.State("task"), "since"} }),
		need("hmget", func(k Keys) []string { return []string{k.Planned(), "task"} }),
		need("xread", func(k Keys) []string { return []string{"COUNT", "1", "STREAMS", k.Events(), "0"} }),
		need("xrevrange", func(k Keys) []string { return []string{k.Events(), "+", "-", "COUNT", "1"} }),
		need("hlen", func(k Keys) []string { return []string{k.Specs()} }),
		need("xlen", func(k Keys) []string { return []string{k.Dead()} }),
	}
)

// needs is what role sends, in order; nil for an unknown role.
func needs(role Role) []aclNeed {
	switch role {
	case RolePlanner:
		return slices.Concat(connNeeds, applyNeeds, planNeeds, retainNeeds)
	case RoleWorker:
		return slices.Concat(connNeeds, applyNeeds, workNeeds, retainNeeds)
	case RoleReader:
		return readNeeds
	}
	return nil
}

// ACLCommands is every command role sends to Redis, directly or from a
// Lua script, lowercase and sorted, a subcommand as "xgroup|create": the
// commands its Redis user must be allowed (with the keys "taskino:*"
// and, but for RoleReader, the channels "taskino:*"). It panics on an
// unknown role.
func ACLCommands(role Role) []string {
	ns := needs(role)
	if ns == nil {
		panic(fmt.Sprintf("store: ACLCommands: unknown role %q", role))
	}
	var out []string
	for _, n := range ns {
		if !slices.Contains(out, n.cmd) {
			out = append(out, n.cmd)
		}
	}
	slices.Sort(out)
	return out
}

// ErrACLUnchecked is returned by CheckACL on a Redis without
// redis.acl_check_cmd (before 7.0): nothing was checked.
var ErrACLUnchecked = errors.New("Redis before 7.0 cannot check ACL permissions from a script; not checked")

// ACLError is CheckACL's finding: the user may not run Missing (each a
// command and the sample key or channel it was refused on).
type ACLError struct {
	User    string
	Missing []string
}

func (e *ACLError) Error() string {
	return fmt.Sprintf(`Redis user %q may not run %s (NOPERM); grant it, see README "Redis ACL"`, e.User, strings.Join(e.Missing, ", "))
}

// aclCheckScript runs redis.acl_check_cmd over a list of commands with
// their arguments.
//
// KEYS[1] -> a key of the namespace (routes the call; the EVAL itself is
// checked against it)
// ARGV -> per command: its number of words n, then the n words (command
// and arguments)
//
// Returns {"unchecked"} without redis.acl_check_cmd (Redis before 7.0),
// else {"checked", then the positions (from 1) of the commands refused},
// a command this server does not know counting as refused.
const aclCheckScript = `
if not redis.acl_check_cmd then return {'unchecked'} end
local out = {'checked'}
local i, k = 1, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local ok, allowed = pcall(redis.acl_check_cmd, unpack(ARGV, i + 1, i + n))
  if not ok or not allowed then out[#out + 1] = k end
  i, k = i + 1 + n, k + 1
end
return out
`

// CheckACL checks, in one EVAL, that the Redis user rdb authenticates as
// may run every command role sends, on keys and channels of the
// namespace's kinds (sample names: the task "task", the queue "default").
// It returns nil when it may; an *ACLError naming each command refused
// (EVAL itself included, when the user may not run scripts at all); an
// error wrapping ErrACLUnchecked on Redis before 7.0, where it cannot
// tell; or the error of the call. It writes nothing. RolePlanner and
// RoleWorker only: the check is a script, which RoleReader's user may not
// run.
func (s *Store) CheckACL(ctx context.Context, role Role) error {
	if role != RolePlanner && role != RoleWorker {
		return fmt.Errorf("store: CheckACL: role %q; want %q or %q", role, RolePlanner, RoleWorker)
	}
	ns := needs(role)
	var args []any
	var names []string
	for _, n := range ns {
		words := strings.Split(n.cmd, "|")
		if n.args != nil {
			words = append(words, n.args(s.keys)...)
		}
		args = append(args, len(words))
		for _, w := range words {
			args = append(args, w)
		}
		what := strings.ToUpper(strings.ReplaceAll(n.cmd, "|", " "))
		if n.args != nil {
			if key := sampleTarget(n.cmd, words); key != "" {
				what += " on " + key
			}
		}
		names = append(names, what)
	}
	res, err := s.rdb.Eval(ctx, aclCheckScript, []string{s.keys.Events()}, args...).Slice()
	if redis.HasErrorPrefix(err, "NOPERM") {
		return &ACLError{User: userOf(s.rdb), Missing: []string{"EVAL on " + s.keys.Events()}}
	}
	if err != nil {
		return fmt.Errorf("check the ACL permissions of Redis user %q: %w", userOf(s.rdb), err)
	}
	if len(res) > 0 && res[0] == "unchecked" {
		return ErrACLUnchecked
	}
	var missing []string
	for _, v := range res[1:] {
		if i, ok := v.(int64); ok && i >= 1 && int(i) <= len(names) && !slices.Contains(missing, names[i-1]) {
			missing = append(missing, names[i-1])
		}
	}
	if len(missing) > 0 {
		return &ACLError{User: userOf(s.rdb), Missing: missing}
	}
	return nil
}

// sampleTarget is the key or channel a sample command names, for the
// error: the first word after the command (and subcommand) that starts
// with the key prefix.
func sampleTarget(cmd string, words []string) string {
	for _, w := range words[len(strings.Split(cmd, "|")):] {
		if strings.HasPrefix(w, "taskino:") {
			return w
		}
	}
	return ""
}

// userOf is the Redis user a client authenticates as ("default" when it
// names none).
func userOf(rdb redis.UniversalClient) string {
	user := ""
	switch c := rdb.(type) {
	case *redis.Client:
		user = c.Options().Username
	case *redis.ClusterClient:
		user = c.Options().Username
	}
	if user == "" {
		return "default"
	}
	return user
}
