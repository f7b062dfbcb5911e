package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
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

// Hostile text from Redis stays inert: a hand-written trigger whose id
// holds ESC, CR and LF is dead-lettered naming the field, and an event
// and a last-run record whose worker field holds them (forged by a Redis
// user) are printed escaped by taskino tail, last-run and dead: no raw
// control character reaches the terminal.
func TestControlCharactersStayInertWithBinaries(t *testing.T) {
	b := setup(t)
	cli, workerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-worker")
	common := redisFlags(b)
	w := startYearlyTaskWorker(t, b, cli, workerBin)

	const hostile = "ok\x1b[2J\x1b[31mRED\r\nFAKE line\u009b"
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires("default"), Values: []any{"task", "t", "id", hostile}}).Err(); err != nil {
		t.Fatal(err)
	}
	dead := awaitEvent(t, b, 30*time.Second, events.TypeDead, nil)
	var reason string
	for _, e := range dead {
		if e.Type == events.TypeDead {
			reason = e.Reason
		}
	}
	if !strings.Contains(reason, `field "id": a control character`) {
		t.Errorf("dead letter reason %q; want it to name the id field and the control character", reason)
	}
	// A forged completed event and last-run record, worker and error full
	// of control characters.
	forged := events.Event{Type: events.TypeFailed, Task: "t", Fire: "t@1", At: time.UnixMilli(1), Worker: hostile, Status: "failed", Error: hostile}
	args, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a
	}
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Events(), Values: vals}).Err(); err != nil {
		t.Fatal(err)
	}
	lr := events.AppendLastRun(nil, events.LastRun{Task: "t", Fire: hostile, Scheduled: time.UnixMilli(1), Status: "failed", Error: hostile, Worker: hostile, Started: time.UnixMilli(2), Finished: time.UnixMilli(3)})
	if err := b.rdb.HSet(b.ctx, b.st.Keys().LastRun(), "t", string(lr)).Err(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"tail", "--since", "0", "--no-follow"}, {"last-run"}, {"last-run", "t"}, {"dead"}} {
		out, errOut, code := runCLI(t, cli, append(cmd, common...)...)
		if code != 0 {
			t.Errorf("taskino %v: exit %d: %s", cmd, code, errOut)
		}
		for _, c := range []string{"\x1b", "\r", "\u009b"} {
			if strings.Contains(out, c) || strings.Contains(errOut, c) {
				t.Errorf("taskino %v printed a raw %q:\n%q", cmd, c, out)
			}
		}
		if !strings.Contains(out, `\x1b`) {
			t.Errorf("taskino %v does not show the escaped text:\n%s", cmd, out)
		}
	}
	w.stop(t, syscall.SIGTERM)
	for _, c := range []string{"\x1b", "\r"} {
		if strings.Contains(w.stderr(), c) {
			t.Errorf("the worker's log holds a raw %q", c)
		}
	}
}

