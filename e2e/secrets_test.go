package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// The Redis password reaches no command: a task printing its whole
// environment runs on a worker given the password in TASKINO_REDIS, and on
// one given it with --redis-password-file (the planner too); a variable
// the tasks file lists in redact_env is not passed either. The password
// and that variable's value appear in no event, history entry, dead
// letter, log line or output, while the fire's TASKINO_* values are there.
func TestSecretsStayOutOfCommandsWithBinaries(t *testing.T) {
	t.Parallel()
	const pw, other = "s3cr3t-Pa55-9f1c", "other-secret-77ad"
	srv := redistest.Start(t)
	if err := srv.Client(t).ConfigSet(context.Background(), "requirepass", pw).Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: pw})
	t.Cleanup(func() { rdb.Close() })
	st, err := store.New(rdb, ns, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := testBundle{srv: srv, rdb: rdb, st: st, ctx: context.Background()}
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "redis-password", pw+"\n")
	tasks := writeFile(t, dir, "tasks.yaml", `version: 1
redact_env: [MY_API_TOKEN]
tasks:
  - name: envdump
    every: 1s
    exec: [sh, -c, 'env | sort; echo "redis=$TASKINO_REDIS token=$MY_API_TOKEN"']
`)
	plain := "redis://" + srv.Addr + "/0"
	withPw := "redis://:" + pw + "@" + srv.Addr + "/0"
	common := []string{"--namespace", ns, "--redis", plain, "--redis-password-file", pwFile}
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	wEnv := startProcEnv(t, "worker", workerBin, []string{"TASKINO_REDIS=" + withPw, "MY_API_TOKEN=" + other},
		"--namespace", ns, "--node", "w-env", "--tasks", filepath.Clean(tasks))
	wFile := startProcEnv(t, "worker", workerBin, []string{"MY_API_TOKEN=" + other},
		append([]string{"--node", "w-file", "--tasks", filepath.Clean(tasks)}, common...)...)

	all := awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		by := map[string]bool{}
		for _, e := range all {
			if e.Type == events.TypeCompleted && e.Task == "envdump" {
				by[e.Worker] = true
			}
		}
		return by["w-env"] && by["w-file"]
	})
	for _, e := range all {
		if e.Type == events.TypeCompleted && !strings.Contains(e.Output, "TASKINO_FIRE_ID="+e.Fire) {
			t.Errorf("%s's output lacks its TASKINO_FIRE_ID:\n%s", e.Fire, e.Output)
		}
		if e.Type == events.TypeCompleted && strings.Contains(e.Output, "TASKINO_REDIS") {
			t.Errorf("%s's command got TASKINO_REDIS:\n%s", e.Fire, e.Output)
		}
	}
	for _, pr := range []*proc{wEnv, wFile, p} {
		pr.stop(t, syscall.SIGTERM)
	}
	// Every stream and hash of the namespace, every log line.
	stored := dumpNamespace(t, b)
	if !strings.Contains(stored, "redis= token=") {
		t.Fatalf("no output of the command in Redis: the check below would prove nothing")
	}
	for where, text := range map[string]string{"Redis": stored, "planner log": p.stderr(), "worker log (env)": wEnv.stderr(),
		"worker log (file)": wFile.stderr()} {
		for _, secret := range []string{pw, other} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds the secret %q", where, secret)
			}
		}
	}
}
