// Command taskino is taskino's command line: apply a tasks file, list the
// tasks, trigger one by hand, tail the events, read last runs, pause and
// resume tasks, list and replay dead letters, and try everything in one
// process with `taskino dev`.
//
// Usage:
//
//	taskino [--redis URL] [--namespace NS] COMMAND [ARGS]
//
//	apply [--version N] FILE     validate a tasks file, apply it, print what changed
//	ls                           each task's trigger, next fire, last run and status
//	trigger NAME [--payload TEXT] [--id KEY]
//	                             run a task once now (--id makes it idempotent)
//	tail [--json] [--task NAME] [--type TYPE] [--since ID|DURATION]
//	                             print events as they happen
//	last-run [NAME]              the latest fire of one task or all
//	workers                      the workers: live or not, queues, version (stale?), tasks
//	pause NAME / resume NAME     stop / restart planning a task
//	dead [--count N]             list dead letters
//	dead replay ID... | --all    send dead letters back to their task's stream
//	dead delete ID... | --all    drop dead letters
//	dev [--tasks FILE]           planner, worker, tail and web console in one
//	                             process, on an embedded Redis unless --redis
//	web [--http ADDR]            the web console (default 127.0.0.1:8080)
//	version                      print the version
//
// Flags may come before or after the command and its arguments. Errors are
// one line on stderr and a non-zero exit: 1 for a failure, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/cmd/internal/app"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is bad usage: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// command is one subcommand.
type command struct {
	summary string
	// flags registers the command's own flags; run does the work with the
	// positional arguments.
	flags func(fs *flag.FlagSet, c *cli)
	run   func(ctx context.Context, c *cli, args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"apply":    {"validate a tasks file, apply it, print what changed", applyFlags, runApply},
		"ls":       {"each task's status, next fire, last outcome and last success", jsonFlag, runLs},
		"trigger":  {"run a task once now", triggerFlags, runTrigger},
		"tail":     {"print events as they happen", tailFlags, runTail},
		"last-run": {"a task's (or every task's) latest fire, run in progress, last outcome and last success", jsonFlag, runLastRun},
		"history":  {"a task's slots, newest first: outcome, times, lateness, reason", historyFlags, runHistory},
		"explain":  {"why a slot of a task ran, failed, was missed or waits, in plain words", explainFlags, runExplain},
		"workers":  {"the workers: live or not, queues, version, tasks they run", jsonFlag, runWorkers},
		"next":     {"the next fire times of a task, or of --cron/--every, with DST changes", nextFlagSet, runNext},
		"pause":    {"stop planning a task until resumed", nil, runPause},
		"backfill": {"fire the slots of a task in a past range that did not fire, paced, and wait for their outcomes", backfillFlagSet, runBackfill},
		"resume":   {"plan a paused task again, from now on", nil, runResume},
		"dead":     {"list dead letters; dead replay|delete ID...|--all", deadFlags, runDead},
		"settings": {"the namespace's settings (events retention) and durable listeners; change them with flags", settingsFlagSet, runSettings},
		"dev":      {"planner, worker, tail and web console in one process", devFlags, runDev},
		"web":      {"the web console: tasks, history, explain, live events, dead letters, workers", webFlagSet, runWeb},
		"version":  {"print the version", nil, runVersion},
	}
}

// cli is one invocation: its flags, output and connection.
type cli struct {
	app.Common
	stdout, stderr io.Writer

	// per-command flags
	version     int64
	payload     string
	id          string
	json        bool
	task        string
	typ         string
	since       string
	count       int64
	all         bool
	tasks       string
	node        string
	next        nextFlags
	noFollow    bool
	limit       int
	at          string
	settings    settingsFlags
	dryRun      bool
	embedded    bool // dev: --redis not given
	logLevelSet bool // --log-level given
	web         webFlags
	backfill    backfillFlags

	rdb redis.UniversalClient
	st  *store.Store
}

// Run runs the command line args and returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	err := c.run(ctx, args)
	if c.rdb != nil {
		_ = c.rdb.Close()
	}
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "taskino:", app.OneLine(err))
		return 2
	default:
		fmt.Fprintln(stderr, "taskino:", app.OneLine(err))
		return 1
	}
}

