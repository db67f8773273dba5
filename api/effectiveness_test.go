package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
)

// TestEffectivenessOverHTTP: the ledger of the version in force after a
// lot decided and failed, shaped for a page (totals, a row per rule, a
// rate with its interval, a sentence); refused to NSW and agencies, and
// 404 naming the field for a version that does not exist.
func TestEffectivenessOverHTTP(t *testing.T) {
	e := newEnv(t, start)
	e.withKeys(t, "policy-author:lan")
	normal := e.decide("EFF-1", importerA, milk("Effective Dairy"))
	if !normal.Inspect {
		t.Fatalf("setup: %+v", normal)
	}
	e.clock.Advance(time.Hour)
	e.as("agency:"+normal.Agency).result(normal.AssignmentID, inspection.OutcomeFail)

	var got inspection.Effectiveness
	if status, _ := e.as("policy-author:lan").do("GET", "/v1/policies/2026.1-default/effectiveness", nil, &got); status != http.StatusOK {
		t.Fatalf("effectiveness: %d", status)
	}
	tot := got.Totals
	if got.Version != "2026.1-default" || tot.Decided != 1 || tot.Inspected != 1 || tot.ResultsIn != 1 || tot.Failures != 1 ||
		tot.HitRate == nil || tot.HitRate.Estimate != 1 || !(tot.HitRate.Low > 0 && tot.HitRate.Low < 1) || tot.HitRate.High != 1 ||
		len(got.Rules) != 1 || got.Rules[0].Rule == "" || tot.Explanation == "" || got.Method == "" {
		t.Errorf("effectiveness: %+v", got)
	}
	refused(t, e, "nsw", "GET", "/v1/policies/2026.1-default/effectiveness", nil, http.StatusForbidden, "")
	refused(t, e, "agency:"+normal.Agency, "GET", "/v1/policies/2026.1-default/effectiveness", nil, http.StatusForbidden, "")
	refused(t, e, "auditor", "GET", "/v1/policies/no-such/effectiveness", nil, http.StatusNotFound, "version")
}
