package inspection_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/reference"
)

func mustPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	vn    = calendar.Vietnam()
	t0    = time.Date(2026, 3, 2, 9, 0, 0, 0, vn)
	goods = identity.Goods{HSCode: "04021000", ProductName: "Sữa bột", Manufacturer: "Dairy Co", Origin: "NZ"}
)

func day(n int) time.Time { return t0.AddDate(0, 0, n) }

func result(id string, at time.Time, o inspection.Outcome, importer string) inspection.Event {
	return inspection.Event{ID: id, Kind: inspection.EventResult, At: at, Outcome: o, ImporterTaxCode: importer,
		Subject: inspection.Subject{Kind: inspection.SubjectGoods, Key: goods.Key()}}
}

func alert(id string, at time.Time, kind inspection.SubjectKind) inspection.Event {
	return inspection.Event{ID: id, Kind: inspection.EventAlert, At: at, Authority: "RASFF",
		Subject: inspection.Subject{Kind: kind}}
}

func passes(n int, from time.Time, everyDays int, importer string) []inspection.Event {
	var out []inspection.Event
	for i := 0; i < n; i++ {
		out = append(out, result(fmt.Sprintf("p%02d", i), from.AddDate(0, 0, i*everyDays), inspection.OutcomePass, importer))
	}
	return out
}

func cat(evs ...[]inspection.Event) []inspection.Event {
	var out []inspection.Event
	for _, e := range evs {
		out = append(out, e...)
	}
	return out
}

func TestEvaluateLegalPaths(t *testing.T) {
	p := mustPolicy(t)
	const imp, other = "0101234567", "0309876543"
	haccp := reference.Certificate{Kind: "HACCP", Number: "H-1", ValidUntil: day(400)}
	food := inspection.Lot{ImporterTaxCode: imp, Procedure: policy.ProcedureFoodSafety}
	quality := inspection.Lot{ImporterTaxCode: imp, Procedure: policy.ProcedureQuality}
	withCert := food
	withCert.Certificates = []reference.Certificate{haccp}
	expired := food
	expired.Certificates = []reference.Certificate{{Kind: "HACCP", Number: "H-0", ValidUntil: day(-1)}}
	unaccepted := food
	unaccepted.Certificates = []reference.Certificate{{Kind: "CE", Number: "X", ValidUntil: day(400)}}
	luggage := food
	luggage.Exemption = "personal_luggage"
	otherQuality := quality
	otherQuality.ImporterTaxCode = other

	tests := []struct {
		name     string
		history  []inspection.Event
		lot      inspection.Lot
		now      time.Time
		mode     inspection.Mode
		rule     string
		progress string
	}{
		{"no history is normal", nil, food, day(0), inspection.ModeNormal, inspection.RuleNormalDefault, "0 of 3 passes within 12 months toward reduced"},
		{"two passes stay normal", passes(2, day(0), 10, imp), food, day(30), inspection.ModeNormal, inspection.RuleNormalDefault, "2 of 3 passes within 12 months toward reduced"},
		{"three passes within 12 months reduce", passes(3, day(0), 10, imp), food, day(30), inspection.ModeReduced, inspection.RuleReducedPasses, ""},
		{"three passes by different importers reduce (by goods, not owner)",
			cat(passes(1, day(0), 0, imp), passes(1, day(1), 0, other)[:1], []inspection.Event{result("z", day(2), inspection.OutcomePass, "0111111111")}),
			food, day(30), inspection.ModeReduced, inspection.RuleReducedPasses, ""},
		{"first pass older than 12 months does not reduce", passes(3, day(0), 100, imp), food, day(366), inspection.ModeNormal, inspection.RuleNormalDefault, "2 of 3 passes within 12 months toward reduced"},
		{"reduced lapses when the passes age out", passes(3, day(0), 1, imp), food, day(370), inspection.ModeNormal, inspection.RuleNormalDefault, "0 of 3 passes within 12 months toward reduced"},
		{"a failure makes strict", cat(passes(3, day(0), 1, imp), []inspection.Event{result("f", day(5), inspection.OutcomeFail, imp)}), food, day(6), inspection.ModeStrict, inspection.RuleStrictFailure, "0 of 3 passes toward normal"},
		{"a late-arriving older failure still counts by inspection date",
			cat([]inspection.Event{result("f", day(1), inspection.OutcomeFail, imp)}, passes(2, day(2), 1, imp)), food, day(6), inspection.ModeStrict, inspection.RuleStrictFailure, "2 of 3 passes toward normal"},
		{"three strict passes return to normal", cat([]inspection.Event{result("f", day(1), inspection.OutcomeFail, imp)}, passes(3, day(2), 1, imp)), food, day(9), inspection.ModeNormal, inspection.RuleNormalDefault, "0 of 3 passes within 12 months toward reduced"},
		{"strict passes do not count toward reduced", cat([]inspection.Event{result("f", day(1), inspection.OutcomeFail, imp)}, passes(5, day(2), 1, imp)), food, day(9), inspection.ModeNormal, inspection.RuleNormalDefault, "2 of 3 passes within 12 months toward reduced"},
		{"an alert makes strict", cat(passes(3, day(0), 1, imp), []inspection.Event{alert("a", day(4), inspection.SubjectManufacturer)}), food, day(5), inspection.ModeStrict, inspection.RuleStrictAlert, "0 of 3 passes toward normal"},
		{"an alert makes strict despite a certificate", []inspection.Event{alert("a", day(4), inspection.SubjectHeadingOrigin)}, withCert, day(5), inspection.ModeStrict, inspection.RuleStrictAlert, "0 of 3 passes toward normal"},
		{"a certificate counts again after strict is left", cat([]inspection.Event{alert("a", day(1), inspection.SubjectGoods)}, passes(3, day(2), 1, imp)), withCert, day(9), inspection.ModeReduced, inspection.RuleReducedCertificate, "0 of 3 passes within 12 months toward reduced"},
		{"an alert dated in the future is not seen yet", []inspection.Event{alert("a", day(10), inspection.SubjectGoods)}, food, day(5), inspection.ModeNormal, inspection.RuleNormalDefault, "0 of 3 passes within 12 months toward reduced"},
		{"a valid certificate reduces", nil, withCert, day(0), inspection.ModeReduced, inspection.RuleReducedCertificate, "0 of 3 passes within 12 months toward reduced"},
		{"an expired certificate does not", nil, expired, day(0), inspection.ModeNormal, inspection.RuleNormalDefault, "0 of 3 passes within 12 months toward reduced"},
		{"an unaccepted kind does not", nil, unaccepted, day(0), inspection.ModeNormal, inspection.RuleNormalDefault, "0 of 3 passes within 12 months toward reduced"},
		{"an exempt category exempts", nil, luggage, day(0), inspection.ModeExempt, inspection.RuleExemptCategory, ""},
		{"an exempt category is refused while strict", []inspection.Event{result("f", day(1), inspection.OutcomeFail, imp)}, luggage, day(2), inspection.ModeStrict, inspection.RuleStrictFailure, "0 of 3 passes toward normal"},
		{"quality: three passes exempt the importer", passes(3, day(0), 30, imp), quality, day(90), inspection.ModeExempt, inspection.RuleExemptQuality, ""},
		{"quality: not another importer (who still sees the goods reduced)", passes(3, day(0), 30, imp), otherQuality, day(90), inspection.ModeReduced, inspection.RuleReducedPasses, ""},
		{"quality: the term ends after 24 months", passes(3, day(0), 30, imp), quality, day(60).AddDate(2, 0, 1), inspection.ModeNormal, inspection.RuleNormalDefault, "0 of 3 passes within 12 months toward reduced"},
		{"quality: a failure ends the term", cat(passes(3, day(0), 30, imp), []inspection.Event{result("f", day(100), inspection.OutcomeFail, other)}), quality, day(101), inspection.ModeStrict, inspection.RuleStrictFailure, "0 of 3 passes toward normal"},
		{"food safety has no importer exemption", passes(3, day(0), 200, imp), food, day(500), inspection.ModeNormal, inspection.RuleNormalDefault, "2 of 3 passes within 12 months toward reduced"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := inspection.Evaluate(p, tc.history, tc.lot, tc.now)
			if ev.Mode != tc.mode || ev.Explanation.Rule != tc.rule || ev.Explanation.Progress != tc.progress {
				t.Fatalf("got %s / %s / %q, want %s / %s / %q (reason %q)", ev.Mode, ev.Explanation.Rule, ev.Explanation.Progress,
					tc.mode, tc.rule, tc.progress, ev.Explanation.Reason)
			}
			if ev.Explanation.Reason == "" {
				t.Fatal("empty reason")
			}
		})
	}
}

