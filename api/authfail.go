package api

import (
	"net"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
)

// Failed authentications per client address. A key is 256 random bits, so
// guessing is hopeless anyway; what a stream of bad keys costs is a store
// read and a hash each, and log lines. After DefaultAuthFailures failures
// (a key unknown, wrong, revoked or expired: the store was read) from one
// address within DefaultAuthFailWindow, every request from it that needs
// a key is answered 429 without reading the store until the window that
// began at its first failure ends.
//
// 20 a minute: a client with a stale key that retries every few seconds
// is stopped within the minute, yet an office behind one NAT address has
// room for a few such clients before its colleagues are stopped too. A
// successful request neither counts nor resets the count, so a stream of
// bad keys cannot hide among good ones.
const (
	DefaultAuthFailures   = 20
	DefaultAuthFailWindow = time.Minute
)

// maxFailingAddrs bounds the table. When it is full of addresses still in
// their window, a new address is not tracked (it is served as before):
// the table protects the store from a few addresses, and a flood from more
// than this many is what the connection limit is for.
const maxFailingAddrs = 100_000

// authFailures counts failed authentications by client address. It lives
// in the server api.New builds: no state is shared between servers.
type authFailures struct {
	limit  int
	window time.Duration
	clock  calendar.Clock

	mu        sync.Mutex
	byAddr    map[string]failCount
	lastSweep time.Time
}

// failCount is one address's failures in the window that began at since.
type failCount struct {
	since time.Time
	n     int
}

func newAuthFailures(limit int, window time.Duration, clock calendar.Clock) *authFailures {
	return &authFailures{limit: limit, window: window, clock: clock, byAddr: map[string]failCount{}}
}

// blocked reports whether addr has used up its failures, and how long
// until its window ends.
func (a *authFailures) blocked(addr string) (time.Duration, bool) {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.byAddr[addr]
	if !ok || f.n < a.limit {
		return 0, false
	}
	left := f.since.Add(a.window).Sub(now)
	return left, left > 0
}

// fail counts one failed authentication from addr.
func (a *authFailures) fail(addr string) {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.byAddr[addr]
	if ok && now.Before(f.since.Add(a.window)) {
		f.n++
		a.byAddr[addr] = f
		return
	}
	if !ok && len(a.byAddr) >= maxFailingAddrs {
		// Sweeping is linear: at most once a second, so a flood of new
		// addresses cannot turn every failure into a scan.
		if now.Sub(a.lastSweep) < time.Second {
			return
		}
		a.lastSweep = now
		for k, f := range a.byAddr {
			if !now.Before(f.since.Add(a.window)) {
				delete(a.byAddr, k)
			}
		}
		if len(a.byAddr) >= maxFailingAddrs {
			return
		}
	}
	a.byAddr[addr] = failCount{since: now, n: 1}
}

// clientAddr is whom failures are counted against: the connection's peer
// address (echo's IPExtractor is ExtractIPDirect: no proxy header is
// trusted, as anyone could send one), and for IPv6 its /64, the block one
// subscriber gets, so an address per request does not evade the count.
func clientAddr(ip string) string {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return ip
	}
	if v4 := parsed.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: parsed.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
