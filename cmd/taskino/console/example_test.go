package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/cmd/taskino/console"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store"
	"github.com/taskino/taskino/store/redistest"
)

// Mount the console in a program's own server, under a path prefix, with
// a token. (It uses the Redis at $TASKINO_REDIS, or 127.0.0.1:6379, in a
// namespace of its own that it deletes afterwards.)
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: redistest.SharedAddr()})
	defer rdb.Close()
	ns := "example-" + uuid.NewString()[:8]
	defer redistest.DeleteNamespace(rdb, ns)
	st, err := store.New(rdb, ns, store.Options{})
	if err != nil {
		panic(err)
	}
	spec := events.Spec{Name: "backup", Trigger: events.Cron("30 2 * * *").In("Europe/Berlin")}
	if _, err := st.Apply(context.Background(), 1, []events.Spec{spec}); err != nil {
		panic(err)
	}
	token := "s3cret"
	mux := http.NewServeMux()

	con, err := console.New(console.Config{Redis: rdb, Namespaces: []string{ns}, Prefix: "/ops/taskino", AuthToken: token})
	if err != nil {
		panic(err)
	}
	defer con.Close()
	mux.Handle("/ops/taskino/", con)

	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, auth := range []string{"", "Bearer " + token} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ops/taskino/n/"+ns+"/tasks", nil)
		req.Header.Set("Authorization", auth)
		client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		if to, _, _ := strings.Cut(resp.Header.Get("Location"), "?"); to != "" {
			fmt.Println(resp.StatusCode, "to", to) // without the token: to the login page
		} else {
			fmt.Println(resp.StatusCode)
		}
	}
	fmt.Println(console.TriggerWords(spec.Trigger))
	// Output:
	// 303 to /ops/taskino/login
	// 200
	// every day at 02:30 (Europe/Berlin)
}
