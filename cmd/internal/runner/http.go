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
	return h
}

type httpHandler struct {
	req  Request
	opts Options
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
	req, err := http.NewRequestWithContext(ctx, method, h.req.URL, body)
	if err != nil {
		return "", fmt.Errorf("bad request: %w", err)
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

	log := h.opts.Logger.With().Str("task", f.Task).Str("fire", f.ID).Str("method", method).Str("url", h.req.URL).Logger()
	resp, err := h.opts.Client.Do(req)
	if err != nil {
		return "", err
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
