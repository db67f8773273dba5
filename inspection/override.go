package inspection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
)

// Customs overrides. A decision is never rewritten: it stays what the
// rules decided, with the explanation they gave. An override is a record
// of its own beside it (who, when, a coded reason and a text), and the
// decision in force is the last override's, or the decision's when there
// is none. Overriding opens or cancels the lot's assignment.
//
// Random checks are bound by the cap, so a reduced-mode lot is never
// checked or released on its own: a lot the draw selected may only be
// swapped for an unchecked reduced lot of the same quota scope and period
// (the EU's like-for-like rule), which un-checks one and checks the other
// and leaves the scope's count as the draws made it. Any other lot
// (strict, normal, exempt) may be switched between inspected and not.

// OverrideReason is a coded reason for an override.
type OverrideReason string

// overrideReasons are the codes customs may give, with what each means.
// Coded, so overrides can be counted by cause and a rule change can be
// argued from them; the text says the particulars.
var overrideReasons = []struct {
	Code OverrideReason
	Text string
}{
	{"intelligence", "risk or enforcement intelligence about this lot, its importer or its goods"},
	{"visible_damage", "damage, spoilage or tampering seen on the goods or their packaging"},
	{"documents_inconsistent", "the documents do not match the goods, or each other"},
	{"operational_swap", "the selected lot cannot be inspected where it is; another like it is checked instead"},
	{"agency_request", "the designated agency asked for the change"},
	{"duplicate_declaration", "the lot is declared twice; one is inspected"},
	{"exemption_established", "an exemption the declaration did not claim is established"},
}

// OverrideReasons lists the reason codes customs may give.
func OverrideReasons() []OverrideReason {
	out := make([]OverrideReason, len(overrideReasons))
	for i, r := range overrideReasons {
		out[i] = r.Code
	}
	return out
}

// Valid reports whether r is a known reason code.
func (r OverrideReason) Valid() bool { return slices.Contains(OverrideReasons(), r) }

const maxReasonText = 2000

// Override is one customs override of one lot's decision.
type Override struct {
	ID         string         `json:"id"` // decision ID "/" N
	DecisionID string         `json:"decision_id"`
	N          int            `json:"n"` // 1 for the decision's first override
	By         string         `json:"by"`
	At         time.Time      `json:"at"`
	ReasonCode OverrideReason `json:"reason_code"`
	ReasonText string         `json:"reason_text"`
	// WasInspected and Inspect are the lot's inspection before and after.
	WasInspected bool `json:"was_inspected"`
	Inspect      bool `json:"inspect"`
	// SwapWith is the other lot of a like-for-like random-check swap: the
	// lot checked instead (on the lot released) or the lot released (on
	// the lot checked).
	SwapWith string `json:"swap_with,omitempty"`
	// Agency and AssignmentID name the assignment the override opened
	// (Inspect) or cancelled (not Inspect).
	Agency       string `json:"agency,omitempty"`
	AssignmentID string `json:"assignment_id,omitempty"`
}

// OverrideID names a decision's n-th override.
func OverrideID(decisionID string, n int) string { return decisionID + "/" + strconv.Itoa(n) }

// CurrentDecision is the decision in force: the decision's own, or the
// last override's.
type CurrentDecision struct {
	Inspect      bool   `json:"inspect"`
	Agency       string `json:"agency,omitempty"`
	AssignmentID string `json:"assignment_id,omitempty"`
	OverrideID   string `json:"override_id,omitempty"`
	Reason       string `json:"reason"`
}

// DecisionView is a decision as customs reads it: the decision as decided
// (its explanation untouched), every override in order, and what is in
// force now.
type DecisionView struct {
	Decision
	Overrides []Override      `json:"overrides,omitempty"`
	Current   CurrentDecision `json:"current"`
}

