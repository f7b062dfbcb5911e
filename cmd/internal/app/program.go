package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
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
// HTTPServe is where a planner or worker serves /metrics and /healthz
// (--http; "" for nowhere), and the file of the token they require
// (--http-token-file; "" for none).
type HTTPServe struct {
	Addr, TokenFile string
}

// ServeAddr is the address to listen on for --http addr: one with no host
// (":9090") binds loopback only (127.0.0.1), which it reports; a host
// given (0.0.0.0:9090, a name, an IP) is kept.
func ServeAddr(addr string) (listen string, loopback bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr, false
	}
	return net.JoinHostPort("127.0.0.1", port), true
}

// IsLoopback says whether addr's host is a loopback address or localhost.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadToken reads a token file: its content without a trailing newline,
// at least 16 characters.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimRight(string(b), "\r\n")
	if len(tok) < 16 || strings.ContainsAny(tok, "\r\n \t") {
		return "", fmt.Errorf("%s: want one line of at least 16 characters, no spaces", path)
	}
	return tok, nil
}

// RequireToken serves h only to requests with "Authorization: Bearer
// token" (compared in constant time); others get 401.
func RequireToken(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="taskino"`)
			http.Error(w, "a token is required (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// (see Health) returns an error, with that error as the body.
func Group(ctx context.Context, log zerolog.Logger, work func(ctx context.Context) error, serve HTTPServe, met *metrics.Metrics, rdb redis.UniversalClient, health func(ctx context.Context) error) error {
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
		addr, loopback := ServeAddr(serve.Addr)
		h := met.Handler(check)
		if serve.TokenFile != "" {
			token, err := ReadToken(serve.TokenFile)
			if err != nil {
				return fmt.Errorf("--http-token-file: %v", err)
			}
			h = RequireToken(token, h)
		}
		srv, err := metrics.Listen(addr, h)
		if err != nil {
			return fmt.Errorf("--http %q: %v", serve.Addr, err)
		}
		switch {
		case loopback:
			log.Info().Str("addr", srv.Addr()).Msg("serving /metrics and /healthz on loopback only (give a host, such as 0.0.0.0:PORT, to serve other hosts)")
		case serve.TokenFile == "" && !IsLoopback(addr):
			log.Warn().Str("addr", srv.Addr()).Msg("serving /metrics and /healthz to every host that can reach this address, with no token (--http-token-file requires one)")
		default:
			log.Info().Str("addr", srv.Addr()).Msg("serving /metrics and /healthz")
		}
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return srv.Run(ctx) }, func(error) { cancel() })
	}
	err := g.Run()
	if ctx.Err() != nil {
		log.Info().Msg("stopped")
	}
	return err
}
