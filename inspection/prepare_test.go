package inspection_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

// Decide prepares a declaration on a snapshot outside the committer and
// commits the prepared evaluation only if no input moved in between. These
// tests put a write between the two (the interleaving store runs it when
// the decision's Update arrives, after the snapshot was read) and require
// the decision to equal the one computed with no preparation at all: a
// store that hides its input versions, with the same write at the same
// point.

// interleaving wraps a store: before the next Update it runs between once.
type interleaving struct {
	*store.DB
	between func()
	hide    bool // hide the input versions: Decide prepares nothing
}

type plainReadTx struct{ inspection.ReadTx }
type plainTx struct {
	inspection.Tx
	inspection.AuditedTx // the write path's audit, which every store's Tx keeps
}

func (s *interleaving) View(ctx context.Context, fn func(inspection.ReadTx) error) error {
	if !s.hide {
		return s.DB.View(ctx, fn)
	}
	return s.DB.View(ctx, func(tx inspection.ReadTx) error { return fn(plainReadTx{tx}) })
}

func (s *interleaving) Update(ctx context.Context, fn func(inspection.Tx) error) error {
	if b := s.between; b != nil {
		s.between = nil
		b()
	}
	if !s.hide {
		return s.DB.Update(ctx, fn)
	}
	return s.DB.Update(ctx, func(tx inspection.Tx) error { return fn(plainTx{tx, tx.(inspection.AuditedTx)}) })
}

func prepLine(product string, certs bool) declaration.LineInput {
	no, q := 1, 5.0
	l := declaration.LineInput{LineNo: &no, HSCode: "0402.21.20", ProductName: product, Manufacturer: "Prep Dairy",
		Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}
	if certs {
		l.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "H-9", ValidUntil: "2028-12-31"}}
	}
	return l
}

