package inspection

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
)

// TestEvaluateFromLastReset checks that Evaluate, which replays from the
// goods' last failure or alert and stops once nothing can change
// (evaluateOrdered), decides exactly what replaying every event does
// (evaluateWhole, Evaluate as it was before issue 21), on random
// histories under random policies, for plain and quality lots.
func TestEvaluateFromLastReset(t *testing.T) {
	base, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 9, 1, 10, 0, 0, 0, calendar.Vietnam())
	rapid.Check(t, func(rt *rapid.T) {
		p := *base
		p.Strict.PassesToNormal = rapid.IntRange(1, 4).Draw(rt, "passes_to_normal")
		p.Reduced.ConsecutivePasses = rapid.IntRange(1, 6).Draw(rt, "reduced_passes")
		p.Reduced.WindowMonths = rapid.IntRange(1, 24).Draw(rt, "window_months")
		p.QualityExemption.Enabled = rapid.Bool().Draw(rt, "quality_exemption")
		p.QualityExemption.ConsecutivePasses = rapid.IntRange(1, 4).Draw(rt, "quality_passes")
		p.QualityExemption.TermMonths = rapid.IntRange(1, 12).Draw(rt, "quality_term_months")
		importers := []string{"0101234567", "0309876543"}
		n := rapid.IntRange(0, 60).Draw(rt, "events")
		failEvery := rapid.IntRange(2, 40).Draw(rt, "fail_every")
		history := make([]Event, 0, n)
		for i := range n {
			e := Event{ID: fmt.Sprintf("e%03d", i), Kind: EventResult, Subject: Subject{Kind: SubjectGoods},
				At:              now.Add(-time.Duration(rapid.Int64Range(-48, 3*365*24).Draw(rt, "hours_ago")) * time.Hour),
				Outcome:         OutcomePass,
				ImporterTaxCode: rapid.SampledFrom(importers).Draw(rt, "importer")}
			switch k := rapid.IntRange(0, failEvery).Draw(rt, "kind"); k {
			case 0:
				e.Outcome = OutcomeFail
			case 1:
				e.Kind, e.Outcome, e.Authority = EventAlert, "", "Cục ATTP"
			case 2:
				e.Kind, e.Outcome = "other", "" // unknown kinds carry no rule
			}
			history = append(history, e)
		}
		if rapid.Bool().Draw(rt, "sorted") {
			history = inOrder(history, now.Add(48*time.Hour))
		}
		lot := Lot{ImporterTaxCode: rapid.SampledFrom(append(importers, "")).Draw(rt, "lot_importer"),
			Procedure: rapid.SampledFrom([]policy.Procedure{policy.ProcedureQuality, "food_safety"}).Draw(rt, "procedure")}
		got, want := Evaluate(&p, history, lot, now), evaluateWhole(&p, history, lot, now)
		if !reflect.DeepEqual(got, want) {
			rt.Fatalf("from the last reset:\n%+v\nreplaying everything:\n%+v", got, want)
		}
	})
}

