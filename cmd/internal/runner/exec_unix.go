//go:build unix

package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
)

// Exec returns a handler that runs argv for each fire: argv[0] looked up in
// PATH (or a path, when it holds a slash), the rest its arguments, no shell.
// The command gets the worker's environment without its TASKINO_*
// variables (TASKINO_REDIS holds a password) and those opts.RedactEnv
// names, plus TASKINO_TASK, TASKINO_FIRE_ID, TASKINO_SCHEDULED_AT,
// TASKINO_ATTEMPT, TASKINO_PAYLOAD and TASKINO_NODE; its output's tail becomes the run's output. Exit
// status 0 is success. When the run's context ends, the command's process group is
// sent SIGTERM, then SIGKILL after opts.KillGrace, and Run returns an error
// that wraps the context's error; no process of the group outlives Run
// (see the package doc). An empty argv fails every run.
func Exec(argv []string, opts Options) dispatcher.Handler {
	return &execHandler{argv: append([]string(nil), argv...), opts: opts.withDefaults()}
}

type execHandler struct {
	argv []string
	opts Options
}

// Run runs the command once and records its output.
func (h *execHandler) Run(ctx context.Context, f events.Fire) error {
	out, err := h.run(ctx, f)
	dispatcher.SetOutput(ctx, out)
	return err
}

// run runs the command once and returns the tail of its output.
func (h *execHandler) run(ctx context.Context, f events.Fire) (string, error) {
	if len(h.argv) == 0 || h.argv[0] == "" {
		return "", errors.New("no command to run (empty argv)")
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("command %q not started: %w", h.argv[0], err)
	}
	name := h.argv[0]
	log := h.opts.Logger.With().Str("task", f.Task).Str("fire", f.ID).Str("command", name).Logger()

	cmd := exec.Command(name, h.argv[1:]...)
	if cmd.Err != nil {
		return "", startError(name, cmd.Err)
	}
	env := []string{
		"TASKINO_TASK=" + f.Task,
		"TASKINO_FIRE_ID=" + f.ID,
		"TASKINO_SCHEDULED_AT=" + scheduledAt(f),
		"TASKINO_ATTEMPT=" + strconv.Itoa(f.Attempt),
		"TASKINO_PAYLOAD=" + f.Payload,
		"TASKINO_NODE=" + h.opts.Node,
	}
	for _, kv := range env {
		if strings.IndexByte(kv, 0) >= 0 {
			k, _, _ := strings.Cut(kv, "=")
			// The same on every attempt: not retried.
			return "", fmt.Errorf("command %q not started: %s holds a NUL byte, which the environment cannot carry: %w", name, k, dispatcher.SkipRetry)
		}
	}
	cmd.Env = childEnv(os.Environ(), h.opts.RedactEnv, env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// One pipe for stdout and stderr, read here: Wait then returns when the
	// command exits, whoever else holds the pipe.
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("command %q: output pipe: %w", name, err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return "", startError(name, err)
	}

	out := newTail(h.opts.OutputLimit)
	p := &proc{
		cmd: cmd, pgid: cmd.Process.Pid, pr: pr, log: log,
		waited: make(chan error, 1), copied: make(chan struct{}),
	}
	go func() {
		defer close(p.copied)
		io.Copy(out, pr) // out never fails; a read error ends the output
	}()
	go func() { p.waited <- cmd.Wait() }()
	log.Debug().Int("pid", p.pgid).Msg("command started")

	var cause error // the context's error, when it ended the run
	select {
	case p.waitErr = <-p.waited:
		p.exited = true
	case <-ctx.Done():
		select {
		case p.waitErr = <-p.waited: // exited by itself just in time
			p.exited = true
		default:
			cause = ctx.Err()
		}
	}

	killed := false
	switch {
	case cause != nil:
		log.Debug().Err(cause).Msg("stopping the command's process group")
		killed = p.stop(h.opts.KillGrace, true)
	case p.groupAlive():
		// Exited, leaving processes behind in its group.
		log.Debug().Msg("stopping the processes the command left running")
		p.stop(h.opts.KillGrace, false)
	default:
		p.drain()
	}
	output := out.String()

	if cause != nil {
		if killed {
			return output, fmt.Errorf("%w: process group killed with SIGKILL, still running %s after SIGTERM", cause, h.opts.KillGrace)
		}
		return output, fmt.Errorf("%w: process group stopped with SIGTERM", cause)
	}
	if p.waitErr == nil {
		return output, nil
	}
	var ee *exec.ExitError
	if !errors.As(p.waitErr, &ee) {
		return output, fmt.Errorf("command %q: %w", name, p.waitErr)
	}
	return output, &exitError{ExitError: ee, line: lastLine(output)}
}

// startError says why name did not start, naming it.
func startError(name string, err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err // drop exec's own naming of the command
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // "fork/exec NAME: no such file or directory"
		}
		return fmt.Errorf("command %q not found: %w", name, err)
	}
	return fmt.Errorf("command %q did not start: %w", name, err)
}

