package inspection_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
)

// strictRig is an audit rig whose "Audit Dairy" goods (normalLine) are
// under an alert, so every lot of them is decided strict.
func strictRig(t *testing.T) *auditRig {
	t.Helper()
	r := newAuditRig(t, nil)
	if _, err := r.svc.RaiseAlert(ctx, officer, inspection.AlertInput{Authority: "RASFF", Reference: "4E-ALERT",
		IssuedAt: r.clock.Now().Format(time.RFC3339), Reason: "Listeria monocytogenes",
		Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: "Audit Dairy", Origin: "NZ"}}); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(r.clock.Now().Add(time.Hour))
	return r
}

func strictLot(t *testing.T, r *auditRig, id string) inspection.Decision {
	t.Helper()
	d := decideOne(t, r, id, normalLine(1, "Sữa nghiêm "+id))
	if d.Mode != inspection.ModeStrict || !d.Inspect {
		t.Fatalf("setup: %s is %s, inspected %v", id, d.Mode, d.Inspect)
	}
	return d
}

var second = access.Principal{Name: "customs:tran.thi.b", Role: access.RoleCustoms}

// TestRelaxingOverrideWaitsForASecondOfficer: the acceptance. Releasing a
// strict lot by one officer is stored pending and changes nothing else;
// the same person cannot confirm it, with any key; another officer's
// confirmation makes it take effect, then and only then.
func TestRelaxingOverrideWaitsForASecondOfficer(t *testing.T) {
	r := strictRig(t)
	d := strictLot(t, r, "4E-1")
	release := inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "the alert named another plant", Inspect: ptr(false)}
	asked := r.clock.Now()
	out, err := r.svc.Override(ctx, officer, d.ID, release)
	if err != nil {
		t.Fatal(err)
	}
	o := out.Decision.Overrides[0]
	if len(out.Decision.Overrides) != 1 || o.Status != inspection.OverridePending || o.By != officer.Name || !o.WasInspected || o.Inspect ||
		o.AssignmentID != "" || o.ConfirmedBy != "" || o.InEffect() {
		t.Fatalf("pending override %+v", o)
	}
	want := inspection.CurrentDecision{Inspect: true, Agency: d.Agency, AssignmentID: d.AssignmentID, Reason: d.Reason}
	unchanged := func(when string) {
		t.Helper()
		v, err := r.svc.DecisionView(ctx, access.SystemPrincipal(), d.ID)
		if err != nil || v.Current != want {
			t.Fatalf("%s: current %+v %v, want the decision's own %+v", when, v.Current, err, want)
		}
		a, err := r.svc.Assignment(ctx, access.SystemPrincipal(), d.AssignmentID)
		if err != nil || a.Status != inspection.AssignmentOpen || a.OverrideID != "" || a.CancelledAt != nil {
			t.Fatalf("%s: assignment %+v %v", when, a, err)
		}
	}
	if out.Decision.Current != want {
		t.Fatalf("the answer's current %+v", out.Decision.Current)
	}
	unchanged("pending")
	e := lastEntry(t, r)
	if e.Kind != audit.OverrideRequested || e.Actor != officer.Name || !slices.Equal(e.Subjects, []string{"decision:" + d.ID}) ||
		len(e.Records) != 1 || e.Records[0].Kind != audit.RecordOverride || e.Records[0].ID != o.ID {
		t.Fatalf("the request's audit entry %+v", e)
	}
	n := len(r.entries(t))
	// The same request again is a retry; any other override waits.
	if again, err := r.svc.Override(ctx, officer, d.ID, release); err != nil || !again.Replayed || len(r.entries(t)) != n {
		t.Fatalf("a retried request: %+v %v", again, err)
	}
	for _, in := range []inspection.OverrideInput{
		{ReasonCode: "duplicate_declaration", ReasonText: "declared twice", Inspect: ptr(false)},
		{ReasonCode: "visible_damage", ReasonText: "torn sacks", Inspect: ptr(true)},
	} {
		if _, err := r.svc.Override(ctx, second, d.ID, in); fault.CodeOf(err) != fault.Conflict || !strings.Contains(err.Error(), "pending") {
			t.Fatalf("another override while one is pending: %v", err)
		}
	}

	// The author cannot confirm: under any key, as the same person.
	r.clock.Set(asked.Add(2 * time.Hour))
	for _, by := range []access.Principal{officer, {Name: officer.Name, Role: access.RoleCustoms, Key: "0123456789abcdef"}} {
		if _, err := r.svc.ConfirmOverride(ctx, by, o.ID); fault.CodeOf(err) != fault.Forbidden || !strings.Contains(err.Error(), "second") {
			t.Fatalf("the author's confirmation: %v", err)
		}
	}
	for _, by := range []access.Principal{as("agency:moit-firi"), as("policy-approver:tran.thi.b"), as("auditor")} {
		if _, err := r.svc.ConfirmOverride(ctx, by, o.ID); fault.CodeOf(err) != fault.Forbidden {
			t.Fatalf("%s confirms: %v", by.Name, err)
		}
		if _, err := r.svc.RejectOverride(ctx, by, o.ID, "no"); fault.CodeOf(err) != fault.Forbidden {
			t.Fatalf("%s rejects: %v", by.Name, err)
		}
	}
	for _, id := range []string{"dec_nope/1", d.ID + "/2", d.ID + "/0", d.ID + "/01", d.ID + "/x", d.ID, ""} {
		if _, err := r.svc.ConfirmOverride(ctx, second, id); fault.CodeOf(err) != fault.NotFound {
			t.Fatalf("confirm %q: %v", id, err)
		}
	}
	if len(r.entries(t)) != n {
		t.Fatal("a refused confirmation was recorded")
	}
	unchanged("refused confirmations")

	// A second officer confirms: it takes effect now.
	done, err := r.svc.ConfirmOverride(ctx, second, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	c := done.Decision.Overrides[0]
	if c.Status != inspection.OverrideConfirmed || c.ConfirmedBy != second.Name || c.ConfirmedAt == nil || !c.ConfirmedAt.Equal(r.clock.Now()) ||
		!c.At.Equal(asked) || c.AssignmentID != d.AssignmentID || c.Agency != d.Agency {
		t.Fatalf("confirmed override %+v", c)
	}
	cur := done.Decision.Current
	if cur.Inspect || cur.AssignmentID != "" || cur.OverrideID != o.ID || !strings.Contains(cur.Reason, officer.Name) ||
		!strings.Contains(cur.Reason, "confirmed by "+second.Name) || !strings.Contains(cur.Reason, release.ReasonText) {
		t.Fatalf("current after confirmation %+v", cur)
	}
	if v, err := r.svc.DecisionView(ctx, access.SystemPrincipal(), d.ID); err != nil || v.Current != cur || v.Overrides[0].Status != inspection.OverrideConfirmed {
		t.Fatalf("read back %+v %v", v, err)
	}
	a, err := r.svc.Assignment(ctx, access.SystemPrincipal(), d.AssignmentID)
	if err != nil || a.Status != inspection.AssignmentCancelled || a.OverrideID != o.ID || a.CancelledAt == nil || !a.CancelledAt.Equal(r.clock.Now()) {
		t.Fatalf("assignment after confirmation %+v %v", a, err)
	}
	e = lastEntry(t, r)
	if e.Kind != audit.OverrideConfirmed || e.Actor != second.Name || !slices.Equal(e.Subjects, []string{"decision:" + d.ID}) ||
		!slices.ContainsFunc(e.Records, func(x audit.RecordDigest) bool { return x.Kind == audit.RecordOverride && x.ID == o.ID }) ||
		!slices.ContainsFunc(e.Records, func(x audit.RecordDigest) bool { return x.Kind == audit.RecordAssignment && x.ID == d.AssignmentID }) {
		t.Fatalf("the confirmation's audit entry %+v", e)
	}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+d.Agency), d.AssignmentID,
		inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Format(time.RFC3339)}); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("a result on the released lot: %v", err)
	}
	// Settled: the confirmer again is a retry; a rejection is too late.
	n = len(r.entries(t))
	if again, err := r.svc.ConfirmOverride(ctx, second, o.ID); err != nil || !again.Replayed || again.Decision.Current != cur {
		t.Fatalf("the confirmation again: %+v %v", again, err)
	}
	if _, err := r.svc.RejectOverride(ctx, second, o.ID, "changed my mind"); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("a rejection after the confirmation: %v", err)
	}
	if len(r.entries(t)) != n {
		t.Fatal("a settled override's retry was recorded")
	}

	// Adding inspection back is immediate, strict lot or not.
	back, err := r.svc.Override(ctx, officer, d.ID, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "the plant is the one named",
		Inspect: ptr(true)})
	if err != nil || !back.Decision.Current.Inspect || back.Decision.Overrides[1].Status != inspection.OverrideInEffect || lastEntry(t, r).Kind != audit.DecisionOverridden {
		t.Fatalf("inspect again: %+v %v", back.Decision, err)
	}
	if _, err := r.svc.ConfirmOverride(ctx, second, back.Decision.Overrides[1].ID); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("confirming an override that took effect when made: %v", err)
	}
	r.verify(t)

	// The store rewrites only a pending override, and only its resolution.
	err = r.db.UpdateRaw(ctx, func(tx inspection.Tx) error {
		x := back.Decision.Overrides[1]
		x.Status, x.ConfirmedBy = inspection.OverrideConfirmed, "customs:rogue"
		return tx.ResolveOverride(x)
	})
	if fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("resolving an override in effect: %v", err)
	}
}