// TLS: a redis-server with a certificate from its own CA is reached with
// rediss:// and ca_file=; without the CA the certificate is refused; a
// rediss:// URL to a plain server says it answers plain Redis.
func TestTLSWithItsOwnCAWithBinaries(t *testing.T) {
	t.Parallel()
	cli := buildBinary(t, "cmd/taskino")
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCA(t, dir)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	srv := exec.Command("redis-server", "--port", "0", "--tls-port", port, "--bind", "127.0.0.1", "--tls-cert-file", certFile,
		"--tls-key-file", keyFile, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	url := "rediss://localhost:" + port + "/0"
	var out, errOut string
	var code int
	for i := 0; i < 50; i++ { // the server's start, awaited by its answer
		out, errOut, code = runCLI(t, cli, "settings", "--redis", url+"?ca_file="+caFile, "--namespace", ns)
		if code == 0 || !strings.Contains(errOut, "cannot reach") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 0 || !strings.Contains(out, "events") {
		t.Fatalf("taskino settings over TLS with ca_file: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, cli, "settings", "--redis", url, "--namespace", ns)
	if code == 0 || !strings.Contains(errOut, "certificate") {
		t.Errorf("without ca_file: exit %d, %q; want the certificate refused", code, errOut)
	}
	_, errOut, code = runCLI(t, cli, "settings", "--redis", url+"?ca_file="+filepath.Join(dir, "none.pem"), "--namespace", ns)
	if code == 0 || !strings.Contains(errOut, "option ca_file: cannot read") {
		t.Errorf("a missing ca_file: exit %d, %q; want it named", code, errOut)
	}
	plain := redistest.Start(t)
	_, errOut, code = runCLI(t, cli, "settings", "--redis", "rediss://"+plain.Addr+"/0", "--namespace", ns)
	if code == 0 || !strings.Contains(errOut, "answers plain Redis, not TLS; use redis://") {
		t.Errorf("rediss:// to a plain server: exit %d, %q; want it to say the server answers plain Redis", code, errOut)
	}
}

// writeCA writes a CA certificate and a server certificate for localhost
// and 127.0.0.1 it signed, with the server's key, as PEM files.
func writeCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "taskino test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		return writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", leafDER), write("server.key", "EC PRIVATE KEY", keyDER)
}

// An HTTP task's secrets, end to end with the worker binary (debug logs
// on): its URL's password, a token in its path and query, its X-Api-Key
// and a header it lists in secret_headers appear in no log line, event or
// dead letter; redirected to another host, that host gets none of the
// secret headers (a plain one still arrives). A payload with a NUL byte
// for a command is dead-lettered at attempt 1, not retried.
func TestHTTPSecretsAndSureFailuresWithBinaries(t *testing.T) {
	b := setup(t)
	cli, workerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-worker")
	got := make(chan http.Header, 10)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer first.Close()
	hook := strings.Replace(first.URL, "http://", "http://bot:pw-7c1e9@", 1) + "/hooks/TOKEN-in-path-55?sig=TOKEN-in-query-66"
	dir := t.TempDir()
	tasks := writeFile(t, dir, "tasks.yaml", fmt.Sprintf(`version: 1
tasks:
  - name: hook
    cron: "0 0 1 1 *"
    attempts: 2
    http:
      url: %q
      headers: {X-Api-Key: apikey-3b8d, X-Token: xtoken-9f2a, X-Plain: visible}
      secret_headers: [X-Token]
  - name: cmd
    cron: "0 0 1 1 *"
    attempts: 3
    exec: [sh, -c, 'echo "$TASKINO_PAYLOAD"']
`, hook))
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks, "--log-level", "debug"}, common...)...)
	mustCLI(t, cli, append([]string{"trigger", "hook"}, common...)...)
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires("default"), Values: []any{"task", "cmd", "payload", "a\x00b"}}).Err(); err != nil {
		t.Fatal(err)
	}
	all := awaitEvents(t, b, 60*time.Second, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Type == events.TypeDead && (e.Task == "hook" || e.Task == "cmd") {
				n++
			}
		}
		return n == 2
	})
	for _, e := range all {
		if e.Task == "cmd" && e.Type == events.TypeRetried {
			t.Errorf("the NUL payload was retried: %+v", e)
		}
		if e.Task == "cmd" && e.Type == events.TypeDead && (e.Attempt != 1 || !strings.Contains(e.Reason, "not to retry")) {
			t.Errorf("the NUL payload's dead event: attempt %d, reason %q; want attempt 1, not retried", e.Attempt, e.Reason)
		}
	}
	for i := 0; i < 2; i++ { // two attempts reached the other host
		h := <-got
		for _, name := range []string{"Authorization", "X-Api-Key", "X-Token"} {
			if v := h.Get(name); v != "" {
				t.Errorf("the other host got %s: %q", name, v)
			}
		}
		if h.Get("X-Plain") != "visible" {
			t.Errorf("the other host did not get X-Plain")
		}
	}
	w.stop(t, syscall.SIGTERM)
	stored := dumpNamespace(t, b)
	if !strings.Contains(stored, "HTTP 503") {
		t.Fatalf("no failure of the hook in Redis; the checks below would prove nothing")
	}
	for where, text := range map[string]string{"Redis": stored, "worker log": w.stderr()} {
		for _, s := range []string{"pw-7c1e9", "TOKEN-in-path", "TOKEN-in-query", "apikey-3b8d", "xtoken-9f2a"} {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the secret %q", where, s)
			}
		}
	}
}

