package redisurl

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskino/taskino/store/redistest"
)

// secret is the password of the parsing tests: no error, Redact or Addr may
// contain it.
const secret = "S3CRET"

func noSecret(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, secret) || strings.Contains(s, "S3%2FCR") {
		t.Errorf("%s contains the password: %s", what, s)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url   string
		addr  string
		check func(t *testing.T, o any)
	}{
		{"redis://127.0.0.1:6379", "127.0.0.1:6379", func(t *testing.T, o any) {
			opt := o.(*redis.Options)
			eq(t, "Addr", opt.Addr, "127.0.0.1:6379")
			eq(t, "DB", opt.DB, 0)
			eq(t, "TLS", opt.TLSConfig == nil, true)
			eq(t, "Username", opt.Username, "")
			eq(t, "Password", opt.Password, "")
		}},
		{"redis://alice:S3CRET@db.example:6380/2?dial_timeout=3s&client_name=planner", "db.example:6380", func(t *testing.T, o any) {
			opt := o.(*redis.Options)
			eq(t, "Addr", opt.Addr, "db.example:6380")
			eq(t, "Username", opt.Username, "alice")
			eq(t, "Password", opt.Password, secret)
			eq(t, "DB", opt.DB, 2)
			eq(t, "DialTimeout", opt.DialTimeout, 3*time.Second)
			eq(t, "ClientName", opt.ClientName, "planner")
		}},
		{"REDIS://Host", "Host:6379", func(t *testing.T, o any) {
			eq(t, "Addr", o.(*redis.Options).Addr, "Host:6379")
		}},
		{"rediss://:S3CRET@h/1?skip_verify=true", "h:6379", func(t *testing.T, o any) {
			opt := o.(*redis.Options)
			eq(t, "Password", opt.Password, secret)
			eq(t, "Username", opt.Username, "")
			eq(t, "DB", opt.DB, 1)
			eq(t, "InsecureSkipVerify", opt.TLSConfig != nil && opt.TLSConfig.InsecureSkipVerify, true)
		}},
		{"redis://h:1/0?db=3", "h:1", func(t *testing.T, o any) {
			eq(t, "DB", o.(*redis.Options).DB, 3)
		}},
		{"redis://[::1]:7000/", "[::1]:7000", func(t *testing.T, o any) {
			eq(t, "Addr", o.(*redis.Options).Addr, "[::1]:7000")
		}},
		{"redis://u:p%40ss%3Aw%2Frd%25@h:1", "h:1", func(t *testing.T, o any) {
			eq(t, "Password", o.(*redis.Options).Password, "p@ss:w/rd%")
		}},
		{"redis://u:p@ss:w/r#d@h:1/4", "h:1", func(t *testing.T, o any) {
			opt := o.(*redis.Options)
			eq(t, "Password", opt.Password, "p@ss:w/r#d")
			eq(t, "DB", opt.DB, 4)
		}},
		{"redis://u:pa?ss@h:1/5?db=6", "h:1", func(t *testing.T, o any) {
			opt := o.(*redis.Options)
			eq(t, "Password", opt.Password, "pa?ss")
			eq(t, "DB", opt.DB, 6)
		}},
		{"redis+sentinel://alice:S3CRET@a:26380,b/mymaster/3?sentinel_username=sen&sentinel_password=S3CRET&dial_timeout=2s",
			"sentinel mymaster via a:26380,b:26379", func(t *testing.T, o any) {
				opt := o.(*redis.FailoverOptions)
				eq(t, "SentinelAddrs", strings.Join(opt.SentinelAddrs, ","), "a:26380,b:26379")
				eq(t, "MasterName", opt.MasterName, "mymaster")
				eq(t, "DB", opt.DB, 3)
				eq(t, "Username", opt.Username, "alice")
				eq(t, "Password", opt.Password, secret)
				eq(t, "SentinelUsername", opt.SentinelUsername, "sen")
				eq(t, "SentinelPassword", opt.SentinelPassword, secret)
				eq(t, "DialTimeout", opt.DialTimeout, 2*time.Second)
				eq(t, "TLS", opt.TLSConfig == nil, true)
			}},
		{"redis+sentinel://s1:1/my%20master/", "sentinel my master via s1:1", func(t *testing.T, o any) {
			opt := o.(*redis.FailoverOptions)
			eq(t, "MasterName", opt.MasterName, "my master")
			eq(t, "DB", opt.DB, 0)
			eq(t, "Username", opt.Username, "")
			eq(t, "Password", opt.Password, "")
			eq(t, "SentinelPassword", opt.SentinelPassword, "")
		}},
		{"rediss+sentinel://:S3CRET@s1:1,s2:2/m?skip_verify=1", "sentinel m via s1:1,s2:2", func(t *testing.T, o any) {
			opt := o.(*redis.FailoverOptions)
			eq(t, "Password", opt.Password, secret)
			eq(t, "TLS", opt.TLSConfig != nil, true)
			eq(t, "ServerName", opt.TLSConfig.ServerName, "")
			eq(t, "InsecureSkipVerify", opt.TLSConfig.InsecureSkipVerify, true)
		}},
		{"redis+cluster://u:S3CRET@a:7000,b:7001,c?read_timeout=1s", "cluster a:7000,b:7001,c:6379", func(t *testing.T, o any) {
			opt := o.(*redis.ClusterOptions)
			eq(t, "Addrs", strings.Join(opt.Addrs, ","), "a:7000,b:7001,c:6379")
			eq(t, "Username", opt.Username, "u")
			eq(t, "Password", opt.Password, secret)
			eq(t, "ReadTimeout", opt.ReadTimeout, time.Second)
			eq(t, "ClusterStateReloadInterval", opt.ClusterStateReloadInterval, ClusterStateReloadInterval)
			eq(t, "TLS", opt.TLSConfig == nil, true)
		}},
		{"rediss+cluster://a:1,[::1]:2/0?skip_verify=true", "cluster a:1,[::1]:2", func(t *testing.T, o any) {
			opt := o.(*redis.ClusterOptions)
			eq(t, "TLS", opt.TLSConfig != nil, true)
			eq(t, "ServerName", opt.TLSConfig.ServerName, "")
			eq(t, "InsecureSkipVerify", opt.TLSConfig.InsecureSkipVerify, true)
		}},
		{"redis+cluster://a:1?db=0", "cluster a:1", func(t *testing.T, o any) {
			eq(t, "Addrs", strings.Join(o.(*redis.ClusterOptions).Addrs, ","), "a:1")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, problem := parse(tt.url)
			if problem != "" {
				t.Fatalf("parse: %s", problem)
			}
			o, problem := s.options()
			if problem != "" {
				t.Fatalf("options: %s", problem)
			}
			tt.check(t, o)
			eq(t, "Addr()", Addr(tt.url), tt.addr)
			noSecret(t, "Redact", Redact(tt.url))
			noSecret(t, "Addr", Addr(tt.url))

			c, err := Open(tt.url)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer c.Close()
			switch o.(type) {
			case *redis.ClusterOptions:
				if _, ok := c.(*redis.ClusterClient); !ok {
					t.Errorf("Open gave a %T, want a *redis.ClusterClient", c)
				}
			default:
				if _, ok := c.(*redis.Client); !ok {
					t.Errorf("Open gave a %T, want a *redis.Client", c)
				}
			}
		})
	}
}

