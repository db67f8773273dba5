package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/quota"
)

const (
	importerA = "0101234567"
	importerB = "0309876543-001"
	day       = 24 * time.Hour
)

var start = time.Date(2026, 1, 5, 9, 0, 0, 0, calendar.Vietnam())

func milk(manufacturer string) line {
	return line{HSCode: "0402.21.20", ProductName: "Sữa bột nguyên kem", Brand: "Đồng Cỏ", Manufacturer: manufacturer,
		Origin: "NZ", Procedure: "food_safety", Quantity: 1200, Unit: "kg"}
}

func kettle(manufacturer string) line {
	return line{HSCode: "8516.71.00", ProductName: "Ấm đun nước điện 1.7L", Brand: "Kettlo", Manufacturer: manufacturer,
		Origin: "CN", Procedure: "quality", Quantity: 500, Unit: "pcs"}
}

type scenario struct {
	*env
	seq int
}

func (s *scenario) next() string { s.seq++; return fmt.Sprintf("TEST%08d", s.seq) }

// lot decides one lot of l for the importer and checks mode, inspection
// and the rule its stored explanation names.
func (s *scenario) lot(importer string, l line, mode inspection.Mode, rule string) inspection.Decision {
	s.t.Helper()
	ld := s.decide(s.next(), importer, l)
	d := s.decision(ld.DecisionID)
	if ld.Mode != mode || d.Mode != mode || d.Explanation.Rule != rule {
		s.t.Fatalf("%s %s: got %s (stored %s, rule %s: %s), want %s by %s", l.ProductName, l.Manufacturer,
			ld.Mode, d.Mode, d.Explanation.Rule, d.Reason, mode, rule)
	}
	wantInspect := mode == inspection.ModeStrict || mode == inspection.ModeNormal || (d.Quota != nil && d.Quota.Chosen)
	if ld.Inspect != wantInspect || (wantInspect && (ld.AssignmentID == "" || ld.Agency == "")) {
		s.t.Fatalf("%s: inspect %v agency %q assignment %q, want inspect %v with an assignment", mode, ld.Inspect, ld.Agency, ld.AssignmentID, wantInspect)
	}
	if d.PolicyVersion == "" || d.Reason == "" || !strings.HasPrefix(d.Reason, string(mode)) {
		s.t.Fatalf("explanation incomplete: %+v", d)
	}
	return d
}

// inspectAndPass decides a lot expected in mode and records a pass a day later.
func (s *scenario) inspectAndPass(importer string, l line, mode inspection.Mode, rule string) {
	s.t.Helper()
	d := s.lot(importer, l, mode, rule)
	s.clock.Advance(day)
	s.result(d.AssignmentID, inspection.OutcomePass)
}