// dumpNamespace is every stream, hash, string and sorted set of the test
// namespace, as text.
func dumpNamespace(t *testing.T, b testBundle) string {
	t.Helper()
	var out strings.Builder
	keys, err := b.rdb.Keys(b.ctx, "taskino:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		switch b.rdb.Type(b.ctx, k).Val() {
		case "stream":
			fmt.Fprintln(&out, b.rdb.XRange(b.ctx, k, "-", "+").Val())
		case "hash":
			fmt.Fprintln(&out, b.rdb.HGetAll(b.ctx, k).Val())
		case "string":
			fmt.Fprintln(&out, b.rdb.Get(b.ctx, k).Val())
		case "zset":
			fmt.Fprintln(&out, b.rdb.ZRange(b.ctx, k, 0, -1).Val())
		}
	}
	return out.String()
}

// --http with no host binds loopback only, and says so; with
// --http-token-file, /metrics and /healthz answer 401 without the token
// and 200 with it.
func TestMetricsEndpointGuardsWithBinaries(t *testing.T) {
	b := setup(t)
	workerBin := buildBinary(t, "cmd/taskino-worker")
	dir := t.TempDir()
	tasks := writeFile(t, dir, "tasks.yaml", yearlyTask)
	const token = "metrics-token-5d2c9a71"
	tokenFile := writeFile(t, dir, "token", token+"\n")
	_, port, _ := net.SplitHostPort(freeAddr(t))
	w := startProc(t, "worker", workerBin, "--redis", "redis://"+b.srv.Addr+"/0", "--namespace", ns, "--node", "w1", "--tasks", tasks,
		"--http", ":"+port, "--http-token-file", tokenFile)
	url := "http://127.0.0.1:" + port
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ { // the worker's start, awaited by its answer
		if resp, err = http.Get(url + "/healthz"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/healthz without the token: %d, want 401", resp.StatusCode)
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the token: %d, want 200", path, resp.StatusCode)
		}
	}
	w.stop(t, syscall.SIGTERM)
	if log := w.stderr(); !strings.Contains(log, "loopback only") || !strings.Contains(log, "127.0.0.1:"+port) {
		t.Errorf("the worker's log does not say it serves loopback only:\n%s", log)
	}
}

