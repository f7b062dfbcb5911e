// Package app is what taskino's binaries share: the --redis, --namespace
// and --log-level flags, the logger, the Redis connection, applying a tasks
// file, and the handlers of a tasks file's command and HTTP tasks.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/cmd/internal/metrics"
	"github.com/taskino/taskino/cmd/internal/redisurl"
	"github.com/taskino/taskino/cmd/internal/runner"
	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
	"github.com/taskino/taskino/store"
)

// DefaultRedis is the Redis URL when neither --redis nor TASKINO_REDIS is
// given.
const DefaultRedis = "redis://127.0.0.1:6379/0"

// Common holds the flags every binary has.
type Common struct {
	RedisURL string
	// RedisPasswordFile names a file holding the Redis password
	// (--redis-password-file): kept out of the URL, the environment
	// (which commands would inherit) and ps.
	RedisPasswordFile string
	Namespace         string
	LogLevel          string
	// EventsMaxLen bounds the events stream: the planners and workers
	// trim it to about this many entries at each append, so all of a
	// namespace's should be given the same (see RegisterEvents).
	EventsMaxLen int64
	// HistoryLen is how many entries of each task's history the planners
	// and workers keep (see RegisterEvents).
	HistoryLen   int64
	eventsEnvErr error // TASKINO_EVENTS_MAX_LEN or TASKINO_HISTORY_LEN is not a number
	eventsFlag   bool  // RegisterEvents was called

	logged bool // Logger was called: go-redis logs to it
}

// Register adds --redis, --namespace and --log-level to fs. Their defaults
// are c's values when set (flags parsed before), else TASKINO_REDIS,
// TASKINO_NAMESPACE and the built-in defaults.
func (c *Common) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.RedisURL, "redis", or(c.RedisURL, EnvOr("TASKINO_REDIS", DefaultRedis)),
		"Redis URL: redis://, rediss://, redis+sentinel://host:port,.../master or redis+cluster://host:port,... (env TASKINO_REDIS)")
	fs.StringVar(&c.RedisPasswordFile, "redis-password-file", or(c.RedisPasswordFile, EnvOr("TASKINO_REDIS_PASSWORD_FILE", "")),
		"file holding the Redis password (the URL then has none, or only user@); the way to keep it out of ps and the environment (env TASKINO_REDIS_PASSWORD_FILE)")
	fs.StringVar(&c.Namespace, "namespace", or(c.Namespace, EnvOr("TASKINO_NAMESPACE", store.DefaultNamespace)), "namespace of the task set (env TASKINO_NAMESPACE)")
	fs.StringVar(&c.LogLevel, "log-level", or(c.LogLevel, "info"), "debug, info, warn or error")
	// --help shows the default; a password from TASKINO_REDIS stays hidden.
	fs.Lookup("redis").DefValue = redisurl.Redact(c.RedisURL)
}

// RegisterEvents adds --events-max-len and --history-len to fs (the
// processes that trim the events stream and the tasks' histories:
// planner, worker, taskino dev). Their defaults are TASKINO_EVENTS_MAX_LEN
// and TASKINO_HISTORY_LEN, else store.DefaultEventsMaxLen and
// store.DefaultHistoryLen; a later call defaults to what the first parsed.
func (c *Common) RegisterEvents(fs *flag.FlagSet) {
	if !c.eventsFlag { // a second call (the CLI's command flags) keeps what the first parsed
		c.eventsFlag = true
		c.EventsMaxLen = c.envCount("TASKINO_EVENTS_MAX_LEN", store.DefaultEventsMaxLen, "1000000")
		c.HistoryLen = c.envCount("TASKINO_HISTORY_LEN", store.DefaultHistoryLen, "1000")
	}
	fs.Int64Var(&c.HistoryLen, "history-len", c.HistoryLen,
		"keep at least this many entries of each task's history (its outcomes and missed slots; taskino history); give every planner and worker of the namespace the same (env TASKINO_HISTORY_LEN)")
	fs.Int64Var(&c.EventsMaxLen, "events-max-len", c.EventsMaxLen,
		"the namespace's events bound (about this many entries, more while a durable listener was not delivered them), stored in Redis when it has none: a stored one wins (taskino settings shows and changes it) (env TASKINO_EVENTS_MAX_LEN)")
}

// envCount is the count in the environment variable name, or def when it
// is unset; a value that is not a whole number from 1 is kept for Check to
// refuse, naming the variable (example: a good value).
func (c *Common) envCount(name string, def int64, example string) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		c.eventsEnvErr = fmt.Errorf("%s %q: want a whole number of entries, 1 or more, such as %s", name, v, example)
	}
	return n
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Check validates the flags' values.
func (c *Common) Check() error {
	if err := store.ValidateNamespace(c.Namespace); err != nil {
		return fmt.Errorf("--namespace: %v", err)
	}
	if _, err := c.level(); err != nil {
		return err
	}
	if c.eventsEnvErr != nil {
		return c.eventsEnvErr
	}
	if c.eventsFlag && c.EventsMaxLen < 1 {
		return fmt.Errorf("--events-max-len %d: want 1 or more entries", c.EventsMaxLen)
	}
	if c.eventsFlag && c.HistoryLen < 1 {
		return fmt.Errorf("--history-len %d: want 1 or more entries", c.HistoryLen)
	}
	return nil
}