// Agencies lists every agency the lot was ever routed to, by the decision
// or an override: each may read the decision (its assignment names it).
func (v DecisionView) Agencies() []string {
	var out []string
	if v.Decision.Agency != "" {
		out = append(out, v.Decision.Agency)
	}
	for _, o := range v.Overrides {
		if o.Agency != "" && !slices.Contains(out, o.Agency) {
			out = append(out, o.Agency)
		}
	}
	return out
}

func viewOf(d Decision, ovs []Override) DecisionView {
	v := DecisionView{Decision: d, Overrides: ovs,
		Current: CurrentDecision{Inspect: d.Inspect, Agency: d.Agency, AssignmentID: d.AssignmentID, Reason: d.Reason}}
	if len(ovs) == 0 {
		return v
	}
	o := ovs[len(ovs)-1]
	v.Current = CurrentDecision{Inspect: o.Inspect, OverrideID: o.ID}
	if o.Inspect {
		v.Current.Agency, v.Current.AssignmentID = o.Agency, o.AssignmentID
	}
	what := "not inspected"
	if o.Inspect {
		what = "inspected"
	}
	switch {
	case o.SwapWith != "" && o.Inspect:
		v.Current.Reason = fmt.Sprintf("random check moved here from %s by %s (like-for-like swap)", o.SwapWith, o.By)
	case o.SwapWith != "":
		v.Current.Reason = fmt.Sprintf("random check moved to %s by %s (like-for-like swap)", o.SwapWith, o.By)
	default:
		v.Current.Reason = fmt.Sprintf("%s by override of %s", what, o.By)
	}
	v.Current.Reason += fmt.Sprintf(" on %s: %s — %s", o.At.In(calendar.Vietnam()).Format(time.RFC3339), o.ReasonCode, o.ReasonText)
	return v
}

// DecisionView returns a decision with its overrides. An agency sees a
// decision routed to it, by the decision or by an override; any other is
// not found, word for word what a missing one gets.
func (s *Service) DecisionView(ctx context.Context, by access.Principal, id string) (DecisionView, error) {
	if err := by.Require(access.ActReadDecisions); err != nil {
		return DecisionView{}, err
	}
	var v DecisionView
	err := s.reads.View(ctx, func(tx ReadTx) error {
		l, err := loadDecided(tx, id)
		v = viewOf(l.d, l.ovs)
		return err
	})
	if errors.Is(err, fault.ErrNotFound) || err == nil && !v.VisibleTo(by) {
		return DecisionView{}, NotFound("no decision %q", id)
	}
	if !by.Can(access.ActReadQuota) {
		// The quota state (counts, allowance, draw, probability) tells how
		// much of a scope's random-check budget is left: customs and
		// auditors only. An agency sees what it is asked to inspect.
		v.Quota = nil
	}
	return v, err
}

// VisibleTo reports whether p may see the decision: an agency only when
// the lot was routed to it.
func (v DecisionView) VisibleTo(p access.Principal) bool {
	if p.Role != access.RoleAgency {
		return p.MaySee("")
	}
	return slices.ContainsFunc(v.Agencies(), p.MaySee)
}

// OverrideInput is a customs officer's override as sent: a reason, and
// either inspect (the lot's new inspection) or swap_with (the lot a random
// check moves to or from).
type OverrideInput struct {
	ReasonCode string `json:"reason_code"`
	ReasonText string `json:"reason_text"`
	Inspect    *bool  `json:"inspect"`
	SwapWith   string `json:"swap_with"`
}

// OverrideOutcome is what Override returns: the decision, and the other
// lot of a swap.
type OverrideOutcome struct {
	Decision DecisionView
	Swapped  *DecisionView
	// Replayed: the same override was the last one made; nothing changed.
	Replayed bool
}

// decided is a decision with its overrides and what is in force.
type decided struct {
	d   Decision
	ovs []Override
	cur CurrentDecision
}

