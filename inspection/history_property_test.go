package inspection_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"pgregory.net/rapid"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/scoring"
	"github.com/ktcn/ktcn/risk"
	"github.com/ktcn/ktcn/store"
)

// TestDecisionFoldsWholeHistory checks that a decision is what folding the
// goods' whole stored history gives: Evaluate over the goods', its
// manufacturer's and its heading × origin's events joined in that order,
// and the goods' score over the same history. Histories are random
// (results that pass or fail, dated anywhere in three years and written in
// any order, so most arrive late; corrections; alerts on the goods, the
// manufacturer and the heading × origin; events dated ahead of the
// decision), written in batches between decisions so that the input cache
// sees them move, under random policy parameters. Whatever the decision
// path keeps or skips to go faster (goodsContext, scoreLot), it must
// decide exactly this.
func TestDecisionFoldsWholeHistory(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		p := mustPolicy(t)
		p.Risk.ScoreDecisions = true
		p.Reduced.Sampling.Enabled = false
		p.Strict.PassesToNormal = rapid.IntRange(1, 4).Draw(rt, "passes_to_normal")
		p.Reduced.ConsecutivePasses = rapid.IntRange(1, 5).Draw(rt, "reduced_passes")
		p.Reduced.WindowMonths = rapid.IntRange(1, 24).Draw(rt, "window_months")
		if p.QualityExemption.Enabled = rapid.Bool().Draw(rt, "quality_exemption"); p.QualityExemption.Enabled {
			p.QualityExemption.ConsecutivePasses = rapid.IntRange(1, 4).Draw(rt, "quality_passes")
			p.QualityExemption.TermMonths = rapid.IntRange(1, 12).Draw(rt, "quality_term_months")
		}
		now := time.Date(2026, 9, 1, 10, 0, 0, 0, vn)
		clock := &fixedClock{}
		clock.Set(now)
		db, err := store.Open(store.Options{Dir: t.TempDir(), Small: true, Logger: zerolog.Nop()})
		if err != nil {
			rt.Fatal(err)
		}
		defer db.Close()
		svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
		if err != nil {
			rt.Fatal(err)
		}
		ctx := context.Background()
		if err := fixtures.Load(ctx, svc); err != nil {
			rt.Fatal(err)
		}

		hs, procedure := "0402.21.20", "food_safety"
		if rapid.Bool().Draw(rt, "quality") {
			hs, procedure = "8516.71.00", "quality"
		}
		importers := []string{"0101234567", "0309876543"}
		lots := 0
		decide := func(importer string) inspection.Decision {
			lots++
			no, q := 1, 10.0
			out, err := svc.Decide(ctx, access.SystemPrincipal(), declaration.Input{DeclarationID: fmt.Sprintf("P%06d", lots), ImporterTaxCode: importer,
				Lines: []declaration.LineInput{{LineNo: &no, HSCode: hs, ProductName: "Hàng có lịch sử", Manufacturer: "History Foods",
					Origin: "TH", Procedure: procedure, Quantity: &q, Unit: "kg"}}})
			if err != nil {
				rt.Fatal(err)
			}
			return out.Decisions[0]
		}
		first := decide(importers[0])
		keys := identity.KeysWith(first.Goods, first.GoodsKey)
		subjects := []inspection.Subject{{Kind: inspection.SubjectGoods, Key: keys.Goods},
			{Kind: inspection.SubjectManufacturer, Key: keys.Manufacturer}, {Kind: inspection.SubjectHeadingOrigin, Key: keys.HeadingOrigin}}

		var results []string // IDs of results written, for corrections
		batches := rapid.IntRange(1, 4).Draw(rt, "batches")
		for b := range batches {
			n := rapid.IntRange(0, 25).Draw(rt, "events")
			batch := make([]inspection.Event, 0, n)
			for i := range n {
				id := fmt.Sprintf("e%d-%d", b, i)
				at := now.Add(-time.Duration(rapid.Int64Range(0, 3*365*24).Draw(rt, "hours_ago")) * time.Hour)
				if rapid.IntRange(0, 19).Draw(rt, "ahead") == 0 {
					at = now.Add(time.Duration(rapid.IntRange(1, 48).Draw(rt, "hours_ahead")) * time.Hour)
				}
				e := inspection.Event{ID: id, At: at, RecordedAt: now, Source: "test"}
				switch kind := rapid.IntRange(0, 9).Draw(rt, "kind"); {
				case kind < 7:
					e.Kind, e.Subject, e.Mode = inspection.EventResult, subjects[0], inspection.ModeNormal
					e.Outcome = inspection.OutcomePass
					if rapid.IntRange(0, 5).Draw(rt, "fail") == 0 {
						e.Outcome = inspection.OutcomeFail
					}
					e.ImporterTaxCode = rapid.SampledFrom(importers).Draw(rt, "importer")
					if len(results) > 0 && rapid.IntRange(0, 7).Draw(rt, "correction") == 0 {
						e.Supersedes = rapid.SampledFrom(results).Draw(rt, "corrects")
					}
					results = append(results, id)
				default:
					e.Kind, e.Subject = inspection.EventAlert, subjects[kind-7]
					e.Authority, e.Reference, e.Reason = "Cục ATTP", "CB-"+id, "test alert"
				}
				batch = append(batch, e)
			}
			err := db.UpdateRaw(ctx, func(tx inspection.Tx) error {
				for _, e := range batch {
					if err := tx.AddEvent(e); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				rt.Fatal(err)
			}
			importer := rapid.SampledFrom(importers).Draw(rt, "lot_importer")
			clock.Set(now.Add(time.Duration(b+1) * time.Second))
			got := decide(importer)
			checkFolded(rt, db, p, subjects, importer, procedure, hs, now.Add(time.Duration(b+1)*time.Second), got)
		}
	})
}

