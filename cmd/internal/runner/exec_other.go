//go:build !unix

package runner

import (
	"context"
	"errors"

	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
)

// Exec returns a handler that fails every run: commands are run on unix
// only (process groups are how a run's processes are stopped).
func Exec(argv []string, opts Options) dispatcher.Handler {
	return dispatcher.HandlerFunc(func(context.Context, events.Fire) error {
		return errors.New("commands are supported on unix only")
	})
}