func loadDecided(tx LotReader, id string) (decided, error) {
	d, err := tx.Decision(id)
	if err != nil {
		return decided{}, err
	}
	ovs, err := tx.Overrides(id)
	if err != nil {
		return decided{}, fmt.Errorf("overrides of %s: %w", id, err)
	}
	return decided{d: d, ovs: ovs, cur: viewOf(d, ovs).Current}, nil
}

func (l decided) last() *Override {
	if len(l.ovs) == 0 {
		return nil
	}
	return &l.ovs[len(l.ovs)-1]
}

func (l decided) next(by string, at time.Time, code OverrideReason, text string, inspect bool) Override {
	n := len(l.ovs) + 1
	return Override{ID: OverrideID(l.d.ID, n), DecisionID: l.d.ID, N: n, By: by, At: at, ReasonCode: code, ReasonText: text,
		WasInspected: l.cur.Inspect, Inspect: inspect}
}

// Override changes a lot's inspection on a customs officer's authority, in
// one atomic write with its audit entry. The same override sent again
// (same officer, reason and change, and still the last one) changes
// nothing and is returned as Replayed.
func (s *Service) Override(ctx context.Context, by access.Principal, decisionID string, in OverrideInput) (OverrideOutcome, error) {
	// The api's route table already admits customs only; the use case
	// says so too, so no other caller can reach around it.
	if by.Role != access.RoleCustoms {
		return OverrideOutcome{}, Forbidden("only customs may override a decision, not %s", by.Role)
	}
	code := OverrideReason(strings.TrimSpace(in.ReasonCode))
	if !code.Valid() {
		return OverrideOutcome{}, Invalid("reason_code", "must be one of %s, got %q", reasonList(), in.ReasonCode)
	}
	if err := declaration.CheckTextMax("reason_text", in.ReasonText, true, maxReasonText); err != nil {
		return OverrideOutcome{}, err
	}
	text := strings.TrimSpace(in.ReasonText)
	swapWith := strings.TrimSpace(in.SwapWith)
	switch {
	case in.Inspect != nil && swapWith != "":
		return OverrideOutcome{}, Invalid("swap_with", "give either inspect or swap_with, not both")
	case in.Inspect == nil && swapWith == "":
		return OverrideOutcome{}, Invalid("inspect", "give inspect (true or false), or swap_with (a decision ID) to move a random check")
	case swapWith == decisionID:
		return OverrideOutcome{}, Invalid("swap_with", "a lot cannot be swapped with itself")
	}
	now := s.clock.Now()
	var out OverrideOutcome
	err := s.w.write(ctx, by, audit.DecisionOverridden, now, func(tx Tx, c *Change) error {
		out = OverrideOutcome{}
		l, err := loadDecided(tx, decisionID)
		if errors.Is(err, fault.ErrNotFound) {
			return NotFound("no decision %q", decisionID)
		}
		if err != nil {
			return err
		}
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return err
		}
		if swapWith != "" {
			return swap(tx, pol, c, l, swapWith, by, now, code, text, &out)
		}
		want := *in.Inspect
		if o := l.last(); o != nil && o.SwapWith == "" && o.Inspect == want && o.By == by.Name && o.ReasonCode == code && o.ReasonText == text {
			out = OverrideOutcome{Decision: viewOf(l.d, l.ovs), Replayed: true}
			return nil
		}
		if l.d.Mode == ModeReduced {
			if l.d.Quota == nil {
				return Invalid("inspect", "decision %s is a reduced-mode lot and random sampling was off: reduced lots are checked only by the random draw", l.d.ID)
			}
			return Invalid("inspect", "decision %s is a reduced-mode lot: its random check may only be moved like for like, with swap_with naming an unchecked lot of scope %s in %s",
				l.d.ID, l.d.Quota.Scope, l.d.Quota.Period)
		}
		if l.cur.Inspect == want {
			return Conflict("inspect", "decision %s is already %s", l.d.ID, inspectedWord(want))
		}
		o := l.next(by.Name, now, code, text, want)
		var a Assignment
		if want {
			a, err = openAssignment(tx, pol, l.d, o.ID, now)
		} else {
			a, err = cancelAssignment(tx, l, o.ID, now)
		}
		if err != nil {
			return err
		}
		o.Agency, o.AssignmentID = a.Agency, a.ID
		if err := tx.PutOverride(o); err != nil {
			return err
		}
		c.Subjects = []string{"decision:" + l.d.ID}
		out.Decision = viewOf(l.d, append(l.ovs, o))
		emitOverridden(c, l.d, o, a, out.Decision.Agencies())
		return nil
	})
	if err != nil {
		return OverrideOutcome{}, err
	}
	if !out.Replayed {
		ev := s.log.Info().Str("decision_id", decisionID).Str("by", by.Name).Str("reason_code", string(code)).
			Bool("inspect", out.Decision.Current.Inspect)
		if out.Swapped != nil {
			ev = ev.Str("swap_with", out.Swapped.ID)
		}
		ev.Msg("decision overridden")
	}
	return out, nil
}

