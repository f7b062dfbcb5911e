package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
)

// BoundReplies makes rdb read no string over events.MaxReadBytes from
// Redis: each longer one is skipped on the wire as it arrives, never held
// in memory, and rdb's command sees events.CutValue(its size) in its
// place. A worker's memory then no longer grows with what someone XADDs to
// its streams: an entry with a 100 MB field costs it a few bytes, and is
// dead-lettered naming the field and its size (see events.DecodeFire).
//
// Call it on a new client, before its first command, for clients that only
// taskino uses: it changes every reply read through rdb, so a program that
// reads its own large values through the same client must give taskino a
// client of its own. The taskino binaries bound theirs. Taskino itself
// never writes a longer string (specs and payloads are refused at apply
// and trigger), so nothing it reads is cut. It works for a single server,
// a Sentinel-followed master and a Cluster (for nodes the client meets
// after the call, which is all of them on a new client); other clients are
// refused with an error.
func BoundReplies(rdb redis.UniversalClient) error {
	h := boundHook{limit: events.MaxReadBytes}
	switch c := rdb.(type) {
	case *redis.Client:
		c.AddHook(h)
	case *redis.ClusterClient:
		c.OnNewNode(func(node *redis.Client) { node.AddHook(h) })
	default:
		return fmt.Errorf("bound replies: a %T; want a *redis.Client or *redis.ClusterClient", rdb)
	}
	return nil
}

// boundHook wraps each connection the client dials in a boundedConn.
type boundHook struct{ limit int64 }

func (h boundHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrapBounded(c, h.limit), nil
	}
}