func TestPreparedDecisionsFollowInterleavedWrites(t *testing.T) {
	type rig struct {
		st    *interleaving
		svc   *inspection.Service
		clock *fixedClock
	}
	newRig := func(t *testing.T, hide bool) rig {
		db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		st := &interleaving{DB: db, hide: hide}
		clock := &fixedClock{}
		clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
		p := mustPolicy(t)
		p.Risk.ScoreDecisions = true
		svc, err := inspection.NewService(inspection.Config{Store: st, Policy: p, Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return rig{st, svc, clock}
	}
	decide := func(t *testing.T, r rig, id string, l declaration.LineInput) inspection.Decision {
		t.Helper()
		res, err := r.svc.Decide(ctx, access.SystemPrincipal(), declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{l}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Decisions[0]
	}
	alert := func(kind string) func(t *testing.T, r rig) {
		return func(t *testing.T, r rig) {
			in := inspection.AlertInput{Authority: "NAFIQAD", Reference: "A-" + kind, IssuedAt: r.clock.Now().Add(-time.Hour).Format(time.RFC3339),
				Reason: "melamine", Target: inspection.AlertTarget{Kind: kind, HSCode: "0402.21.20", ProductName: "Prep milk",
					Manufacturer: "Prep Dairy", Origin: "NZ"}}
			if _, err := r.svc.RaiseAlert(ctx, access.SystemPrincipal(), in); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		certs   bool
		before  func(t *testing.T, r rig, first inspection.Decision) // before P-2, outside the interleaving
		between func(t *testing.T, r rig, first inspection.Decision)
	}{
		{"nothing", false, nil, nil},
		{"goods alert", false, nil, func(t *testing.T, r rig, _ inspection.Decision) { alert("goods")(t, r) }},
		{"manufacturer alert", true, nil, func(t *testing.T, r rig, _ inspection.Decision) { alert("manufacturer")(t, r) }},
		{"heading alert", true, nil, func(t *testing.T, r rig, _ inspection.Decision) { alert("heading_origin")(t, r) }},
		{"failed result", false, nil, func(t *testing.T, r rig, first inspection.Decision) {
			in := inspection.ResultInput{Outcome: "fail", InspectedAt: r.clock.Now().Add(-time.Minute).Format(time.RFC3339),
				Findings: []inspection.Finding{{Code: "LAB", Text: "melamine"}}}
			if _, err := r.svc.RecordResult(ctx, access.SystemPrincipal(), first.AssignmentID, in); err != nil {
				t.Fatal(err)
			}
		}},
		{"certificate on record", false, nil, func(t *testing.T, r rig, _ inspection.Decision) {
			err := r.st.DB.UpdateRaw(ctx, func(tx inspection.Tx) error {
				return tx.PutManufacturer(reference.Manufacturer{Name: "Prep Dairy", Origin: "NZ", Certificates: []reference.Certificate{
					{Kind: "HACCP", Number: "H-7", ValidUntil: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}}})
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"rescoring", false, func(t *testing.T, r rig, first inspection.Decision) {
			in := inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Add(-time.Minute).Format(time.RFC3339)}
			if _, err := r.svc.RecordResult(ctx, access.SystemPrincipal(), first.AssignmentID, in); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, r rig, _ inspection.Decision) {
			if _, err := r.svc.Rescore(ctx, access.SystemPrincipal()); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				got     [2]inspection.Decision
				after   [2]inspection.Decision // a third lot, prepared from the cache under the moved versions
				usedAft [2]int64
				used    [2]int64
				digests [2]string
			)
			for i, hide := range []bool{false, true} {
				r := newRig(t, hide)
				first := decide(t, r, "P-1", prepLine("Prep milk", false))
				r.clock.Set(r.clock.Now().Add(2 * time.Hour))
				if tc.before != nil {
					tc.before(t, r, first)
				}
				if tc.between != nil {
					r.st.between = func() { tc.between(t, r, first) }
				}
				waitReadAhead(t, r.st.DB)
				u0, _ := inspection.PreparedStats(r.svc)
				got[i] = decide(t, r, "P-2", prepLine("Prep milk", tc.certs))
				u1, _ := inspection.PreparedStats(r.svc)
				used[i] = u1 - u0
				r.clock.Set(r.clock.Now().Add(time.Minute))
				waitReadAhead(t, r.st.DB)
				after[i] = decide(t, r, "P-3", prepLine("Prep milk", tc.certs))
				u2, _ := inspection.PreparedStats(r.svc)
				usedAft[i] = u2 - u1
				if rep, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), nil); err != nil || rep.Entries == 0 {
					t.Fatalf("audit chain after the decision: %+v %v", rep, err)
				}
				var err error
				if digests[i], err = r.st.DB.Digest(); err != nil {
					t.Fatal(err)
				}
			}
			// Byte for byte the same store: records encoded ahead are
			// what the store would have encoded, their digests too.
			if digests[0] != digests[1] {
				t.Fatalf("store digest %s with preparation, %s without", digests[0], digests[1])
			}
			a, b := mustJSON(t, got[0]), mustJSON(t, got[1])
			if a != b {
				t.Fatalf("prepared path decided\n%s\nthe unprepared path\n%s", a, b)
			}
			// Without the versions nothing is prepared; with them the
			// prepared evaluation is used exactly when nothing moved.
			if want := map[bool]int64{true: 1, false: 0}[tc.between == nil]; used[0] != want || used[1] != 0 {
				t.Fatalf("prepared evaluations used: %d with versions (want %d), %d without (want 0)", used[0], want, used[1])
			}
			// The next lot is prepared again, its inputs read from the
			// cache under the versions the write moved to.
			a, b = mustJSON(t, after[0]), mustJSON(t, after[1])
			if a != b || usedAft[0] != 1 || usedAft[1] != 0 {
				t.Fatalf("the lot after the write (prepared %d, %d):\n%s\nunprepared\n%s", usedAft[0], usedAft[1], a, b)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitReadAhead waits until the snapshot decisions prepare on holds every
// committed write: the lot before was answered as its batch synced, and a
// preparation on the snapshot without it is rightly thrown away, which is
// not what these tests count.
func waitReadAhead(t *testing.T, db *store.DB) {
	t.Helper()
	for i := 0; !db.ReadAheadCurrent(); i++ {
		if i == 10000 {
			t.Fatal("the shared snapshot never caught up with the committed batches")
		}
		time.Sleep(time.Millisecond)
	}
}
