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
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/quota"
)

var officer = access.Principal{Name: "customs:nguyen.van.a", Role: access.RoleCustoms}

func decideOne(t *testing.T, r *auditRig, id string, l declaration.LineInput) inspection.Decision {
	t.Helper()
	res, err := r.svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{l}})
	if err != nil {
		t.Fatal(err)
	}
	return res.Decisions[0]
}

func lastEntry(t *testing.T, r *auditRig) audit.Entry {
	t.Helper()
	es := r.entries(t)
	return es[len(es)-1]
}

// TestOverrideNeedsACustomsOfficerAndAReason: acceptance 4, first half.
// Every refusal leaves the store as it was.
func TestOverrideNeedsACustomsOfficerAndAReason(t *testing.T) {
	r := newAuditRig(t, nil)
	d := decideOne(t, r, "OVR-R", normalLine(1, "Sữa lý do"))
	no := false
	for _, tc := range []struct {
		name  string
		by    access.Principal
		in    inspection.OverrideInput
		code  fault.Code
		field string
	}{
		{"policy staff", access.Principal{Name: "policy-approver", Role: access.RolePolicyApprover},
			inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "tip-off", Inspect: &no}, fault.Forbidden, ""},
		{"an agency", access.Principal{Name: "agency:moh-nifc", Role: access.RoleAgency, Agency: "moh-nifc"},
			inspection.OverrideInput{ReasonCode: "agency_request", ReasonText: "no capacity", Inspect: &no}, fault.Forbidden, ""},
		{"no reason code", officer, inspection.OverrideInput{ReasonText: "tip-off", Inspect: &no}, fault.Invalid, "reason_code"},
		{"an unknown reason code", officer, inspection.OverrideInput{ReasonCode: "because", ReasonText: "x", Inspect: &no}, fault.Invalid, "reason_code"},
		{"no reason text", officer, inspection.OverrideInput{ReasonCode: "intelligence", Inspect: &no}, fault.Invalid, "reason_text"},
		{"a blank reason text", officer, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: " \n ", Inspect: &no}, fault.Invalid, "reason_text"},
		{"nothing to change", officer, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "x"}, fault.Invalid, "inspect"},
		{"both changes", officer, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "x", Inspect: &no, SwapWith: "dec_x"}, fault.Invalid, "swap_with"},
		{"no change", officer, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "x", Inspect: ptr(true)}, fault.Conflict, "inspect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.entries(t)
			_, err := r.svc.Override(ctx, tc.by, d.ID, tc.in)
			var e *fault.Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("%v, want %s on %q", err, tc.code, tc.field)
			}
			if after := r.entries(t); len(after) != len(before) {
				t.Fatal("a refused override was recorded")
			}
		})
	}
	if _, err := r.svc.Override(ctx, officer, "dec_nope", inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "x", Inspect: &no}); fault.CodeOf(err) != fault.NotFound {
		t.Fatalf("an unknown decision: %v", err)
	}
}