// evaluateWhole is Evaluate as it was before it started from the last
// reset: the reference the test holds it to.
func evaluateWhole(p *policy.Policy, history []Event, lot Lot, now time.Time) Evaluation {
	events := inOrder(history, now)

	var (
		strict       bool
		cause        *Event // the failure or alert that put the goods in strict
		strictPasses int
		normalStart  int // index of the first event since the goods last entered normal
		since        int // index of the first event since the last reset
		importerRun  int // quality: the importer's consecutive passes outside strict
		exemptUntil  time.Time
	)
	qe := p.QualityExemption
	trackImporter := qe.Enabled && lot.Procedure == policy.ProcedureQuality && lot.ImporterTaxCode != ""
	for i := range events {
		e := &events[i]
		failed := e.Kind == EventAlert || (e.Kind == EventResult && e.Outcome == OutcomeFail)
		switch {
		case failed:
			strict, cause, strictPasses, normalStart, since = true, e, 0, i+1, i
			importerRun, exemptUntil = 0, time.Time{}
		case e.Kind != EventResult:
			// unknown kinds carry no rule
		case strict:
			strictPasses++
			if strictPasses >= p.Strict.PassesToNormal {
				strict, cause, strictPasses, normalStart = false, nil, 0, i+1
			}
		default:
			if trackImporter && e.ImporterTaxCode == lot.ImporterTaxCode {
				if !exemptUntil.IsZero() && !e.At.Before(exemptUntil) {
					exemptUntil, importerRun = time.Time{}, 0 // the term ended: count afresh
				}
				if exemptUntil.IsZero() {
					importerRun++
					if importerRun >= qe.ConsecutivePasses {
						exemptUntil, importerRun = e.At.In(calendar.Vietnam()).AddDate(0, qe.TermMonths, 0), 0
					}
				}
			}
		}
	}

	ex := Explanation{EventsSeen: len(events)}
	explained := events[since:]
	if len(explained) > maxExplainedEvents {
		explained = explained[len(explained)-maxExplainedEvents:]
	}
	ex.Events = make([]EventRef, 0, len(explained))
	for _, e := range explained {
		ex.Events = append(ex.Events, e.Ref())
	}

	if strict {
		ex.Rule = RuleStrictFailure
		what := fmt.Sprintf("failed inspection on %s", day(cause.At))
		if cause.Kind == EventAlert {
			ex.Rule = RuleStrictAlert
			what = fmt.Sprintf("warning from %s on %s", cause.Authority, day(cause.At))
		}
		ex.Progress = fmt.Sprintf("%d of %d passes toward normal", strictPasses, p.Strict.PassesToNormal)
		ex.Reason = fmt.Sprintf("strict: %s; %s", what, ex.Progress)
		if cat, ok := p.Exemption(lot.Exemption); ok {
			if !cat.RefusedWhenStrict {
				return exemptBy(ex, RuleExemptCategory, cat.Code, "exempt: category %s (%s)", cat.Code, cat.Description)
			}
			ex.Reason += fmt.Sprintf("; exemption %s refused while strict", cat.Code)
		}
		return Evaluation{Mode: ModeStrict, Explanation: ex}
	}

	if cat, ok := p.Exemption(lot.Exemption); ok {
		return exemptBy(ex, RuleExemptCategory, cat.Code, "exempt: category %s (%s)", cat.Code, cat.Description)
	}
	if trackImporter && now.Before(exemptUntil) {
		until := exemptUntil
		ex.ExemptUntil = &until
		return exemptBy(ex, RuleExemptQuality, "quality_importer",
			"exempt: %d consecutive passes for importer %s; term until %s", qe.ConsecutivePasses, lot.ImporterTaxCode, day(until))
	}

	k := p.Reduced.ConsecutivePasses
	windowStart := now.In(calendar.Vietnam()).AddDate(0, -p.Reduced.WindowMonths, 0)
	inWindow := 0 // trailing passes of the normal run inspected within the window
	for j := len(events) - 1; j >= normalStart; j-- {
		if events[j].Kind != EventResult {
			continue // unknown kinds carry no rule
		}
		if events[j].At.Before(windowStart) {
			break
		}
		inWindow++
	}
	if inWindow >= k {
		ex.Rule = RuleReducedPasses
		ex.Reason = fmt.Sprintf("reduced: last %d results passed within %d months", k, p.Reduced.WindowMonths)
		return Evaluation{Mode: ModeReduced, Explanation: ex}
	}
	ex.Progress = fmt.Sprintf("%d of %d passes within %d months toward reduced", inWindow, k, p.Reduced.WindowMonths)
	if c, ok := validCertificate(p, lot.Certificates, now); ok {
		ex.Rule = RuleReducedCertificate
		ex.Certificate = &c
		ex.Reason = fmt.Sprintf("reduced: valid %s certificate %s until %s", c.Kind, c.Number, day(c.ValidUntil))
		return Evaluation{Mode: ModeReduced, Explanation: ex}
	}
	ex.Rule = RuleNormalDefault
	ex.Reason = "normal: " + ex.Progress
	return Evaluation{Mode: ModeNormal, Explanation: ex}
}
