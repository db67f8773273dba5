package store_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

// Tamper tests (issue 8, acceptance 2): whoever holds the data dir alters,
// deletes or reorders one audit entry, or alters or deletes one stored
// decision, with raw badger writes; verification fails and names the
// position. An untouched store verifies.

type auditClock struct{ now atomic.Pointer[time.Time] }

func (c *auditClock) Now() time.Time { return *c.now.Load() }

type auditRig struct {
	db        *store.DB
	svc       *inspection.Service
	entries   []audit.Entry
	decisions []inspection.Decision
}

// newAuditRig fills a store through the use cases: the policy, four
// decided lots, a result, an alert and an override.
func newAuditRig(t *testing.T) *auditRig {
	t.Helper()
	ctx := context.Background()
	db := openMemory(t)
	clock := &auditClock{}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam())
	clock.now.Store(&now)
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: clock,
		QuotaKeys: quota.MasterSecret(bytes.Repeat([]byte{0x5a}, 32)), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r := &auditRig{db: db, svc: svc}
	for i := range 4 {
		no, q := 1, 50.0
		res, err := svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: fmt.Sprintf("T-%d", i), ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: fmt.Sprintf("Sữa %d", i), Manufacturer: "Tamper Dairy",
				Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}}})
		if err != nil {
			t.Fatal(err)
		}
		r.decisions = append(r.decisions, res.Decisions[0])
	}
	if _, err := svc.RecordResult(ctx, as("agency:"+r.decisions[0].Agency), r.decisions[0].AssignmentID, inspection.ResultInput{Outcome: "pass",
		InspectedAt: now.Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RaiseAlert(ctx, as("customs"), inspection.AlertInput{Authority: "RASFF", Reference: "T-A", IssuedAt: now.Format(time.RFC3339),
		Reason: "Listeria", Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: "Other", Origin: "NZ"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Override(ctx, access.Principal{Name: "customs:x", Role: access.RoleCustoms}, r.decisions[1].ID, inspection.OverrideInput{ReasonCode: "duplicate_declaration",
		ReasonText: "twice", Inspect: new(bool)}); err != nil {
		t.Fatal(err)
	}
	r.entries = r.readEntries(t)
	if len(r.entries) != 8 {
		t.Fatalf("setup: %d entries", len(r.entries))
	}
	return r
}

func (r *auditRig) readEntries(t *testing.T) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	err := r.db.View(context.Background(), func(tx inspection.ReadTx) error {
		return tx.AuditEntries(1, func(_ uint64, e audit.Entry, bad error) error {
			out = append(out, e)
			return bad
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (r *auditRig) putEntry(t *testing.T, at uint64, e audit.Entry) {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutRaw(r.db, store.AuditEntryKey(at), store.EncodeRaw(b)); err != nil {
		t.Fatal(err)
	}
}

// coveredBy is the last entry covering a record.
func (r *auditRig) coveredBy(kind audit.RecordKind, id string) uint64 {
	var seq uint64
	for _, e := range r.entries {
		for _, d := range e.Records {
			if d.Kind == kind && d.ID == id {
				seq = e.Seq
			}
		}
	}
	return seq
}

// wantBreak verifies and expects a failure at position seq whose message
// says what.
func (r *auditRig) wantBreak(t *testing.T, seq uint64, what string, cps ...audit.Checkpoint) {
	t.Helper()
	_, err := r.svc.VerifyAudit(context.Background(), access.SystemPrincipal(), cps)
	var b *audit.Break
	if !errors.As(err, &b) || !errors.Is(err, audit.ErrMismatch) || b.Seq != seq || !strings.Contains(err.Error(), what) {
		t.Fatalf("verify: %v; want a break at entry %d saying %q", err, seq, what)
	}
}

func TestAuditUntouchedStoreVerifies(t *testing.T) {
	r := newAuditRig(t)
	rep, err := r.svc.VerifyAudit(context.Background(), access.SystemPrincipal(), nil)
	if err != nil || rep.Entries != 8 || rep.Head.Seq != 8 || rep.Head.Hash != r.entries[7].Hash {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestAuditTamperWithOneEntry(t *testing.T) {
	n := uint64(8)
	for k := uint64(1); k <= n; k++ {
		t.Run(fmt.Sprintf("alter entry %d", k), func(t *testing.T) {
			r := newAuditRig(t)
			e := r.entries[k-1]
			e.Actor = "customs:someone-else"
			r.putEntry(t, k, e)
			r.wantBreak(t, k, "altered")
		})
		t.Run(fmt.Sprintf("alter entry %d and its hash", k), func(t *testing.T) {
			r := newAuditRig(t)
			e := r.entries[k-1]
			e.At = e.At.Add(-time.Hour) // backdated
			var prev [32]byte
			if k > 1 {
				copy(prev[:], mustHex(t, r.entries[k-2].Hash))
			}
			sum, err := audit.Hash(prev, e)
			if err != nil {
				t.Fatal(err)
			}
			e.Hash = hex.EncodeToString(sum[:])
			r.putEntry(t, k, e)
			r.wantBreak(t, k, "altered")
		})
		t.Run(fmt.Sprintf("alter a digest in entry %d", k), func(t *testing.T) {
			r := newAuditRig(t)
			e := r.entries[k-1]
			e.Records[0].SHA256 = strings.Repeat("0", 64)
			r.putEntry(t, k, e)
			r.wantBreak(t, k, "altered")
		})
		t.Run(fmt.Sprintf("garble entry %d", k), func(t *testing.T) {
			r := newAuditRig(t)
			if err := store.PutRaw(r.db, store.AuditEntryKey(k), store.EncodeRaw([]byte(`{"seq":`))); err != nil {
				t.Fatal(err)
			}
			r.wantBreak(t, k, "cannot be read")
		})
		t.Run(fmt.Sprintf("delete entry %d", k), func(t *testing.T) {
			r := newAuditRig(t)
			if err := store.DeleteRaw(r.db, store.AuditEntryKey(k)); err != nil {
				t.Fatal(err)
			}
			r.wantBreak(t, k, "deleted")
		})
		if k < n {
			t.Run(fmt.Sprintf("swap entries %d and %d", k, k+1), func(t *testing.T) {
				r := newAuditRig(t)
				r.putEntry(t, k, r.entries[k])
				r.putEntry(t, k+1, r.entries[k-1])
				r.wantBreak(t, k, "reordered")
			})
		}
	}
	t.Run("alter the head", func(t *testing.T) {
		r := newAuditRig(t)
		b, _ := json.Marshal(audit.Head{Seq: 8, Hash: r.entries[6].Hash})
		if err := store.PutRaw(r.db, store.AuditHeadKey(), store.EncodeRaw(b)); err != nil {
			t.Fatal(err)
		}
		r.wantBreak(t, 8, "head")
	})
}

func TestAuditTamperWithOneDecision(t *testing.T) {
	r0 := newAuditRig(t)
	for i, d := range r0.decisions {
		seq := r0.coveredBy(audit.RecordDecision, d.ID)
		if seq == 0 {
			t.Fatalf("decision %d is covered by no entry", i)
		}
		t.Run(fmt.Sprintf("alter decision %d", i), func(t *testing.T) {
			r := newAuditRig(t)
			raw, err := store.GetRaw(r.db, store.DecisionKey(d.ID))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(raw[1:], &m); err != nil {
				t.Fatal(err)
			}
			m["inspect"] = false // the lot quietly released
			b, _ := json.Marshal(m)
			if err := store.PutRaw(r.db, store.DecisionKey(d.ID), store.EncodeRaw(b)); err != nil {
				t.Fatal(err)
			}
			r.wantBreak(t, seq, "decision "+d.ID+" hashes to")
		})
		t.Run(fmt.Sprintf("re-encode decision %d with a field added", i), func(t *testing.T) {
			r := newAuditRig(t)
			raw, err := store.GetRaw(r.db, store.DecisionKey(d.ID))
			if err != nil {
				t.Fatal(err)
			}
			b := append(bytes.TrimSuffix(raw[1:], []byte("}")), []byte(`,"note":"x"}`)...)
			if err := store.PutRaw(r.db, store.DecisionKey(d.ID), store.EncodeRaw(b)); err != nil {
				t.Fatal(err)
			}
			r.wantBreak(t, seq, "altered")
		})
		t.Run(fmt.Sprintf("delete decision %d", i), func(t *testing.T) {
			r := newAuditRig(t)
			if err := store.DeleteRaw(r.db, store.DecisionKey(d.ID)); err != nil {
				t.Fatal(err)
			}
			r.wantBreak(t, seq, "missing")
		})
	}
	t.Run("a decision slipped in beside the log", func(t *testing.T) {
		r := newAuditRig(t)
		forged := r.decisions[2]
		forged.ID, forged.DeclarationID = "dec_forged", "FORGED"
		err := r.db.UpdateRaw(context.Background(), func(tx inspection.Tx) error { return tx.PutDecision(forged) })
		if err != nil {
			t.Fatal(err)
		}
		r.wantBreak(t, 0, "decision dec_forged is stored but no entry")
	})
}

// TestAuditRewriteNeedsTheCheckpoint: a chain rewritten from entry 2 on,
// every hash recomputed and the head moved, is consistent on its own —
// which is why checkpoints exist; held against a checkpoint signed
// before the rewrite, it fails at the checkpoint. A chain whose last
// entries were cut off (and the head moved back) leaves the records those
// entries covered unmatched or uncovered, and contradicts the checkpoint.
func TestAuditRewriteNeedsTheCheckpoint(t *testing.T) {
	r := newAuditRig(t)
	pub, key, _ := ed25519.GenerateKey(nil)
	cp, err := audit.Sign(key, audit.Head{Seq: 8, Hash: r.entries[7].Hash}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Verify(pub) != nil {
		t.Fatal("checkpoint does not verify")
	}
	var prev [32]byte
	copy(prev[:], mustHex(t, r.entries[0].Hash))
	for i := 1; i < len(r.entries); i++ {
		e := r.entries[i]
		if i == 1 {
			e.Actor = "admin:rewriter"
		}
		e.Prev = hex.EncodeToString(prev[:])
		sum, err := audit.Hash(prev, e)
		if err != nil {
			t.Fatal(err)
		}
		e.Hash = hex.EncodeToString(sum[:])
		r.putEntry(t, e.Seq, e)
		prev = sum
	}
	b, _ := json.Marshal(audit.Head{Seq: 8, Hash: hex.EncodeToString(prev[:])})
	if err := store.PutRaw(r.db, store.AuditHeadKey(), store.EncodeRaw(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.VerifyAudit(context.Background(), access.SystemPrincipal(), nil); err != nil {
		t.Fatalf("a consistent rewrite is not detectable without a checkpoint, yet: %v", err)
	}
	r.wantBreak(t, 8, "rewritten", cp)

	t.Run("truncated", func(t *testing.T) {
		r := newAuditRig(t)
		for _, seq := range []uint64{7, 8} {
			if err := store.DeleteRaw(r.db, store.AuditEntryKey(seq)); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := json.Marshal(audit.Head{Seq: 6, Hash: r.entries[5].Hash})
		if err := store.PutRaw(r.db, store.AuditHeadKey(), store.EncodeRaw(b)); err != nil {
			t.Fatal(err)
		}
		// The cut-off override had rewritten an assignment, which no
		// longer matches the last entry left covering it.
		r.wantBreak(t, 3, "assignment "+r.decisions[1].AssignmentID)
		cp, _ := audit.Sign(key, audit.Head{Seq: 8, Hash: r.entries[7].Hash}, time.Now())
		r.wantBreak(t, 7, "truncated", cp)
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPutAuditEntryFollowsTheHead: the store refuses an entry that does
// not follow the head, whoever builds it.
func TestPutAuditEntryFollowsTheHead(t *testing.T) {
	r := newAuditRig(t)
	head := r.entries[7]
	for _, e := range []audit.Entry{
		{Seq: 8, Prev: r.entries[6].Hash, Hash: strings.Repeat("1", 64)}, // over an existing entry
		{Seq: 10, Prev: head.Hash, Hash: strings.Repeat("1", 64)},        // a gap
		{Seq: 9, Prev: strings.Repeat("2", 64), Hash: strings.Repeat("1", 64)},
	} {
		err := r.db.UpdateRaw(context.Background(), func(tx inspection.Tx) error { return tx.(inspection.AuditedTx).PutAuditEntry(e) })
		if err == nil || !strings.Contains(err.Error(), "does not follow the head") {
			t.Errorf("entry %d prev %.8s: %v", e.Seq, e.Prev, err)
		}
	}
}

// as is the principal a test acts as, by its name.
func as(name string) access.Principal {
	p, err := access.ParsePrincipal(name)
	if err != nil {
		panic(err) // a test's own literal: a bug in the test
	}
	return p
}
