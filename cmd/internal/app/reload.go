package app

import (
	"context"
	"fmt"
	"slices"

	"github.com/taskino/taskino/cmd/internal/tasksfile"
	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/store"
)

// Reloaded is what ReloadWorker did.
type Reloaded struct {
	// File is the tasks file now run.
	File *tasksfile.File
	// Apply is what applying it did (Adopted: a newer version is stored,
	// and this worker now publishes itself stale).
	Apply store.ApplyResult
	// Unread are the queues of the file's exec and http tasks that the
	// worker does not read: it reads the queues it started with, so their
	// fires wait for a worker that does (or a restart of this one).
	Unread []string
}

// ReloadWorker is taskino-worker's SIGHUP: it reads the tasks file at path
// again, refuses it (an error, w untouched) when it does not load or has
// no exec or http task, applies it as at start (ApplyFile: an older file
// never replaces a newer stored version), replacing w's handlers with the
// file's, and what w publishes with them (dispatcher.Worker.SetHandlers),
// as it does: a run under way finishes with its old command; every fire
// started after runs the new one. A failed apply is an error, and puts
// back the handlers of cfg.Tasks. cfg is the config w was built with
// (NewWorker), its Tasks the file w runs now.
func ReloadWorker(ctx context.Context, w *dispatcher.Worker, cfg WorkerConfig, path string) (Reloaded, error) {
	f, err := tasksfile.Load(path)
	if err != nil {
		return Reloaded{}, err
	}
	opts := cfg.Runner
	opts.Logger, opts.Node = cfg.Logger, w.Node()
	hs, queues := handlers(f, opts)
	if len(queues) == 0 {
		return Reloaded{}, fmt.Errorf("%s: no task has exec or http; a worker has nothing to run", f.Path)
	}
	// The new handlers and version are set before the apply: set after,
	// the worker's spec reload could see the new stored version first and
	// warn, for that moment, that the worker is stale.
	if err := w.SetHandlers(hs, f.Version, f.Specs()); err != nil {
		return Reloaded{}, fmt.Errorf("%s: %v", f.Path, err)
	}
	res, err := ApplyFile(ctx, w.Store(), f, 0)
	if err != nil {
		old, _ := handlers(cfg.Tasks, opts)
		if rerr := w.SetHandlers(old, cfg.Tasks.Version, cfg.Tasks.Specs()); rerr != nil {
			err = fmt.Errorf("%v; the tasks of %s not restored either: %v", err, cfg.Tasks.Path, rerr)
		}
		return Reloaded{}, err
	}
	r := Reloaded{File: f, Apply: res}
	read := w.Queues()
	for _, q := range queues {
		if !slices.Contains(read, q) {
			r.Unread = append(r.Unread, q)
		}
	}
	return r, nil
}