func TestEvaluateIsOrderIndependent(t *testing.T) {
	p := mustPolicy(t)
	h := cat(passes(2, day(0), 1, "0101234567"), []inspection.Event{result("f", day(3), inspection.OutcomeFail, "0101234567")}, passes(2, day(4), 1, "0101234567"))
	want := inspection.Evaluate(p, h, inspection.Lot{}, day(10))
	rev := make([]inspection.Event, len(h))
	for i := range h {
		rev[len(h)-1-i] = h[i]
	}
	got := inspection.Evaluate(p, rev, inspection.Lot{}, day(10))
	if got.Mode != want.Mode || got.Explanation.Progress != want.Explanation.Progress {
		t.Fatalf("order changed the evaluation: %+v vs %+v", got, want)
	}
}

func TestDeadline(t *testing.T) {
	p := mustPolicy(t)
	// Friday 2026-03-06 15:00: 24 working hours (8 a day, Mon-Fri 08-12, 13-17)
	// run 2h Friday, then Mon, Tue full days and 6h Wednesday → Wed 15:00.
	fri := time.Date(2026, 3, 6, 15, 0, 0, 0, vn)
	if got, want := inspection.Deadline(p, inspection.ModeNormal, fri), time.Date(2026, 3, 11, 15, 0, 0, 0, vn); !got.Equal(want) {
		t.Errorf("documents deadline %s, want %s", got, want)
	}
	// Strict: 7 working days from Wednesday 29 April 2026 10:00 skip
	// 30/4 and 1/5 (holidays) and the weekend.
	start := time.Date(2026, 4, 29, 10, 0, 0, 0, vn)
	if got, want := inspection.Deadline(p, inspection.ModeStrict, start), time.Date(2026, 5, 12, 10, 0, 0, 0, vn); !got.Equal(want) {
		t.Errorf("strict deadline %s, want %s", got, want)
	}
}