// TestRejectedOverrideChangesNothing: a pending override rejected (by a
// second officer, or withdrawn by its author) never takes effect; a later
// override of the lot is asked afresh.
func TestRejectedOverrideChangesNothing(t *testing.T) {
	r := strictRig(t)
	d := strictLot(t, r, "4E-R")
	release := inspection.OverrideInput{ReasonCode: "agency_request", ReasonText: "no lab capacity this week", Inspect: ptr(false)}
	out, err := r.svc.Override(ctx, officer, d.ID, release)
	if err != nil {
		t.Fatal(err)
	}
	o := out.Decision.Overrides[0]
	n := len(r.entries(t))
	for _, reason := range []string{"", "  \n"} {
		if _, err := r.svc.RejectOverride(ctx, second, o.ID, reason); fault.CodeOf(err) != fault.Invalid {
			t.Fatalf("a rejection without a reason: %v", err)
		}
	}
	if len(r.entries(t)) != n {
		t.Fatal("a refused rejection was recorded")
	}
	rej, err := r.svc.RejectOverride(ctx, second, o.ID, "strict lots are sampled: book another lab")
	if err != nil {
		t.Fatal(err)
	}
	ro := rej.Decision.Overrides[0]
	if ro.Status != inspection.OverrideRejected || ro.RejectedBy != second.Name || ro.RejectedAt == nil || ro.RejectReason != "strict lots are sampled: book another lab" ||
		ro.InEffect() || !rej.Decision.Current.Inspect || rej.Decision.Current.AssignmentID != d.AssignmentID || rej.Decision.Current.OverrideID != "" {
		t.Fatalf("rejected: %+v / %+v", ro, rej.Decision.Current)
	}
	if e := lastEntry(t, r); e.Kind != audit.OverrideRejected || e.Actor != second.Name || len(e.Records) != 1 || e.Records[0].Kind != audit.RecordOverride {
		t.Fatalf("the rejection's audit entry %+v", e)
	}
	if a, err := r.svc.Assignment(ctx, access.SystemPrincipal(), d.AssignmentID); err != nil || a.Status != inspection.AssignmentOpen {
		t.Fatalf("assignment after a rejection %+v %v", a, err)
	}
	n = len(r.entries(t))
	if again, err := r.svc.RejectOverride(ctx, second, o.ID, "strict lots are sampled: book another lab"); err != nil || !again.Replayed {
		t.Fatalf("the rejection again: %+v %v", again, err)
	}
	if _, err := r.svc.RejectOverride(ctx, second, o.ID, "another reason"); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("a second rejection for another reason: %v", err)
	}
	if _, err := r.svc.ConfirmOverride(ctx, as("customs:le.van.c"), o.ID); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("a confirmation after the rejection: %v", err)
	}
	if len(r.entries(t)) != n {
		t.Fatal("a settled override's retry was recorded")
	}
	// The same request again is asked afresh, not a retry of the rejected one.
	out, err = r.svc.Override(ctx, officer, d.ID, release)
	if err != nil || out.Replayed || len(out.Decision.Overrides) != 2 || out.Decision.Overrides[1].Status != inspection.OverridePending {
		t.Fatalf("asked again after a rejection: %+v %v", out.Decision.Overrides, err)
	}
	// ... and withdrawn by its author: rejecting relaxes nothing.
	if w, err := r.svc.RejectOverride(ctx, officer, out.Decision.Overrides[1].ID, "withdrawn: wrong lot"); err != nil ||
		w.Decision.Overrides[1].Status != inspection.OverrideRejected || !w.Decision.Current.Inspect {
		t.Fatalf("withdrawn by the author: %+v %v", w, err)
	}
	r.verify(t)
}