// TestOverrideInspection: acceptance 4, second half for a normal lot.
// Cancelling and restoring an inspection keeps the decision as decided,
// shows who, when and why beside it, opens and cancels the assignment,
// is one audit entry each, and a retry changes nothing.
func TestOverrideInspection(t *testing.T) {
	r := newAuditRig(t, nil)
	d := decideOne(t, r, "OVR-1", normalLine(1, "Sữa huỷ"))
	stop := inspection.OverrideInput{ReasonCode: "duplicate_declaration", ReasonText: "declared again as OVR-2", Inspect: ptr(false)}
	out, err := r.svc.Override(ctx, officer, d.ID, stop)
	if err != nil {
		t.Fatal(err)
	}
	v := out.Decision
	if v.Decision.Inspect != true || v.Decision.Reason != d.Reason || v.Decision.AssignmentID != d.AssignmentID {
		t.Fatalf("the decision was rewritten: %+v", v.Decision)
	}
	o := v.Overrides[0]
	if len(v.Overrides) != 1 || o.By != officer.Name || o.ReasonCode != "duplicate_declaration" || o.ReasonText != stop.ReasonText ||
		!o.At.Equal(r.clock.Now()) || !o.WasInspected || o.Inspect || o.AssignmentID != d.AssignmentID {
		t.Fatalf("override %+v", v.Overrides)
	}
	if v.Current.Inspect || v.Current.AssignmentID != "" || v.Current.OverrideID != o.ID ||
		!strings.Contains(v.Current.Reason, officer.Name) || !strings.Contains(v.Current.Reason, "duplicate_declaration") ||
		!strings.Contains(v.Current.Reason, stop.ReasonText) {
		t.Fatalf("current %+v", v.Current)
	}
	if got, err := r.svc.DecisionView(ctx, access.SystemPrincipal(), d.ID); err != nil || len(got.Overrides) != 1 || got.Current != v.Current {
		t.Fatalf("read back: %+v %v", got, err)
	}
	a, err := r.svc.Assignment(ctx, access.SystemPrincipal(), d.AssignmentID)
	if err != nil || a.Status != inspection.AssignmentCancelled || a.OverrideID != o.ID {
		t.Fatalf("assignment %+v %v", a, err)
	}
	if list, _, err := r.svc.OpenAssignments(ctx, access.SystemPrincipal(), a.Agency, "", 10); err == nil && len(list) != 0 {
		t.Fatalf("a cancelled assignment is still open: %+v", list)
	}
	e := lastEntry(t, r)
	if e.Kind != audit.DecisionOverridden || e.Actor != officer.Name || !slices.Equal(e.Subjects, []string{"decision:" + d.ID}) ||
		!slices.ContainsFunc(e.Records, func(x audit.RecordDigest) bool { return x.Kind == audit.RecordOverride && x.ID == o.ID }) ||
		!slices.ContainsFunc(e.Records, func(x audit.RecordDigest) bool { return x.Kind == audit.RecordAssignment }) {
		t.Fatalf("audit entry %+v", e)
	}
	// The agency can no longer report on it.
	_, err = r.svc.RecordResult(ctx, as("agency:"+a.Agency), d.AssignmentID, inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Format(time.RFC3339)})
	if fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("a result on a cancelled assignment: %v", err)
	}
	// The same override again: nothing new.
	n := len(r.entries(t))
	if again, err := r.svc.Override(ctx, officer, d.ID, stop); err != nil || !again.Replayed || len(again.Decision.Overrides) != 1 || len(r.entries(t)) != n {
		t.Fatalf("a retried override: %+v %v", again, err)
	}

	// Restored a day later: the same assignment reopens, due from now.
	r.clock.Set(r.clock.Now().Add(24 * time.Hour))
	back, err := r.svc.Override(ctx, officer, d.ID, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "OVR-2 was a different lot", Inspect: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if c := back.Decision.Current; !c.Inspect || c.AssignmentID != d.AssignmentID || len(back.Decision.Overrides) != 2 {
		t.Fatalf("restored: %+v", back.Decision)
	}
	a, _ = r.svc.Assignment(ctx, access.SystemPrincipal(), d.AssignmentID)
	if a.Status != inspection.AssignmentOpen || !a.DueAt.After(r.clock.Now()) || a.CancelledAt != nil {
		t.Fatalf("reopened assignment %+v", a)
	}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+a.Agency), d.AssignmentID, inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	// A result stands: the lot cannot be un-inspected now.
	if _, err := r.svc.Override(ctx, officer, d.ID, stop); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("override after a result: %v", err)
	}

	// A lot decided not inspected (an exemption) can be inspected.
	ex := normalLine(1, "Sữa miễn")
	ex.Exemption = "personal_luggage"
	dx := decideOne(t, r, "OVR-3", ex)
	if dx.Inspect {
		t.Fatal("setup: exempt lot inspected")
	}
	ox, err := r.svc.Override(ctx, officer, dx.ID, inspection.OverrideInput{ReasonCode: "visible_damage", ReasonText: "torn sacks", Inspect: ptr(true)})
	if err != nil || !ox.Decision.Current.Inspect || ox.Decision.Current.Agency == "" || ox.Decision.Current.AssignmentID != identity.AssignmentID("OVR-3", 1) {
		t.Fatalf("inspect an exempt lot: %+v %v", ox.Decision, err)
	}
	r.verify(t)
}

