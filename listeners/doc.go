// Package listeners will hold subscriptions to taskino's events stream: Go
// callbacks (the seed's OnStartup, OnStop, OnReload, OnComplete and more),
// durable consumer-group listeners, and the last-run projection.
//
// It is not built yet (issue "Workers and listeners"); the events it will
// read are defined in package events and written today by the planner.
package listeners