// checkFolded compares a decision with the fold of the whole history.
func checkFolded(rt *rapid.T, db *store.DB, p *policy.Policy, subjects []inspection.Subject, importer, procedure, hs string, at time.Time, got inspection.Decision) {
	var history []inspection.Event
	err := db.View(context.Background(), func(tx inspection.ReadTx) error {
		for _, s := range subjects {
			evs, err := tx.Events(s)
			if err != nil {
				return err
			}
			history = append(history, evs...)
		}
		return nil
	})
	if err != nil {
		rt.Fatal(err)
	}
	want := inspection.Evaluate(p, history, inspection.Lot{ImporterTaxCode: importer, Procedure: policy.Procedure(procedure)}, at)
	ge, we := got.Explanation, want.Explanation
	if ge.EventsSeen != we.EventsSeen || !reflect.DeepEqual(ge.Events, we.Events) || ge.Progress != we.Progress {
		rt.Fatalf("explanation: got %d events seen, progress %q, events %v; the whole history gives %d, %q, %v",
			ge.EventsSeen, ge.Progress, ge.Events, we.EventsSeen, we.Progress, we.Events)
	}
	if ge.Rule != inspection.RuleNormalByScore && ge.Rule != inspection.RuleStrictByScore {
		if got.Mode != want.Mode || ge.Rule != we.Rule || ge.Reason != we.Reason || !reflect.DeepEqual(ge.ExemptUntil, we.ExemptUntil) {
			rt.Fatalf("got %s by %s (%q); the whole history gives %s by %s (%q)", got.Mode, ge.Rule, ge.Reason, want.Mode, we.Rule, we.Reason)
		}
	}
	// The goods' score: the same history, at the decision's second, under
	// the policy's fallback prior (nothing has been rescored).
	sat := at.Truncate(time.Second)
	params := p.Risk.Params()
	var obs []risk.Observation
	for _, e := range history {
		if !e.At.After(sat) {
			obs = append(obs, risk.Observation{At: e.At, Failed: e.Kind == inspection.EventAlert || e.Outcome == inspection.OutcomeFail,
				Alert: e.Kind == inspection.EventAlert, Ref: e.ID})
		}
	}
	group := scoring.Group(risk.KindGoods, hs)
	prior, err := risk.FallbackPrior(group, params)
	if err != nil {
		rt.Fatal(err)
	}
	sub := risk.Subject{Kind: risk.KindGoods, ID: subjects[0].Key.String()}
	wantScore, err := risk.ScoreHistory(sub, obs, prior, sat, params)
	if err != nil {
		rt.Fatal(err)
	}
	if len(ge.Scores) == 0 || !reflect.DeepEqual(ge.Scores[0], wantScore) {
		rt.Fatalf("goods score: got %+v; the whole history gives %+v", ge.Scores, wantScore)
	}
}
