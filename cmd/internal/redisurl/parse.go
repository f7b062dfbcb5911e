package redisurl

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// parts is a URL cut up as written, before any decoding.
type parts struct {
	scheme    string
	hasScheme bool
	userinfo  string // without the '@'
	hasUser   bool
	hosts     string // the authority without the user info
	path      string // from the first '/' after the hosts, if any
	query     string // without the '?'
	hasQuery  bool
}

// split cuts raw into its parts by hand rather than with url.Parse, so that
// Redact and parse agree on where the password is even in URLs url.Parse
// refuses (a host list, a '/', '#' or '@' left unencoded in a password), and
// no error of url.Parse, which quotes the whole URL, can carry it.
func split(raw string) parts {
	var p parts
	rest := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		p.scheme, p.hasScheme, rest = raw[:i], true, raw[i+3:]
	}
	// The user info ends at the last '@' before the query...
	pre, post, hasQuery := strings.Cut(rest, "?")
	if at := strings.LastIndexByte(pre, '@'); at >= 0 {
		p.userinfo, p.hasUser, rest = pre[:at], true, rest[at+1:]
	} else if hasQuery {
		// ... unless the password has an unencoded '?': then an '@' follows
		// in a query "segment" that is no name=value pair.
		if at := strings.LastIndexByte(post, '@'); at >= 0 {
			seg := post[strings.LastIndexByte(post[:at], '&')+1 : at]
			if !strings.Contains(seg, "=") {
				end := len(pre) + 1 + at
				p.userinfo, p.hasUser, rest = rest[:end], true, rest[end+1:]
			}
		}
	}
	rest, p.query, p.hasQuery = strings.Cut(rest, "?")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		p.hosts, p.path = rest[:i], rest[i:]
	} else {
		p.hosts = rest
	}
	return p
}

// spec is a parsed URL.
type spec struct {
	kind     kind
	scheme   string // lower case, "" when unknown
	tls      bool
	hasAuth  bool
	user     string
	pass     string
	hosts    []string // host:port, normalised
	master   string
	db       int
	query    url.Values // go-redis options left after parse took its own
	sentUser string
	sentPass string
	secrets  []string // password spellings to scrub from messages
	// Files named by our own options: the password (password_file), the
	// CA to check the servers' certificates against (ca_file), and a
	// client certificate and its key (cert_file, key_file).
	caFile, certFile, keyFile string
}

// refuse formats a refusal of rawURL.
func refuse(rawURL string, s *spec, problem string) error {
	return fmt.Errorf("--redis %q: %s; want %s", Redact(rawURL), problem, s.form())
}

// form is the expected form for s's scheme, or the list of schemes.
func (s *spec) form() string {
	if s == nil || s.scheme == "" {
		return wantSchemes
	}
	switch s.kind {
	case sentinel:
		return s.scheme + "://[user:password@]host:port[,host:port...]/master[/db][?options]"
	case cluster:
		return s.scheme + "://[user:password@]host:port[,host:port...][?options]"
	}
	return s.scheme + "://[user:password@]host:port[/db][?options]"
}

// scrub removes every spelling of the URL's passwords from a message that
// comes from elsewhere (go-redis, net/url).
func (s *spec) scrub(msg string) string {
	msg = strings.TrimPrefix(msg, "redis: ")
	for _, secret := range s.secrets {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "xxxxx")
		}
	}
	return msg
}

