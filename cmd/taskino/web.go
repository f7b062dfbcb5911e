package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/taskino/taskino/cmd/taskino/console"
	"github.com/taskino/taskino/store"
)

// web: the console over HTTP, until SIGINT/SIGTERM.

type webFlags struct {
	addr, token, tokenFile, namespaces, prefix string
	readOnly                                   bool
}

func webFlagSet(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.web.addr, "http", "127.0.0.1:8080", "address to serve the console on; anything but a loopback address needs --auth-token or --auth-token-file")
	fs.StringVar(&c.web.token, "auth-token", "", "token every request must carry (the login page sets it as a cookie; or Authorization: Bearer TOKEN)")
	fs.StringVar(&c.web.tokenFile, "auth-token-file", "", "file holding the token (keeps it out of ps)")
	fs.BoolVar(&c.web.readOnly, "read-only", false, "show no actions: no trigger, pause, resume, replay or delete")
	fs.StringVar(&c.web.namespaces, "namespaces", "", "comma-separated namespaces the switcher offers (default: --namespace alone)")
	fs.StringVar(&c.web.prefix, "prefix", "", "path prefix to serve under, such as /taskino (behind a proxy)")
}

// consoleConfig reads the web flags into a console configuration.
func (c *cli) consoleConfig() (console.Config, error) {
	f := c.web
	token := f.token
	if f.tokenFile != "" {
		if token != "" {
			return console.Config{}, usagef("web: give --auth-token or --auth-token-file, not both")
		}
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return console.Config{}, fmt.Errorf("web: --auth-token-file: %v", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return console.Config{}, fmt.Errorf("web: --auth-token-file %s is empty", f.tokenFile)
		}
	}
	if err := console.CheckPrefix(strings.TrimSuffix(f.prefix, "/")); err != nil {
		return console.Config{}, usagef("web: --prefix %v", err)
	}
	if !console.Loopback(f.addr) && token == "" {
		return console.Config{}, usagef("web: --http %q is reachable from other machines: give --auth-token or --auth-token-file, or listen on 127.0.0.1", f.addr)
	}
	nss := []string{c.Namespace}
	for _, ns := range strings.Split(f.namespaces, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" || ns == c.Namespace {
			continue
		}
		if err := store.ValidateNamespace(ns); err != nil {
			return console.Config{}, usagef("web: --namespaces: %v", err)
		}
		nss = append(nss, ns)
	}
	return console.Config{Redis: c.rdb, Namespaces: nss, Prefix: strings.TrimSuffix(f.prefix, "/"), ReadOnly: f.readOnly, AuthToken: token, Who: "taskino-web:" + strings.TrimPrefix(who(), "taskino-cli:")}, nil
}

// startConsole listens on addr and serves the console until stop; it
// returns the console's URL.
func startConsole(cfg console.Config, addr string) (url string, stop func(), err error) {
	con, err := console.New(cfg)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = con.Close()
		return "", nil, fmt.Errorf("web: --http %s: %v", addr, err)
	}
	srv := &http.Server{Handler: con, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	host := ln.Addr().String()
	if h, p, err := net.SplitHostPort(host); err == nil && (h == "::" || h == "0.0.0.0") {
		host = net.JoinHostPort("localhost", p)
	}
	return "http://" + host + cfg.Prefix + "/", func() {
		_ = con.Close() // ends the live streams first
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}, nil
}

func runWeb(ctx context.Context, c *cli, args []string) error {
	if err := want("web", args, 0, 0, "no arguments"); err != nil {
		return err
	}
	if _, err := c.consoleConfig(); err != nil { // flags first: no Redis needed to refuse them
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	cfg, err := c.consoleConfig()
	if err != nil {
		return err
	}
	url, stop, err := startConsole(cfg, c.web.addr)
	if err != nil {
		return err
	}
	mode := ""
	if cfg.ReadOnly {
		mode = ", read-only"
	}
	fmt.Fprintf(c.stderr, "taskino web: console at %s (namespaces %s%s); Ctrl-C stops\n", url, strings.Join(cfg.Namespaces, ", "), mode)
	<-ctx.Done()
	stop()
	fmt.Fprintln(c.stderr, "taskino web: stopped")
	return nil
}
