package dispatcher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"time"

	"github.com/rs/zerolog"
	"github.com/taskino/taskino/events"
)

// Handler runs one task's fires. Runs come from goroutines the dispatcher
// keeps from one run to the next: a handler that locks its OS thread
// (runtime.LockOSThread) or sets goroutine labels undoes that before it
// returns, or the runs after it inherit them.
type Handler interface {
	Run(ctx context.Context, f events.Fire) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, f events.Fire) error

// Run calls f.
func (f HandlerFunc) Run(ctx context.Context, fire events.Fire) error { return f(ctx, fire) }

// Config tunes a Dispatcher. The zero value is usable: zero fields take
// their defaults; a value out of range is an error from New.
type Config struct {
	// Concurrency is the most runs at once (default 10).
	Concurrency int
	// Grace is how long Run, when its context is cancelled, lets runs under
	// way finish before it cancels them (default 30s).
	Grace time.Duration
	// CancelWait is how long a stop waits, once it has cancelled the runs
	// under way, for their handlers to return (default 10s): a handler
	// that stops a process needs its own grace to do so. A handler still
	// running then is abandoned (see Stopping in the package doc).
	CancelWait time.Duration
	// RetryDelay is the wait before the next attempt of f after its
	// attempt failed with err (default DefaultRetryDelay). It is not asked
	// when the handler decided itself: an error wrapping SkipRetry is
	// dead-lettered at once, and one made by RetryAfter is retried after
	// its own delay.
	RetryDelay func(attempt int, err error, f events.Fire) time.Duration
	// Logger receives the dispatcher's logs (default: warnings and errors,
	// as JSON lines on stderr; zerolog.Nop() for none).
	Logger zerolog.Logger
	// Metrics, when set, is told of every run.
	Metrics Metrics
}

// Metrics receives a worker's execution counts, for instrumentation
// (Prometheus in the binaries). Calls come from run goroutines,
// concurrently, and must not block.
type Metrics interface {
	// Ran is called when a run of f ends: late is how long after f's
	// scheduled time it started (by this host's clock; a retry's includes
	// its retry delay), cost how long it ran, err its failure (nil on success).
	// Runs cancelled by a hard stop are not reported.
	Ran(f events.Fire, late, cost time.Duration, err error)
}

// WithDefaults returns the config with every unset (zero) field at its
// default. It repairs nothing: New refuses values out of range first.
func (c Config) WithDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = 10
	}
	if c.Grace == 0 {
		c.Grace = 30 * time.Second
	}
	if c.CancelWait == 0 {
		c.CancelWait = 10 * time.Second
	}
	if c.RetryDelay == nil {
		c.RetryDelay = DefaultRetryDelay
	}
	if reflect.ValueOf(c.Logger).IsZero() {
		c.Logger = DefaultLogger()
	}
	return c
}

// validate names the first field out of range, as a field of the struct
// named (Config, or WorkerConfig for NewWorker's).
func (c Config) validate(name string) error {
	switch {
	case c.Concurrency < 0:
		return fmt.Errorf("dispatcher: %s.Concurrency: %d; want 0 (default 10) or more", name, c.Concurrency)
	case c.Grace < 0:
		return fmt.Errorf("dispatcher: %s.Grace: %s; want 0 (default 30s) or more", name, c.Grace)
	case c.CancelWait < 0:
		return fmt.Errorf("dispatcher: %s.CancelWait: %s; want 0 (default 10s) or more", name, c.CancelWait)
	}
	return nil
}

// DefaultLogger is the logger of a worker given none: warnings and errors,
// as JSON lines on stderr, so a misconfigured program says so.
func DefaultLogger() zerolog.Logger {
	return zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// DefaultRetryDelay waits 1s after the first failure, doubling per
// attempt up to 5m, plus up to 20% at random so retries of many fires
// spread out. It looks at the attempt alone.
func DefaultRetryDelay(attempt int, _ error, _ events.Fire) time.Duration {
	d := time.Second << min(max(attempt-1, 0), 9)
	d = min(d, 5*time.Minute)
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}
