package store_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/store"
)

// A store's events bound below NoTrim is an error naming the field.
func TestStoreOptionsOutOfRange(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := store.New(rdb, "x", store.Options{EventsMaxLen: -5}); err == nil || !strings.Contains(err.Error(), "Options.EventsMaxLen: -5") {
		t.Errorf("EventsMaxLen -5: %v", err)
	}
}