// sampledScope decides reduced lots of one heading until the draw has
// checked at least two, and returns the scope's decisions in order.
func sampledScope(t *testing.T, r *auditRig, hs, prefix string) []inspection.Decision {
	t.Helper()
	var out []inspection.Decision
	chosen := 0
	for i := 0; chosen < 2 || i < 60; i++ {
		if i > 400 {
			t.Fatal("the draw checked fewer than two of 400 lots")
		}
		d := decideOne(t, r, fmt.Sprintf("%s%04d", prefix, i), reducedLine(hs, i))
		if d.Mode != inspection.ModeReduced || d.Quota == nil {
			t.Fatalf("setup: %+v", d)
		}
		if d.Quota.Chosen {
			chosen++
		}
		out = append(out, d)
	}
	return out
}

func counter(t *testing.T, r *auditRig, period, scope string) quota.Counter {
	t.Helper()
	var c quota.Counter
	if err := r.db.View(ctx, func(tx inspection.ReadTx) (err error) { c, err = tx.QuotaCounter(period, scope); return err }); err != nil {
		t.Fatal(err)
	}
	return c
}

// checkedIn counts the lots of a scope inspected after overrides.
func checkedIn(t *testing.T, r *auditRig, ds []inspection.Decision) int64 {
	t.Helper()
	var n int64
	for _, d := range ds {
		v, err := r.svc.DecisionView(ctx, access.SystemPrincipal(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Current.Inspect {
			n++
		}
	}
	return n
}

// TestSwapRandomCheck: acceptance 4 for random checks. A checked
// reduced lot cannot be cancelled, nor an unchecked one checked, on its
// own; a swap within the scope moves the check, leaves the scope's count
// (and the counter) as the draws made them, and verify quota still
// passes, open and closed; a swap across scopes, or between two lots
// both unchecked, is refused.
func TestSwapRandomCheck(t *testing.T) {
	r := newAuditRig(t, nil)
	ds := sampledScope(t, r, "1905.31.20", "SW")
	scope := ds[0].Quota.Scope
	var chosen, spare inspection.Decision
	for _, d := range ds {
		if d.Quota.Chosen && chosen.ID == "" {
			chosen = d
		}
		if !d.Quota.Chosen && spare.ID == "" {
			spare = d
		}
	}
	before := counter(t, r, "2026", scope)
	if checkedIn(t, r, ds) != before.Selected {
		t.Fatal("setup: checked lots differ from the counter")
	}
	reason := func(in inspection.OverrideInput) inspection.OverrideInput {
		in.ReasonCode, in.ReasonText = "operational_swap", "container already moved to the Đình Vũ ICD"
		return in
	}
	for _, tc := range []struct {
		name string
		id   string
		in   inspection.OverrideInput
		code fault.Code
	}{
		{"cancel a random check", chosen.ID, reason(inspection.OverrideInput{Inspect: ptr(false)}), fault.Invalid},
		{"add a random check", spare.ID, reason(inspection.OverrideInput{Inspect: ptr(true)}), fault.Invalid},
		{"swap two unchecked lots", spare.ID, reason(inspection.OverrideInput{SwapWith: ds[len(ds)-1].ID}), fault.Conflict},
		{"swap with itself", chosen.ID, reason(inspection.OverrideInput{SwapWith: chosen.ID}), fault.Invalid},
		{"swap with a missing lot", chosen.ID, reason(inspection.OverrideInput{SwapWith: "dec_nope"}), fault.Invalid},
	} {
		if ds[len(ds)-1].Quota.Chosen && tc.name == "swap two unchecked lots" {
			continue
		}
		if _, err := r.svc.Override(ctx, officer, tc.id, tc.in); fault.CodeOf(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// Across scopes: a lot of another heading.
	other := decideOne(t, r, "SW-OTHER", reducedLine("2106.90.71", 1))
	if _, err := r.svc.Override(ctx, officer, chosen.ID, reason(inspection.OverrideInput{SwapWith: other.ID})); fault.CodeOf(err) != fault.Invalid ||
		!strings.Contains(err.Error(), "like for like") {
		t.Fatalf("a swap across scopes: %v", err)
	}
	// A lot that is not a random-check lot at all.
	normal := decideOne(t, r, "SW-NORMAL", normalLine(1, "Sữa thường"))
	if _, err := r.svc.Override(ctx, officer, chosen.ID, reason(inspection.OverrideInput{SwapWith: normal.ID})); fault.CodeOf(err) != fault.Invalid {
		t.Fatalf("a swap with a normal lot: %v", err)
	}

	out, err := r.svc.Override(ctx, officer, chosen.ID, reason(inspection.OverrideInput{SwapWith: spare.ID}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Decision.Current.Inspect || out.Swapped == nil || !out.Swapped.Current.Inspect || out.Swapped.Current.AssignmentID == "" ||
		out.Decision.Overrides[0].SwapWith != spare.ID || out.Swapped.Overrides[0].SwapWith != chosen.ID {
		t.Fatalf("swap: %+v / %+v", out.Decision, out.Swapped)
	}
	// The draws are as they were: the chosen lot still says it was chosen.
	if !out.Decision.Quota.Chosen || out.Swapped.Quota.Chosen {
		t.Fatal("a swap rewrote the draws' record")
	}
	after := counter(t, r, "2026", scope)
	if after != before || checkedIn(t, r, ds) != before.Selected {
		t.Fatalf("the scope's count moved: counter %+v → %+v, checked %d", before, after, checkedIn(t, r, ds))
	}
	e := lastEntry(t, r)
	if e.Kind != audit.DecisionOverridden || !slices.Equal(e.Subjects, []string{"decision:" + chosen.ID, "decision:" + spare.ID}) {
		t.Fatalf("audit entry %+v", e)
	}
	// The swapped-in lot's agency may see it; its assignment is open.
	a, err := r.svc.Assignment(ctx, access.SystemPrincipal(), out.Swapped.Current.AssignmentID)
	if err != nil || a.Status != inspection.AssignmentOpen || a.OverrideID == "" || a.DecisionID != spare.ID {
		t.Fatalf("swapped-in assignment %+v %v", a, err)
	}
	// The retry changes nothing; the reverse swap, from the other side, moves it back.
	if again, err := r.svc.Override(ctx, officer, chosen.ID, reason(inspection.OverrideInput{SwapWith: spare.ID})); err != nil || !again.Replayed {
		t.Fatalf("a retried swap: %+v %v", again, err)
	}
	if _, err := r.svc.VerifyOpenQuota(ctx, access.SystemPrincipal(), "2026"); err != nil {
		t.Fatalf("verify quota after a swap: %v", err)
	}
	if _, err := r.svc.Override(ctx, officer, spare.ID, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "back to the draw's lot", SwapWith: chosen.ID}); err != nil {
		t.Fatal(err)
	}
	if counter(t, r, "2026", scope) != before || checkedIn(t, r, ds) != before.Selected {
		t.Fatal("the swap back moved the count")
	}
	r.verify(t)
	r.clock.Set(time.Date(2027, 1, 4, 9, 0, 0, 0, calendar.Vietnam()))
	if _, err := r.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", mustPeriodKey(t, "2026")); err != nil {
		t.Fatalf("verify a closed period with swaps: %v", err)
	}

	// An override on a sampled lot that is not a swap (written around the
	// use case) breaks verify quota.
	err = r.db.UpdateRaw(ctx, func(tx inspection.Tx) error {
		v, err := r.svc.DecisionView(ctx, access.SystemPrincipal(), ds[len(ds)-2].ID)
		if err != nil {
			return err
		}
		n := len(v.Overrides) + 1
		return tx.PutOverride(inspection.Override{ID: inspection.OverrideID(v.ID, n), DecisionID: v.ID, N: n, By: "customs:rogue",
			ReasonCode: "intelligence", ReasonText: "x", WasInspected: v.Current.Inspect, Inspect: !v.Current.Inspect})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", mustPeriodKey(t, "2026")); !errors.Is(err, quota.ErrMismatch) || !strings.Contains(err.Error(), "not a like-for-like swap") {
		t.Fatalf("verify quota after a rogue override: %v", err)
	}
	// ... and the audit log, which no entry of covers it.
	if _, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), nil); !errors.Is(err, audit.ErrMismatch) || !strings.Contains(err.Error(), "override") {
		t.Fatalf("verify audit after a rogue override: %v", err)
	}
}

func mustPeriodKey(t *testing.T, period string) []byte {
	t.Helper()
	k, err := testKeys.PeriodKey(period)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
