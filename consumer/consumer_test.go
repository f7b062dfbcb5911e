package consumer_test

import (
	"strings"
	"testing"

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
		{consumer.Config{Node: "two words"}, `node "two words"`},
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
