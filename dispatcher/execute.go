package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/taskino/taskino/consumer"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// ErrGoexit is the failure of a run whose handler called runtime.Goexit.
var ErrGoexit = errors.New("the handler ended its goroutine (runtime.Goexit) before returning")

// execute runs the job's handler and decides what becomes of its fire.
func (dp *Dispatcher) execute(ctx, runCtx context.Context, j *job) consumer.Result {
	dl := &j.d
	if t := dl.Spec.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	dp.src.Start(dl)
	j.started = time.Now()
	j.startNs.Store(j.started.UnixNano())
	err := call(context.WithValue(ctx, outputKey{}, &j.out), j.h, dl.Fire)
	return dp.settle(ctx, runCtx, dl, &j.out, consumer.Result{Started: j.started, Err: err})
}

// settle decides what becomes of a fire whose run ended now with r.Err:
// recorded, retried, dead-lettered or handed back (see retry).
func (dp *Dispatcher) settle(ctx, runCtx context.Context, dl *store.Delivery, out *outputBox, r consumer.Result) consumer.Result {
	r.Finished = time.Now()
	r.Output = out.get()
	if r.Err != nil && runCtx.Err() != nil {
		// Cut by the stop: not the handler's failure. The fire is handed
		// back, now that its run is over, with a cancelled event.
		r.Next, r.Reason = consumer.HandBack, "the worker stopped"
		if why := dp.cutWhy.Load(); why != nil {
			r.Reason = *why
		}
		return r
	}
	var replaced *ReplacedError
	if r.Err != nil && errors.As(context.Cause(ctx), &replaced) {
		// Cut for a newer fire (overlap cancel-previous): recorded
		// cancelled, not retried.
		r.Next, r.Reason = consumer.Replaced, replaced.Error()
		return r
	}
	if m := dp.cfg.Metrics; m != nil {
		m.Ran(dl.Fire, r.Started.Sub(dl.Fire.DueAt()), r.Finished.Sub(r.Started), r.Err)
	}
	if r.Err == nil {
		return r
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r.Err = fmt.Errorf("timed out after %s: %w", dl.Spec.Timeout, r.Err)
	}
	if dl.Broadcast {
		return r
	}
	r.Next, r.RetryIn, r.Reason = dp.retry(dl, r.Err)
	dp.log.Debug().Err(r.Err).Str("fire", dl.Fire.ID).Int("attempt", dl.Fire.Attempt).Msg("run failed")
	return r
}

type outputKey struct{}

type outputBox struct {
	mu sync.Mutex
	s  string
}

func (b *outputBox) get() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

// SetOutput records text as what the run of the handler given ctx printed;
// it goes, as field "output", into the run's completed or failed event,
// cut to its last 8 KiB. A later call replaces an earlier one. Outside a
// handler's context it does nothing.
func SetOutput(ctx context.Context, text string) {
	if b, ok := ctx.Value(outputKey{}).(*outputBox); ok {
		b.mu.Lock()
		b.s = text
		b.mu.Unlock()
	}
}

// PanicError is a handler's panic, with the stack where it happened.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v\n%s", e.Value, e.Stack) }

func call(ctx context.Context, h Handler, f events.Fire) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.Run(ctx, f)
}
