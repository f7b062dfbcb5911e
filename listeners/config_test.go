package listeners_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/listeners"
)

// Mistakes in a subscription's config fail New, naming what is wrong.
func TestNewRefusesMistakes(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer rdb.Close()
	l := listeners.CompleteFunc(func(context.Context, events.Event) {})
	for _, tc := range []struct {
		cfg       listeners.Config
		listeners []any
		want      string
	}{
		{listeners.Config{Block: -time.Second}, []any{l}, "Config.Block: -1s"},
		{listeners.Config{Durable: "a b"}, []any{l}, "durable listener name"},
		{listeners.Config{Namespace: "a b"}, []any{l}, `namespace "a b"`},
		{listeners.Config{}, nil, "no listener given"},
		{listeners.Config{}, []any{struct{}{}}, "implements none of the listener interfaces"},
	} {
		_, err := listeners.New(rdb, tc.cfg, tc.listeners...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one saying %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := listeners.New(rdb, listeners.Config{}, l); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
}
