package planner_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/planner"
)

// A task name registered twice, in one call or across calls, is an error
// naming the task, and the call that brought it keeps nothing.
func TestRegisterRefusesADuplicateName(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer rdb.Close()
	every := events.Every(time.Minute)
	if _, err := planner.New(rdb, planner.Config{Version: 1}, events.Spec{Name: "report", Trigger: every}, events.Spec{Name: "report", Trigger: every}); err == nil ||
		!strings.Contains(err.Error(), `task "report" is registered twice`) {
		t.Errorf("New with one name twice: %v, want an error naming the task", err)
	}
	if _, err := planner.New(rdb, planner.Config{}, events.Spec{Name: "report", Trigger: every}); err == nil || !strings.Contains(err.Error(), "Config.Version: 0 with 1 tasks") {
		t.Errorf("New with tasks and no version: %v, want an error naming Config.Version", err)
	}
	p, err := planner.New(rdb, planner.Config{Version: 1}, events.Spec{Name: "report", Trigger: every})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Register(events.Spec{Name: "hello", Trigger: every}, events.Spec{Name: "report", Trigger: every})
	if err == nil || !strings.Contains(err.Error(), `task "report" is registered twice`) {
		t.Errorf("Register of a name registered before: %v, want an error naming the task", err)
	}
	// Nothing of the refused call was kept: hello can be registered now.
	if err := p.Register(events.Spec{Name: "hello", Trigger: every}); err != nil {
		t.Errorf("hello after a refused call: %v", err)
	}
}

// A value out of range is an error naming the field, never silently
// replaced by the default.
func TestConfigOutOfRange(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer rdb.Close()
	for field, cfg := range map[string]planner.Config{
		"Lease":          {Lease: -time.Second},
		"Lease: 10ms":    {Lease: 10 * time.Millisecond},
		"Lookahead":      {Lookahead: -time.Second},
		"Lookahead: 11s": {Lookahead: 11 * time.Second},
		"Lookahead: 1s":  {Lookahead: time.Second, NoLookahead: true},
		"MaxSleep":       {MaxSleep: -time.Millisecond},
		"BatchSize":      {BatchSize: -1},
		"CatchUpChunk":   {CatchUpChunk: -1},
		"EventsMaxLen":   {EventsMaxLen: -5},
		"Version":        {Version: -1},
		"Namespace":      {Namespace: "a b"},
	} {
		_, err := planner.New(rdb, cfg)
		if err == nil || !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("%s: error %v, want one naming Config.%s", field, err, field)
		}
	}
	if _, err := planner.New(rdb, planner.Config{}); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}