// exitError is a command's exit with a non-zero status or by a signal.
type exitError struct {
	*exec.ExitError
	line string // the last line of output
}

// Error says "exit status N" or "killed by signal SIGX", then the last line
// of output, when there is one.
func (e *exitError) Error() string {
	msg := e.ExitError.Error()
	if ws, ok := e.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			msg = "exit status " + strconv.Itoa(ws.ExitStatus())
		case ws.Signaled():
			msg = "killed by signal " + signalName(ws.Signal())
			if ws.CoreDump() {
				msg += " (core dumped)"
			}
		}
	}
	if e.line != "" {
		msg += ": " + e.line
	}
	return msg
}

// Unwrap returns the *exec.ExitError.
func (e *exitError) Unwrap() error { return e.ExitError }

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
}

// signalName is "SIGKILL" for the common signals, else "N (description)".
func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return fmt.Sprintf("%d (%s)", int(s), s)
}

// proc is a started command: its process group and its output.
type proc struct {
	cmd    *exec.Cmd
	pgid   int
	pr     *os.File
	log    zerolog.Logger
	waited chan error    // cmd.Wait's result
	copied chan struct{} // closed at the end of the output

	exited  bool  // waited was received from
	waitErr error // what it gave
	drained bool  // copied was closed
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) {
	if err := syscall.Kill(-p.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.log.Warn().Err(err).Str("signal", signalName(sig)).Msg("cannot signal the command's process group")
	}
}

// groupAlive reports whether the process group has a process left (a
// zombie counts until it is reaped).
func (p *proc) groupAlive() bool { return syscall.Kill(-p.pgid, 0) == nil }

// waitedC is waited until it was received from, then nil.
func (p *proc) waitedC() <-chan error {
	if p.exited {
		return nil
	}
	return p.waited
}

// copiedC is copied until the output ended, then nil.
func (p *proc) copiedC() <-chan struct{} {
	if p.drained {
		return nil
	}
	return p.copied
}

// stop sends SIGTERM to the group and waits until the command exited and
// its output ended; when grace runs out first, it sends SIGKILL to the
// group, and reports that it had to. Processes left in the group that no
// longer hold the output are sent SIGKILL when grace runs out: with wait
// (a cancelled run), stop waits for them to go until then; without, it
// does not wait.
func (p *proc) stop(grace time.Duration, wait bool) (killed bool) {
	p.signal(syscall.SIGTERM)
	start := time.Now()
	deadline := time.NewTimer(grace)
	for !p.exited || !p.drained {
		select {
		case p.waitErr = <-p.waitedC():
			p.exited = true
		case <-p.copiedC():
			p.drained = true
		case <-deadline.C:
			p.log.Warn().Dur("grace", grace).Msg("command's process group still running after SIGTERM: SIGKILL")
			p.signal(syscall.SIGKILL)
			if !p.exited {
				// In case the leader left its group.
				p.cmd.Process.Kill()
				p.waitErr = <-p.waited
				p.exited = true
			}
			p.drain()
			if wait {
				p.awaitGroupGone(drainWait)
			}
			return true
		}
	}
	if !p.groupAlive() {
		deadline.Stop()
		return false
	}
	if wait {
		// Cancelled: Run returns only once nothing of the group is left,
		// so no process of a run outlives a stopping worker.
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for p.groupAlive() {
			select {
			case <-tick.C:
			case <-deadline.C:
				p.log.Warn().Dur("grace", grace).Msg("processes left in the command's process group after SIGTERM: SIGKILL")
				p.signal(syscall.SIGKILL)
				p.awaitGroupGone(drainWait)
				return true
			}
		}
		deadline.Stop()
		return false
	}
	deadline.Stop()
	// Something is left in the group (maybe only zombies not yet reaped by
	// whoever inherited them): give it the rest of the grace.
	pgid, log := p.pgid, p.log
	time.AfterFunc(max(grace-time.Since(start), 0), func() {
		if syscall.Kill(-pgid, 0) == nil {
			log.Debug().Msg("processes left in the command's process group: SIGKILL")
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
	return false
}

// awaitGroupGone waits, for limit at most, until no process of the group
// is left after SIGKILL (one in uninterruptible sleep dies when it wakes;
// zombies count until reaped, hence the limit).
func (p *proc) awaitGroupGone(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for p.groupAlive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // no event tells a process group is gone
	}
}

// drain waits for the end of the output, for drainWait at most: after
// that, whoever holds the pipe open is not the command's, and the output
// is cut there.
func (p *proc) drain() {
	if p.drained {
		return
	}
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case <-p.copied:
	case <-t.C:
		p.log.Debug().Msg("output still open after the command's process group ended: not read further")
		if p.pr.SetReadDeadline(time.Now()) != nil {
			p.pr.Close()
		}
		<-p.copied
	}
	p.drained = true
}
