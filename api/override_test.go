package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
)

// TestOverrideOverHTTP: customs overrides a lot with a coded reason; the
// answer and GET /v1/decisions/{id} show the decision as decided, the
// override (who, when, why) and what is in force; the agency sees a lot an
// override routed to it and cannot report on one it cancelled; the
// auditor finds the override in the audit log; a request without a reason
// is 422 problem+json naming the field and changes nothing.
func TestOverrideOverHTTP(t *testing.T) {
	e := newEnv(t, start)
	ld := e.decide("OVR-HTTP-1", importerA, milk("Override Dairy"))
	agency := "agency:" + ld.Agency
	path := "/v1/decisions/" + ld.DecisionID + "/override"

	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no reason", map[string]any{"inspect": false}, "reason_code"},
		{"no text", map[string]any{"reason_code": "intelligence", "inspect": false}, "reason_text"},
		{"unknown code", map[string]any{"reason_code": "whim", "reason_text": "x", "inspect": false}, "reason_code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := digest(t, e)
			var p api.Problem
			status, hdr := e.in(t).as("customs").do("POST", path, tc.body, &p)
			if status != http.StatusUnprocessableEntity || p.Field != tc.field || hdr.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d %+v, want 422 on %s", status, p, tc.field)
			}
			if digest(t, e) != before {
				t.Fatal("a refused override changed the store")
			}
		})
	}
	if status, _ := e.as("policy-approver").do("POST", path, map[string]any{"reason_code": "intelligence", "reason_text": "x", "inspect": false}, nil); status != http.StatusForbidden {
		t.Fatalf("policy staff override: %d, want 403", status)
	}

	body := map[string]any{"reason_code": "duplicate_declaration", "reason_text": "the same container as OVR-HTTP-0", "inspect": false}
	var out api.OverrideResponse
	if status, _ := e.as("customs").do("POST", path, body, &out); status != http.StatusCreated {
		t.Fatalf("override: %d", status)
	}
	if status, _ := e.as("customs").do("POST", path, body, nil); status != http.StatusOK {
		t.Fatalf("the same override again: %d, want 200", status)
	}
	var v inspection.DecisionView
	if status, _ := e.as("customs").do("GET", "/v1/decisions/"+ld.DecisionID, nil, &v); status != http.StatusOK {
		t.Fatalf("get: %d", status)
	}
	if !v.Inspect || v.AssignmentID != ld.AssignmentID || len(v.Overrides) != 1 || v.Overrides[0].By != "customs" ||
		v.Overrides[0].ReasonCode != "duplicate_declaration" || v.Current.Inspect || !strings.Contains(v.Current.Reason, "the same container") {
		t.Fatalf("decision view %+v", v)
	}
	if out.Decision.Current != v.Current {
		t.Fatalf("the answer %+v differs from the read %+v", out.Decision.Current, v.Current)
	}
	// The agency still sees the decision it was given, and its cancelled
	// assignment, but cannot report on it.
	if status, _ := e.as(agency).do("GET", "/v1/decisions/"+ld.DecisionID, nil, nil); status != http.StatusOK {
		t.Fatalf("the original agency: %d", status)
	}
	var p api.Problem
	if status, _ := e.as(agency).do("POST", "/v1/assignments/"+ld.AssignmentID+"/result",
		map[string]any{"outcome": "pass", "inspected_at": start.Format("2006-01-02T15:04:05Z07:00")}, &p); status != http.StatusConflict {
		t.Fatalf("result on a cancelled assignment: %d %+v", status, p)
	}

	// An exempt lot inspected by override: the agency it is routed to sees it.
	ex := milk("Override Dairy")
	ex.Exemption = "personal_luggage"
	xd := e.decide("OVR-HTTP-2", importerA, ex)
	if status, _ := e.as(agency).do("GET", "/v1/decisions/"+xd.DecisionID, nil, nil); status != http.StatusNotFound {
		t.Fatalf("an agency reads a lot routed to no one: %d", status)
	}
	var ox api.OverrideResponse
	if status, _ := e.as("customs").do("POST", "/v1/decisions/"+xd.DecisionID+"/override",
		map[string]any{"reason_code": "visible_damage", "reason_text": "wet cartons", "inspect": true}, &ox); status != http.StatusCreated ||
		!ox.Decision.Current.Inspect || "agency:"+ox.Decision.Current.Agency != agency {
		t.Fatalf("inspect an exempt lot: %d %+v", status, ox.Decision.Current)
	}
	if status, _ := e.as(agency).do("GET", "/v1/decisions/"+xd.DecisionID, nil, nil); status != http.StatusOK {
		t.Fatalf("the agency an override routed the lot to: %d", status)
	}
	var list api.AssignmentList
	if e.as(agency).do("GET", "/v1/assignments", nil, &list); len(list.Assignments) != 1 || list.Assignments[0].DecisionID != xd.DecisionID {
		t.Fatalf("the agency's open list: %+v", list)
	}

	// The audit log, as the auditor reads it, pages and ends with the overrides.
	var page api.AuditPage
	if status, _ := e.as("auditor").do("GET", "/v1/audit?limit=2", nil, &page); status != http.StatusOK || len(page.Entries) != 2 || page.Next != "2" {
		t.Fatalf("first page: %+v", page)
	}
	var all []audit.Entry
	for after := ""; ; {
		var pg api.AuditPage
		if status, _ := e.as("auditor").do("GET", "/v1/audit?limit=3&after="+after, nil, &pg); status != http.StatusOK {
			t.Fatalf("page after %s: %d", after, status)
		}
		all = append(all, pg.Entries...)
		if after = pg.Next; after == "" {
			break
		}
	}
	if n := len(all); n < 3 || all[n-1].Kind != audit.DecisionOverridden || all[n-1].Actor != "customs" ||
		all[n-3].Kind != audit.DecisionOverridden || all[n-3].Subjects[0] != "decision:"+ld.DecisionID || uint64(n) != page.Head.Seq {
		t.Fatalf("audit log ends %+v", all[max(0, len(all)-3):])
	}
	if _, err := e.svc.VerifyAudit(t.Context(), access.SystemPrincipal(), nil); err != nil {
		t.Fatalf("verify audit: %v", err)
	}
}