func TestRefused(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"ftp://x", `--redis "ftp://x": unknown scheme "ftp"; want redis://, rediss://, redis+sentinel:// or redis+cluster://`},
		{"ftp://u:S3CRET@x", `--redis "ftp://u:xxxxx@x": unknown scheme "ftp"; want redis://, rediss://, redis+sentinel:// or redis+cluster://`},
		{"u:S3CRET@127.0.0.1:6379", `--redis "u:xxxxx@127.0.0.1:6379": not a URL; want redis://, rediss://, redis+sentinel:// or redis+cluster://`},
		{"redis://", `--redis "redis://": no host; want redis://[user:password@]host:port[/db][?options]`},
		{"redis://u:S3CRET@/0", `--redis "redis://u:xxxxx@/0": no host; want redis://[user:password@]host:port[/db][?options]`},
		{"redis+cluster://u:S3CRET@", `--redis "redis+cluster://u:xxxxx@": no host; want redis+cluster://[user:password@]host:port[,host:port...][?options]`},
		{"rediss+sentinel://u:S3CRET@/m", `--redis "rediss+sentinel://u:xxxxx@/m": no host; want rediss+sentinel://[user:password@]host:port[,host:port...]/master[/db][?options]`},
		{"redis+cluster://u:S3CRET@a:1,,b:2", "empty entry in the host list"},
		{"redis+sentinel://a:1,/m", "empty entry in the host list"},
		{"redis://u:S3CRET@a:1,b:2", "a single-server URL has one host"},
		{"redis://u:S3CRET@h:port", `bad port "port" in "h:port" (want 1-65535)`},
		{"redis://h:0", `bad port "0"`},
		{"redis://h:70000", `bad port "70000"`},
		{"redis://h:+1", `bad port "+1"`},
		{"redis+cluster://a:1,b:x", `bad port "x" in "b:x"`},
		{"redis://h:", `no port after ':' in "h:"`},
		{"redis://:6379", `no host name in ":6379"`},
		{"redis://::1", "write an IPv6 address in brackets"},
		{"redis://[::1", "no ']'"},
		{"redis://[nope]:1", `bad IPv6 address "nope"`},
		{"redis://bad%20host:1", `bad host name "bad%20host"`},
		{"redis://h#frag", `bad host name "h#frag"`},
		{"redis://h/0#frag", "unexpected '#'"},
		{"redis://u:S3CRET@h/x", `bad database number "x" (want a number 0 or more)`},
		{"redis://h/-1", `bad database number "-1"`},
		{"redis://h/99999999999999999999", `bad database number "99999999999999999999"`},
		{"redis://h/1?db=y", `bad database number "y"`},
		{"redis://h/1/2", `unexpected path "/1/2"`},
		{"redis+sentinel://u:S3CRET@a:1", "no master name"},
		{"redis+sentinel://a:1/", "no master name"},
		{"redis+sentinel://a/m/x", `bad database number "x"`},
		{"redis+sentinel://a/m/1/2", `unexpected path "/m/1/2"`},
		{"redis+sentinel://a/m%zz", `bad master name "m%zz"`},
		{"redis+cluster://a/3", "database 3: a cluster has only database 0"},
		{"redis+cluster://a?db=2", "database 2: a cluster has only database 0"},
		{"redis+cluster://a/x", `unexpected path "/x" (a cluster URL has none)`},
		{"redis://S3CRET@h", `--redis "redis://xxxxx@h": the user info has no ':password'`},
		{"redis://alice:@h", "empty password"},
		{"redis://u:S3CRET%zz@h", "bad %-escape in the user or password"},
		{"redis://h?password=S3CRET", `--redis "redis://h?password=xxxxx": option password: put the user and password before the host`},
		{"redis://h?username=u", "option username"},
		{"redis://h?addr=b:1", "option addr: a single-server URL has one host"},
		{"redis+cluster://a?addr=b:1", "option addr: list the hosts as host:port,host:port"},
		{"redis+sentinel://a/m?master_name=x", "option master_name: the master name is the path"},
		{"redis://h?sentinel_password=S3CRET", `--redis "redis://h?sentinel_password=xxxxx": option sentinel_password: only for redis+sentinel://`},
		{"redis+sentinel://a/m?sentinel_username=x", "option sentinel_username without sentinel_password"},
		{"redis+sentinel://a/m?replica_only=true", "option replica_only: not supported"},
		{"redis+sentinel://a/m?route_by_latency=true", "option route_by_latency: not supported"},
		{"redis://h?skip_verify=true", "option skip_verify: only for TLS (rediss://)"},
		{"redis+cluster://h?skip_verify=true", "option skip_verify: only for TLS (rediss+cluster://)"},
		{"rediss+cluster://h?skip_verify=maybe", `option skip_verify: "maybe" is no boolean`},
		{"redis://u:S3CRET@h?bogus=1", "unexpected option: bogus; want redis://"},
		{"redis+sentinel://u:S3CRET@a/m?bogus=1&sentinel_password=S3CRET", "unexpected option: bogus; want redis+sentinel://"},
		{"redis+cluster://u:S3CRET@a?bogus=1", "unexpected option: bogus; want redis+cluster://"},
		{"redis://h?pool_size=x", "invalid pool_size number"},
		{"redis://u:S3CRET@h?dial_timeout=soon", `invalid dial_timeout duration: time: invalid duration "soon"`},
		{"redis://h?x=%zz", "bad query"},
		{"redis+sentinel://a/m?sentinel_password=S3%2FCR%zz", "bad query"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := Open(tt.url)
			if err == nil {
				c.Close()
				t.Fatalf("Open succeeded, want an error with %q", tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error\n\t%s\nwant it to contain\n\t%s", msg, tt.want)
			}
			if !strings.HasPrefix(msg, `--redis "`) || !strings.Contains(msg, "; want ") {
				t.Errorf("error %q does not name the URL and the expected form", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error has several lines: %q", msg)
			}
			noSecret(t, "error", msg)
			noSecret(t, "Redact", Redact(tt.url))
			noSecret(t, "Addr", Addr(tt.url))
			eq(t, "Addr", Addr(tt.url), Redact(tt.url))
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"redis://h:1", "redis://h:1"},
		{"redis://u@h:1", "redis://xxxxx@h:1"},
		{"redis://u:S3CRET@h:1/0", "redis://u:xxxxx@h:1/0"},
		{"redis://:S3CRET@h", "redis://:xxxxx@h"},
		{"redis://S3CRET@h", "redis://xxxxx@h"},
		{"redis://u:S3/CR#ET@h/0", "redis://u:xxxxx@h/0"},
		{"redis://u:S3?CRET@h/0?db=1", "redis://u:xxxxx@h/0?db=1"},
		{"redis://u:S3@CRET@h", "redis://u:xxxxx@h"},
		{"redis+sentinel://u:S3CRET@a,b/m?sentinel_password=S3CRET&dial_timeout=1", "redis+sentinel://u:xxxxx@a,b/m?sentinel_password=xxxxx&dial_timeout=1"},
		{"redis+sentinel://a/m?sentinel_password=S3@CRET", "redis+sentinel://a/m?sentinel_password=xxxxx"},
		{"redis://h?Password=S3CRET&password", "redis://h?Password=xxxxx&password"},
		{"u:S3CRET@h", "u:xxxxx@h"},
		{"not a url", "xxxxx"}, // no scheme, no user info: perhaps a password alone
		{"", ""},
	}
	for _, tt := range tests {
		eq(t, "Redact("+tt.url+")", Redact(tt.url), tt.want)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestSingleServer(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	ctx := context.Background()
	admin := s.Client(t)
	const alicePass = "p@ss:w/rd?#%&="
	if err := admin.Do(ctx, "ACL", "SETUSER", "alice", "on", ">"+alicePass, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">defpass").Err(); err != nil {
		t.Fatal(err)
	}
	alice := url.UserPassword("alice", alicePass).String()

	open := func(t *testing.T, rawURL string) redis.UniversalClient {
		t.Helper()
		c, err := Open(rawURL)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	t.Run("user and password", func(t *testing.T) {
		c := open(t, "redis://"+alice+"@"+s.Addr+"/3")
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING: %v", err)
		}
		if err := c.Set(ctx, "redisurl:k", "v3", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
		if got, err := c.Get(ctx, "redisurl:k").Result(); err != nil || got != "v3" {
			t.Fatalf("GET = %q, %v; want v3", got, err)
		}
		who, err := c.Do(ctx, "ACL", "WHOAMI").Text()
		if err != nil || who != "alice" {
			t.Errorf("ACL WHOAMI = %q, %v; want alice", who, err)
		}
		// The key went to db 3 and nowhere else.
		c0 := open(t, "redis://"+alice+"@"+s.Addr+"/0")
		if n, err := c0.Exists(ctx, "redisurl:k").Result(); err != nil || n != 0 {
			t.Errorf("EXISTS in db 0 = %d, %v; want 0", n, err)
		}
	})

	t.Run("password alone", func(t *testing.T) {
		c := open(t, "redis://:defpass@"+s.Addr)
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING: %v", err)
		}
		if who, err := c.Do(ctx, "ACL", "WHOAMI").Text(); err != nil || who != "default" {
			t.Errorf("ACL WHOAMI = %q, %v; want default", who, err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		for _, u := range []string{
			"redis://alice:wr0ngpass@" + s.Addr,
			"redis://:wr0ngpass@" + s.Addr,
			"redis://" + s.Addr, // none
		} {
			c := open(t, u)
			err := c.Ping(ctx).Err()
			if err == nil {
				t.Fatalf("%s: PING succeeded", Redact(u))
			}
			if strings.Contains(err.Error(), "wr0ngpass") || strings.Contains(err.Error(), alicePass) {
				t.Errorf("%s: error contains a password: %v", Redact(u), err)
			}
			if !strings.Contains(err.Error(), "WRONGPASS") && !strings.Contains(err.Error(), "NOAUTH") {
				t.Errorf("%s: error %v, want WRONGPASS or NOAUTH", Redact(u), err)
			}
		}
	})
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	sentinelAddr, masterAddr := redistest.StartSentinel(t, "mymaster")
	ctx := context.Background()
	rawURL := "redis+sentinel://" + sentinelAddr + "/mymaster/1"
	eq(t, "Addr", Addr(rawURL), "sentinel mymaster via "+sentinelAddr)
	c, err := Open(rawURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	if err := c.Set(ctx, "redisurl:s", "via-sentinel", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "redisurl:s").Result(); err != nil || got != "via-sentinel" {
		t.Fatalf("GET = %q, %v; want via-sentinel", got, err)
	}
	// The write went to the master, in db 1.
	m := redis.NewClient(&redis.Options{Addr: masterAddr, DB: 1})
	defer m.Close()
	if got, err := m.Get(ctx, "redisurl:s").Result(); err != nil || got != "via-sentinel" {
		t.Fatalf("GET on the master = %q, %v; want via-sentinel", got, err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	addrs := redistest.StartCluster(t, 3)
	ctx := context.Background()
	rawURL := "redis+cluster://" + strings.Join(addrs, ",")
	eq(t, "Addr", Addr(rawURL), "cluster "+strings.Join(addrs, ","))
	c, err := Open(rawURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("Open gave a %T, want a *redis.ClusterClient", c)
	}

	// A script over two keys of one hash tag runs on the node of that slot.
	const script = `
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], ARGV[2])
return redis.call('GET', KEYS[1]) .. ':' .. redis.call('GET', KEYS[2])`
	keys := []string{"taskino:{ns}:a", "taskino:{ns}:b"}
	for i, want := range []string{"x:5", "x:10"} {
		got, err := c.Eval(ctx, script, keys, "x", 5).Text()
		if err != nil || got != want {
			t.Fatalf("EVAL #%d = %q, %v; want %q", i+1, got, err, want)
		}
	}

	// Keys without a common tag spread over the nodes.
	const n = 30
	for i := range n {
		if err := c.Set(ctx, fmt.Sprintf("redisurl:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
	for i := range n {
		if got, err := c.Get(ctx, fmt.Sprintf("redisurl:%d", i)).Int(); err != nil || got != i {
			t.Fatalf("GET redisurl:%d = %d, %v", i, got, err)
		}
	}
	for _, addr := range addrs {
		node := redis.NewClient(&redis.Options{Addr: addr})
		size, err := node.DBSize(ctx).Result()
		_ = node.Close()
		if err != nil || size == 0 {
			t.Errorf("node %s holds %d keys (%v); want some of them", addr, size, err)
		}
	}
}
