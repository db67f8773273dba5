package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
)

// TestClientAddr: IPv4 addresses count alone, IPv6 ones by their /64.
func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"not an address":       "not an address",
	} {
		if got := clientAddr(in); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAuthFailuresTableBounded: a full table of addresses in their window
// takes no new one; once their windows end, a sweep makes room.
func TestAuthFailuresTableBounded(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	a := newAuthFailures(1, time.Minute, calendar.ClockFunc(func() time.Time { return now }))
	for i := range maxFailingAddrs {
		a.fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	a.fail("192.0.2.1")
	if _, blocked := a.blocked("192.0.2.1"); blocked || len(a.byAddr) != maxFailingAddrs {
		t.Fatalf("a full table took a new address (%d entries)", len(a.byAddr))
	}
	if _, blocked := a.blocked("10.0.0.1"); !blocked {
		t.Fatal("a tracked address is not blocked")
	}
	now = now.Add(time.Minute)
	a.fail("192.0.2.1")
	if _, blocked := a.blocked("192.0.2.1"); !blocked || len(a.byAddr) != 1 {
		t.Fatalf("after the windows ended: %d entries, want the new address alone", len(a.byAddr))
	}
}
