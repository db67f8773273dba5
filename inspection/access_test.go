package inspection_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

func TestParsePrincipal(t *testing.T) {
	tests := []struct {
		name string
		want access.Principal
		ok   bool
	}{
		{"nsw", access.Principal{Name: "nsw", Role: access.RoleNSW}, true},
		{"customs", access.Principal{Name: "customs", Role: access.RoleCustoms}, true},
		{"customs:nguyen.van.a", access.Principal{Name: "customs:nguyen.van.a", Role: access.RoleCustoms}, true},
		{"policy-author:tran-b", access.Principal{Name: "policy-author:tran-b", Role: access.RolePolicyAuthor}, true},
		{"policy-approver", access.Principal{Name: "policy-approver", Role: access.RolePolicyApprover}, true},
		{"auditor:sav", access.Principal{Name: "auditor:sav", Role: access.RoleAuditor}, true},
		{"admin", access.Principal{Name: "admin", Role: access.RoleAdmin}, true},
		{"agency:moh-nifc", access.Principal{Name: "agency:moh-nifc", Role: access.RoleAgency, Agency: "moh-nifc"}, true},
		{"agency", access.Principal{}, false},
		{"agency:", access.Principal{}, false},
		{"agency:moh-nifc:le", access.Principal{}, false},
		{"Customs", access.Principal{}, false},
		{"customs:", access.Principal{}, false},
		{"customs:Nguyen", access.Principal{}, false},
		{"customs:-x", access.Principal{}, false},
		{"customs:" + strings.Repeat("a", 65), access.Principal{}, false},
		{"root", access.Principal{}, false},
		{"", access.Principal{}, false},
		{" nsw", access.Principal{}, false},
	}
	for _, tc := range tests {
		got, err := access.ParsePrincipal(tc.name)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParsePrincipal(%q) = %+v, %v; want %+v ok=%v", tc.name, got, err, tc.want, tc.ok)
		}
		if err != nil && (fault.CodeOf(err) != fault.Invalid || !strings.Contains(err.Error(), "principal")) {
			t.Errorf("ParsePrincipal(%q): error %v is not invalid 'principal'", tc.name, err)
		}
	}
}

func TestMaySee(t *testing.T) {
	a := access.Principal{Name: "agency:a", Role: access.RoleAgency, Agency: "a"}
	for _, tc := range []struct {
		p      access.Principal
		agency string
		want   bool
	}{
		{a, "a", true},
		{a, "b", false},
		{a, "", false}, // a lot routed to nobody
		{access.Principal{Name: "customs", Role: access.RoleCustoms}, "b", true},
		{access.Principal{Name: "auditor", Role: access.RoleAuditor}, "", true},
		{access.Principal{}, "a", false}, // nobody authenticated: nothing
		{access.Principal{Name: "x", Role: "root"}, "a", false},
	} {
		if got := tc.p.MaySee(tc.agency); got != tc.want {
			t.Errorf("%+v MaySee(%q) = %v, want %v", tc.p, tc.agency, got, tc.want)
		}
	}
}

type accessClock struct{ now time.Time }

func (c *accessClock) Now() time.Time { return c.now }

func newAccess(t *testing.T, cfg inspection.AccessConfig) (*inspection.Access, *store.DB, *accessClock) {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	err = db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
		return tx.PutAgency(reference.Agency{ID: "moh-nifc", Name: "NIFC"})
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := &accessClock{now: time.Date(2026, 1, 5, 9, 0, 0, 0, calendar.Vietnam())}
	cfg.Store, cfg.Clock = db, clock
	a, err := inspection.NewAccess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, db, clock
}

var keyAdmin = access.Principal{Name: "admin:test", Role: access.RoleAdmin}

func TestKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	a, _, clock := newAccess(t, inspection.AccessConfig{})
	k, err := a.CreateKey(ctx, keyAdmin, inspection.KeyRequest{Principal: "agency:moh-nifc", Note: "  lab desk "})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Token) != 86 || !strings.HasPrefix(k.Token, "ktcn_"+k.Key.ID+"_") || len(k.Key.ID) != 16 {
		t.Fatalf("token shape %q (id %q)", k.Token, k.Key.ID)
	}
	if strings.Contains(k.Key.SecretHash, k.Token[22:]) || len(k.Key.SecretHash) != 64 {
		t.Fatalf("stored hash %q", k.Key.SecretHash)
	}
	if !k.Key.ExpiresAt.Equal(clock.now.Add(access.DefaultKeyTTL)) || k.Key.CreatedBy != "admin:test" || k.Key.Note != "lab desk" {
		t.Fatalf("key %+v", k.Key)
	}
	got, err := a.Authenticate(ctx, k.Token)
	if err != nil || got.Principal != (access.Principal{Name: "agency:moh-nifc", Role: access.RoleAgency, Agency: "moh-nifc"}) {
		t.Fatalf("authenticate: %+v, %v", got, err)
	}

	// The last instant before expiry works; expiry itself does not.
	clock.now = k.Key.ExpiresAt.Add(-time.Nanosecond)
	if _, err := a.Authenticate(ctx, k.Token); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	clock.now = k.Key.ExpiresAt
	if _, err := a.Authenticate(ctx, k.Token); fault.CodeOf(err) != fault.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("at expiry: %v", err)
	}
	clock.now = k.Key.CreatedAt

	r, err := a.RevokeKey(ctx, keyAdmin, k.Key.ID)
	if err != nil || r.RevokedAt == nil || r.RevokedBy != "admin:test" || a.KeyStatus(r) != access.KeyRevoked {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if _, err := a.Authenticate(ctx, k.Token); fault.CodeOf(err) != fault.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
	if _, err := a.RevokeKey(ctx, keyAdmin, "ffffffffffffffff"); fault.CodeOf(err) != fault.NotFound {
		t.Fatalf("revoke unknown: %v", err)
	}
	list, err := a.Keys(ctx, access.SystemPrincipal())
	if err != nil || len(list) != 1 || list[0].ID != k.Key.ID || list[0].RevokedAt == nil {
		t.Fatalf("list %+v %v", list, err)
	}
}

func TestAuthenticateRefusals(t *testing.T) {
	ctx := context.Background()
	a, _, _ := newAccess(t, inspection.AccessConfig{})
	k, err := a.CreateKey(ctx, keyAdmin, inspection.KeyRequest{Principal: "nsw"})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	for name, tok := range map[string]string{
		"empty":            "",
		"short":            k.Token[:85],
		"long":             k.Token + "0",
		"other prefix":     "ktcx" + k.Token[4:],
		"no separator":     k.Token[:21] + "-" + k.Token[22:],
		"upper case":       strings.ToUpper(k.Token),
		"secret changed":   flip(k.Token, 60),
		"id changed":       flip(k.Token, 10),
		"secret of the id": "ktcn_" + k.Key.ID + "_" + k.Key.SecretHash, // the stored hash is no key
	} {
		if _, err := a.Authenticate(ctx, tok); fault.CodeOf(err) != fault.Unauthenticated {
			t.Errorf("%s: %v, want unauthenticated", name, err)
		} else if strings.Contains(err.Error(), k.Token[22:]) {
			t.Errorf("%s: the error echoes the secret", name)
		}
	}
}

