package api_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
)

// TestFailedAuthenticationsLimitedPerAddress: after the allowed failures
// (unknown, malformed and expired keys alike) within the window, every
// request from that address needing a key is answered 429 problem+json
// with Retry-After, without a store read, until the window ends.
// Successful requests neither count nor are limited before that, and
// another address is not affected.
func TestFailedAuthenticationsLimitedPerAddress(t *testing.T) {
	var reads atomic.Int64
	e := newEnvWith(t, start, envOptions{authFailures: 3, authFailWindow: time.Minute, keyReads: &reads})
	e.tokens["unknown"] = "ktcn_0123456789abcdef_" + strings.Repeat("ab", 32)
	e.tokens["malformed"] = "not-a-key"
	var expiring api.KeyCreated
	if status, _ := e.as("admin").do("POST", "/v1/admin/keys", map[string]any{"principal": "auditor:short", "expires_at": start.Add(time.Hour).Format(time.RFC3339)}, &expiring); status != http.StatusCreated {
		t.Fatalf("create key: %d", status)
	}
	e.tokens["expired"] = expiring.Token
	e.clock.Advance(2 * time.Hour)

	expect := func(who string, want int) {
		t.Helper()
		var p api.Problem
		var out any
		if want >= 400 {
			out = &p
		}
		status, hdr := e.as(who).do("GET", "/v1/policy", nil, out)
		if status != want {
			t.Fatalf("%s: status %d %+v, want %d", who, status, p, want)
		}
		if want == http.StatusTooManyRequests {
			if hdr.Get("Content-Type") != "application/problem+json" || p.Code != "rate_limited" || p.Status != 429 || p.Detail == "" {
				t.Fatalf("%s: 429 is not problem+json: %q %+v", who, hdr.Get("Content-Type"), p)
			}
		}
	}
	// Successes before, between and after failures do not count.
	for range 5 {
		expect("customs", http.StatusOK)
	}
	expect("unknown", http.StatusUnauthorized)
	expect("customs", http.StatusOK)
	expect("malformed", http.StatusUnauthorized)
	for range 5 {
		expect("customs", http.StatusOK)
	}
	e.clock.Advance(20 * time.Second)
	expect("expired", http.StatusUnauthorized) // the third failure within the minute

	// Blocked: a bad key and a good one alike, and no store read for either.
	before := reads.Load()
	for _, who := range []string{"unknown", "customs", "nsw", "expired"} {
		expect(who, http.StatusTooManyRequests)
	}
	if n := reads.Load() - before; n != 0 {
		t.Fatalf("%d store reads while blocked, want none", n)
	}
	_, hdr := e.as("customs").do("GET", "/v1/policy", nil, nil)
	if ra := hdr.Get("Retry-After"); ra != "40" {
		t.Fatalf("Retry-After %q, want 40 (the window began 20 s ago)", ra)
	}
	// Without a key too; the public health check needs none and is served.
	expect(anonymous, http.StatusTooManyRequests)
	if status, _ := e.as(anonymous).do("GET", "/healthz", nil, nil); status != http.StatusOK {
		t.Fatalf("healthz while blocked: %d", status)
	}

	// Another client address is not affected, and its failures are its own.
	other := e.from("127.0.0.2")
	for range 2 {
		if status, _ := other.as("unknown").do("GET", "/v1/policy", nil, nil); status != http.StatusUnauthorized {
			t.Fatalf("other address, bad key: %d, want 401", status)
		}
	}
	if status, _ := other.as("customs").do("GET", "/v1/policy", nil, nil); status != http.StatusOK {
		t.Fatalf("other address: %d, want 200", status)
	}

	// Once the window has passed, the address is served again and its
	// count starts over.
	e.clock.Advance(40 * time.Second)
	expect("customs", http.StatusOK)
	expect("unknown", http.StatusUnauthorized)
	expect("unknown", http.StatusUnauthorized)
	expect("customs", http.StatusOK)
}
