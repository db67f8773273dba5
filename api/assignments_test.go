package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
)

// TestAssignmentLifecycleOverHTTP: the agency's queue by deadline and its
// filters, accept, sample, result and correction, and the refusals of bad
// transitions (409 problem+json, nothing changed).
func TestAssignmentLifecycleOverHTTP(t *testing.T) {
	e := newEnv(t, start)
	// A strict lot: its maker has an alert.
	alert := map[string]any{"authority": "RASFF", "reference": "LIFE-1", "reason": "Salmonella", "issued_at": e.clock.Now().Add(-time.Hour).Format(time.RFC3339),
		"target": map[string]string{"kind": "manufacturer", "manufacturer": "Life Dairy", "origin": "NZ"}}
	if status, _ := e.as("customs").do("POST", "/v1/alerts", alert, nil); status != http.StatusCreated {
		t.Fatalf("alert: %d", status)
	}
	strict := e.decide("LIFE-S", importerA, milk("Life Dairy"))
	e.clock.Advance(time.Minute)
	normal := e.decide("LIFE-N", importerA, milk("Life Other Dairy"))
	if strict.Mode != inspection.ModeStrict || normal.Mode != inspection.ModeNormal || strict.Agency != normal.Agency {
		t.Fatalf("setup: %+v %+v", strict, normal)
	}
	agency := "agency:" + strict.Agency

	// The queue: by deadline (the strict lot, days to inspect, after the
	// documents check due in hours), filtered, unknown parameters refused.
	var q api.AssignmentList
	if status, _ := e.as(agency).do("GET", "/v1/assignments", nil, &q); status != http.StatusOK || len(q.Assignments) != 2 ||
		q.Assignments[0].ID != normal.AssignmentID || q.Assignments[1].ID != strict.AssignmentID {
		t.Fatalf("queue by deadline: %d %+v", status, q)
	}
	if status, _ := e.as(agency).do("GET", "/v1/assignments?sort=created&mode=strict", nil, &q); status != http.StatusOK || len(q.Assignments) != 1 ||
		q.Assignments[0].ID != strict.AssignmentID {
		t.Fatalf("strict only: %d %+v", status, q)
	}
	refused(t, e, agency, "GET", "/v1/assignments?state=open", nil, http.StatusBadRequest, "state")
	refused(t, e, agency, "GET", "/v1/assignments?sort=risky", nil, http.StatusUnprocessableEntity, "sort")
	refused(t, e, agency, "GET", "/v1/assignments?status=closed", nil, http.StatusUnprocessableEntity, "status")
	refused(t, e, agency, "GET", "/v1/assignments?overdue=yes", nil, http.StatusUnprocessableEntity, "overdue")

	// Accept: one officer answers for it.
	path := "/v1/assignments/" + strict.AssignmentID
	var a inspection.Assignment
	if status, _ := e.as(agency).do("POST", path+"/accept", map[string]any{"officer": "Nguyễn Văn A"}, &a); status != http.StatusOK ||
		a.Status != inspection.AssignmentAccepted || a.AcceptedBy != "Nguyễn Văn A" {
		t.Fatalf("accept: %d %+v", status, a)
	}
	if status, _ := e.as(agency).do("POST", path+"/accept", map[string]any{"officer": "Nguyễn Văn A"}, nil); status != http.StatusOK {
		t.Fatalf("the same officer again: %d", status)
	}
	refused(t, e, agency, "POST", path+"/accept", map[string]any{"officer": "Trần Thị B"}, http.StatusConflict, "officer")
	if status, _ := e.as(agency).do("GET", "/v1/assignments?status=accepted", nil, &q); status != http.StatusOK || len(q.Assignments) != 1 {
		t.Fatalf("accepted only: %d %+v", status, q)
	}
	// A documents check takes no sample.
	if status, _ := e.as(agency).do("POST", "/v1/assignments/"+normal.AssignmentID+"/accept", map[string]any{"officer": "Lê C"}, nil); status != http.StatusOK {
		t.Fatalf("accept the documents check: %d", status)
	}
	refused(t, e, agency, "POST", "/v1/assignments/"+normal.AssignmentID+"/sample", map[string]any{"laboratory": "Lab", "reference": "S-9"}, http.StatusConflict, "assignment_id")
	if status, _ := e.as(agency).do("POST", path+"/sample", map[string]any{"laboratory": "Quatest 3", "reference": "S-2026-0001"}, &a); status != http.StatusOK ||
		a.Status != inspection.AssignmentSampled || a.Sample == nil || a.Sample.TakenBy != "Nguyễn Văn A" {
		t.Fatalf("sample: %d %+v", status, a)
	}

	// The result, then its correction within the window; past it, refused.
	e.clock.Advance(day)
	e.result(strict.AssignmentID, inspection.OutcomePass)
	var wl api.WorkloadResponse
	if status, _ := e.as("customs").do("GET", "/v1/workload?date="+e.clock.Now().Format("2006-01-02"), nil, &wl); status != http.StatusOK {
		t.Fatalf("workload: %d", status)
	}
	found := false
	for _, w := range wl.Agencies {
		if w.Agency == strict.Agency {
			found = true
			if w.Results != 1 || w.AvgTurnaroundWorkingH <= 0 || w.Backlog != 1 {
				t.Errorf("workload of %s: %+v", w.Agency, w)
			}
		}
	}
	if !found {
		t.Errorf("no workload for %s: %+v", strict.Agency, wl)
	}
	refused(t, e, agency, "GET", "/v1/workload?day=today", nil, http.StatusBadRequest, "day")
	corr := map[string]any{"outcome": "fail", "reason": "the laboratory's report was misread",
		"findings": []map[string]string{{"code": "MICRO", "text": "Salmonella detected"}}}
	if status, _ := e.as(agency).do("POST", path+"/corrections", corr, &a); status != http.StatusCreated || a.Result.Outcome != inspection.OutcomeFail ||
		len(a.Corrected) != 1 || a.Corrected[0].Outcome != inspection.OutcomePass {
		t.Fatalf("correction: %d %+v", status, a)
	}
	if status, _ := e.as(agency).do("POST", path+"/corrections", corr, nil); status != http.StatusOK {
		t.Fatalf("the same correction again: %d", status)
	}
	var g inspection.GoodsState
	if status, _ := e.as("customs").do("GET", "/v1/goods/"+e.decision(strict.DecisionID).GoodsKey.String(), nil, &g); status != http.StatusOK || g.Results != 1 {
		t.Fatalf("goods after the correction: %d %+v", status, g)
	}
	e.clock.Advance(10 * day)
	refused(t, e, agency, "POST", path+"/corrections", map[string]any{"outcome": "pass", "reason": "again"}, http.StatusConflict, "assignment_id")

	// A result on a cancelled assignment.
	cancel := map[string]any{"reason_code": "duplicate_declaration", "reason_text": "declared twice", "inspect": false}
	other := e.decide("LIFE-X", importerA, milk("Life Third Dairy"))
	if status, _ := e.as("customs").do("POST", "/v1/decisions/"+other.DecisionID+"/override", cancel, nil); status != http.StatusCreated {
		t.Fatalf("override: %d", status)
	}
	refused(t, e, "agency:"+other.Agency, "POST", "/v1/assignments/"+other.AssignmentID+"/result",
		map[string]any{"outcome": "pass", "inspected_at": e.clock.Now().Format(time.RFC3339)}, http.StatusConflict, "assignment_id")

	// The feed told NSW and the agency.
	types := map[string]bool{}
	for _, raw := range pullAll(t, e, agency, "") {
		types[string(decodeEvent(t, raw).Type)] = true
	}
	for _, want := range []string{"assignment.accepted", "result.recorded", "result.corrected", "assignment.cancelled"} {
		if !types[want] {
			t.Errorf("no %s event in the agency's feed: %v", want, types)
		}
	}
}
