package inspection_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
)

// TestQuotaOnGeneratedYear measures the sampling policy on the history
// generator's year (its truth is not drawn from anything the quota uses):
// the share of the allowance used per scope size and what importers see.
// CI runs a small year; KTCN_QUOTA_LOTS=140000 runs the acceptance size
// (100k+ reduced lots over 50+ headings) and KTCN_QUOTA_IMPORTERS sets how
// many importers share them; -v prints the figures.
func TestQuotaOnGeneratedYear(t *testing.T) {
	var err error
	lots := 40000
	if s := os.Getenv("KTCN_QUOTA_LOTS"); s != "" {
		if lots, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, scope := range []string{inspection.ScopeHeadingYear, inspection.ScopeChapterYear, inspection.ScopeImporterGoodsYear} {
		p := mustPolicy(t)
		p.Reduced.Sampling.Scope = scope
		var sim *inspection.QuotaSimulator
		importers := 0 // the generator's default: about 2,000 lots per importer
		if v := os.Getenv("KTCN_QUOTA_IMPORTERS"); v != "" {
			if importers, err = strconv.Atoi(v); err != nil {
				t.Fatal(err)
			}
		}
		gen, err := fixtures.New(fixtures.Config{Seed: 11, Lots: lots, Years: 1, Policy: p, Scale: 1, Importers: importers,
			NewSampler: func() fixtures.Sampler {
				sim = inspection.NewQuotaSimulator(p.Reduced.Sampling, testKeys)
				return func(l fixtures.SampleLot) bool {
					chosen, err := sim.Decide(inspection.SimLot{DeclarationID: l.DeclarationID, LineNo: l.LineNo,
						ImporterTaxCode: l.ImporterTaxCode, Goods: l.Goods, At: l.DecidedAt, ComplianceLevel: l.ImporterLevel})
					if err != nil {
						t.Error(err)
					}
					return chosen
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := gen.Run(func(*fixtures.Record) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		rep := sim.Report()
		t.Logf("%s: %d lots, %d headings, %d reduced lots drawn: rate %.2f%% = %.1f%% of the cap; first 20 lots of an importer's year %.2f%% (%d lots); 20 lots after a check %.2f%% (%d lots); five largest importers %.2f%% / %.2f%%; %d scopes (%d lots) below 20 lots",
			scope, sum.Lots, sum.Headings, rep.Lots, 100*rep.Rate, 100*rep.ShareOfCap, 100*rep.FirstRate, rep.FirstLots,
			100*rep.AfterRate, rep.AfterLots, 100*rep.DominantFirstRate, 100*rep.DominantAfterRate, rep.ScopesBelowMinimum, rep.LotsInScopesBelowMinimum)
		for _, b := range rep.Bands {
			if b.Scopes > 0 {
				t.Logf("    scopes of %s lots: %d scopes, %d lots, rate %.2f%% (%.0f%% of cap)", b.Band, b.Scopes, b.Lots, 100*b.Rate, 100*b.ShareOfCap)
			}
		}
		if rep.CapExceeded != 0 {
			t.Fatalf("%s: cap exceeded %d times", scope, rep.CapExceeded)
		}
		if rep.Lots == 0 {
			t.Fatalf("%s: no reduced lots in the generated year", scope)
		}
		if scope == inspection.ScopeHeadingYear && rep.ShareOfCap < 0.8 {
			t.Errorf("heading scopes used %.0f%% of the allowance", 100*rep.ShareOfCap)
		}
	}
}
