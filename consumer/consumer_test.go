package consumer_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/consumer"
)

// TestConfigErrorsNameTheProblem: a bad config is refused at New with an
// error naming the field and the value.
func TestConfigErrorsNameTheProblem(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	for _, tc := range []struct {
		cfg  consumer.Config
		want string
	}{
		{consumer.Config{Queues: []string{"has space"}}, `queue "has space"`},
		{consumer.Config{Queues: []string{"a", "a"}}, `queue "a" is listed twice`},
		{consumer.Config{Node: "two words"}, `Node: "two words"`},
		{consumer.Config{Namespace: "{bad}"}, `namespace "{bad}"`},
	} {
		_, err := consumer.New(rdb, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := consumer.New(rdb, consumer.Config{Queues: []string{"emails", "reports"}}); err != nil {
		t.Errorf("a good config was refused: %v", err)
	}
}

// TestConfigRefusesNegatives: a negative value in any duration or count
// field is refused by New with an error naming the field and the form
// expected, not turned into the default; WithDefaults leaves it as it is.
func TestConfigRefusesNegatives(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	typ := reflect.TypeOf(consumer.Config{})
	n := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() || (f.Type.Kind() != reflect.Int && f.Type.Kind() != reflect.Int64) {
			continue
		}
		n++
		t.Run(f.Name, func(t *testing.T) {
			var cfg consumer.Config
			neg := int64(-1)
			if f.Type == reflect.TypeOf(time.Duration(0)) {
				neg = int64(-5 * time.Second)
			}
			reflect.ValueOf(&cfg).Elem().Field(i).SetInt(neg)
			if got := reflect.ValueOf(cfg.WithDefaults()).Field(i).Int(); got != neg {
				t.Errorf("WithDefaults turned %s %d into %d", f.Name, neg, got)
			}
			_, err := consumer.New(rdb, cfg)
			if err == nil {
				t.Fatalf("New accepted %s = %d", f.Name, neg)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "consumer: Config."+f.Name+": ") || !strings.Contains(msg, "is negative; want 0") {
				t.Errorf("error %q: want it to name %s, say it is negative and what is wanted", msg, f.Name)
			}
		})
	}
	if n < 11 {
		t.Errorf("found %d duration and count fields, want at least the 11 Config has", n)
	}
	_, err := consumer.New(rdb, consumer.Config{VisibilityTimeout: -5 * time.Second})
	if want := "consumer: Config.VisibilityTimeout: -5s is negative; want 0 (default 30s) or 1ms or more"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestConfigOffForms: what a negative value used to mean has a field of
// its own, which New accepts alone and refuses beside a value.
func TestConfigOffForms(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	for _, tc := range []struct {
		cfg  consumer.Config
		want string // "" for accepted
	}{
		{consumer.Config{NoHoldEarly: true}, ""},
		{consumer.Config{NoPrefetch: true}, ""},
		{consumer.Config{NoHoldEarly: true, HoldEarly: time.Second}, "consumer: Config.HoldEarly: 1s with NoHoldEarly"},
		{consumer.Config{NoPrefetch: true, Prefetch: 5}, "consumer: Config.Prefetch: 5 with NoPrefetch"},
		{consumer.Config{VisibilityTimeout: time.Microsecond}, "consumer: Config.VisibilityTimeout: 1µs is under 1ms"},
		{consumer.Config{VisibilityTimeout: 1000 * time.Hour}, "consumer: Config.VisibilityTimeout: 1000h0m0s is over 1h0m0s"},
	} {
		_, err := consumer.New(rdb, tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("New(%+v): %v, want it accepted", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("New(%+v): %v, want an error starting %q", tc.cfg, err, tc.want)
		}
	}
	if d := (consumer.Config{NoHoldEarly: true, NoPrefetch: true}).WithDefaults(); d.HoldEarly != 0 || d.Prefetch != 0 {
		t.Errorf("WithDefaults gave HoldEarly %s and Prefetch %d with both off, want 0 and 0", d.HoldEarly, d.Prefetch)
	}
}