// swap moves a random check between two reduced lots of one scope and
// period: the checked one is released, the other checked.
func swap(tx Tx, pol *policy.Policy, c *Change, a decided, otherID string, by access.Principal, now time.Time, code OverrideReason, text string,
	out *OverrideOutcome) error {
	b, err := loadDecided(tx, otherID)
	if errors.Is(err, fault.ErrNotFound) {
		return Invalid("swap_with", "no decision %q", otherID)
	}
	if err != nil {
		return err
	}
	if oa, ob := a.last(), b.last(); oa != nil && ob != nil && oa.SwapWith == b.d.ID && ob.SwapWith == a.d.ID && oa.At.Equal(ob.At) &&
		oa.By == by.Name && oa.ReasonCode == code && oa.ReasonText == text {
		// The same swap again (a retry): the pair's last overrides are
		// each other's, made together.
		bv := viewOf(b.d, b.ovs)
		*out = OverrideOutcome{Decision: viewOf(a.d, a.ovs), Swapped: &bv, Replayed: true}
		return nil
	}
	for _, x := range []struct {
		l     decided
		field string
	}{{a, "id"}, {b, "swap_with"}} {
		if x.l.d.Quota == nil {
			return Invalid(x.field, "decision %s is not a random-check lot (mode %s): only reduced-mode lots drawn for the quota are swapped",
				x.l.d.ID, x.l.d.Mode)
		}
	}
	qa, qb := a.d.Quota, b.d.Quota
	if qa.Scope != qb.Scope || qa.Period != qb.Period {
		return Invalid("swap_with", "decision %s is in quota scope %s of %s and %s in %s of %s: a random check may only move like for like, within one scope and period",
			a.d.ID, qa.Scope, qa.Period, b.d.ID, qb.Scope, qb.Period)
	}
	if a.cur.Inspect == b.cur.Inspect {
		return Conflict("swap_with", "decisions %s and %s are both %s: a swap moves a check from a checked lot to an unchecked one",
			a.d.ID, b.d.ID, inspectedWord(a.cur.Inspect))
	}
	release, check := a, b
	if b.cur.Inspect {
		release, check = b, a
	}
	ro := release.next(by.Name, now, code, text, false)
	co := check.next(by.Name, now, code, text, true)
	ro.SwapWith, co.SwapWith = check.d.ID, release.d.ID
	ra, err := cancelAssignment(tx, release, ro.ID, now)
	if err != nil {
		return err
	}
	ca, err := openAssignment(tx, pol, check.d, co.ID, now)
	if err != nil {
		return err
	}
	ro.Agency, ro.AssignmentID = ra.Agency, ra.ID
	co.Agency, co.AssignmentID = ca.Agency, ca.ID
	for _, o := range []Override{ro, co} {
		if err := tx.PutOverride(o); err != nil {
			return err
		}
	}
	c.Subjects = []string{"decision:" + a.d.ID, "decision:" + b.d.ID}
	aNew, bNew := ro, co
	if a.d.ID == check.d.ID {
		aNew, bNew = co, ro
	}
	bv := viewOf(b.d, append(b.ovs, bNew))
	*out = OverrideOutcome{Decision: viewOf(a.d, append(a.ovs, aNew)), Swapped: &bv}
	emitOverridden(c, release.d, ro, ra, viewOf(release.d, append(release.ovs, ro)).Agencies())
	emitOverridden(c, check.d, co, ca, viewOf(check.d, append(check.ovs, co)).Agencies())
	return nil
}