func (c *cli) run(ctx context.Context, args []string) error {
	global := flag.NewFlagSet("taskino", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	c.Common.Register(global)
	global.Usage = func() {}
	pos, err := parse(global, args, true)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(global)
		return err
	}
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) == 0 {
		c.usage(global)
		return usagef("no command given; want one of %s", strings.Join(commandNames(), ", "))
	}
	name, rest := pos[0], pos[1:]
	cmd, ok := commands[name]
	if !ok {
		return usagef("unknown command %q; want one of %s", name, strings.Join(commandNames(), ", "))
	}
	fs := flag.NewFlagSet("taskino "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Common.Register(fs)
	if name == "dev" {
		// dev's planner and worker trim the events stream; the other
		// commands append without trimming (see connect).
		c.Common.RegisterEvents(fs)
	}
	// The global flags' values are the defaults of the command's own.
	if cmd.flags != nil {
		cmd.flags(fs, c)
	}
	pos, err = parse(fs, rest, false)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(c.stdout, "taskino %s: %s\n\nFlags:\n", name, cmd.summary)
		fs.SetOutput(c.stdout)
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return usageError{fmt.Sprintf("%s: %v", name, err)}
	}
	if err := c.Common.Check(); err != nil {
		return usageError{err.Error()}
	}
	c.logLevelSet = setFlag(global, "log-level") || setFlag(fs, "log-level")
	// dev runs on an embedded Redis unless --redis says otherwise; a
	// TASKINO_REDIS in the environment is not enough (dev's worker would
	// join that server's real workers).
	c.embedded = !setFlag(global, "redis") && !setFlag(fs, "redis")
	return cmd.run(ctx, c, pos)
}

// parse parses fs from args, letting flags and positional arguments mix;
// with stopAtFirst it stops at the first positional argument (the
// command), leaving the rest unparsed.
func parse(fs *flag.FlagSet, args []string, stopAtFirst bool) ([]string, error) {
	var pos, rest []string
	if !stopAtFirst {
		// Everything after "--" is positional.
		for i, a := range args {
			if a == "--" {
				args, rest = args[:i], args[i+1:]
				break
			}
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		if stopAtFirst {
			return args, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func setFlag(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func commandNames() []string {
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (c *cli) usage(global *flag.FlagSet) {
	w := c.stderr
	fmt.Fprintln(w, "Usage: taskino [--redis URL] [--namespace NS] COMMAND [ARGS]")
	fmt.Fprintln(w, "\nCommands:")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nFlags (before or after the command):")
	global.SetOutput(w)
	global.PrintDefaults()
	global.SetOutput(io.Discard)
	fmt.Fprintln(w, "\nRun taskino COMMAND --help for a command's own flags.")
}

// connect opens Redis and the namespace's store.
func (c *cli) connect(ctx context.Context) error {
	var err error
	if c.rdb, err = c.Common.Connect(ctx); err != nil {
		return err
	}
	// The CLI's commands are occasional writers: they append without
	// trimming, so one run without the namespace's --events-max-len does
	// not cut the history its planners and workers keep.
	c.st, err = store.New(c.rdb, c.Namespace, store.Options{EventsMaxLen: store.NoTrim})
	return err
}

// want checks the number of positional arguments.
// jsonFlag adds --json.
func jsonFlag(fs *flag.FlagSet, c *cli) {
	fs.BoolVar(&c.json, "json", false, "one JSON object instead of text for people")
}

func want(name string, args []string, min, max int, what string) error {
	if len(args) < min || (max >= 0 && len(args) > max) {
		return usagef("%s: want %s, got %d argument(s)", name, what, len(args))
	}
	return nil
}

func runVersion(_ context.Context, c *cli, args []string) error {
	if err := want("version", args, 0, 0, "no arguments"); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "taskino", Version())
	return nil
}

// Version is the module version of the build, with its VCS revision when
// known ("(devel)" for a build from a checkout).
func Version() string { return events.Build() }
