// Package redisurl turns the --redis URL of taskino's binaries into a go-redis client.
//
// One URL names a single server, a Sentinel-managed master or a Cluster; see
// Open for the forms. Redact and Addr give what may be logged of such a URL:
// neither ever contains a password, whatever the URL looks like.
package redisurl

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterStateReloadInterval is how old the cluster client's view of the
// cluster (which node serves which slots) may get before the next command
// reloads it in the background.
//
// go-redis v9.23.0 reloads that view at once on MOVED, ASK and READONLY
// replies, but not on network errors: when a master dies and a replica is
// promoted, the client keeps sending the dead master's slots to the dead
// address (connection refused / timeouts) until the view is reloaded. Its
// ClusterOptions.ClusterStateReloadInterval (default 60s) bounds that; the
// reload is lazy (only when a command finds the view too old), asynchronous,
// and costs one CLUSTER SLOTS per interval per client, so a short interval is
// cheap. The failover itself takes the servers' cluster-node-timeout plus an
// election, so a couple of seconds adds little on top of it.
const ClusterStateReloadInterval = 2 * time.Second

// Default ports when a host has none.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

type kind int

const (
	single kind = iota
	sentinel
	cluster
)

var schemes = map[string]struct {
	kind kind
	tls  bool
}{
	"redis":           {single, false},
	"rediss":          {single, true},
	"redis+sentinel":  {sentinel, false},
	"rediss+sentinel": {sentinel, true},
	"redis+cluster":   {cluster, false},
	"rediss+cluster":  {cluster, true},
}

const wantSchemes = "redis://, rediss://, redis+sentinel:// or redis+cluster://"

// Open parses rawURL and returns an unconnected client for it. Forms:
//
//	redis://[user:password@]host:port[/db][?options]      single server (redis.ParseURL options)
//	rediss://...                                          the same over TLS
//	redis+sentinel://[user:password@]host:port[,host:port...]/master[/db][?sentinel_password=..&sentinel_username=..]   (rediss+sentinel:// for TLS)
//	redis+cluster://[user:password@]host:port[,host:port...][?options]   (rediss+cluster:// for TLS)
//
// The user and password are those of the data nodes (the single server, the
// Sentinel-managed master and replicas, the Cluster nodes); ":password@"
// alone authenticates as the default user. A user without a password is
// refused. Sentinels that need their own credentials take them from the
// sentinel_username and sentinel_password options. Characters of the user
// or password that mean something in a URL are percent-encoded ("%40" for
// '@', "%3A" for ':' in the user, "%25" for '%', "%3F" for '?').
//
// A host without a port gets 6379 (26379 for a sentinel); IPv6 addresses
// are written in brackets, [::1]:6379. The db is a number 0 or more, 0 when
// absent; a Cluster has only db 0. Options are go-redis's URL options
// (dial_timeout=3s, pool_size=20, client_name=x, skip_verify=true for
// rediss..., and so on; see redis.ParseURL); unknown options are refused.
// The options that would repeat a part of the URL (addr, username,
// password, master_name) are refused, as are those that would send writes
// to replicas of a Sentinel master (replica_only, route_by_latency,
// route_randomly).
//
// Open does not connect: the first command does. The client is a
// *redis.Client for the single-server and Sentinel forms (go-redis's
// failover client, which follows the master through failovers) and a
// *redis.ClusterClient for the Cluster form, whose view of the cluster is
// refreshed every ClusterStateReloadInterval.
//
// A refused URL gives one line naming the problem and the expected form,
// with the URL redacted as by Redact, for example
//
//	--redis "ftp://x": unknown scheme "ftp"; want redis://, rediss://, redis+sentinel:// or redis+cluster://
//
// The error never contains the password.
func Open(rawURL string) (client redis.UniversalClient, err error) {
	s, opts, problem := check(rawURL)
	if problem != "" {
		return nil, refuse(rawURL, s, problem)
	}
	// go-redis panics on a few option combinations (and on sizes that do
	// not fit its counters); a bad URL is an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			client, err = nil, refuse(rawURL, s, s.scrub(fmt.Sprint(r)))
		}
	}()
	switch o := opts.(type) {
	case *redis.Options:
		return redis.NewClient(o), nil
	case *redis.FailoverOptions:
		return redis.NewFailoverClient(o), nil
	case *redis.ClusterOptions:
		return redis.NewClusterClient(o), nil
	}
	panic("redisurl: unreachable")
}

