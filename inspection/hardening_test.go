package inspection_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/risk"
)

// startedRig is a write rig started with the agencies the default policy
// routes dairy and bakery goods to.
func startedRig(t *testing.T) *writeRig {
	t.Helper()
	r := newWriteRig(t)
	if _, err := r.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	agencies := []reference.Agency{{ID: "moit-firi", Name: "FIRI", Ministry: "MOIT"}, {ID: "moh-nifc", Name: "NIFC", Ministry: "MOH"}}
	if err := r.svc.LoadReference(ctx, access.SystemPrincipal(), reference.Data{Agencies: agencies}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *writeRig) decideLine(t *testing.T, id string, l declaration.LineInput) inspection.Decision {
	t.Helper()
	res, err := r.svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{l}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Decisions[0]
}

// TestEventsAheadOfTheClock: a result or alert dated a little ahead of
// ktcn's clock (an agency's clock running fast, within the tolerated skew)
// is taken without error, scores do not fail on it, and every later
// decision sees it; one dated beyond the skew is refused naming its field.
func TestEventsAheadOfTheClock(t *testing.T) {
	r := startedRig(t)
	now := r.clock.Now()
	d := r.decideLine(t, "SKEW-1", normalLine(1, "Sữa trước giờ"))
	fail := inspection.ResultInput{Outcome: "fail", InspectedAt: now.Add(3 * time.Minute).Format(time.RFC3339),
		Findings: []inspection.Finding{{Code: "LAB", Text: "melamine"}}}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+d.Agency), d.AssignmentID, fail); err != nil {
		t.Fatalf("a result 3 minutes ahead: %v", err)
	}
	if _, _, err := r.svc.Score(ctx, as("customs"), risk.Subject{Kind: risk.KindGoods, ID: d.GoodsKey.String()}); err != nil {
		t.Fatalf("the goods' score after a result ahead of the clock: %v", err)
	}
	if _, _, err := r.svc.RankedScores(ctx, as("customs"), risk.KindGoods, 10); err != nil {
		t.Fatalf("ranked scores after a result ahead of the clock: %v", err)
	}
	r.clock.Set(now.Add(time.Minute)) // before the time the agency gave
	if again := r.decideLine(t, "SKEW-2", normalLine(1, "Sữa trước giờ")); again.Mode != inspection.ModeStrict {
		t.Fatalf("the next lot of failed goods: %s (%s), want strict at once", again.Mode, again.Reason)
	}
	alert := inspection.AlertInput{Authority: "RASFF", Reference: "SKEW-A", IssuedAt: r.clock.Now().Add(4 * time.Minute).Format(time.RFC3339),
		Reason: "Listeria", Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: "Audit Dairy", Origin: "NZ"}}
	if _, err := r.svc.RaiseAlert(ctx, as("customs"), alert); err != nil {
		t.Fatalf("an alert 4 minutes ahead: %v", err)
	}
	if other := r.decideLine(t, "SKEW-3", normalLine(1, "Sữa khác của hãng")); other.Mode != inspection.ModeStrict {
		t.Fatalf("goods of the alerted maker: %s, want strict at once", other.Mode)
	}
	r.clock.Set(r.clock.Now().Add(2 * time.Minute)) // the same alert again, later: a replay
	if out, err := r.svc.RaiseAlert(ctx, as("customs"), alert); err != nil || !out.Replayed {
		t.Fatalf("the same alert sent again: %+v %v", out, err)
	}
	late := alert
	late.Reference, late.IssuedAt = "SKEW-B", r.clock.Now().Add(6*time.Minute).Format(time.RFC3339)
	if _, err := r.svc.RaiseAlert(ctx, as("customs"), late); fault.CodeOf(err) != fault.Invalid || !hasField(err, "issued_at") {
		t.Fatalf("an alert 6 minutes ahead: %v, want invalid issued_at", err)
	}
}

func hasField(err error, field string) bool {
	var e *fault.Error
	return errors.As(err, &e) && e.Field == field
}

// TestQuotaStateOnlyForCustomsAndAuditors: an agency reads the decision of
// a lot the random check sent it, without the quota state (counts,
// allowance, draw, probability); customs and auditors see it.
func TestQuotaStateOnlyForCustomsAndAuditors(t *testing.T) {
	r := startedRig(t)
	var picked inspection.Decision
	for i := 0; i < 400 && !picked.Inspect; i++ {
		picked = r.decideLine(t, fmt.Sprintf("Q-%d", i), reducedLine("0402.21.20", i))
	}
	if !picked.Inspect || picked.Quota == nil || picked.Agency == "" {
		t.Fatalf("no reduced lot was drawn for a check in 400: %+v", picked)
	}
	for _, c := range []struct {
		who  string
		sees bool
	}{{"agency:" + picked.Agency, false}, {"customs", true}, {"auditor", true}} {
		v, err := r.svc.DecisionView(ctx, as(c.who), picked.ID)
		if err != nil {
			t.Fatalf("%s reads the decision: %v", c.who, err)
		}
		if (v.Quota != nil) != c.sees {
			t.Errorf("%s sees the quota state: %v, want %v", c.who, v.Quota != nil, c.sees)
		}
	}
}