// parse reads rawURL into a spec, or says what is wrong with it in words
// that never include a password. The spec is non-nil whenever the scheme
// is known, for refuse to name the expected form.
func parse(rawURL string) (*spec, string) {
	p := split(rawURL)
	if !p.hasScheme {
		return nil, "not a URL"
	}
	scheme := strings.ToLower(p.scheme)
	sc, ok := schemes[scheme]
	if !ok {
		return nil, fmt.Sprintf("unknown scheme %q", p.scheme)
	}
	s := &spec{kind: sc.kind, scheme: scheme, tls: sc.tls}

	if p.hasUser {
		s.secrets = append(s.secrets, p.userinfo)
		rawUser, rawPass, ok := strings.Cut(p.userinfo, ":")
		if !ok && strings.Contains("&"+p.query, "&password_file=") {
			// user@ with the password in a file.
			rawPass, ok = "", true
		}
		if !ok {
			return s, "the user info has no ':password' (a user needs a password; write :password@ for a password alone)"
		}
		s.secrets = append(s.secrets, rawPass)
		user, err1 := url.PathUnescape(rawUser)
		pass, err2 := url.PathUnescape(rawPass)
		if err1 != nil || err2 != nil {
			return s, "bad %-escape in the user or password (write a '%' as %25)"
		}
		if pass == "" && !strings.Contains("&"+p.query, "&password_file=") {
			return s, "empty password"
		}
		s.hasAuth, s.user, s.pass = true, user, pass
		s.secrets = append(s.secrets, pass, url.QueryEscape(pass), strings.TrimPrefix(url.UserPassword("", pass).String(), ":"))
	}

	if p.hosts == "" {
		return s, "no host"
	}
	items := strings.Split(p.hosts, ",")
	if s.kind == single && len(items) > 1 {
		return s, "a single-server URL has one host (for several, use redis+sentinel:// or redis+cluster://)"
	}
	port := defaultPort
	if s.kind == sentinel {
		port = defaultSentinelPort
	}
	for _, item := range items {
		addr, problem := hostPort(item, port)
		if problem != "" {
			return s, problem
		}
		s.hosts = append(s.hosts, addr)
	}

	if strings.Contains(p.path, "#") || strings.Contains(p.query, "#") {
		return s, "unexpected '#' (percent-encode it as %23)"
	}
	segs := strings.Split(strings.Trim(p.path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	switch s.kind {
	case sentinel:
		if len(segs) == 0 {
			return s, "no master name (the path names the master Sentinel monitors)"
		}
		master, err := url.PathUnescape(segs[0])
		if err != nil || master == "" {
			return s, fmt.Sprintf("bad master name %q", segs[0])
		}
		s.master = master
		segs = segs[1:]
	case cluster:
		if len(segs) == 1 && isDigits(segs[0]) {
			if db, _ := strconv.Atoi(segs[0]); db != 0 {
				return s, fmt.Sprintf("database %s: a cluster has only database 0", segs[0])
			}
			segs = nil
		}
		if len(segs) > 0 {
			return s, fmt.Sprintf("unexpected path %q (a cluster URL has none)", p.path)
		}
	}
	if len(segs) > 1 {
		return s, fmt.Sprintf("unexpected path %q", p.path)
	}
	if len(segs) == 1 {
		db, problem := parseDB(segs[0])
		if problem != "" {
			return s, problem
		}
		s.db = db
	}

	q, err := url.ParseQuery(p.query)
	if err != nil {
		return s, "bad query: " + s.scrub(err.Error())
	}
	for _, sp := range q["sentinel_password"] {
		s.secrets = append(s.secrets, sp, url.QueryEscape(sp))
	}
	for _, name := range []string{"username", "password"} {
		if q.Has(name) {
			return s, fmt.Sprintf("option %s: put the user and password before the host (user:password@host)", name)
		}
	}
	if q.Has("addr") {
		if s.kind == single {
			return s, "option addr: a single-server URL has one host"
		}
		return s, "option addr: list the hosts as host:port,host:port"
	}
	if q.Has("master_name") {
		return s, "option master_name: the master name is the path, " + s.scheme + "://host:port/master"
	}
	if dbs, ok := q["db"]; ok {
		db, problem := parseDB(dbs[len(dbs)-1])
		if problem != "" {
			return s, problem
		}
		if s.kind == cluster && db != 0 {
			return s, fmt.Sprintf("database %d: a cluster has only database 0", db)
		}
		s.db = db
		q.Del("db")
	}
	if q.Has("password_file") {
		if s.pass != "" {
			return s, "option password_file: the URL has a password too; give one of them"
		}
		path := q.Get("password_file")
		q.Del("password_file")
		pw, problem := readPassword(path)
		if problem != "" {
			return s, "option password_file: " + problem
		}
		s.hasAuth, s.pass = true, pw
		s.secrets = append(s.secrets, pw, url.QueryEscape(pw))
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"ca_file", &s.caFile}, {"cert_file", &s.certFile}, {"key_file", &s.keyFile}} {
		if !q.Has(f.name) {
			continue
		}
		if !s.tls {
			return s, "option " + f.name + ": only for TLS (" + strings.Replace(s.scheme, "redis", "rediss", 1) + "://)"
		}
		*f.dst = q.Get(f.name)
		q.Del(f.name)
		if *f.dst == "" {
			return s, "option " + f.name + ": empty; want a file path"
		}
	}
	if (s.certFile == "") != (s.keyFile == "") {
		return s, "options cert_file and key_file go together (a client certificate and its key)"
	}
	if q.Has("skip_verify") && !s.tls {
		return s, "option skip_verify: only for TLS (" + strings.Replace(s.scheme, "redis", "rediss", 1) + "://)"
	}
	if s.kind == sentinel {
		s.sentUser, s.sentPass = q.Get("sentinel_username"), q.Get("sentinel_password")
		if q.Has("sentinel_username") && s.sentPass == "" {
			return s, "option sentinel_username without sentinel_password"
		}
		q.Del("sentinel_username")
		q.Del("sentinel_password")
		for _, name := range []string{"replica_only", "route_by_latency", "route_randomly"} {
			if q.Has(name) {
				return s, fmt.Sprintf("option %s: not supported (taskino writes, and needs the master)", name)
			}
		}
	} else {
		for _, name := range []string{"sentinel_username", "sentinel_password"} {
			if q.Has(name) {
				return s, fmt.Sprintf("option %s: only for redis+sentinel://", name)
			}
		}
	}
	s.query = q
	return s, ""
}

// hostPort checks one host[:port] of the host list and returns it as
// host:port.
func hostPort(item, port string) (string, string) {
	if item == "" {
		return "", "empty entry in the host list"
	}
	var host string
	if strings.HasPrefix(item, "[") {
		end := strings.IndexByte(item, ']')
		if end < 0 {
			return "", fmt.Sprintf("bad host %q (no ']' after an IPv6 address)", item)
		}
		host = item[1:end]
		switch after := item[end+1:]; {
		case after == "":
		case after[0] == ':':
			port = after[1:]
			if port == "" {
				return "", fmt.Sprintf("no port after ':' in %q", item)
			}
		default:
			return "", fmt.Sprintf("bad host %q", item)
		}
		if ip := net.ParseIP(host); ip == nil || !strings.Contains(host, ":") {
			return "", fmt.Sprintf("bad IPv6 address %q", host)
		}
	} else {
		switch strings.Count(item, ":") {
		case 0:
			host = item
		case 1:
			host, port, _ = strings.Cut(item, ":")
			if port == "" {
				return "", fmt.Sprintf("no port after ':' in %q", item)
			}
		default:
			return "", fmt.Sprintf("bad host %q (write an IPv6 address in brackets, [::1]:6379)", item)
		}
		if host == "" {
			return "", fmt.Sprintf("no host name in %q", item)
		}
		for _, r := range host {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
				return "", fmt.Sprintf("bad host name %q", host)
			}
		}
	}
	n, err := strconv.Atoi(port)
	if !isDigits(port) || err != nil || n < 1 || n > 65535 {
		return "", fmt.Sprintf("bad port %q in %q (want 1-65535)", port, item)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), ""
}

func parseDB(v string) (int, string) {
	db, err := strconv.Atoi(v)
	if !isDigits(v) || err != nil {
		return 0, fmt.Sprintf("bad database number %q (want a number 0 or more)", v)
	}
	return db, ""
}

func isDigits(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