// Five fires with a 100 MB payload each: the worker never holds one (its
// reads skip any string over events.MaxReadBytes on the wire), so its
// peak memory stays under 64 MiB; every one is dead-lettered naming the
// payload's size, its dead letter keeps none of it (Redis holds no second
// copy) and cannot be replayed; the next good fire runs. The worker's and
// Redis's peak memory are logged (figures in the note).
func TestHugePayloadsWithBinaries(t *testing.T) {
	// Alone: half a gigabyte through Redis and the worker would make the
	// timing of the tests running beside it miss (CI saw planners time out).
	b := setupAlone(t)
	cli, workerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-worker")
	common := redisFlags(b)
	w := startYearlyTaskWorker(t, b, cli, workerBin)
	big := strings.Repeat("x", 100<<20)
	for i := 0; i < 5; i++ {
		if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires("default"), Values: []any{"task", "t", "payload", big}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	big = ""
	mustCLI(t, cli, append([]string{"trigger", "t", "--id", "good-one"}, common...)...)
	all := awaitEvents(t, b, 120*time.Second, func(all []events.Event) bool {
		dead, good := 0, false
		for _, e := range all {
			dead += map[bool]int{true: 1}[e.Type == events.TypeDead]
			good = good || e.Type == events.TypeCompleted && e.Fire == "good-one"
		}
		return dead == 5 && good
	})
	for _, e := range all {
		if e.Type == events.TypeDead && (!strings.Contains(e.Reason, `field "payload"`) || !strings.Contains(e.Reason, "104857600 bytes")) {
			t.Errorf("dead event reason %q; want it to name the payload field and its size", e.Reason)
		}
	}
	ds, err := b.st.ListDead(b.ctx, "-", 10)
	if err != nil || len(ds) != 5 {
		t.Fatalf("%d dead letters (%v), want 5", len(ds), err)
	}
	for _, d := range ds {
		if d.Cut["payload"] != 100<<20 || len(d.Fields["payload"]) != 0 || d.Fields["task"] != "t" {
			t.Errorf("dead letter %s: cut %v, payload kept %d bytes, task %q; want 104857600 noted, nothing kept, task t", d.ID, d.Cut, len(d.Fields["payload"]), d.Fields["task"])
		}
	}
	if _, err := b.st.Replay(b.ctx, ds[0], "test"); !errors.Is(err, store.ErrNotReplayable) {
		t.Errorf("replay of a cut dead letter: %v; want ErrNotReplayable", err)
	}
	deadBytes, _ := b.rdb.MemoryUsage(b.ctx, b.st.Keys().Dead()).Result()
	if deadBytes > 5<<20 {
		t.Errorf("the dead-letter stream takes %d bytes; want well under the payloads' 500 MB", deadBytes)
	}
	info := b.rdb.Info(b.ctx, "memory").Val()
	var peak string
	for _, l := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(l, "used_memory_peak_human:") {
			peak = l
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
	var hwm string
	var hwmKB int64
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			hwm = strings.Join(strings.Fields(l), " ")
			fmt.Sscan(strings.TrimPrefix(l, "VmHWM:"), &hwmKB)
		}
	}
	if hwmKB == 0 || hwmKB > 64<<10 {
		t.Errorf("the worker's peak memory is %q; want under 64 MiB (it read a 100 MB payload whole?)", hwm)
	}
	t.Logf("5 x 100 MB payloads: dead-letter stream %d bytes; Redis %s; worker peak %s", deadBytes, peak, hwm)
	w.stop(t, syscall.SIGTERM)
}

// A queue no worker reads stops growing at the namespace's fires max
// backlog: the planner records its slots missed (policy backlog, the
// reason naming the queue and the bound) instead of appending more, and
// says so in its log; nothing the stream holds is trimmed; once a worker
// reads the queue, its slots fire again.
func TestFiresMaxBacklogWithBinaries(t *testing.T) {
	b := setup(t)
	cli, plannerBin, workerBin := buildBinaries(t)
	dir := t.TempDir()
	var file strings.Builder
	file.WriteString("version: 1\ntasks:\n")
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&file, "  - name: t%d\n    every: 200ms\n    exec: [\"true\"]\n", i)
	}
	tasks := writeFile(t, dir, "tasks.yaml", file.String())
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	if out := mustCLI(t, cli, append([]string{"settings", "--fires-max-backlog", "30"}, common...)...); !strings.Contains(out, "fires max backlog    30") {
		t.Fatalf("settings:\n%s", out)
	}
	p := startProc(t, "planner", plannerBin, append([]string{"--node", "p1"}, common...)...)
	missed := awaitEvent(t, b, 30*time.Second, events.TypeMissed, func(e events.Event) bool { return e.Policy == "backlog" })
	var reason string
	for _, e := range missed {
		if e.Policy == "backlog" {
			reason = e.Reason
		}
	}
	if !strings.Contains(reason, "queue default holds") || !strings.Contains(reason, "fires max backlog 30") {
		t.Errorf("missed reason %q; want it to name the queue and the bound", reason)
	}
	// It stays bounded: the planner checks once a second, so it may pass
	// the bound by a second's fires (and its lookahead's), never more.
	awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		n := 0
		for _, e := range all {
			if e.Policy == "backlog" {
				n++
			}
		}
		return n >= 50
	})
	if n := b.rdb.XLen(b.ctx, b.st.Keys().Fires("default")).Val(); n < 30 || n > 30+25*3 {
		t.Errorf("the fire stream holds %d entries; want the bound (30), give or take 3 seconds of fires", n)
	}
	workerAt := time.Now()
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks}, common...)...)
	awaitEvent(t, b, 60*time.Second, events.TypeCompleted, func(e events.Event) bool {
		return e.At.After(workerAt.Add(3 * time.Second))
	})
	w.stop(t, syscall.SIGTERM)
	p.stop(t, syscall.SIGTERM)
	if log := p.stderr(); !strings.Contains(log, "no worker reads this queue") || !strings.Contains(log, "workers read this queue again") {
		t.Errorf("the planner's log does not say the queue filled and drained:\n%s", log)
	}
}