// StoreOptions is how the binaries' stores are set up: appends keep to the
// events stream's default hard bound, and each task's history to
// --history-len.
func (c *Common) StoreOptions() store.Options {
	// Appends keep to the hard bound; the planners and workers trim to the
	// namespace's bound every second, never past what a durable listener
	// was not delivered (store.Settings).
	return store.Options{EventsMaxLen: store.DefaultEventsHardMaxLen, HistoryLen: c.HistoryLen}
}

func (c *Common) level() (zerolog.Level, error) {
	level, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil || c.LogLevel == "" {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return level, nil
}

// Logger is the root logger: JSON lines on w, readable console lines when w
// is a terminal.
func (c *Common) Logger(w io.Writer) zerolog.Logger {
	level, err := c.level()
	if err != nil {
		level = zerolog.InfoLevel
	}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		w = zerolog.ConsoleWriter{Out: f, TimeFormat: time.TimeOnly}
	}
	log := zerolog.New(w).Level(level).With().Timestamp().Logger()
	// go-redis logs connection failures on its own; route them to our
	// logger at debug, since the components report failures themselves.
	redis.SetLogger(redisLogger{log.With().Str("component", "go-redis").Logger()})
	c.logged = true
	return log
}

// Connect opens the Redis client and checks it answers within 5s. Its
// errors are one line, without the URL's password.
func (c *Common) Connect(ctx context.Context) (redis.UniversalClient, error) {
	if !c.logged {
		// A command without a logger: go-redis must not print its own
		// lines; the error below says what went wrong.
		redis.SetLogger(redisLogger{zerolog.Nop()})
	}
	raw := c.RedisURL
	if c.RedisPasswordFile != "" {
		raw = redisurl.WithPasswordFile(raw, c.RedisPasswordFile)
	}
	rdb, err := redisurl.Open(raw)
	if err != nil {
		return nil, err
	}
	// No string over events.MaxReadBytes is read whole: a huge entry
	// XADDed to a fire stream costs a worker a few bytes, not its size.
	if err := store.BoundReplies(rdb); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = rdb.Ping(pctx).Err()
	// A reply slower than a short read_timeout (a loaded host) is tried
	// again until the 5 s are up: the server answered the dial.
	for i := 0; err != nil && isTimeout(err) && pctx.Err() == nil; i++ {
		select {
		case <-pctx.Done():
		case <-time.After(time.Duration(min(i+1, 10)) * 20 * time.Millisecond):
		}
		if pctx.Err() == nil {
			err = rdb.Ping(pctx).Err()
		}
	}
	if err != nil {
		_ = rdb.Close()
		if msg := err.Error(); strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") || strings.HasPrefix(msg, "NOPERM") {
			return nil, fmt.Errorf("Redis at %s refused the login: %v (check the user and password in --redis or TASKINO_REDIS)", redisurl.Addr(c.RedisURL), oneLine(err))
		}
		if why := redisurl.PlainServer(ctx, c.RedisURL); why != "" {
			return nil, fmt.Errorf("cannot reach Redis at %s over TLS: %s", redisurl.Addr(c.RedisURL), why)
		}
		return nil, fmt.Errorf("cannot reach Redis at %s: %v", redisurl.Addr(c.RedisURL), oneLine(err))
	}
	return rdb, nil
}

// ApplyFile applies a tasks file through st at version (the file's own
// when version is 0) and returns what changed (planner.Apply, which waits
// for a long apply script however short the client's read timeout). A
// file and flag without any version is an error: versions are what keep an
// older file from replacing a newer one.
func ApplyFile(ctx context.Context, st *store.Store, f *tasksfile.File, version int64) (store.ApplyResult, error) {
	version, err := FileVersion(f, version)
	if err != nil {
		return store.ApplyResult{}, err
	}
	res, err := planner.Apply(ctx, st, version, f.Specs())
	if err != nil {
		return res, fmt.Errorf("%s: %v", f.Path, oneLine(err))
	}
	return res, nil
}

// FileVersion is the version a tasks file is applied at: version when it
// is not 0 (--version), else the file's own; a file and flag without any
// is an error naming the file.
func FileVersion(f *tasksfile.File, version int64) (int64, error) {
	if version == 0 {
		version = f.Version
	}
	if version <= 0 {
		return 0, fmt.Errorf("%s: no version; add \"version: N\" to the file (or pass --version N), higher than the one stored", f.Path)
	}
	return version, nil
}

