// Package e2e holds taskino's end-to-end tests: each promise of DESIGN.md,
// checked against real redis-server processes started by the tests
// themselves (package store/redistest), with real planners.
package e2e
