package store

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskino/taskino/events"
	"github.com/taskino/taskino/store/redistest"
)

// readerConn is a net.Conn whose reads come from r.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// The filter changes only the bulk strings over its limit, on any RESP2 or
// RESP3 element, even when the bytes arrive one at a time.
func TestBoundedConnCutsOnlyLongBulkStrings(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("y", 11)
	in := "*3\r\n$3\r\nabc\r\n$11\r\n" + long + "\r\n$-1\r\n" + // array: short, long, null
		"%1\r\n+ok\r\n=15\r\ntxt:" + long + "\r\n" + // map with a verbatim string (not cut)
		"$10\r\n$20\r\n\r\n:1\r\n\r\n" + // a body that looks like headers, exactly at the limit
		"!11\r\n" + long + "\r\n" + // bulk error (not cut)
		">2\r\n$7\r\nmessage\r\n$12\r\n" + long + "z\r\n" + // push with a long string
		":42\r\n_\r\n,1.5\r\n#t\r\n(12345\r\n-ERR x\r\n"
	mark := func(n int64) string { m := events.CutValue(n); return "$" + strconv.Itoa(len(m)) + "\r\n" + m + "\r\n" }
	want := "*3\r\n$3\r\nabc\r\n" + mark(11) + "$-1\r\n" +
		"%1\r\n+ok\r\n=15\r\ntxt:" + long + "\r\n" +
		"$10\r\n$20\r\n\r\n:1\r\n\r\n" +
		"!11\r\n" + long + "\r\n" +
		">2\r\n$7\r\nmessage\r\n" + mark(12) +
		":42\r\n_\r\n,1.5\r\n#t\r\n(12345\r\n-ERR x\r\n"
	for _, from := range []string{"whole", "byte by byte"} {
		for _, size := range []int{1, 2, 3, 5, 7, 13, 64, 4096} {
			var r io.Reader = strings.NewReader(in)
			if from == "byte by byte" {
				r = iotest.OneByteReader(r)
			}
			c := newBoundedConn(readerConn{r: r}, 10)
			var got []byte
			buf := make([]byte, size)
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s, reads of %d: %v", from, size, err)
				}
			}
			if string(got) != want {
				t.Errorf("%s, reads of %d:\n got %q\nwant %q", from, size, got, want)
			}
		}
	}
}

// timeoutAt reads r, failing once with a timeout when it reaches byte at
// (before any byte of that read is given), as a read deadline would.
type timeoutAt struct {
	r    io.Reader
	at   int
	off  int
	done bool
}

var errTestTimeout = errors.New("i/o timeout")

func (t *timeoutAt) Read(p []byte) (int, error) {
	if !t.done && t.off <= t.at && t.off+len(p) > t.at {
		if t.off == t.at {
			t.done = true
			return 0, errTestTimeout
		}
		p = p[:t.at-t.off]
	}
	n, err := t.r.Read(p)
	t.off += n
	return n, err
}

// A read that times out anywhere (in a header, a body, a string being
// skipped) loses nothing: the reads after it go on from the same byte, as
// go-redis's pub/sub expects when it keeps a connection after a timeout.
func TestBoundedConnResumesAfterATimeout(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("y", 40)
	in := "*3\r\n$3\r\nabc\r\n$40\r\n" + long + "\r\n+ok\r\n>2\r\n$7\r\nmessage\r\n$5\r\nhello\r\n"
	m := events.CutValue(40)
	want := "*3\r\n$3\r\nabc\r\n$" + strconv.Itoa(len(m)) + "\r\n" + m + "\r\n+ok\r\n>2\r\n$7\r\nmessage\r\n$5\r\nhello\r\n"
	for at := 0; at < len(in); at++ {
		for _, size := range []int{1, 4, 4096} {
			c := newBoundedConn(readerConn{r: &timeoutAt{r: iotest.HalfReader(strings.NewReader(in)), at: at}}, 10)
			var got []byte
			buf := make([]byte, size)
			timeouts := 0
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if errors.Is(err, errTestTimeout) {
					timeouts++
					continue
				}
				if err != nil {
					t.Fatalf("timeout at byte %d, reads of %d: %v", at, size, err)
				}
			}
			if string(got) != want || timeouts != 1 {
				t.Errorf("timeout at byte %d, reads of %d (%d timeouts seen):\n got %q\nwant %q", at, size, timeouts, got, want)
			}
		}
	}
}

// A bounded connection over a socket lets go-redis check the socket while
// it holds nothing, so a connection the server closed while idle is
// replaced before a command is sent on it, even with no retries.
func TestBoundedConnKeepsTheIdleCheck(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 1, MaxRetries: -1, ClientName: "bounded"})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := BoundReplies(rdb); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	admin := srv.Client(t)
	for i := 0; i < 3; i++ {
		if n, err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Int(); err != nil || n != 1 {
			t.Fatalf("CLIENT KILL: %d killed (%v), want the bounded client's one connection", n, err)
		}
		// Wait until the server has closed it: the killed client is gone
		// from CLIENT LIST.
		for strings.Contains(admin.ClientList(ctx).Val(), "name=bounded") {
			time.Sleep(time.Millisecond)
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("PING after the server closed the idle connection: %v; want the pool to have replaced it", err)
		}
	}
	c := wrapBounded(&net.TCPConn{}, 10)
	if _, ok := c.(syscall.Conn); !ok {
		t.Error("a bounded TCP connection is not a syscall.Conn: go-redis would not check it")
	}
	b := c.(sysBoundedConn)
	b.pending = []byte("x")
	if _, err := b.SyscallConn(); err == nil {
		t.Error("a bounded connection holding bytes handed out its socket")
	}
}

