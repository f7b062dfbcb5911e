// Package consumer is the stream side of a taskino worker: it reads fires
// from Redis, keeps hold of them while they run, and records how each one
// ended. It does not run anything; package dispatcher does, and asks a
// Consumer for work through its Source interface. A program does not build
// one itself: dispatcher.NewWorker does.
//
// It touches Redis only through package store: the worker protocol's steps
// (store.WorkerProtocol) and a Store's public calls (specs, version,
// server time, triggers). It records each outcome as the dispatcher
// decided it (a Result): whether a fire is retried or dead-lettered is not
// its decision.
//
// # Single and broadcast fires
//
// Single-mode fires are read through the consumer group "workers" on
// taskino:{ns}:fires:<queue>: each entry goes to one worker and stays
// pending until its outcome is recorded. Broadcast fires on
// taskino:{ns}:broadcast:<queue> are read by every live worker from its own
// cursor, set when the worker starts: a worker runs the broadcast fires
// appended while it is up.
//
// # Holding, reclaiming, handing back
//
// A held fire's claim is extended every third of VisibilityTimeout
// (heartbeats every sixth of it extend the claims not reset for a while),
// so a long run on a live worker is never taken away. Entries pending with
// a worker that stopped answering for VisibilityTimeout are reclaimed
// (XAUTOCLAIM, following its cursor) by the next worker with free slots.
// When no worker could reach Redis for a while (Redis frozen, restarted or
// failed over; the network cut), every pending entry looks idle afterwards:
// reclaims then wait one VisibilityTimeout, in which the live workers
// extend their claims (see the worker protocol's Heartbeat). A stopping
// worker hands back what it will not finish (what it read but did not
// start, the moment its stop begins: StopFetching), tells the workers on
// the hand-back channel, and any worker with free runs reclaims those at
// once, even in a quiet period. A fire of a task this worker advertises no
// handler for (Advertise), but which is in the task set, is routed to a
// live worker of its queue that advertises one, or waits here (a stuck
// event, its misfire policy past its grace). An entry handed out
// MaxDeliveries times without an outcome (every worker that took it died)
// is dead-lettered.
//
// # Outcomes
//
// Each outcome is recorded atomically with the ack of its entry: the
// completed or failed event, a retry (a new entry, due after the delay the
// dispatcher chose, kept in the retry set, never in memory), a dead letter
// with its reason, the task's state (its last outcome or last success) and
// its history entry. Outcomes are written in batches by one goroutine, and
// kept and retried while Redis is unreachable. A run's start records its
// started event and the task's running record, in one round trip per
// batch.
//
// # Events retention
//
// Every second the consumer trims the events stream to the namespace's
// settings (store.Settings): never past an event a durable listener was
// not delivered, up to the hard bounds.
//
// # Bad entries
//
// An entry that does not decode (no task field, a bad field, a payload over
// 64 KiB, text that is not UTF-8) goes to taskino:{ns}:dead with the reason
// at once, and the worker goes on.
//
// A worker reads entries whole, so one XADDed with a 100 MB field costs it
// 100 MB for a moment, unless its client is bounded by store.BoundReplies
// (the taskino binaries' are): then it sees only the field's size, and
// dead-letters the entry naming both. Bound a client that only taskino
// uses; the bound changes every reply read through it.
package consumer
