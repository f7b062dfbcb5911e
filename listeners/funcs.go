package listeners

import (
	"context"

	"github.com/taskino/taskino/events"
)

// CompleteFunc adapts a function to CompleteListener.
type CompleteFunc func(ctx context.Context, e events.Event)

// OnComplete calls f.
func (f CompleteFunc) OnComplete(ctx context.Context, e events.Event) { f(ctx, e) }

// LastRunFunc adapts a function to LastRunListener.
type LastRunFunc func(ctx context.Context, e events.Event)

// OnLastRun calls f.
func (f LastRunFunc) OnLastRun(ctx context.Context, e events.Event) { f(ctx, e) }

// EventFunc adapts a function to EventListener: it is given every event.
type EventFunc func(ctx context.Context, e events.Event)

// OnEvent calls f.
func (f EventFunc) OnEvent(ctx context.Context, e events.Event) { f(ctx, e) }
