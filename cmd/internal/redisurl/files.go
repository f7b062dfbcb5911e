package redisurl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// WithPasswordFile returns rawURL with the option password_file=path
// added (see Open): the password read from that file.
func WithPasswordFile(rawURL, path string) string {
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + "password_file=" + url.QueryEscape(path)
}

// PlainServer says, for a TLS URL (rediss://...) whose server did not
// answer, whether its first host answers plain Redis instead: then it
// returns the problem in words ("" otherwise, and for a URL without TLS).
// It dials the host without TLS, sends PING, and reads the first line.
func PlainServer(ctx context.Context, rawURL string) string {
	s, problem := parse(rawURL)
	if problem != "" || s == nil || !s.tls || len(s.hosts) == 0 {
		return ""
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.hosts[0])
	if err != nil {
		return ""
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return ""
	}
	line := make([]byte, 64)
	n, _ := conn.Read(line)
	reply := string(line[:n])
	if strings.HasPrefix(reply, "+PONG") || strings.HasPrefix(reply, "-NOAUTH") || strings.HasPrefix(reply, "-ERR") {
		return fmt.Sprintf("%s answers plain Redis, not TLS; use %s:// for it, or enable TLS on the server", s.hosts[0], strings.Replace(s.scheme, "rediss", "redis", 1))
	}
	return ""
}

// readPassword reads a password file: its content without a trailing
// newline. The problem never quotes the content.
func readPassword(path string) (string, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Sprintf("cannot read %s: %v", path, errors.Unwrap(err))
	}
	pw := strings.TrimRight(string(b), "\r\n")
	switch {
	case pw == "":
		return "", path + " is empty"
	case strings.ContainsAny(pw, "\r\n"):
		return "", path + " holds more than one line; want the password alone"
	}
	return pw, ""
}

// tlsFiles adds the CA (ca_file) and client certificate (cert_file,
// key_file) to cfg; a problem names the file and what is wrong with it.
func (s *spec) tlsFiles(cfg *tls.Config) string {
	if cfg == nil {
		return ""
	}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return fmt.Sprintf("option ca_file: cannot read %s: %v", s.caFile, errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Sprintf("option ca_file: %s holds no PEM certificate", s.caFile)
		}
		cfg.RootCAs = pool
	}
	if s.certFile != "" {
		pair, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
		if err != nil {
			return fmt.Sprintf("options cert_file and key_file: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return ""
}
