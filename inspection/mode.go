package inspection

import (
	"fmt"
	"sort"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/reference"
)

// Lot is what the mode rules need of the lot being decided, beyond history.
type Lot struct {
	ImporterTaxCode string
	Procedure       policy.Procedure
	// Certificates presented with the lot and held on record for its
	// manufacturer.
	Certificates []reference.Certificate
	// Exemption is the claimed exemption category code, if any.
	Exemption string
}

// Evaluation is the mode Evaluate found and why.
type Evaluation struct {
	Mode        Mode
	Explanation Explanation
}

// Rule names, as they appear in explanations.
const (
	RuleNormalDefault      = "normal.default"
	RuleStrictFailure      = "strict.after_failure"
	RuleStrictAlert        = "strict.after_alert"
	RuleReducedPasses      = "reduced.consecutive_passes"
	RuleReducedCertificate = "reduced.certificate"
	RuleExemptCategory     = "exempt.category"
	RuleExemptQuality      = "exempt.quality_importer"
)

// maxExplainedEvents bounds the events an explanation lists; EventsSeen
// still counts them all.
const maxExplainedEvents = 20

// Evaluate decides the mode of a lot from the policy, the goods' history
// (its own results and alerts, and alerts on its manufacturer and on its
// heading × origin, in any order) and the decision time. It is pure: the
// same arguments always give the same evaluation.
//
// The history is replayed in inspection-date order (results by inspected
// date, alerts by issue date; ties by ID), so results that arrive late or
// out of order land where they belong. Events dated after now are ignored.
//
//   - The goods start normal. A failure or an alert puts them in strict.
//   - Under strict, Strict.PassesToNormal consecutive passes return them to
//     normal; passes under strict do not count toward reduced.
//   - Reduced holds at the decision when the goods' last
//     Reduced.ConsecutivePasses results since leaving strict are passes
//     all inspected within Reduced.WindowMonths before the decision, or,
//     failing that, when the lot carries a valid accepted certificate.
//     A strict goods is never reduced by a certificate.
//   - An exemption category claimed by the lot makes it exempt unless the
//     goods are strict and the category is refused when strict.
//   - Quality goods: an importer whose Quality.ConsecutivePasses
//     consecutive results on the goods (outside strict) are passes is
//     exempt for TermMonths from the last of them; a failure or alert on
//     the goods ends the term and restarts the count.
func Evaluate(p *policy.Policy, history []Event, lot Lot, now time.Time) Evaluation {
	events := inOrder(history, now)
	return evaluateOrdered(p, events, lastReset(events), lot, now)
}

// failed reports whether e puts the goods in strict: a failed result or an
// alert. It resets everything the replay carries.
func failed(e *Event) bool {
	return e.Kind == EventAlert || (e.Kind == EventResult && e.Outcome == OutcomeFail)
}

// lastReset is the index of the last failure or alert among events, -1
// when there is none.
func lastReset(events []Event) int {
	for i := len(events) - 1; i >= 0; i-- {
		if failed(&events[i]) {
			return i
		}
	}
	return -1
}

// evaluateOrdered is Evaluate over events already in replay order (inOrder
// of the history at now) whose last failure or alert is at index reset
// (-1: none). A failure or an alert resets every part of the replay's
// state, so the events before the last one count only in EventsSeen: the
// replay starts there, and the cost of a decision follows the events since
// the goods' last failure, not its whole history. Without a quality
// importer to follow, nothing changes once the goods are back to normal
// (passes outside strict only count for the importer), so the replay stops
// there, and the reduced count stops at the passes it needs: a goods that
// has not failed in ten thousand results decides in a few steps. A caller
// that keeps the ordered events of a history (goodsFold) decides through
// here with no pass over the history at all.
func evaluateOrdered(p *policy.Policy, events []Event, reset int, lot Lot, now time.Time) Evaluation {
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
	start := 0
	if reset >= 0 {
		// What the replay holds right after the last failure or alert
		// (the failed case below).
		strict, cause, normalStart, since, start = true, &events[reset], reset+1, reset, reset+1
	}
	// Back in normal with no importer to follow, no later event can change
	// anything: none fails (reset is the last that does), and a pass
	// outside strict counts only for the importer.
	for i := start; i < len(events) && (strict || trackImporter); i++ {
		e := &events[i]
		switch {
		case failed(e):
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
		if inWindow++; inWindow >= k {
			break // reduced: more passes would say nothing more
		}
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

// inOrder is the history Evaluate replays: the events up to now, by
// (At, ID). A history already in that order is read as it is, without a
// copy (decisions and backtests pass sorted histories; a copy of every
// event per decision was most of Evaluate's cost); any other is copied
// and sorted, never reordered in place.
func inOrder(history []Event, now time.Time) []Event {
	sorted := true
	for i := range history {
		if history[i].At.After(now) || i > 0 && eventBefore(&history[i], &history[i-1]) {
			sorted = false
			break
		}
	}
	if sorted {
		return history
	}
	events := make([]Event, 0, len(history))
	for _, e := range history {
		if !e.At.After(now) {
			events = append(events, e)
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return eventBefore(&events[i], &events[j]) })
	return events
}

func eventBefore(a, b *Event) bool {
	if !a.At.Equal(b.At) {
		return a.At.Before(b.At)
	}
	return a.ID < b.ID
}

func exemptBy(ex Explanation, rule, code, format string, args ...any) Evaluation {
	ex.Rule = rule
	ex.Exemption = code
	ex.Progress = ""
	ex.Reason = fmt.Sprintf(format, args...)
	return Evaluation{Mode: ModeExempt, Explanation: ex}
}

// validCertificate returns the accepted certificate valid at now that runs
// longest, so the explanation cites the strongest evidence.
func validCertificate(p *policy.Policy, certs []reference.Certificate, now time.Time) (reference.Certificate, bool) {
	var best reference.Certificate
	found := false
	for _, c := range certs {
		if p.AcceptsCertificate(c.Kind) && !c.ValidUntil.Before(now) && (!found || c.ValidUntil.After(best.ValidUntil)) {
			best, found = c, true
		}
	}
	return best, found
}

func day(t time.Time) string { return t.In(calendar.Vietnam()).Format("2006-01-02") }

// Ref is the short form of e for explanations.
func (e Event) Ref() EventRef {
	return EventRef{ID: e.ID, Kind: e.Kind, Subject: string(e.Subject.Kind), At: e.At, Outcome: e.Outcome,
		Importer: e.ImporterTaxCode, Authority: e.Authority}
}
