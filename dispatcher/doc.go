// Package dispatcher will be the execution side of a taskino worker: the
// handler registry a Go program embeds, bounded concurrency, timeouts,
// retries and outcome events.
//
// It is not built yet (issue "Workers and listeners"); nothing here runs.
package dispatcher