// TestChangesNameTheKey: an admin issues a customs key and acts under it;
// the audit entry of the action names the key as well as the principal,
// and the key's record names the admin who issued it. The chain verifies.
func TestChangesNameTheKey(t *testing.T) {
	r := startedRig(t)
	admin := as("admin:ops")
	issued, err := r.access.CreateKey(ctx, admin, inspection.KeyRequest{Principal: "customs:shadow"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := r.access.Authenticate(ctx, issued.Token)
	if err != nil {
		t.Fatal(err)
	}
	alert := inspection.AlertInput{Authority: "RASFF", Reference: "KEY-A", IssuedAt: r.clock.Now().Format(time.RFC3339),
		Reason: "Listeria", Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: "Key Dairy", Origin: "NZ"}}
	if _, err := r.svc.RaiseAlert(ctx, k.Acting(), alert); err != nil {
		t.Fatal(err)
	}
	es := r.entries(t)
	e := es[len(es)-1]
	if e.Actor != "customs:shadow" || e.Key != issued.Key.ID {
		t.Fatalf("the action's entry names %q under key %q, want customs:shadow under %s", e.Actor, e.Key, issued.Key.ID)
	}
	keys, err := r.access.Keys(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(keys, func(x access.APIKey) bool { return x.ID == e.Key })
	if i < 0 || keys[i].CreatedBy != admin.Name {
		t.Fatalf("the key %s is not traced to who issued it: %+v", e.Key, keys)
	}
	if _, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), nil); err != nil {
		t.Fatalf("a chain with keyed entries: %v", err)
	}
}

// TestHistoryUnderIdentityVersion1IsRead: a store written before identity
// version 2 keeps its goods' history under version 1's keys; a decision
// on such a store reads it, so no goods lose their history with the new
// identity.
func TestHistoryUnderIdentityVersion1IsRead(t *testing.T) {
	r := newWriteRig(t)
	l := normalLine(1, "Sữa cũ")
	goods := identity.Goods{HSCode: "04022120", ProductName: "Sữa cũ", Manufacturer: "Audit Dairy", Origin: "NZ"}.Canonical()
	old := r.clock.Now().AddDate(0, 0, -10)
	err := r.db.UpdateRaw(ctx, func(tx inspection.Tx) error {
		// What a version 1 service left: a failed result under the goods'
		// version 1 key, and its audit chain.
		if err := tx.AddEvent(inspection.Event{ID: "res_v1", Kind: inspection.EventResult, At: old, RecordedAt: old,
			Subject: inspection.Subject{Kind: inspection.SubjectGoods, Key: goods.LegacyKey()}, Outcome: inspection.OutcomeFail,
			ImporterTaxCode: "0101234567", Source: "agency:moit-firi"}); err != nil {
			return err
		}
		if err := tx.PutGoodsState(inspection.GoodsState{Key: goods.LegacyKey(), Goods: goods, Mode: inspection.ModeStrict, Lots: 5}); err != nil {
			return err
		}
		return tx.(inspection.AuditedTx).PutAuditEntry(audit.Entry{Seq: 1, Prev: strings.Repeat("0", 64), Hash: strings.Repeat("1", 64)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d := r.decideLine(t, "V1-1", l)
	if d.Mode != inspection.ModeStrict {
		t.Fatalf("goods that failed under identity version 1: %s (%s), want strict", d.Mode, d.Reason)
	}
	if st, err := r.svc.GoodsState(ctx, as("customs"), d.GoodsKey); err != nil || st.Lots != 6 {
		t.Fatalf("the goods' lot count under version 2: %d (%v), want 6 (5 under version 1, then this one)", st.Lots, err)
	}
}

// TestAuditLogAfterCannotWrap: a cursor past any sequence is refused in the
// domain too, not wrapped to the start of the chain.
func TestAuditLogAfterCannotWrap(t *testing.T) {
	r := startedRig(t)
	if _, _, err := r.svc.AuditLog(ctx, as("auditor"), ^uint64(0), 10); !hasField(err, "after") {
		t.Fatalf("after=max uint64: %v", err)
	}
}

// TestResultInTheSecondOfTheDecision: an agency gives its times to the
// second; a result or sample dated in the second its lot was decided is
// taken, one a second earlier is refused naming its field.
func TestResultInTheSecondOfTheDecision(t *testing.T) {
	r := startedRig(t)
	r.clock.Set(r.clock.Now().Add(400 * time.Millisecond)) // decided at …:00.4
	d := r.decideLine(t, "SECOND-1", normalLine(1, "Sữa trong giây"))
	second := r.clock.Now().Truncate(time.Second)
	early := inspection.ResultInput{Outcome: "pass", InspectedAt: second.Add(-time.Second).Format(time.RFC3339)}
	_, err := r.svc.RecordResult(ctx, as("agency:"+d.Agency), d.AssignmentID, early)
	var inv *fault.Error
	if !errors.As(err, &inv) || inv.Field != "inspected_at" {
		t.Fatalf("a result a second before the decision: %v, want invalid inspected_at", err)
	}
	same := inspection.ResultInput{Outcome: "pass", InspectedAt: second.Format(time.RFC3339)}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+d.Agency), d.AssignmentID, same); err != nil {
		t.Fatalf("a result in the second of the decision: %v", err)
	}
}