// handlers builds a handler for each task of f that has a command or an
// HTTP request, and returns them with the queues of those tasks.
func handlers(f *tasksfile.File, opts runner.Options) (dispatcher.Handlers, []string) {
	opts.RedactEnv = append(slices.Clip(opts.RedactEnv), f.RedactEnv...)
	hs := dispatcher.Handlers{}
	var queues []string
	for _, t := range f.Tasks {
		switch {
		case len(t.Exec) > 0:
			hs[t.Spec.Name] = runner.Exec(t.Exec, opts)
		case t.HTTP != nil:
			hs[t.Spec.Name] = runner.HTTP(runner.Request{Method: t.HTTP.Method, URL: t.HTTP.URL, Headers: t.HTTP.Headers, Body: t.HTTP.Body,
				SecretHeaders: t.HTTP.SecretHeaders}, opts)
		default:
			continue
		}
		if q := t.Spec.WithDefaults().Queue; !slices.Contains(queues, q) {
			queues = append(queues, q)
		}
	}
	return hs, queues
}

// Queues is a repeatable --queue flag.
type Queues []string

// String lists the queues.
func (q *Queues) String() string { return strings.Join(*q, ",") }

// Set adds a queue (or several, comma-separated).
func (q *Queues) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			return errors.New("empty queue name")
		}
		*q = append(*q, s)
	}
	return nil
}

// EnvOr is the environment variable key, or def when it is unset or empty.
func EnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// oneLine joins a multi-line error text into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// OneLine is err's text on one line: what a binary prints before it exits
// non-zero.
func OneLine(err error) string { return oneLine(err) }

// redisLogger sends go-redis's internal log lines to zerolog at debug level.
type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug().Msgf(format, v...)
}

// WorkerConfig is what a worker binary runs.
type WorkerConfig struct {
	Namespace    string
	Queues       []string // default: the queues of the file's runnable tasks
	Concurrency  int
	Grace        time.Duration
	Node         string
	Visibility   time.Duration // consumer.Config.VisibilityTimeout (0: its default)
	Prefetch     int           // consumer.Config.Prefetch (0: its default)
	NoPrefetch   bool          // consumer.Config.NoPrefetch: read no fires ahead
	EarlyLimit   int           // consumer.Config.EarlyLimit (0: its default)
	EventsMaxLen int64         // consumer.Config.EventsMaxLen (0: its default)
	EventsMaxAge time.Duration // consumer.Config.EventsMaxAge (0: none)
	HistoryLen   int64         // consumer.Config.HistoryLen (0: its default)
	Tasks        *tasksfile.File
	Logger       zerolog.Logger
	Metrics      *metrics.Metrics // nil for none
	Runner       runner.Options
}

// NewWorker builds a worker that runs the command and HTTP tasks of
// cfg.Tasks (dispatcher.NewWorker, as a Go program builds one) and returns
// it with the queues it reads. A tasks file with nothing to run is an
// error.
func NewWorker(rdb redis.UniversalClient, cfg WorkerConfig) (*dispatcher.Worker, []string, error) {
	if cfg.Node == "" {
		// The runs learn the worker's name, so it is chosen here.
		cfg.Node = events.NewNode()
	}
	cfg.Runner.Logger, cfg.Runner.Node = cfg.Logger, cfg.Node
	hs, queues := handlers(cfg.Tasks, cfg.Runner)
	if len(queues) == 0 {
		return nil, nil, fmt.Errorf("%s: no task has exec or http; a worker has nothing to run", cfg.Tasks.Path)
	}
	if len(cfg.Queues) > 0 {
		queues = cfg.Queues
	}
	wc := dispatcher.WorkerConfig{Namespace: cfg.Namespace, Queues: queues, Node: cfg.Node, Logger: cfg.Logger,
		Concurrency: cfg.Concurrency, Grace: cfg.Grace, CancelWait: runner.StopWait(cfg.Runner), Version: cfg.Tasks.Version, TaskSet: cfg.Tasks.Specs(),
		Stream: consumer.Config{VisibilityTimeout: cfg.Visibility, Prefetch: cfg.Prefetch, NoPrefetch: cfg.NoPrefetch, EarlyLimit: cfg.EarlyLimit,
			EventsMaxLen: cfg.EventsMaxLen, EventsMaxAge: cfg.EventsMaxAge, HistoryLen: cfg.HistoryLen}}
	if cfg.Metrics != nil {
		wc.Metrics = cfg.Metrics
	}
	w, err := dispatcher.NewWorker(rdb, wc, hs)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %v", cfg.Tasks.Path, err)
	}
	if cfg.Metrics != nil {
		var streams []string
		for _, q := range queues {
			streams = append(streams, w.Store().Keys().Fires(q))
		}
		cfg.Metrics.WatchStreams(w.Store(), streams)
	}
	return w, queues, nil
}

// isTimeout says whether err is a network timeout (a read deadline passed).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
