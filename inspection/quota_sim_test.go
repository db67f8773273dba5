package inspection_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/quota"
)

// A heavy-tailed synthetic year: the simulation must never exceed the cap,
// must use most of the allowance in large scopes, and must show the
// consequence of a narrow scope (no check at all below 20 lots a year).
func TestQuotaSimulationOnASyntheticYear(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, calendar.Vietnam())
	type scope struct {
		hs   string
		lots int
	}
	var scopes []scope
	for i := 0; i < 60; i++ {
		scopes = append(scopes, scope{fmt.Sprintf("%04d1000", 100+i), int(40000 / math.Pow(float64(i+1), 1.1))})
	}
	var lots []quota.Lot
	for si, sc := range scopes {
		for j := 0; j < sc.lots; j++ {
			imp := fmt.Sprintf("%010d", int(math.Floor(math.Pow(rng.Float64(), 3)*80))) // a few importers carry most lots
			lots = append(lots, quota.Lot{DeclarationID: fmt.Sprintf("S%d-%d", si, j), LineNo: 1, ImporterTaxCode: imp,
				HSCode: sc.hs, GoodsKey: identity.Goods{HSCode: sc.hs, ProductName: "x", Manufacturer: "m", Origin: "TH"}.Key().String(),
				At: start.Add(time.Duration(rng.Int64N(int64(364 * 24 * time.Hour))))})
		}
	}
	// Decide in time order.
	sortLots(lots)
	for _, scopeKind := range []quota.ScopeKind{quota.ScopeHeadingYear, quota.ScopeImporterGoodsYear} {
		r := defaultSampling(t)
		r.Scope = scopeKind
		sim := quota.NewSimulator(r, testKeys)
		for _, l := range lots {
			if _, err := sim.Decide(l); err != nil {
				t.Fatal(err)
			}
		}
		rep := sim.Report()
		t.Logf("%s: %d lots, rate %.2f%% (%.0f%% of cap), first-20 %.2f%%, after-check %.2f%%, %d scopes below 20 lots",
			scopeKind, rep.Lots, 100*rep.Rate, 100*rep.ShareOfCap, 100*rep.FirstRate, 100*rep.AfterRate, rep.ScopesBelowMinimum)
		if rep.CapExceeded != 0 {
			t.Fatalf("%s: the cap was exceeded %d times", scopeKind, rep.CapExceeded)
		}
		switch scopeKind {
		case quota.ScopeHeadingYear:
			if rep.ShareOfCap < 0.9 {
				t.Errorf("heading scopes use %.0f%% of the allowance, want at least 90%%", 100*rep.ShareOfCap)
			}
		case quota.ScopeImporterGoodsYear:
			// Narrow scopes: many importer × goods pairs have fewer than 20 lots
			// a year and so can never be checked.
			if rep.ScopesBelowMinimum == 0 || rep.ShareOfCap >= 0.9 {
				t.Errorf("narrow scopes should lose allowance: %+v", rep)
			}
		}
		for _, b := range rep.Bands {
			if b.Band == "<20" && b.Selected != 0 {
				t.Errorf("a scope under 20 lots was checked")
			}
		}
	}
}

func sortLots(lots []quota.Lot) {
	// insertion-free: sort by time, then ID
	sortSlice(lots, func(a, b quota.Lot) bool {
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return a.DeclarationID < b.DeclarationID
	})
}
