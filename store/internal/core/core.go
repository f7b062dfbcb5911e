// Package core is what package store and its protocol steps
// (store/internal/protocol) share, and nothing else: the key names the
// steps need, the names and bounds both sides use, the typed errors both
// return, and the small conversions of Redis replies. It holds no step and
// no script.
package core

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
)

// Keys collects the key names of one namespace that the protocol steps
// use. store.Keys, the one file where every key name is built, is the one
// implementation; it is declared here so that the steps can take it
// without importing store.
type Keys interface {
	Fires(queue string) string
	Broadcast(queue string) string
	FireStream(queue string, mode events.Mode) string
	Events() string
	Dead() string
	Settings() string
	EventsLost() string
	Specs() string
	Due() string
	// State("") is the prefix of every task's state key: scripts append a
	// task's name to it.
	State(task string) string
	Planned() string
	LastRun() string
	// History("") is the prefix of every task's history stream.
	History(task string) string
	Retry() string
	Pulse() string
	Visibility() string
	HandBacks() string
	Changes() string
	Cancel() string
	Workers() string
	Planners() string
	PlannersSeen() string
	WorkersSeen() string
	Running(task string) string
	Buffer(task string) string
	TriggerID(task, id string) string
}

// WorkerGroup is the consumer group of workers on every single-mode fire
// stream.
const WorkerGroup = "workers"

// TriggerIDTTL is how long a manual trigger's id is remembered.
const TriggerIDTTL = 24 * time.Hour

// ErrNoGroup is wrapped by a read through a consumer group that does not
// exist: nobody created it, or the stream was deleted (a flush) and took
// its groups with it.
var ErrNoGroup = errors.New("no such consumer group")

// NoGroup wraps a read's error with ErrNoGroup when Redis said NOGROUP.
func NoGroup(err error) error {
	if redis.HasErrorPrefix(err, "NOGROUP") {
		return fmt.Errorf("%w: %w", ErrNoGroup, err)
	}
	return err
}

// QueueOf says whether stream is a fire or broadcast stream of k's
// namespace, and its queue.
func QueueOf(k Keys, stream string) (queue string, broadcast, ok bool) {
	if q, found := strings.CutPrefix(stream, k.Broadcast("")); found && q != "" {
		return q, true, true
	}
	if q, found := strings.CutPrefix(stream, k.Fires("")); found && q != "" {
		return q, false, true
	}
	return "", false, false
}

// MsTime is a time in Unix ms as Redis returns it (text, or nil), zero when
// it is none.
func MsTime(v any) time.Time {
	str, _ := v.(string)
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil || str == "" {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// StringFields is a stream entry's fields as text.
func StringFields(v map[string]any) map[string]string {
	out := make(map[string]string, len(v))
	for k, x := range v {
		out[k] = fmt.Sprint(x)
	}
	return out
}

// NoForever turns a wait of zero or less into go-redis's "do not block"
// (its Block 0 would block forever).
func NoForever(block time.Duration) time.Duration {
	if block <= 0 {
		return -1
	}
	return block
}

// LessID reports whether stream entry id a ("ms-seq") comes before b.
func LessID(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ai, _ := strconv.ParseUint(am, 10, 64)
	bi, _ := strconv.ParseUint(bm, 10, 64)
	if ai != bi {
		return ai < bi
	}
	asq, _ := strconv.ParseUint(as, 10, 64)
	bsq, _ := strconv.ParseUint(bs, 10, 64)
	return asq < bsq
}

// Signals turns a pub/sub subscription's messages into a channel of
// capacity 1 that never blocks the sender: a value means "at least one
// message since you last looked".
func Signals(ps *redis.PubSub) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		for range ps.Channel() {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch
}
