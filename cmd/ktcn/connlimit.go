package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxConns bounds the connections serve holds open at once. Each is
// a file descriptor and two goroutine buffers; 20,000 half-open ones ran
// the process out of descriptors (issue 15). 1024 is far above what NSW,
// the agencies and customs keep open (loadgen's 64 clients are the
// largest we know of), and with badger's own files stays within the
// 4096 descriptors of a conservative hard limit.
const DefaultMaxConns = 1024

// Server timeouts: how long a connection may hold a slot without doing
// its part. A client that sends nothing, or its headers slowly, is cut at
// readHeaderTimeout; a body at readTimeout (a 1 MiB body in 30 s is
// 35 kB/s); a reader of the answer at writeTimeout. A keep-alive
// connection waits idleTimeout for its next request, but gives its slot
// up at once when a new connection needs it (connLimiter).
type serverTimeouts struct {
	readHeader, read, write, idle time.Duration
}

func defaultTimeouts() serverTimeouts {
	return serverTimeouts{readHeader: 10 * time.Second, read: 30 * time.Second, write: 30 * time.Second, idle: 2 * time.Minute}
}

// maxHeaderBytes: a request's headers are a key and a few short fields;
// net/http's default of 1 MiB per connection, times the connection limit,
// would be a gigabyte of headers.
const maxHeaderBytes = 64 << 10

// connLimiter is a listener that holds at most max connections open.
// Unlike golang.org/x/net/netutil.LimitListener, which waits for a free
// slot before it accepts, it accepts first and, when every slot is taken,
// closes the connection that has been idle (between keep-alive requests)
// the longest: a client with a request to make is served before one that
// has nothing to say. When no connection is idle, it waits for one to end
// (a client closing, or a timeout above). It learns which connections are
// idle from the server's ConnState hook.
type connLimiter struct {
	net.Listener
	slots chan struct{} // one token per open connection

	mu   sync.Mutex
	idle map[*limitedConn]time.Time // idle since

	closeOnce sync.Once
	done      chan struct{}
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, slots: make(chan struct{}, max), idle: map[*limitedConn]time.Time{}, done: make(chan struct{})}
}

// Accept returns the next connection once it has a slot.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.closeLongestIdle()
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
	return &limitedConn{Conn: c, l: l}, nil
}

func (l *connLimiter) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// closeLongestIdle closes the connection idle the longest, if any; its
// Close gives its slot back.
func (l *connLimiter) closeLongestIdle() {
	l.mu.Lock()
	var (
		oldest *limitedConn
		since  time.Time
	)
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

// connState is the server's ConnState hook: it keeps the set of idle
// connections.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateIdle {
		l.idle[lc] = time.Now()
	} else {
		delete(l.idle, lc)
	}
}

// limitedConn gives its slot back when it is closed, once.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return err
}
