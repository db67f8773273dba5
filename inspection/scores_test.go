package inspection_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/inspection/scoring"
	"github.com/ktcn/ktcn/risk"
	"github.com/ktcn/ktcn/store"
)

// Results keep every subject's counts current in their own transaction;
// the rescoring job refits the priors; the ranked list puts the goods that
// failed first, and an importer with no results scores as the prior.
func TestScoresFollowResultsAndRescoring(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := &fixedClock{}
	clock.Set(time.Date(2026, 2, 2, 9, 0, 0, 0, calendar.Vietnam()))
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: mustPolicy(t), Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	// A known importer that has declared nothing yet.
	if err := svc.LoadReference(ctx, access.SystemPrincipal(), reference.Data{Importers: []reference.Importer{{TaxCode: "0309999999", Name: "New Importer"}}}); err != nil {
		t.Fatal(err)
	}
	lot := func(id, product string) inspection.Decision {
		no, q := 1, 5.0
		res, err := svc.Decide(ctx, access.SystemPrincipal(), declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{{LineNo: &no, HSCode: "0402.21.20", ProductName: product, Manufacturer: "Score Dairy",
				Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Decisions[0]
	}
	result := func(d inspection.Decision, pass bool) {
		clock.Set(clock.Now().Add(time.Hour))
		in := inspection.ResultInput{Outcome: "pass", InspectedAt: clock.Now().Format(time.RFC3339)}
		if !pass {
			in = inspection.ResultInput{Outcome: "fail", InspectedAt: clock.Now().Format(time.RFC3339), Findings: []inspection.Finding{{Code: "LAB", Text: "melamine"}}}
		}
		if _, err := svc.RecordResult(ctx, access.SystemPrincipal(), d.AssignmentID, in); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ {
		product := fmt.Sprintf("Clean milk %d", i)
		result(lot(fmt.Sprintf("C%d-1", i), product), true)
		result(lot(fmt.Sprintf("C%d-2", i), product), true)
	}
	bad := lot("B-1", "Bad milk")
	result(bad, false)

	reused := db.CommitStats().ReusedReads
	groups, err := svc.Rescore(ctx, access.SystemPrincipal())
	if err != nil || groups == 0 {
		t.Fatalf("rescore: %d groups, %v", groups, err)
	}
	// The job read ahead, off the committer, what its transactions read
	// again: each record and the input version its write bumps (seven
	// goods at least).
	if n := db.CommitStats().ReusedReads - reused; n < 2*7 {
		t.Errorf("rescoring's transactions reused %d reads made ahead, want at least 14", n)
	}
	scores, recs, err := svc.RankedScores(ctx, access.SystemPrincipal(), risk.KindGoods, 3)
	if err != nil || len(scores) != 3 {
		t.Fatalf("ranked: %v %v", scores, err)
	}
	if scores[0].Subject.ID != bad.GoodsKey.String() || recs[0].Label == "" {
		t.Fatalf("riskiest goods is %s (%s), want the one that failed", scores[0].Subject.ID, recs[0].Label)
	}
	if p := scores[0].Evidence.Prior; p.Group != "goods/hs_chapter:04" || p.Members < 7 {
		t.Fatalf("prior %+v, want one fitted on chapter 04's seven goods", p)
	}
	imp, _, err := svc.Score(ctx, access.SystemPrincipal(), risk.Subject{Kind: risk.KindImporter, ID: "0101234567"})
	if err != nil || imp.Evidence.Counts.N != 13 {
		t.Fatalf("importer score %+v %v", imp.Evidence.Counts, err)
	}
	fresh, _, err := svc.Score(ctx, access.SystemPrincipal(), risk.Subject{Kind: risk.KindImporter, ID: "0309999999"})
	if err != nil || fresh.Evidence.Counts.N != 0 || fresh.Mean <= 0 {
		t.Fatalf("an importer without results: %+v %v", fresh, err)
	}
	// An importer nobody knows has no score at all.
	if _, _, err := svc.Score(ctx, access.SystemPrincipal(), risk.Subject{Kind: risk.KindImporter, ID: "0300000000"}); fault.CodeOf(err) != fault.NotFound {
		t.Fatalf("an unknown importer's score: %v, want not found", err)
	}
}

func TestScoreRulesValidation(t *testing.T) {
	for _, tc := range []struct {
		field string
		rule  scoring.Rule
	}{
		{"risk.rules[0].subject", scoring.Rule{Subject: "country", Above: 0.1, Effect: "strict"}},
		{"risk.rules[0].above", scoring.Rule{Subject: "goods", Above: 1.5, Effect: "strict"}},
		{"risk.rules[0].effect", scoring.Rule{Subject: "goods", Above: 0.1, Effect: "ban"}},
	} {
		p := mustPolicy(t)
		p.Risk.Rules = []scoring.Rule{tc.rule}
		var e *fault.Error
		if err := p.Validate(); !asError(err, &e) || e.Field != tc.field {
			t.Errorf("want an error on %s, got %v", tc.field, err)
		}
	}
}
