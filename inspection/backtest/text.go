package backtest

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteText writes the report's figures for a person reading a terminal:
// the two sides in columns, then the transitions, the estimate and the
// checks on the replay.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	a, c := &r.Active, &r.Candidate
	fmt.Fprintf(&b, "backtest of %s against %s: %d lots from %s to %s (%d before, replayed to warm up); %d results, %d alerts\n",
		r.CandidateVersion, r.ActiveVersion, r.Lots, day(r.From), day(r.To), r.WarmupLots, r.Results, r.Alerts)
	row := func(name string, x, y any) { fmt.Fprintf(&b, "  %-34s %14v %14v\n", name, x, y) }
	row("", "active", "candidate")
	for i, m := range Modes {
		row("lots "+string(m), a.Modes[i], c.Modes[i])
	}
	row("inspections", a.Inspections, c.Inspections)
	row("  laboratory samples (strict)", a.LabSamples, c.LabSamples)
	row("  random checks of reduced lots", a.RandomChecks, c.RandomChecks)
	row("violations caught (known)", a.Caught, c.Caught)
	row("violations missed (known)", a.Missed, c.Missed)
	row("results not in yet", a.AwaitingResults, c.AwaitingResults)
	row("inspected, outcome unknown", a.Unobserved, c.Unobserved)
	est := func(e Estimate) string { return fmt.Sprintf("%.1f [%.1f, %.1f]", e.Expected, e.Low, e.High) }
	row("  of which failing (estimate)", est(a.EstimatedFailures), est(c.EstimatedFailures))
	row("evidence from others' inspections", a.EvidenceNotOwn, c.EvidenceNotOwn)
	u := func(f *Figures) string {
		return fmt.Sprintf("%.3f/%.3f/%.3f", f.Unpredictability.FirstRate, f.Unpredictability.AfterRate, f.Unpredictability.OverallRate)
	}
	row("checks first 20/after a check/all", u(a), u(c))
	fmt.Fprintf(&b, "random-check baseline: %d failed of %d results, %.2f%% [%.2f%%, %.2f%%] (95%%): estimates above use it, never a pass\n",
		r.Baseline.Count, r.Baseline.Of, 100*r.Baseline.Rate, 100*r.Baseline.Low, 100*r.Baseline.High)
	fmt.Fprintf(&b, "transitions (rows active, columns candidate: strict normal reduced exempt)\n")
	for i, m := range Modes {
		fmt.Fprintf(&b, "  %-8s %10d %10d %10d %10d\n", m, r.Transitions[i][0], r.Transitions[i][1], r.Transitions[i][2], r.Transitions[i][3])
	}
	fmt.Fprintf(&b, "agency load per working day (peak / 95th percentile / capacity), active → candidate\n")
	loads := map[[2]string][2]*AgencyLoad{}
	var order [][2]string
	for side, f := range []*Figures{a, c} {
		for i := range f.Agencies {
			al := &f.Agencies[i]
			k := [2]string{al.Agency, al.Check}
			v, ok := loads[k]
			if !ok {
				order = append(order, k)
			}
			v[side] = al
			loads[k] = v
		}
	}
	one := func(al *AgencyLoad) string {
		if al == nil {
			return "-"
		}
		cp := "no limit"
		if al.Limited {
			cp = fmt.Sprintf("%d, %d days over", al.Capacity, al.DaysOverCapacity)
		}
		return fmt.Sprintf("%d / %d / %s", al.Peak, al.P95, cp)
	}
	for _, k := range order {
		v := loads[k]
		fmt.Fprintf(&b, "  %-22s %-24s %s → %s\n", k[0], k[1], one(v[0]), one(v[1]))
	}
	for side, f := range []*Figures{a, c} {
		name := [2]string{"active", "candidate"}[side]
		for _, q := range f.Quota {
			fmt.Fprintf(&b, "quota %s %s: %d checks of %d reduced lots, %.0f%% of the cap; %d scopes can have no check\n",
				name, q.Period, q.Selected, q.Eligible, 100*q.ShareOfCap, q.ScopesWithoutAllowance)
		}
	}
	fmt.Fprintf(&b, "lots changed: %d\n", r.Changed)
	x := r.AgainstHistory
	fmt.Fprintf(&b, "active replay against history: %d of %d lots differ", x.Mismatches, x.Compared)
	if r.LateEvents > 0 || r.OutOfOrder > 0 {
		fmt.Fprintf(&b, "; %d events later than the lag bound, %d lots out of order (decisions may differ from the service's)", r.LateEvents, r.OutOfOrder)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.DateOnly)
}

// ChangesCSV writes changed lots as CSV, a header first.
type ChangesCSV struct{ w *csv.Writer }

// NewChangesCSV starts the CSV on w.
func NewChangesCSV(w io.Writer) (*ChangesCSV, error) {
	c := &ChangesCSV{w: csv.NewWriter(w)}
	err := c.w.Write([]string{"decision_id", "declaration_id", "line_no", "decided_at", "goods_key", "importer_tax_code",
		"active_mode", "candidate_mode", "active_inspect", "candidate_inspect", "active_rule", "candidate_rule", "why"})
	return c, err
}

// Write adds one changed lot.
func (c *ChangesCSV) Write(ch Change) error {
	return c.w.Write([]string{ch.DecisionID, ch.DeclarationID, strconv.Itoa(ch.LineNo), ch.At.Format(time.RFC3339), ch.GoodsKey.String(),
		ch.ImporterTaxCode, string(ch.ActiveMode), string(ch.CandidateMode), strconv.FormatBool(ch.ActiveInspect),
		strconv.FormatBool(ch.CandidateInspect), ch.ActiveRule, ch.CandidateRule, ch.Why})
}

// Flush writes what is buffered and reports any error so far.
func (c *ChangesCSV) Flush() error {
	c.w.Flush()
	return c.w.Error()
}
