package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/taskino/taskino/cmd/internal/metrics"
	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/store"
)

// Program is a long-running binary (planner, worker): its flags, its work
// and what it releases at the end.
type Program interface {
	ParseFlags(args []string) error
	// Run works until ctx ends (SIGINT or SIGTERM), then stops cleanly and
	// returns nil.
	Run(ctx context.Context) error
	Close()
}

// Main runs p as the process name: exit 0 after a clean stop (a signal
// while starting included), 2 with one line on stderr for bad usage, 1
// with one line when it cannot run.
func Main(name string, p Program) {
	if err := p.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, name+":", OneLine(err))
		os.Exit(2)
	}
	// A signal during start-up (connecting, applying the file) is a clean
	// stop too: it cancels ctx, which also stops the running program.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := p.Run(ctx)
	signalled := ctx.Err() != nil // before stop, which cancels ctx too
	stop()
	p.Close()
	if err != nil && !signalled {
		fmt.Fprintln(os.Stderr, name+":", OneLine(err))
		os.Exit(1)
	}
}

// NewFlagSet returns a flag set that prints nothing itself: Main prints
// errors on one line, and Parse the flags for --help.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses args into fs, printing the flags on stdout for --help; a
// positional argument is an error.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stdout, "Usage of %s:\n", fs.Name())
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	return nil
}

// Start loads the tasks file at path (none when path is ""), connects to
// Redis, checks that the Redis user may run what role needs (CheckACL) and
// applies the file, in that order, so a bad file is reported before an
// unreachable Redis, and a missing permission before anything is written.
// The caller closes the client.
func (c *Common) Start(ctx context.Context, log zerolog.Logger, path string, role store.Role) (redis.UniversalClient, *tasksfile.File, error) {
	var file *tasksfile.File
	if path != "" {
		var err error
		if file, err = tasksfile.Load(path); err != nil {
			return nil, nil, err
		}
	}
	rdb, err := c.Connect(ctx)
	if err != nil {
		return rdb, file, err
	}
	st, err := store.New(rdb, c.Namespace, c.StoreOptions())
	if err != nil {
		return rdb, nil, err
	}
	if err := CheckACL(ctx, log, st, role); err != nil {
		return rdb, nil, err
	}
	if file == nil {
		return rdb, nil, nil
	}
	res, err := ApplyFile(ctx, st, file, 0)
	if err != nil {
		return rdb, nil, err
	}
	log.Info().Str("file", file.Path).Str("outcome", string(res.Outcome)).Int64("version", res.Version).Msg("tasks file applied")
	return rdb, file, nil
}

// CheckACL checks that the Redis user of st's client may run every command
// role sends (store.CheckACL): a process started without one would run,
// report itself healthy and do nothing. On Redis before 7.0, which cannot
// tell, it logs that at info and returns nil.
func CheckACL(ctx context.Context, log zerolog.Logger, st *store.Store, role store.Role) error {
	err := st.CheckACL(ctx, role)
	if errors.Is(err, store.ErrACLUnchecked) {
		log.Info().Str("role", string(role)).Msg("ACL permissions not checked: " + err.Error())
		return nil
	}
	return err
}

// Health is the /healthz check of a component (planner.Planner.Health,
// dispatcher.Worker.Health): its error while its Redis calls keep failing.
// A script refused a command by the ACL does not say which, so when the
// component fails Health asks Redis (store.CheckACL) and adds what the
// user may not run, if anything.
func Health(st *store.Store, role store.Role, component func() error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		err := component()
		if err == nil {
			return nil
		}
		var refused *store.ACLError
		if errors.As(st.CheckACL(ctx, role), &refused) {
			return fmt.Errorf("%w; %v", err, refused)
		}
		return err
	}
}

// Group runs work, and the /metrics and /healthz server of met on addr
// when met is not nil, until ctx ends; then it stops both and returns nil.
// /healthz answers 503 while Redis does not answer PING, or while health
// (see Health) returns an error, with that error as the body.
func Group(ctx context.Context, log zerolog.Logger, work func(ctx context.Context) error, addr string, met *metrics.Metrics, rdb redis.UniversalClient, health func(ctx context.Context) error) error {
	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return work(ctx) }, func(error) { cancel() })
	}
	if met != nil {
		check := func(ctx context.Context) error {
			if err := rdb.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
			return health(ctx)
		}
		srv, err := metrics.Listen(addr, met.Handler(check))
		if err != nil {
			return fmt.Errorf("--http %q: %v", addr, err)
		}
		log.Info().Str("addr", srv.Addr()).Msg("serving /metrics and /healthz")
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return srv.Run(ctx) }, func(error) { cancel() })
	}
	err := g.Run()
	if ctx.Err() != nil {
		log.Info().Msg("stopped")
	}
	return err
}