// openAssignment gives the lot to its agency: the lot's assignment is
// reopened if an earlier override cancelled it, or created under the
// active policy's routing.
func openAssignment(tx Tx, pol *policy.Policy, d Decision, overrideID string, now time.Time) (Assignment, error) {
	id := identity.AssignmentID(d.DeclarationID, d.LineNo)
	a, err := tx.Assignment(id)
	switch {
	case err == nil:
		if a.Result != nil {
			return Assignment{}, Conflict("inspect", "the lot's assignment %s already has a result", id)
		}
	case errors.Is(err, fault.ErrNotFound):
		listing, ok := pol.Lookup(d.Procedure, d.Goods.HSCode)
		if !ok {
			return Assignment{}, Conflict("inspect", "policy %s does not list %s under %s: no agency to inspect it", pol.Version, d.Goods.HSCode, d.Procedure)
		}
		agency, ok := pol.Route(listing, d.Goods.HSCode)
		if !ok {
			return Assignment{}, Conflict("inspect", "policy %s routes %s %s to no agency", pol.Version, d.Procedure, d.Goods.HSCode)
		}
		check := "documents"
		if d.Mode == ModeStrict {
			check = "documents_and_sampling"
		}
		a = Assignment{ID: id, DecisionID: d.ID, DeclarationID: d.DeclarationID, LineNo: d.LineNo, ImporterTaxCode: d.ImporterTaxCode,
			Agency: agency, Mode: d.Mode, Check: check, Goods: d.Goods, GoodsKey: d.GoodsKey, Procedure: d.Procedure, CreatedAt: now}
		if routesByCapacity(pol) {
			// Routed as a decision would be, on the override's working
			// day; a reopened assignment keeps its agency and its count.
			if err := routeByCapacity(tx, pol, &a, nil, now); err != nil {
				return Assignment{}, err
			}
		}
	default:
		return Assignment{}, err
	}
	// The agency's deadline runs from the override, not from the decision.
	a.Status, a.DueAt, a.OverrideID, a.CancelledAt = AssignmentOpen, Deadline(pol, a.Mode, now), overrideID, nil
	return a, tx.PutAssignment(a)
}

// cancelAssignment withdraws the lot's open assignment. A lot already
// inspected keeps its result: an override cannot undo what an agency found.
func cancelAssignment(tx Tx, l decided, overrideID string, now time.Time) (Assignment, error) {
	a, err := tx.Assignment(l.cur.AssignmentID)
	if err != nil {
		return Assignment{}, fmt.Errorf("assignment %s of decision %s: %w", l.cur.AssignmentID, l.d.ID, err)
	}
	if a.Result != nil {
		return Assignment{}, Conflict("inspect", "decision %s's lot was inspected (%s, recorded %s): a result stands and an override cannot undo it",
			l.d.ID, a.Result.Outcome, a.Result.RecordedAt.Format(time.RFC3339))
	}
	at := now
	a.Status, a.OverrideID, a.CancelledAt = AssignmentCancelled, overrideID, &at
	return a, tx.PutAssignment(a)
}

func inspectedWord(b bool) string {
	if b {
		return "inspected"
	}
	return "not inspected"
}

func reasonList() string {
	codes := make([]string, len(overrideReasons))
	for i, r := range overrideReasons {
		codes[i] = string(r.Code)
	}
	return strings.Join(codes, ", ")
}