// TestWhichOverridesWaitForFourEyes: the rule. Releasing a strict lot, or
// granting an exemption whatever the mode, waits; releasing a normal lot
// for another reason, or adding inspection, does not. A request on a lot
// with a result is refused at once, and a result recorded while one waits
// makes its confirmation a conflict. (Adding inspection to a strict lot
// is immediate too: TestRelaxingOverrideWaitsForASecondOfficer.)
func TestWhichOverridesWaitForFourEyes(t *testing.T) {
	r := newAuditRig(t, nil)
	normal := decideOne(t, r, "4E-N1", normalLine(1, "Sữa thường 1"))
	out, err := r.svc.Override(ctx, officer, normal.ID, inspection.OverrideInput{ReasonCode: "duplicate_declaration", ReasonText: "declared twice", Inspect: ptr(false)})
	if err != nil || out.Decision.Overrides[0].Status != inspection.OverrideInEffect || out.Decision.Current.Inspect {
		t.Fatalf("releasing a normal lot: %+v %v", out.Decision, err)
	}
	exempted := decideOne(t, r, "4E-N2", normalLine(1, "Sữa thường 2"))
	out, err = r.svc.Override(ctx, officer, exempted.ID, inspection.OverrideInput{ReasonCode: "exemption_established", ReasonText: "sample for a trade fair",
		Inspect: ptr(false)})
	if err != nil || out.Decision.Overrides[0].Status != inspection.OverridePending || !out.Decision.Current.Inspect {
		t.Fatalf("an exemption on a normal lot: %+v %v", out.Decision, err)
	}
	// A result while it waits: the lot was inspected, the release can no
	// longer be confirmed.
	if _, err := r.svc.RecordResult(ctx, as("agency:"+exempted.Agency), exempted.AssignmentID,
		inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Format(time.RFC3339)}); err != nil {
		t.Fatalf("a result on a lot whose release is pending: %v", err)
	}
	n := len(r.entries(t))
	if _, err := r.svc.ConfirmOverride(ctx, second, out.Decision.Overrides[0].ID); fault.CodeOf(err) != fault.Conflict || !strings.Contains(err.Error(), "result") {
		t.Fatalf("confirming after a result: %v", err)
	}
	if len(r.entries(t)) != n {
		t.Fatal("a refused confirmation was recorded")
	}

	r2 := strictRig(t)
	d := strictLot(t, r2, "4E-S1")
	if _, err := r2.svc.RecordResult(ctx, as("agency:"+d.Agency), d.AssignmentID,
		inspection.ResultInput{Outcome: "pass", InspectedAt: r2.clock.Now().Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.svc.Override(ctx, officer, d.ID, inspection.OverrideInput{ReasonCode: "intelligence", ReasonText: "x", Inspect: ptr(false)}); fault.CodeOf(err) != fault.Conflict {
		t.Fatalf("requesting the release of an inspected lot: %v", err)
	}
	// An exempt lot inspected by override: at once.
	ex := normalLine(1, "Sữa miễn")
	ex.Exemption = "personal_luggage"
	dx := decideOne(t, r, "4E-N3", ex)
	add, err := r.svc.Override(ctx, officer, dx.ID, inspection.OverrideInput{ReasonCode: "visible_damage", ReasonText: "wet cartons", Inspect: ptr(true)})
	if dx.Inspect || err != nil || add.Decision.Overrides[0].Status != inspection.OverrideInEffect || !add.Decision.Current.Inspect {
		t.Fatalf("adding inspection: %+v %v", add.Decision, err)
	}
	r.verify(t)
	r2.verify(t)
}