func TestScenarioLegalPaths(t *testing.T) {
	s := &scenario{env: newEnv(t, start)}
	N, S, R, E := inspection.ModeNormal, inspection.ModeStrict, inspection.ModeReduced, inspection.ModeExempt

	t.Run("no history is normal; three passes within 12 months reduce", func(t *testing.T) {
		g := milk("Mainland Dairies Ltd")
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
		s.inspectAndPass(importerB, g, N, inspection.RuleNormalDefault) // by goods, not by owner
		d := s.lot(importerA, g, N, inspection.RuleNormalDefault)
		if d.Explanation.Progress != "2 of 3 passes within 12 months toward reduced" {
			t.Fatalf("progress %q", d.Explanation.Progress)
		}
		s.clock.Advance(day)
		s.result(d.AssignmentID, inspection.OutcomePass)
		r := s.lot(importerA, g, R, inspection.RuleReducedPasses)
		if r.Quota == nil || r.Quota.Scope != "heading:0402" || !strings.Contains(r.Reason, "random check") || len(r.Explanation.Events) != 3 {
			t.Fatalf("reduced explanation: %q, events %v", r.Reason, r.Explanation.Events)
		}
	})

	t.Run("not when the first pass is older than 12 months", func(t *testing.T) {
		g := milk("Southern Alps Milk Co")
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
		s.clock.Advance(200 * day)
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
		s.clock.Advance(170 * day)
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
		d := s.lot(importerA, g, N, inspection.RuleNormalDefault)
		if d.Explanation.Progress != "2 of 3 passes within 12 months toward reduced" {
			t.Fatalf("progress %q", d.Explanation.Progress)
		}
	})

	t.Run("a failure makes strict; three strict passes return to normal", func(t *testing.T) {
		g := milk("Waikato Nutrition Ltd")
		d := s.lot(importerA, g, N, inspection.RuleNormalDefault)
		s.clock.Advance(day)
		s.result(d.AssignmentID, inspection.OutcomeFail)
		for i := 0; i < 3; i++ {
			st := s.lot(importerA, g, S, inspection.RuleStrictFailure)
			if want := fmt.Sprintf("%d of 3 passes toward normal", i); st.Explanation.Progress != want {
				t.Fatalf("progress %q, want %q", st.Explanation.Progress, want)
			}
			var a inspection.Assignment
			s.do("GET", "/v1/assignments/"+st.AssignmentID, nil, &a)
			if a.Check != "documents_and_sampling" || !a.DueAt.After(a.CreatedAt) {
				t.Fatalf("strict assignment %+v", a)
			}
			s.clock.Advance(day)
			s.result(st.AssignmentID, inspection.OutcomePass)
		}
		s.lot(importerA, g, N, inspection.RuleNormalDefault)
	})

	t.Run("a valid certificate reduces, an expired one does not", func(t *testing.T) {
		g := milk("Canterbury Creamery")
		valid := g
		valid.Certificates = []declaration.CertificateInput{{Kind: "ISO 22000", Number: "ISO22-7781", ValidUntil: "2028-12-31"}}
		// Presented but not on record: pending, the lot is checked.
		pending := s.lot(importerA, valid, N, inspection.RuleNormalDefault)
		if !strings.Contains(pending.Reason, "pending verification") {
			t.Fatalf("an unverified certificate: %q", pending.Reason)
		}
		// The documents check registers it: from then on it counts.
		s.register("Canterbury Creamery", "NZ", valid.Certificates[0])
		d := s.lot(importerA, valid, R, inspection.RuleReducedCertificate)
		if d.Explanation.Certificate == nil || d.Explanation.Certificate.Number != "ISO22-7781" {
			t.Fatalf("certificate not explained: %+v", d.Explanation)
		}
		// (Another maker: a certificate on record counts for all its goods.)
		expired := milk("Waikato Creamery")
		expired.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "H-1", ValidUntil: "2020-01-01"}}
		s.lot(importerA, expired, N, inspection.RuleNormalDefault)
	})

	t.Run("an alert makes strict despite a certificate", func(t *testing.T) {
		g := milk("Otago Dairy Exports")
		g.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "H-99", ValidUntil: "2028-12-31"}}
		s.register("Otago Dairy Exports", "NZ", g.Certificates[0])
		s.lot(importerA, g, R, inspection.RuleReducedCertificate)
		alert := map[string]any{"authority": "INFOSAN", "reference": "INF-2026-0042", "reason": "Cronobacter in infant formula",
			"issued_at": s.clock.Now().Format(time.RFC3339),
			"target":    map[string]string{"kind": "manufacturer", "manufacturer": "  otago DAIRY exports ", "origin": "nz"}}
		if status, _ := s.do("POST", "/v1/alerts", alert, nil); status != http.StatusCreated {
			t.Fatalf("alert status %d", status)
		}
		if status, _ := s.do("POST", "/v1/alerts", alert, nil); status != http.StatusOK {
			t.Fatalf("repeated alert status %d, want 200", status)
		}
		s.clock.Advance(time.Hour)
		d := s.lot(importerA, g, S, inspection.RuleStrictAlert)
		if !strings.Contains(d.Reason, "INFOSAN") {
			t.Fatalf("reason %q does not name the authority", d.Reason)
		}
	})

	t.Run("an exempt category is exempt", func(t *testing.T) {
		g := milk("Mainland Dairies Ltd")
		g.Exemption = "personal_luggage"
		d := s.lot(importerA, g, E, inspection.RuleExemptCategory)
		if d.Explanation.Exemption != "personal_luggage" {
			t.Fatalf("exemption %q", d.Explanation.Exemption)
		}
	})

	t.Run("quality goods passing three times exempt one importer until the term ends", func(t *testing.T) {
		g := kettle("Zhongshan Kettlo Electric Co")
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
		s.clock.Advance(30 * day)
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
		s.clock.Advance(30 * day)
		s.inspectAndPass(importerA, g, N, inspection.RuleNormalDefault)
		d := s.lot(importerA, g, E, inspection.RuleExemptQuality)
		if d.Explanation.ExemptUntil == nil {
			t.Fatal("no term in the explanation")
		}
		// Another importer of the same goods is not exempt (it sees the
		// goods' own record: reduced).
		s.lot(importerB, g, R, inspection.RuleReducedPasses)
		s.clock.Set(d.Explanation.ExemptUntil.Add(time.Hour))
		s.lot(importerA, g, N, inspection.RuleNormalDefault)
	})
}