// A bounded client of a real server reads a string over
// events.MaxReadBytes as CutValue(its size), in a plain reply, a stream
// entry and a script's reply, over RESP2 and RESP3, and the connection
// stays in step for the commands after.
func TestBoundRepliesOnARealServer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	big := strings.Repeat("x", events.MaxReadBytes+1)
	atLimit := strings.Repeat("z", events.MaxReadBytes)
	seed := srv.Client(t)
	if err := seed.MSet(ctx, "big", big, "edge", atLimit, "small", "s").Err(); err != nil {
		t.Fatal(err)
	}
	if err := seed.XAdd(ctx, &redis.XAddArgs{Stream: "st", ID: "1-1", Values: []any{"task", "t", "payload", big, "id", "x"}}).Err(); err != nil {
		t.Fatal(err)
	}
	cut := events.CutValue(int64(len(big)))
	for _, proto := range []int{2, 3} {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: proto, PoolSize: 1})
		t.Cleanup(func() { _ = rdb.Close() })
		if err := BoundReplies(rdb); err != nil {
			t.Fatal(err)
		}
		if v := rdb.Get(ctx, "big").Val(); v != cut {
			t.Errorf("RESP%d: GET big gave %d bytes (%.30q); want %q", proto, len(v), v, cut)
		}
		if v := rdb.Get(ctx, "edge").Val(); v != atLimit {
			t.Errorf("RESP%d: GET of exactly MaxReadBytes gave %d bytes; want it whole", proto, len(v))
		}
		if v, err := rdb.MGet(ctx, "small", "big", "small").Result(); err != nil || v[0] != "s" || v[1] != cut || v[2] != "s" {
			t.Errorf("RESP%d: MGET gave %.40q (%v)", proto, v, err)
		}
		msgs, err := rdb.XRange(ctx, "st", "-", "+").Result()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("RESP%d: XRANGE: %v %v", proto, msgs, err)
		}
		if v := msgs[0].Values; v["task"] != "t" || v["payload"] != cut || v["id"] != "x" {
			t.Errorf("RESP%d: entry fields %.60q; want task t, payload cut, id x", proto, v)
		}
		if _, err := events.DecodeFire(msgs[0].ID, map[string]string{"task": "t", "payload": cut}); err == nil ||
			!strings.Contains(err.Error(), `"payload"`) || !strings.Contains(err.Error(), "1048577 bytes") {
			t.Errorf("RESP%d: decoding the cut entry: %v; want an error naming payload and its size", proto, err)
		}
		res, err := rdb.Eval(ctx, "return {redis.call('GET', KEYS[1]), 'after'}", []string{"big"}).StringSlice()
		if err != nil || len(res) != 2 || res[0] != cut || res[1] != "after" {
			t.Errorf("RESP%d: script reply %.40q (%v)", proto, res, err)
		}
		if v := rdb.Get(ctx, "small").Val(); v != "s" {
			t.Errorf("RESP%d: the next command read %q; the connection is out of step", proto, v)
		}
	}
	if err := BoundReplies(redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr}})); err == nil {
		t.Error("a Ring client was bounded; want an error saying which clients can be")
	}
}

// cycle reads s over and over.
type cycle struct {
	s   string
	off int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := copy(p, c.s[c.off:])
	c.off = (c.off + n) % len(c.s)
	return n, nil
}

// The filter's cost on a typical read: an XREADGROUP reply of 100 fire
// entries, read through one long-lived connection, against the same
// bytes read unfiltered.
func BenchmarkBoundedConn(b *testing.B) {
	var reply strings.Builder
	reply.WriteString("*1\r\n*2\r\n$22\r\ntaskino:{b}:fires:default\r\n*100\r\n")
	for i := 0; i < 100; i++ {
		reply.WriteString("*2\r\n$15\r\n1764892800000-0\r\n*8\r\n$1\r\nv\r\n$1\r\n1\r\n$4\r\ntask\r\n$8\r\nbackup-7\r\n$2\r\nid\r\n$22\r\nbackup-7@1764892800000\r\n$2\r\nat\r\n$13\r\n1764892800000\r\n")
	}
	in := reply.String()
	out := make([]byte, len(in))
	for _, bounded := range []bool{false, true} {
		name := map[bool]string{false: "raw", true: "bounded"}[bounded]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			// go-redis reads through a 32 KiB bufio.Reader of its own.
			var r io.Reader = bufio.NewReaderSize(&cycle{s: in}, 32<<10)
			if bounded {
				r = bufio.NewReaderSize(newBoundedConn(readerConn{r: &cycle{s: in}}, events.MaxReadBytes), 32<<10)
			}
			for b.Loop() {
				if _, err := io.ReadFull(r, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
