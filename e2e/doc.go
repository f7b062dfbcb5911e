// Package e2e holds taskino's end-to-end tests: each promise of e2e/README.md,
// checked against real redis-server processes started by the tests
// themselves (package store/redistest), with real planners.
//
// The chaos suite (chaos_*_test.go) is the one test TestChaos, a subtest
// per scenario: -run TestChaos selects it, -skip TestChaos everything else.
// It runs beside the package's other tests, which are all parallel (8 at
// once unless -parallel says otherwise; see TestMain).
package e2e