// Redact returns rawURL with any password replaced by "xxxxx", for logs and
// errors: the password of the user info (all of the user info when it has
// no ':', as it may be a password written without its ':') and the value
// of every query option whose name contains "password"; a string with
// neither a scheme ("://") nor user info is all "xxxxx", as it may be a
// password alone. It works on any string, also one Open refuses, and
// leaves the rest as written.
func Redact(rawURL string) string {
	p := split(rawURL)
	if !p.hasScheme && !p.hasUser && rawURL != "" {
		// Not a URL: perhaps a password given alone. Nothing of it is
		// shown.
		return "xxxxx"
	}
	var b strings.Builder
	if p.hasScheme {
		b.WriteString(p.scheme)
		b.WriteString("://")
	}
	if p.hasUser {
		if c := strings.IndexByte(p.userinfo, ':'); c >= 0 {
			b.WriteString(p.userinfo[:c])
			b.WriteString(":xxxxx")
		} else {
			b.WriteString("xxxxx")
		}
		b.WriteByte('@')
	}
	b.WriteString(p.hosts)
	b.WriteString(p.path)
	if p.hasQuery {
		b.WriteByte('?')
		segs := strings.Split(p.query, "&")
		for i, seg := range segs {
			if k, _, ok := strings.Cut(seg, "="); ok {
				name, err := url.QueryUnescape(k)
				if err != nil {
					name = k
				}
				if strings.Contains(strings.ToLower(name), "password") {
					segs[i] = k + "=xxxxx"
				}
			}
		}
		b.WriteString(strings.Join(segs, "&"))
	}
	return b.String()
}

// Addr returns a short human description of where a client of rawURL
// points, without user or password: "127.0.0.1:6379" for a single server,
// "sentinel mymaster via a:26379,b:26379" for a Sentinel master, "cluster
// a:7000,b:7001" for a Cluster. For a URL Open refuses it returns
// Redact(rawURL).
func Addr(rawURL string) string {
	s, _, problem := check(rawURL)
	if problem != "" {
		return Redact(rawURL)
	}
	switch s.kind {
	case sentinel:
		return "sentinel " + s.master + " via " + strings.Join(s.hosts, ",")
	case cluster:
		return "cluster " + strings.Join(s.hosts, ",")
	}
	return s.hosts[0]
}

// check parses rawURL and builds its go-redis options; problem says why
// Open would refuse it.
func check(rawURL string) (s *spec, opts any, problem string) {
	if s, problem = parse(rawURL); problem != "" {
		return s, nil, problem
	}
	opts, problem = s.options()
	return s, opts, problem
}

// options builds the go-redis options for s with go-redis's own URL parsers,
// which take care of the query options: s is rewritten into the form each
// parser reads (one host, extra hosts as addr=, the master as master_name=).
// It returns *redis.Options, *redis.FailoverOptions or *redis.ClusterOptions.
func (s *spec) options() (any, string) {
	q := url.Values{}
	for k, v := range s.query {
		q[k] = append([]string(nil), v...)
	}
	u := url.URL{Scheme: "redis", Host: s.hosts[0]}
	if s.tls {
		u.Scheme = "rediss"
	}
	if s.hasAuth {
		u.User = url.UserPassword(s.user, s.pass)
	}
	if s.kind != cluster {
		u.Path = "/" + strconv.Itoa(s.db)
	}
	for _, h := range s.hosts[1:] {
		q.Add("addr", h)
	}

	switch s.kind {
	case sentinel:
		// redis.ParseFailoverURL takes the URL's user info for the
		// sentinels, and username= and password= for the master: the
		// other way round from our form.
		u.User = nil
		if s.sentPass != "" {
			u.User = url.UserPassword(s.sentUser, s.sentPass)
		}
		if s.hasAuth {
			q.Set("username", s.user)
			q.Set("password", s.pass)
		}
		q.Set("master_name", s.master)
		u.RawQuery = q.Encode()
		o, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, s.goRedisProblem(err)
		}
		if o.TLSConfig != nil {
			// ParseFailoverURL checks every server's certificate against
			// the first sentinel's name; with no ServerName, each
			// connection checks against the host it dials (tls.DialWithDialer).
			o.TLSConfig.ServerName = ""
		}
		return o, s.tlsFiles(o.TLSConfig)

	case cluster:
		// ParseClusterURL knows no skip_verify.
		skip := false
		if vs, ok := q["skip_verify"]; ok {
			switch vs[len(vs)-1] {
			case "true", "1":
				skip = true
			case "false", "0", "":
			default:
				return nil, fmt.Sprintf("option skip_verify: %q is no boolean (want true, false, 1 or 0)", vs[len(vs)-1])
			}
			q.Del("skip_verify")
		}
		u.RawQuery = q.Encode()
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, s.goRedisProblem(err)
		}
		if o.TLSConfig != nil {
			// As above: each node's certificate is checked against its own
			// host, not the first node's.
			o.TLSConfig.ServerName = ""
			o.TLSConfig.MinVersion = tls.VersionTLS12
			o.TLSConfig.InsecureSkipVerify = skip
		}
		o.ClusterStateReloadInterval = ClusterStateReloadInterval
		return o, s.tlsFiles(o.TLSConfig)
	}

	u.RawQuery = q.Encode()
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, s.goRedisProblem(err)
	}
	return o, s.tlsFiles(o.TLSConfig)
}

// goRedisProblem words an error of go-redis's parsers. Those quote option
// values, never the user info, but a url.Error quotes the whole URL it was
// given, password included; only its cause is kept, and everything is
// scrubbed anyway.
func (s *spec) goRedisProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return s.scrub(err.Error())
}