func TestCreateKeysValidation(t *testing.T) {
	ctx := context.Background()
	a, db, clock := newAccess(t, inspection.AccessConfig{MaxKeyTTL: 30 * 24 * time.Hour, DefaultKeyTTL: 7 * 24 * time.Hour})
	before, _ := db.Digest()
	for name, tc := range map[string]struct {
		reqs  []inspection.KeyRequest
		field string
	}{
		"none":           {nil, "keys"},
		"unknown agency": {[]inspection.KeyRequest{{Principal: "nsw"}, {Principal: "agency:nobody"}}, "principal"},
		"bad role":       {[]inspection.KeyRequest{{Principal: "nsw"}, {Principal: "root"}}, "principal"},
		"past":           {[]inspection.KeyRequest{{Principal: "nsw", ExpiresAt: clock.now}}, "expires_at"},
		"too long":       {[]inspection.KeyRequest{{Principal: "nsw", ExpiresAt: clock.now.Add(31 * 24 * time.Hour)}}, "expires_at"},
		"control note":   {[]inspection.KeyRequest{{Principal: "nsw", Note: "a\x00b"}}, "note"},
	} {
		_, err := a.CreateKeys(ctx, keyAdmin, tc.reqs)
		var e *fault.Error
		if !errors.As(err, &e) || e.Code != fault.Invalid || e.Field != tc.field {
			t.Errorf("%s: %v, want invalid %s", name, err, tc.field)
		}
	}
	// All or nothing: the valid keys beside a bad one were not written.
	if after, _ := db.Digest(); after != before {
		t.Fatal("a refused batch wrote keys")
	}
	ks, err := a.CreateKeys(ctx, keyAdmin, []inspection.KeyRequest{{Principal: "nsw"}, {Principal: "agency:moh-nifc", ExpiresAt: clock.now.Add(30 * 24 * time.Hour)}})
	if err != nil || len(ks) != 2 || !ks[0].Key.ExpiresAt.Equal(clock.now.Add(7*24*time.Hour)) || ks[0].Key.ID == ks[1].Key.ID {
		t.Fatalf("batch: %+v %v", ks, err)
	}
	if _, err := inspection.NewAccess(inspection.AccessConfig{Store: db, Clock: clock, DefaultKeyTTL: 2 * time.Hour, MaxKeyTTL: time.Hour}); err == nil {
		t.Fatal("a default lifetime above the maximum was accepted")
	}
}

// A random source that fails must fail the request, not mint a weak key.
func TestCreateKeyRandomFailure(t *testing.T) {
	a, _, _ := newAccess(t, inspection.AccessConfig{Random: bytes.NewReader(make([]byte, 10))})
	if _, err := a.CreateKey(context.Background(), keyAdmin, inspection.KeyRequest{Principal: "nsw"}); err == nil {
		t.Fatal("a short random source gave a key")
	}
}

// TestRevokedKeyRefusedWhileCached: Authenticate keeps the keys it read,
// and a revocation must still be refused from the next request on, also
// while other requests are authenticating with the key during it (their
// reads race the revoking commit). Every authentication that begins after
// RevokeKey has returned fails; run under -race.
func TestRevokedKeyRefusedWhileCached(t *testing.T) {
	ctx := context.Background()
	a, _, _ := newAccess(t, inspection.AccessConfig{})
	for round := range 20 {
		k, err := a.CreateKey(ctx, keyAdmin, inspection.KeyRequest{Principal: "agency:moh-nifc"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(ctx, k.Token); err != nil {
			t.Fatal(err)
		}
		var revoked atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					after := revoked.Load()
					_, err := a.Authenticate(ctx, k.Token)
					if after && err == nil {
						errs <- fmt.Errorf("round %d: key authenticated after its revocation returned", round)
						return
					}
					if err != nil && fault.CodeOf(err) != fault.Unauthenticated {
						errs <- err
						return
					}
				}
			}()
		}
		if _, err := a.RevokeKey(ctx, keyAdmin, k.Key.ID); err != nil {
			t.Fatal(err)
		}
		revoked.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(ctx, k.Token); fault.CodeOf(err) != fault.Unauthenticated {
			t.Fatalf("round %d: revoked key: %v", round, err)
		}
	}
}

// BenchmarkAuthenticateUnderWrites authenticates a key (in parallel, as
// every request does) on a store on disk while decisions commit: without
// the key cache each call opens a read transaction, which waits for the
// commits before it to land.
func BenchmarkAuthenticateUnderWrites(b *testing.B) {
	db, err := store.Open(store.Options{Dir: b.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	onRecord(b, db)
	clock := calendar.SystemClock{}
	a, err := inspection.NewAccess(inspection.AccessConfig{Store: db, Clock: clock, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: mustPolicy(b), Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k, err := a.CreateKey(ctx, keyAdmin, inspection.KeyRequest{Principal: "nsw"})
	if err != nil {
		b.Fatal(err)
	}
	var writers sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for ctx.Err() == nil {
				_, _ = svc.Decide(ctx, access.SystemPrincipal(), benchDeclaration(next.Add(1)))
			}
		}()
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Authenticate(context.Background(), k.Token); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cancel()
	writers.Wait()
}