func (boundHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (boundHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// wrapBounded wraps c in a boundedConn, one that also lets go-redis check
// the socket (sysBoundedConn) when c allows that.
func wrapBounded(c net.Conn, limit int64) net.Conn {
	b := newBoundedConn(c, limit)
	if sc, ok := c.(syscall.Conn); ok {
		return sysBoundedConn{b, sc}
	}
	return b
}

// boundedConn passes a connection's bytes through, except that a bulk
// string ($, RESP2 and RESP3) longer than limit is replaced by a bulk
// string holding events.CutValue(its length), and its bytes are discarded
// as they are read. It follows the protocol one element header at a time
// (every RESP element starts with a line; $, = and ! are followed by as
// many bytes as the line says, and their CRLF), so nothing else changes.
// A read that fails (a timeout, say) loses nothing: a line is taken only
// once whole, and a skip or copy resumes where it stopped, so a caller
// that keeps the connection after a timeout (go-redis's pub/sub does) stays
// in step.
type boundedConn struct {
	net.Conn
	limit int64
	rd    *bufio.Reader
	// What the next Read returns, in order: pending (a header line, or a
	// marker) first, then skipLeft bytes of a cut string are dropped, then
	// copyLeft bytes of a string body are passed through.
	pending  []byte
	skipLeft int64
	copyLeft int64
	mark     []byte // the last marker written, pending's storage then
	// inLine: the last header line did not fit bufio's buffer; the rest of
	// it is passed through before the next header is parsed.
	inLine bool
}

func newBoundedConn(c net.Conn, limit int64) *boundedConn {
	return &boundedConn{Conn: c, limit: limit, rd: bufio.NewReaderSize(c, 32<<10)}
}

// Read fills p with as many filtered bytes as are at hand: after the first,
// it goes on only while the next piece is already buffered, so it never
// waits for bytes the caller may not need yet, nor skips a cut string
// while it holds bytes for the caller.
func (c *boundedConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case len(c.pending) > 0:
			k := copy(p[n:], c.pending)
			c.pending = c.pending[k:]
			n += k
		case c.skipLeft > 0:
			if n > 0 {
				return n, nil
			}
			d, err := c.rd.Discard(int(min(c.skipLeft, 1<<30)))
			c.skipLeft -= int64(d)
			if err != nil {
				return 0, err
			}
		case c.copyLeft > 0:
			want := min(int64(len(p)-n), c.copyLeft)
			if n > 0 {
				if want = min(want, int64(c.rd.Buffered())); want == 0 {
					return n, nil
				}
			}
			k, err := c.rd.Read(p[n : n+int(want)])
			c.copyLeft -= int64(k)
			n += k
			if err != nil {
				return n, err
			}
		default:
			if !c.inLine {
				if k := c.run(p[n:]); k > 0 {
					n += k
					continue
				}
			}
			if n > 0 && !c.lineBuffered() {
				return n, nil
			}
			if err := c.next(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// holds says whether the filter has bytes of the stream it has not passed
// on, or is inside an element: the socket alone then does not say what is
// left to read.
func (c *boundedConn) holds() bool {
	return c.rd.Buffered() > 0 || len(c.pending) > 0 || c.skipLeft > 0 || c.copyLeft > 0 || c.inLine
}

// sysBoundedConn is a boundedConn over a connection with a socket, which
// go-redis peeks at to find connections the server closed while idle. It
// lets it only when the filter holds nothing; otherwise the check fails
// and go-redis drops the connection, the safe side.
type sysBoundedConn struct {
	*boundedConn
	sys syscall.Conn
}

var errHolding = errors.New("bounded connection: bytes are buffered above the socket")

// SyscallConn is the socket's, when the filter holds nothing.
func (c sysBoundedConn) SyscallConn() (syscall.RawConn, error) {
	if c.holds() {
		return nil, errHolding
	}
	return c.sys.SyscallConn()
}

// run passes through, in one copy, the whole elements already buffered
// (and the start of a body that goes on), as many as fit in p. It stops
// before a string to cut and before a line not yet whole, which next
// handles. Most replies go through here alone.
func (c *boundedConn) run(p []byte) int {
	buf, _ := c.rd.Peek(min(c.rd.Buffered(), len(p)))
	pos := 0
	for pos < len(buf) {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			break
		}
		line := buf[pos : pos+i+1]
		n, body := bodyLen(line)
		if body && line[0] == '$' && n > c.limit {
			break
		}
		pos += len(line)
		if body {
			if left := int64(len(buf) - pos); n+2 > left {
				c.copyLeft = n + 2 - left
				pos = len(buf)
				break
			}
			pos += int(n + 2)
		}
	}
	copy(p, buf[:pos])
	_, _ = c.rd.Discard(pos) // buffered: cannot fail
	return pos
}

// bodyLen says whether line is the header of an element with a body ($, =
// and !), and the body's length without its CRLF. Streamed strings ($?),
// which Redis does not send, are passed through as lines.
func bodyLen(line []byte) (int64, bool) {
	if len(line) < 4 || line[len(line)-2] != '\r' {
		return 0, false
	}
	switch line[0] {
	case '$', '=', '!':
		return parseLen(line[1 : len(line)-2]) // $-1: no body
	}
	return 0, false
}

// lineBuffered says whether a whole line is buffered, so next will not wait.
func (c *boundedConn) lineBuffered() bool {
	buf, _ := c.rd.Peek(c.rd.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

// next reads the next element header (or the rest of a long line) and
// sets what Read returns for it. It takes a line only once it is whole (or
// fills the buffer), so a failed read consumes nothing. pending may point
// into rd's buffer: Read hands it all out before it reads rd again.
func (c *boundedConn) next() error {
	for !c.lineBuffered() && c.rd.Buffered() < c.rd.Size() {
		if _, err := c.rd.Peek(c.rd.Buffered() + 1); err != nil {
			return err
		}
	}
	line, err := c.rd.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		return err // not reached: the line is buffered
	}
	c.pending = line
	if errors.Is(err, bufio.ErrBufferFull) {
		// A simple line longer than the buffer (Redis sends none): pass
		// it through as it comes.
		c.inLine = true
		return nil
	}
	if c.inLine {
		c.inLine = false
		return nil
	}
	n, ok := bodyLen(line)
	if !ok {
		return nil
	}
	if line[0] == '$' && n > c.limit {
		marker := events.CutValue(n)
		c.mark = append(c.mark[:0], '$')
		c.mark = strconv.AppendInt(c.mark, int64(len(marker)), 10)
		c.mark = append(c.mark, '\r', '\n')
		c.mark = append(c.mark, marker...)
		c.mark = append(c.mark, '\r', '\n')
		c.pending = c.mark
		c.skipLeft = n + 2
		return nil
	}
	c.copyLeft = n + 2
	return nil
}

// parseLen reads a non-negative decimal length; ok is false for anything
// else (-1, ?).
func parseLen(b []byte) (n int64, ok bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}
