package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
)

// TestEventGroup walks a durable reader through the events stream's group:
// new events once, the unacked backlog again until acked, a backlog entry
// trimmed meanwhile as Deleted, the trim reported as a gap, and a group
// that is gone as ErrNoGroup.
func TestEventGroup(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	const group, consumer = "audit", "listener"
	if _, err := b.st.ReadEventGroup(b.ctx, group, consumer, ">", 10, 0); !errors.Is(err, store.ErrNoGroup) {
		t.Fatalf("read before the group exists: %v, want ErrNoGroup", err)
	}
	for range 2 { // the second finds the group and leaves it
		if err := b.st.EnsureEventGroup(b.ctx, group, "$"); err != nil {
			t.Fatal(err)
		}
	}
	var evs []events.Event
	for i := range 3 {
		evs = append(evs, events.Event{Type: events.TypeNodeUp, Worker: fmt.Sprint("w", i)})
	}
	if err := b.worker.AppendEvents(b.ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := b.st.ReadEventGroup(b.ctx, group, consumer, ">", 10, 0)
	if err != nil || len(got) != 3 || got[0].Event.Worker != "w0" || got[0].Err != nil {
		t.Fatalf("first read: %+v (%v), want the 3 events", got, err)
	}
	if again, err := b.st.ReadEventGroup(b.ctx, group, consumer, ">", 10, 0); err != nil || len(again) != 0 {
		t.Fatalf("second read of new events: %d (%v), want none", len(again), err)
	}
	if err := b.st.AckEvents(b.ctx, group, got[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XDel(b.ctx, b.st.Keys().Events(), got[1].ID).Err(); err != nil {
		t.Fatal(err)
	}
	backlog, err := b.st.ReadEventGroup(b.ctx, group, consumer, "0", 10, time.Second)
	if err != nil || len(backlog) != 2 || !backlog[0].Deleted || backlog[0].ID != got[1].ID || backlog[1].Deleted || backlog[1].Event.Worker != "w2" {
		t.Fatalf("backlog: %+v (%v), want the deleted second event, then the third", backlog, err)
	}
	if past, _, err := b.st.EventGroupGap(b.ctx, group); err != nil || past != "" {
		t.Fatalf("gap of a group that read everything: %q (%v), want none", past, err)
	}

	// A second group that read nothing yet, from the start, after the
	// stream's head was trimmed.
	if err := b.st.EnsureEventGroup(b.ctx, "late", "0"); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XTrimMaxLen(b.ctx, b.st.Keys().Events(), 1).Err(); err != nil {
		t.Fatal(err)
	}
	if past, upTo, err := b.st.EventGroupGap(b.ctx, "late"); err != nil || past == "" || upTo != "0-0" {
		t.Errorf("gap of a group behind the trim: %q, %q (%v), want one from 0-0", past, upTo, err)
	}
}

// A trimmed stream is known to have lost entries (Redis 7 counts the
// entries ever added; its max-deleted-entry-id stays 0-0 after a trim), so
// StreamReach says how far back it reaches instead of "all of it".
func TestStreamReachSeesATrim(t *testing.T) {
	b := setup(t)
	rdb := b.srv.Client(t)
	for range 3 {
		if err := rdb.XAdd(b.ctx, &redis.XAddArgs{Stream: "s", Values: []any{"a", "b"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if reach, err := b.st.StreamReach(b.ctx, "s"); err != nil || !reach.IsZero() {
		t.Fatalf("untrimmed stream reaches %v (%v), want the zero time: all of it", reach, err)
	}
	if err := rdb.XTrimMaxLen(b.ctx, "s", 1).Err(); err != nil {
		t.Fatal(err)
	}
	last, err := b.st.LastEntryID(b.ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := events.EntryTime(last)
	if reach, err := b.st.StreamReach(b.ctx, "s"); err != nil || !reach.Equal(want) {
		t.Errorf("trimmed stream reaches %v (%v), want its oldest entry's time %v", reach, err, want)
	}
}