// Reduced lots are drawn: the declaration answer carries no quota counts,
// the stored decision does, and the period's commitment is listed.
func TestQuotaVisibleToCustomsNotToNSW(t *testing.T) {
	e := newEnv(t, start)
	l := milk("Certified Dairy")
	l.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "H-7", ValidUntil: "2028-12-31"}}
	e.register("Certified Dairy", "NZ", l.Certificates[0])
	l.LineNo = 1
	var raw map[string]any
	if status, _ := e.do("POST", "/v1/declarations", declarationBody{"QUOTA-1", importerA, []line{l}}, &raw); status != http.StatusCreated {
		t.Fatalf("status %d", status)
	}
	body, _ := json.Marshal(raw)
	lines := raw["lines"].([]any)
	allowed := map[string]bool{"line_no": true, "decision_id": true, "mode": true, "inspect": true, "agency": true,
		"assignment_id": true, "reason": true}
	for k := range lines[0].(map[string]any) {
		if !allowed[k] {
			t.Fatalf("the NSW answer carries %q: %s", k, body)
		}
	}
	if strings.Contains(string(body), "eligible") || strings.Contains(string(body), "allowance") {
		t.Fatalf("the NSW answer shows the scope's counts: %s", body)
	}
	d := e.decision(lines[0].(map[string]any)["decision_id"].(string))
	if d.Mode != inspection.ModeReduced || d.Quota == nil || d.Quota.Eligible != 1 || d.Quota.Selected != 0 || d.Quota.Scope != "heading:0402" || d.Quota.Period != "2026" {
		t.Fatalf("stored quota record %+v", d.Quota)
	}
	var periods api.QuotaPeriodList
	if status, _ := e.do("GET", "/v1/quota/periods", nil, &periods); status != http.StatusOK || len(periods.Periods) != 1 ||
		periods.Periods[0].Commitment == "" || periods.Periods[0].RevealedKey != "" {
		t.Fatalf("periods %d %+v", status, periods)
	}
	var usage quota.Usage
	if status, _ := e.do("GET", "/v1/quota/periods/2026/scopes", nil, &usage); status != http.StatusOK || !usage.Opened ||
		usage.CapBasisPoints != 500 || usage.Eligible != 1 || usage.Selected != 0 || usage.Allowance != 0 || usage.ScopesWithoutAllowance != 1 ||
		len(usage.Scopes) != 1 || usage.Scopes[0].Scope != "heading:0402" || usage.Scopes[0].Eligible != d.Quota.Eligible {
		t.Fatalf("usage %d %+v", status, usage)
	}
	var none quota.Usage
	if status, _ := e.do("GET", "/v1/quota/periods/2031/scopes", nil, &none); status != http.StatusOK || none.Opened || none.Eligible != 0 || len(none.Scopes) != 0 {
		t.Fatalf("a period without lots: %d %+v", status, none)
	}
	var problem map[string]any
	if status, _ := e.do("GET", "/v1/quota/periods/twenty/scopes", nil, &problem); status/100 != 4 || problem["field"] != "period" {
		t.Fatalf("a malformed period: %d %v", status, problem)
	}
}
