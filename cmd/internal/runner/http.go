package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/taskino/taskino/dispatcher"
	"github.com/taskino/taskino/events"
)

// maxBodyRead bounds how much of a response body is read.
const maxBodyRead = 64 << 10

// Request is the HTTP request an [HTTP] handler makes for each fire.
type Request struct {
	// Method is the request method; "" means GET, or POST when Body is
	// not empty.
	Method string
	// URL is the absolute URL to request.
	URL string
	// Headers are added to the request; a "Host" entry sets the Host the
	// request is for.
	Headers map[string]string
	// Body is the request body (none when empty).
	Body string
	// SecretHeaders names headers whose values are secrets, besides
	// DefaultSecretHeaders: dropped from a redirect to another host.
	SecretHeaders []string
}

// DefaultSecretHeaders are secret in every request: dropped, with those a
// Request names, from a redirect to another host (net/http drops only
// Authorization, WWW-Authenticate and Cookie).
var DefaultSecretHeaders = []string{"Authorization", "Cookie", "X-Api-Key"}

// SafeURL is u for logs and errors: its scheme and host only ("…" for a
// path or query, which may hold tokens), never its user info.
func SafeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(a URL that does not parse)"
	}
	out := p.Scheme + "://" + p.Host
	if (p.Path != "" && p.Path != "/") || p.RawQuery != "" {
		out += "/…"
	}
	return out
}

// HTTP returns a handler that makes req for each fire, with the
// X-Taskino-Task, X-Taskino-Fire-Id, X-Taskino-Scheduled-At,
// X-Taskino-Attempt, X-Taskino-Node (when opts.Node is set) and (when the
// payload is not empty, percent-encoded) X-Taskino-Payload headers added, using opts.Client and bounded by the
// run's context. A 2xx status is success; any other is an error "HTTP
// <status>: <start of the body>". The tail of the response body (of its
// first 64 KiB) becomes the run's output. A request that fails (bad URL,
// connection refused, the context ended) fails the run with the client's
// error, which names the URL; it wraps the context's error when the
// context ended.
func HTTP(req Request, opts Options) dispatcher.Handler {
	h := &httpHandler{req: req, opts: opts.withDefaults()}
	h.req.Headers = make(map[string]string, len(req.Headers))
	for k, v := range req.Headers {
		h.req.Headers[k] = v
	}
	h.client = redirectPolicy(*h.opts.Client, append(append([]string(nil), DefaultSecretHeaders...), req.SecretHeaders...))
	return h
}

type httpHandler struct {
	req    Request
	opts   Options
	client *http.Client // opts.Client with the redirect policy (see redirectPolicy)
}

// redirectPolicy is client, following at most 10 redirects (and its own
// CheckRedirect, if any), with the secret headers dropped on a redirect to
// another host or from https to http.
func redirectPolicy(client http.Client, secret []string) *http.Client {
	next := client.CheckRedirect
	client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if r.URL.Host != via[0].URL.Host || r.URL.Scheme != via[0].URL.Scheme {
			// Another host, or the same one in clear text.
			for _, name := range secret {
				r.Header.Del(name)
			}
		}
		if next != nil {
			return next(r, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &client
}

// Run makes the request once and records the response body.
func (h *httpHandler) Run(ctx context.Context, f events.Fire) error {
	out, err := h.run(ctx, f)
	dispatcher.SetOutput(ctx, out)
	return err
}

// run makes the request once and returns the tail of the response body.
func (h *httpHandler) run(ctx context.Context, f events.Fire) (string, error) {
	method := h.req.Method
	var body io.Reader
	if h.req.Body != "" {
		body = strings.NewReader(h.req.Body)
		if method == "" {
			method = http.MethodPost
		}
	}
	if method == "" {
		method = http.MethodGet
	}
	safe := SafeURL(h.req.URL)
	req, err := http.NewRequestWithContext(ctx, method, h.req.URL, body)
	if err != nil {
		// The same request every time: no retry can build it.
		return "", fmt.Errorf("bad request to %s: %s: %w", safe, scrub(err.Error(), h.req.URL), dispatcher.SkipRetry)
	}
	for k, v := range h.req.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Taskino-Task", f.Task)
	req.Header.Set("X-Taskino-Fire-Id", f.ID)
	req.Header.Set("X-Taskino-Scheduled-At", scheduledAt(f))
	req.Header.Set("X-Taskino-Attempt", strconv.Itoa(f.Attempt))
	if h.opts.Node != "" {
		req.Header.Set("X-Taskino-Node", h.opts.Node)
	}
	if f.Payload != "" {
		req.Header.Set("X-Taskino-Payload", url.PathEscape(f.Payload))
	}
	for name, vs := range req.Header {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				// A fire's id or task with a line break: the same on
				// every attempt.
				return "", fmt.Errorf("request to %s not sent: header %s holds a line break or NUL: %w", safe, name, dispatcher.SkipRetry)
			}
		}
	}

	log := h.opts.Logger.With().Str("task", f.Task).Str("fire", f.ID).Str("method", method).Str("url", safe).Logger()
	resp, err := h.client.Do(req)
	if err != nil {
		// A url.Error quotes the whole URL (user info, path and query),
		// and after a redirect the target's: it is rebuilt from its
		// parts, the URL as SafeURL.
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Op + " " + SafeURL(ue.URL) + ": " + ue.Err.Error()
		}
		return "", &scrubbedError{msg: scrub(msg, h.req.URL), err: err}
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
	output := tailString(data, h.opts.OutputLimit)
	log.Debug().Int("status", resp.StatusCode).Int("body_bytes", len(data)).Msg("response")

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := "HTTP " + resp.Status
		if resp.Status == "" {
			msg = "HTTP " + strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
		}
		if s := snippet(data); s != "" {
			msg += ": " + s
		}
		return output, errors.New(msg)
	}
	if readErr != nil {
		if ctx.Err() != nil && !errors.Is(readErr, ctx.Err()) {
			readErr = fmt.Errorf("%w (%v)", ctx.Err(), readErr)
		}
		return output, fmt.Errorf("HTTP %s, then reading the body: %w", resp.Status, readErr)
	}
	return output, nil
}

// scrub replaces rawURL (and its parts that may be secrets: the user
// info, the password, the path and query) in msg by SafeURL(rawURL).
func scrub(msg, rawURL string) string {
	safe := SafeURL(rawURL)
	msg = strings.ReplaceAll(msg, rawURL, safe)
	if p, err := url.Parse(rawURL); err == nil {
		if p.User != nil {
			if pw, ok := p.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
			msg = strings.ReplaceAll(msg, p.User.String(), "xxxxx")
		}
		// The URL as net/http prints it (redacted user info, re-encoded).
		msg = strings.ReplaceAll(msg, p.Redacted(), safe)
		if p.RawQuery != "" {
			msg = strings.ReplaceAll(msg, p.RawQuery, "…")
		}
		if p.Path != "" && p.Path != "/" {
			msg = strings.ReplaceAll(msg, p.Path, "/…")
		}
	}
	return msg
}

// scrubbedError is an error whose text had the secrets of a URL removed
// (scrub); it still wraps the error, for errors.Is (a context's end).
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
