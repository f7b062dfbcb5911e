package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

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
		return newBoundedConn(c, h.limit), nil
	}
}

func (boundHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (boundHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// boundedConn passes a connection's bytes through, except that a bulk
// string ($, RESP2 and RESP3) longer than limit is replaced by a bulk
// string holding events.CutValue(its length), and its bytes are discarded
// as they are read. It follows the protocol one element header at a time
// (every RESP element starts with a line; $, = and ! are followed by as
// many bytes as the line says, and their CRLF), so nothing else changes.
// It deliberately does not expose the underlying connection (no
// SyscallConn or NetConn): a peek at the socket would see bytes this
// reader has buffered as not yet read.
type boundedConn struct {
	net.Conn
	limit int64
	rd    *bufio.Reader
	// What the next Read returns, in order: pending (a header line, or a
	// marker) first, then copyLeft bytes of a string body passed through.
	pending  []byte
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
// waits for bytes the caller may not need yet.
func (c *boundedConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(c.pending) > 0 {
			k := copy(p[n:], c.pending)
			c.pending = c.pending[k:]
			n += k
			continue
		}
		if c.copyLeft > 0 {
			want := min(int64(len(p)-n), c.copyLeft)
			if n > 0 {
				if want = min(want, int64(c.rd.Buffered())); want == 0 {
					break
				}
			}
			k, err := c.rd.Read(p[n : n+int(want)])
			c.copyLeft -= int64(k)
			n += k
			if err != nil {
				return n, err
			}
			continue
		}
		if !c.inLine {
			if k := c.run(p[n:]); k > 0 {
				n += k
				continue
			}
		}
		if n > 0 && !c.lineBuffered() {
			break
		}
		if err := c.next(); err != nil {
			return n, err
		}
	}
	return n, nil
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

// bodyLen says whether line is the header of an element with a body ($, =,
// ! and a streamed string's ; chunk), and the body's length without its
// CRLF.
func bodyLen(line []byte) (int64, bool) {
	if len(line) < 4 || line[len(line)-2] != '\r' {
		return 0, false
	}
	switch line[0] {
	case '$', '=', '!', ';':
		return parseLen(line[1 : len(line)-2]) // $-1, $?: no body
	}
	return 0, false
}

// lineBuffered says whether a whole line is buffered, so next will not wait.
func (c *boundedConn) lineBuffered() bool {
	buf, _ := c.rd.Peek(c.rd.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

// next reads the next element header (or the rest of a long line) and
// sets what Read returns for it. pending may point into rd's buffer: Read
// hands it all out before it reads rd again.
func (c *boundedConn) next() error {
	line, err := c.rd.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A simple line longer than the buffer (Redis sends none): pass
		// it through as it comes.
		c.pending = line
		c.inLine = true
		return nil
	}
	if err != nil {
		// go-redis drops a connection whose read failed, so the part of a
		// line read before the error is of no use.
		return err
	}
	c.pending = line
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
		return c.discard(n + 2)
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

// discard reads n bytes and drops them, in pieces, so a huge string never
// sits in memory.
func (c *boundedConn) discard(n int64) error {
	for n > 0 {
		step := min(n, 1<<30)
		d, err := c.rd.Discard(int(step))
		n -= int64(d)
		if err != nil {
			return err
		}
	}
	return nil
}
