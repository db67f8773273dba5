package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/feed"
)

// overrideEvents counts the feed's override and cancellation events for
// a declaration.
func overrideEvents(t *testing.T, e *env, declarationID string) (overridden, cancelled int) {
	t.Helper()
	for _, raw := range pullAll(t, e, "customs", "") {
		ev := decodeEvent(t, raw)
		if ev.DeclarationID != declarationID {
			continue
		}
		switch ev.Type {
		case feed.DecisionOverridden:
			overridden++
		case feed.AssignmentCancelled:
			cancelled++
		}
	}
	return overridden, cancelled
}

// TestFourEyesOverHTTP: the acceptance over HTTP. A relaxing override of
// a strict lot by customs:a is 201 pending and changes nothing (GET shows
// the decision in force as before, the assignment open, the agency still
// sees and reports, no event); customs:a's confirmation, with either of
// her keys, is 403 problem+json and changes nothing; customs:b's is 200
// and the lot is released then. A rejection leaves everything as it was.
func TestFourEyesOverHTTP(t *testing.T) {
	e := newEnv(t, start)
	admin := access.Principal{Name: "admin:test", Role: access.RoleAdmin}
	for _, k := range []struct{ as, principal string }{
		{"customs:a", "customs:a"}, {"customs:a (second key)", "customs:a"}, {"customs:b", "customs:b"},
	} {
		issued, err := e.access.CreateKey(context.Background(), admin, inspection.KeyRequest{Principal: k.principal, ExpiresAt: start.Add(keyTTL)})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[k.as] = issued.Token
	}
	// The goods' maker is under an alert: its lots are strict.
	alert := map[string]any{"authority": "RASFF", "reference": "4E-HTTP", "reason": "Salmonella", "issued_at": start.Format(time.RFC3339),
		"target": map[string]string{"kind": "manufacturer", "manufacturer": "Four Eyes Dairy", "origin": "NZ"}}
	if status, _ := e.as("customs").do("POST", "/v1/alerts", alert, nil); status != http.StatusCreated {
		t.Fatalf("alert: %d", status)
	}
	e.clock.Advance(time.Hour)
	ld := e.decide("4E-HTTP-1", importerA, milk("Four Eyes Dairy"))
	if d := e.decision(ld.DecisionID); d.Mode != inspection.ModeStrict || !d.Inspect {
		t.Fatalf("setup: %s, inspected %v", d.Mode, d.Inspect)
	}
	agency := "agency:" + ld.Agency
	release := map[string]any{"reason_code": "intelligence", "reason_text": "the alert names another plant", "inspect": false}

	var out api.OverrideResponse
	if status, _ := e.as("customs:a").do("POST", "/v1/decisions/"+ld.DecisionID+"/override", release, &out); status != http.StatusCreated {
		t.Fatalf("override: %d", status)
	}
	o := out.Decision.Overrides[0]
	if o.Status != inspection.OverridePending || o.By != "customs:a" || !out.Decision.Current.Inspect || out.Decision.Current.AssignmentID != ld.AssignmentID {
		t.Fatalf("a relaxing override: %+v, current %+v", o, out.Decision.Current)
	}
	if status, _ := e.as("customs:a").do("POST", "/v1/decisions/"+ld.DecisionID+"/override", release, nil); status != http.StatusOK {
		t.Fatalf("the same request again: %d, want 200", status)
	}
	var p api.Problem
	if status, _ := e.as("customs:b").do("POST", "/v1/decisions/"+ld.DecisionID+"/override",
		map[string]any{"reason_code": "duplicate_declaration", "reason_text": "declared twice", "inspect": false}, &p); status != http.StatusConflict {
		t.Fatalf("another override while one is pending: %d %+v", status, p)
	}
	var v inspection.DecisionView
	if status, _ := e.as("customs").do("GET", "/v1/decisions/"+ld.DecisionID, nil, &v); status != http.StatusOK || v.Current != out.Decision.Current ||
		len(v.Overrides) != 1 || v.Overrides[0].Status != inspection.OverridePending || !v.Current.Inspect || v.Current.OverrideID != "" {
		t.Fatalf("GET while pending: %d %+v", status, v)
	}
	var a inspection.Assignment
	if status, _ := e.as(agency).do("GET", "/v1/assignments/"+ld.AssignmentID, nil, &a); status != http.StatusOK || a.Status != inspection.AssignmentOpen {
		t.Fatalf("the agency's assignment while pending: %d %+v", status, a)
	}
	if status, _ := e.as(agency).do("GET", "/v1/decisions/"+ld.DecisionID, nil, nil); status != http.StatusOK {
		t.Fatalf("the agency reads the lot while pending: %d", status)
	}
	if ov, ca := overrideEvents(t, e, "4E-HTTP-1"); ov != 0 || ca != 0 {
		t.Fatalf("a pending override sent %d override and %d cancellation events", ov, ca)
	}

	// The override's ID is "<decision id>/<n>"; its confirmation lives
	// under the decision, by number.
	if o.ID != ld.DecisionID+"/1" || o.N != 1 {
		t.Fatalf("override ID %q, n %d", o.ID, o.N)
	}
	confirm := "/v1/decisions/" + ld.DecisionID + "/overrides/1/confirm"
	for _, who := range []string{"customs:a", "customs:a (second key)"} {
		before := digest(t, e)
		var p api.Problem
		status, hdr := e.as(who).do("POST", confirm, nil, &p)
		if status != http.StatusForbidden || p.Code != "forbidden" || hdr.Get("Content-Type") != "application/problem+json" || !strings.Contains(p.Detail, "second") {
			t.Fatalf("%s confirms her own override: %d %+v", who, status, p)
		}
		if digest(t, e) != before {
			t.Fatalf("%s's refused confirmation changed the store", who)
		}
	}
	for _, path := range []string{"/v1/decisions/" + ld.DecisionID + "/overrides/2/confirm", "/v1/decisions/dec_nope/overrides/1/confirm",
		"/v1/decisions/" + ld.DecisionID + "/overrides/one/confirm"} {
		if status, _ := e.as("customs:b").do("POST", path, nil, nil); status != http.StatusNotFound {
			t.Fatalf("confirm %s: %d, want 404", path, status)
		}
	}

	e.clock.Advance(time.Hour)
	var done api.OverrideResponse
	if status, _ := e.as("customs:b").do("POST", confirm, nil, &done); status != http.StatusOK {
		t.Fatalf("the second officer confirms: %d", status)
	}
	c := done.Decision.Overrides[0]
	if c.Status != inspection.OverrideConfirmed || c.ConfirmedBy != "customs:b" || done.Decision.Current.Inspect || done.Decision.Current.OverrideID != o.ID ||
		!strings.Contains(done.Decision.Current.Reason, "confirmed by customs:b") {
		t.Fatalf("confirmed: %+v, current %+v", c, done.Decision.Current)
	}
	var after inspection.DecisionView
	if status, _ := e.as("customs").do("GET", "/v1/decisions/"+ld.DecisionID, nil, &after); status != http.StatusOK || after.Current != done.Decision.Current {
		t.Fatalf("GET after confirmation: %+v", after.Current)
	}
	if e.as(agency).do("GET", "/v1/assignments/"+ld.AssignmentID, nil, &a); a.Status != inspection.AssignmentCancelled || a.OverrideID != o.ID {
		t.Fatalf("assignment after confirmation %+v", a)
	}
	if status, _ := e.as(agency).do("POST", "/v1/assignments/"+ld.AssignmentID+"/result",
		map[string]any{"outcome": "pass", "inspected_at": e.clock.Now().Format(time.RFC3339)}, nil); status != http.StatusConflict {
		t.Fatalf("a result on the released lot: %d", status)
	}
	if ov, ca := overrideEvents(t, e, "4E-HTTP-1"); ov != 1 || ca != 1 {
		t.Fatalf("the confirmation sent %d override and %d cancellation events, want 1 and 1", ov, ca)
	}
	before := digest(t, e)
	if status, _ := e.as("customs:b").do("POST", confirm, nil, nil); status != http.StatusOK || digest(t, e) != before {
		t.Fatalf("the confirmation again: %d (store changed: %v)", status, digest(t, e) != before)
	}

	// Rejected: nothing changes, and the agency reports as before.
	ld2 := e.decide("4E-HTTP-2", importerA, milk("Four Eyes Dairy"))
	if status, _ := e.as("customs:a").do("POST", "/v1/decisions/"+ld2.DecisionID+"/override", release, &out); status != http.StatusCreated ||
		out.Decision.Overrides[0].Status != inspection.OverridePending {
		t.Fatalf("second lot's override: %d %+v", status, out.Decision.Overrides)
	}
	reject := "/v1/decisions/" + ld2.DecisionID + "/overrides/1/reject"
	if status, _ := e.as("customs:b").do("POST", reject, map[string]any{}, &p); status != http.StatusUnprocessableEntity || p.Field != "reason" {
		t.Fatalf("a rejection without a reason: %d %+v", status, p)
	}
	var rej api.OverrideResponse
	if status, _ := e.as("customs:b").do("POST", reject, map[string]any{"reason": "strict lots are sampled"}, &rej); status != http.StatusOK ||
		rej.Decision.Overrides[0].Status != inspection.OverrideRejected || rej.Decision.Overrides[0].RejectReason != "strict lots are sampled" ||
		!rej.Decision.Current.Inspect || rej.Decision.Current.AssignmentID != ld2.AssignmentID {
		t.Fatalf("rejected: %d %+v", status, rej.Decision)
	}
	if status, _ := e.as("customs:b").do("POST", "/v1/decisions/"+ld2.DecisionID+"/overrides/1/confirm", nil, nil); status != http.StatusConflict {
		t.Fatalf("confirming a rejected override: %d", status)
	}
	e.result(ld2.AssignmentID, inspection.OutcomePass)
	if ov, ca := overrideEvents(t, e, "4E-HTTP-2"); ov != 0 || ca != 0 {
		t.Fatalf("a rejected override sent %d override and %d cancellation events", ov, ca)
	}

	// Adding inspection is immediate, as before.
	ex := milk("Four Eyes Other Dairy")
	ex.Exemption = "personal_luggage"
	xd := e.decide("4E-HTTP-3", importerA, ex)
	var add api.OverrideResponse
	if status, _ := e.as("customs:a").do("POST", "/v1/decisions/"+xd.DecisionID+"/override",
		map[string]any{"reason_code": "visible_damage", "reason_text": "wet cartons", "inspect": true}, &add); status != http.StatusCreated ||
		add.Decision.Overrides[0].Status != inspection.OverrideInEffect || !add.Decision.Current.Inspect {
		t.Fatalf("adding inspection: %d %+v", status, add.Decision)
	}

	// The audit log tells the request, the confirmation and the rejection apart.
	var page api.AuditPage
	if status, _ := e.as("auditor").do("GET", "/v1/audit?limit=1000", nil, &page); status != http.StatusOK {
		t.Fatalf("audit: %d", status)
	}
	kinds := map[audit.Kind][]string{}
	for _, en := range page.Entries {
		kinds[en.Kind] = append(kinds[en.Kind], en.Actor)
	}
	if got := kinds[audit.OverrideRequested]; len(got) != 2 || got[0] != "customs:a" || got[1] != "customs:a" {
		t.Fatalf("requests %v", got)
	}
	if got := kinds[audit.OverrideConfirmed]; len(got) != 1 || got[0] != "customs:b" {
		t.Fatalf("confirmations %v", got)
	}
	if got := kinds[audit.OverrideRejected]; len(got) != 1 || got[0] != "customs:b" {
		t.Fatalf("rejections %v", got)
	}
	if _, err := e.svc.VerifyAudit(t.Context(), access.SystemPrincipal(), nil); err != nil {
		t.Fatalf("verify audit: %v", err)
	}
}
