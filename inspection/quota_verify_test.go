package inspection_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
)

// closedPeriod decides 400 reduced lots over three scopes in 2026 (enough
// for checks in each), moves to 2027 and reveals the key.
func closedPeriod(t *testing.T) (*quotaRig, []byte) {
	return closedPeriodUnder(t, nil, 400, quotaHeadings)
}

// closedPeriodUnder decides lots reduced lots in 2026 under p (nil: the
// default policy), round robin over the headings, then reveals the key.
func closedPeriodUnder(t *testing.T, p *policy.Policy, lots int, headings []string) (*quotaRig, []byte) {
	t.Helper()
	rig := &quotaRig{dir: t.TempDir(), clock: &fixedClock{}, policy: p}
	rig.clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	rig.open(t)
	t.Cleanup(func() { _ = rig.db.Close() })
	for i := 0; i < lots; i++ {
		in := declaration.Input{DeclarationID: fmt.Sprintf("V%05d", i), ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{reducedLine(headings[i%len(headings)], i)}}
		if _, err := rig.decide(in); err != nil {
			t.Fatal(err)
		}
	}
	rig.clock.Set(time.Date(2027, 1, 4, 9, 0, 0, 0, calendar.Vietnam()))
	key, err := rig.svc.RevealQuotaKey(ctx, as("auditor"), "2026")
	if err != nil {
		t.Fatal(err)
	}
	return rig, key
}

func TestVerifyQuotaDetectsTampering(t *testing.T) {
	rig, key := closedPeriod(t)
	rep, err := rig.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", key)
	if err != nil {
		t.Fatalf("an honest period fails: %v", err)
	}
	if rep.Scopes != 3 || rep.Eligible != 400 || rep.Selected == 0 || rep.Selected*20 > rep.Eligible {
		t.Fatalf("report %+v", rep)
	}
	if _, err := rig.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", nil); err != nil {
		t.Fatalf("with the revealed key from the store: %v", err)
	}

	// pick returns a stored sampled decision: the n-th lot of heading 1905.
	pick := func(n int) inspection.Decision {
		var d inspection.Decision
		err := rig.db.View(ctx, func(tx inspection.ReadTx) error {
			ids, err := tx.QuotaDraws("2026", "heading:1905")
			if err != nil {
				return err
			}
			d, err = tx.Decision(ids[n])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	chosen := -1
	for i := 0; chosen < 0 && i < 133; i++ {
		if pick(i).Quota.Chosen {
			chosen = i
		}
	}
	if chosen < 0 {
		t.Fatal("no lot of heading 1905 was checked")
	}

	tests := []struct {
		name   string
		key    []byte
		tamper func(tx inspection.Tx) error
		want   string
	}{
		{"a stored draw", key, func(tx inspection.Tx) error {
			d := pick(17)
			d.Quota.Draw = "0000000000000000"
			return tx.PutDecision(d)
		}, "decision " + pick(17).ID},
		{"a checked lot made unchecked", key, func(tx inspection.Tx) error {
			d := pick(chosen)
			d.Inspect = false
			return tx.PutDecision(d)
		}, "decision " + pick(chosen).ID},
		{"an unchecked lot made checked, counts and all", key, func(tx inspection.Tx) error {
			d := pick(chosen + 1)
			d.Inspect, d.Quota.Chosen = true, true
			d.Quota.Selected++
			return tx.PutDecision(d)
		}, "decision " + pick(chosen+1).ID},
		{"a counter", key, func(tx inspection.Tx) error {
			c, err := tx.QuotaCounter("2026", "heading:2106")
			if err != nil {
				return err
			}
			c.Selected++
			return tx.PutQuotaCounter(c)
		}, "scope heading:2106"},
		{"a lot removed from the draws", key, func(tx inspection.Tx) error {
			return tx.PutQuotaDraw("2026", "heading:0402", 5, pick(5).ID) // a lot of another scope in its place
		}, "scope heading:0402 lot 5"},
		{"the period key", []byte(strings.Repeat("k", 32)), nil, "does not match commitment"},
		{"the commitment", key, func(tx inspection.Tx) error {
			p, err := tx.QuotaPeriod("2026")
			if err != nil {
				return err
			}
			p.Commitment = quota.Commitment([]byte("another key"))
			return tx.PutQuotaPeriod(p)
		}, "does not match commitment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := copyDir(t, rig)
			if tc.tamper != nil {
				if err := rig.db.UpdateRaw(ctx, tc.tamper); err != nil {
					t.Fatal(err)
				}
			}
			_, err := rig.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", tc.key)
			if !errors.Is(err, quota.ErrMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify after tampering with %s: %v, want a mismatch naming %q", tc.name, err, tc.want)
			}
			restoreDir(t, rig, before)
		})
	}
}

// copyDir snapshots the store's files so each tamper starts from the
// honest period.
func copyDir(t *testing.T, rig *quotaRig) string {
	t.Helper()
	rig.mu.Lock()
	defer rig.mu.Unlock()
	if err := rig.db.Close(); err != nil {
		t.Fatal(err)
	}
	snap := t.TempDir()
	if err := os.CopyFS(snap, os.DirFS(rig.dir)); err != nil {
		t.Fatal(err)
	}
	rig.open(t)
	return snap
}

func restoreDir(t *testing.T, rig *quotaRig, snap string) {
	t.Helper()
	rig.mu.Lock()
	defer rig.mu.Unlock()
	if err := rig.db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(rig.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(rig.dir, os.DirFS(snap)); err != nil {
		t.Fatal(err)
	}
	rig.open(t)
}

// Under weight_by goods_score a lot's weight must be the goods score its
// decision shows: a weight lowered to spare a lot, with the weight sum and
// q rewritten to match so that the replay alone would accept it, fails.
func TestVerifyQuotaChecksGoodsScoreWeights(t *testing.T) {
	p := mustPolicy(t)
	p.Reduced.Sampling.Selection, p.Reduced.Sampling.WeightBy = quota.SelectionRiskWeighted, quota.WeightByGoodsScore
	rig, key := closedPeriodUnder(t, p, 60, quotaHeadings[:1])
	if _, err := rig.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", key); err != nil {
		t.Fatalf("an honest goods-score period fails: %v", err)
	}
	var last inspection.Decision
	err := rig.db.UpdateRaw(ctx, func(tx inspection.Tx) error {
		ids, err := tx.QuotaDraws("2026", "heading:0402")
		if err != nil {
			return err
		}
		if last, err = tx.Decision(ids[len(ids)-1]); err != nil {
			return err
		}
		q := last.Quota
		if q.WeightBy != quota.WeightByGoodsScore || q.Weight <= 0 {
			t.Fatalf("quota record %+v", q)
		}
		// Halve the weight and rewrite the sum and q to match. A lower q can
		// only turn a check into no check, which the replay would catch on
		// its own, so the last lot must keep its outcome.
		half := q.Weight / 2
		q.WeightSum += half - q.Weight
		q.Weight = half
		q.Probability = quota.SelectionProbability(p.Reduced.Sampling, q.Eligible, q.Selected-b2i(q.Chosen), q.Weight, q.WeightSum)
		if q.Chosen && !(q.U < q.Probability) {
			t.Fatal("halving the weight changes the last lot's outcome: pick another lot")
		}
		return tx.PutDecision(last)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rig.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", key)
	if !errors.Is(err, quota.ErrMismatch) || !strings.Contains(err.Error(), last.ID) || !strings.Contains(err.Error(), "goods_score") {
		t.Fatalf("verify after lowering a goods-score weight: %v", err)
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