// The namespace's payload max (taskino settings --payload-max): a task
// set with a larger spec payload is refused at apply, a larger manual
// trigger is refused, and a hand-written fire entry with one is
// dead-lettered naming the size and the bound; smaller ones run.
func TestPayloadMaxWithBinaries(t *testing.T) {
	b := setup(t)
	cli, workerBin := buildBinary(t, "cmd/taskino"), buildBinary(t, "cmd/taskino-worker")
	dir := t.TempDir()
	common := redisFlags(b)
	if out := mustCLI(t, cli, append([]string{"settings", "--payload-max", "16"}, common...)...); !strings.Contains(out, "payload max          16 bytes") {
		t.Fatalf("settings:\n%s", out)
	}
	big := writeFile(t, dir, "big.yaml", "version: 1\ntasks:\n  - name: t\n    cron: \"0 0 1 1 *\"\n    payload: this-payload-is-too-long\n    exec: [\"true\"]\n")
	_, errOut, code := runCLI(t, cli, append([]string{"apply", big}, common...)...)
	if code == 0 || !strings.Contains(errOut, `task "t": payload: 24 bytes; the namespace allows at most 16`) {
		t.Errorf("apply of a 24-byte payload: exit %d, %q; want it refused naming the task, the size and the bound", code, errOut)
	}
	tasks := writeFile(t, dir, "tasks.yaml", "version: 1\ntasks:\n  - name: t\n    cron: \"0 0 1 1 *\"\n    payload: short\n    exec: [\"true\"]\n")
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	_, errOut, code = runCLI(t, cli, append([]string{"trigger", "t", "--payload", "this-payload-is-too-long"}, common...)...)
	if code == 0 || !strings.Contains(errOut, "24 bytes; the namespace allows at most 16") {
		t.Errorf("trigger with a 24-byte payload: exit %d, %q; want it refused", code, errOut)
	}
	w := startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks}, common...)...)
	if err := b.rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: b.st.Keys().Fires("default"), Values: []any{"task", "t", "payload", "this-payload-is-too-long"}}).Err(); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, cli, append([]string{"trigger", "t", "--payload", "ok", "--id", "small"}, common...)...)
	all := awaitEvents(t, b, 30*time.Second, func(all []events.Event) bool {
		dead, ran := false, false
		for _, e := range all {
			dead = dead || e.Type == events.TypeDead
			ran = ran || e.Type == events.TypeCompleted && e.Fire == "small"
		}
		return dead && ran
	})
	for _, e := range all {
		if e.Type == events.TypeDead && !strings.Contains(e.Reason, `field "payload": 24 bytes; the namespace allows at most 16`) {
			t.Errorf("dead reason %q; want the size and the bound", e.Reason)
		}
	}
	w.stop(t, syscall.SIGTERM)
}

// yearlyTask is a tasks file of one task, t, that fires once a year: a
// test's own XADDs and triggers are all it runs.
const yearlyTask = "version: 1\ntasks:\n  - name: t\n    cron: \"0 0 1 1 *\"\n    exec: [\"true\"]\n"

// startYearlyTaskWorker applies yearlyTask and starts worker w1 on it.
func startYearlyTaskWorker(t *testing.T, b testBundle, cli, workerBin string) *proc {
	t.Helper()
	tasks := writeFile(t, t.TempDir(), "tasks.yaml", yearlyTask)
	common := redisFlags(b)
	mustCLI(t, cli, append([]string{"apply", tasks}, common...)...)
	return startProc(t, "worker", workerBin, append([]string{"--node", "w1", "--tasks", tasks}, common...)...)
}
