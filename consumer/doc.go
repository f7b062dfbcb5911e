// Package consumer will be the stream side of a taskino worker: reading the
// fire streams in a consumer group, reclaiming the fires of dead workers,
// acking with outcome events, dead-lettering, broadcast reads.
//
// It is not built yet (issue "Workers and listeners"); nothing here runs.
package consumer
