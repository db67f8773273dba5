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
//
// Four eyes on relaxing overrides. An override that relaxes control is
// only requested by the officer who makes it: it is stored pending and
// changes nothing else (the assignment stays open, the agency may still
// report, the decision in force is as before, no event is sent) until a
// second customs officer, another person than its author (person, as for
// policy approvals: "customs:lan" and a second key of "customs:lan" are
// one pair of eyes), confirms it, and it takes effect then; or until any
// customs officer rejects it (its author too: withdrawing a request needs
// no second pair of eyes), and nothing changes at all. An override is
// relaxing when it releases a lot (inspect false) and either
//   - the lot was decided strict (its goods failed, or are under an
//     alert): removing the inspection of a strict lot; or
//   - its reason is exemption_established, whatever the mode: granting an
//     exemption the declaration did not claim.
// An override that adds inspection, releases a normal or exempt lot for
// another reason, or swaps a random check like for like (the quota stays
// as drawn) takes effect at once, as before. A decision has at most one
// pending override: any other override of it waits until that one is
// confirmed or rejected (409).

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

// reasonExemption is the reason that grants an exemption: relaxing, so
// under four eyes, whatever the lot's mode.
const reasonExemption OverrideReason = "exemption_established"

// OverrideStatus is where an override stands under four eyes.
type OverrideStatus string

const (
	// OverrideInEffect (no status) took effect when it was made: every
	// override that is not relaxing, and every one stored before four
	// eyes.
	OverrideInEffect OverrideStatus = ""
	// OverridePending waits for a second customs officer; it changes
	// nothing meanwhile.
	OverridePending OverrideStatus = "pending"
	// OverrideConfirmed took effect when a second officer confirmed it.
	OverrideConfirmed OverrideStatus = "confirmed"
	// OverrideRejected never took effect.
	OverrideRejected OverrideStatus = "rejected"
)

// relaxing reports whether releasing or inspecting d (inspect) for code
// relaxes control, and so waits for a second customs officer: see the
// rule at the top of this file.
func relaxing(d Decision, inspect bool, code OverrideReason) bool {
	return !inspect && (d.Mode == ModeStrict || code == reasonExemption)
}

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
	// Status is where a relaxing override stands under four eyes; empty
	// for one that took effect when made. A pending override names no
	// assignment yet: its confirmation cancels it.
	Status       OverrideStatus `json:"status,omitempty"`
	ConfirmedBy  string         `json:"confirmed_by,omitempty"`
	ConfirmedAt  *time.Time     `json:"confirmed_at,omitempty"`
	RejectedBy   string         `json:"rejected_by,omitempty"`
	RejectedAt   *time.Time     `json:"rejected_at,omitempty"`
	RejectReason string         `json:"reject_reason,omitempty"`
}

// InEffect reports whether the override took effect: at once, or when a
// second officer confirmed it. Pending and rejected ones change nothing.
func (o Override) InEffect() bool {
	return o.Status == OverrideInEffect || o.Status == OverrideConfirmed
}

// OverrideID names a decision's n-th override.
func OverrideID(decisionID string, n int) string { return decisionID + "/" + strconv.Itoa(n) }

// CurrentDecision is the decision in force: the decision's own, or the
// last override's that took effect (pending and rejected ones aside).
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
	i := len(ovs) - 1
	for i >= 0 && !ovs[i].InEffect() {
		i--
	}
	if i < 0 {
		return v
	}
	o := ovs[i]
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
	v.Current.Reason += " on " + o.At.In(calendar.Vietnam()).Format(time.RFC3339)
	if o.Status == OverrideConfirmed && o.ConfirmedAt != nil {
		v.Current.Reason += fmt.Sprintf(", confirmed by %s on %s", o.ConfirmedBy, o.ConfirmedAt.In(calendar.Vietnam()).Format(time.RFC3339))
	}
	v.Current.Reason += fmt.Sprintf(": %s — %s", o.ReasonCode, o.ReasonText)
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

// OverrideOutcome is what Override, ConfirmOverride and RejectOverride
// return: the decision, and the other lot of a swap.
type OverrideOutcome struct {
	Decision DecisionView
	Swapped  *DecisionView
	// Replayed: the same override (confirmation, rejection) was the last
	// one made; nothing changed.
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

// pending is the decision's override waiting for a second officer, if any.
func (l decided) pending() *Override {
	for i := range l.ovs {
		if l.ovs[i].Status == OverridePending {
			return &l.ovs[i]
		}
	}
	return nil
}

// refusePending refuses any other override of a decision while one waits
// for its second officer: the pending one was asked of the lot as it is.
func (l decided) refusePending(field string) error {
	if p := l.pending(); p != nil {
		return Conflict(field, "decision %s has override %s by %s pending a second customs officer's confirmation: confirm or reject it first",
			l.d.ID, p.ID, p.By)
	}
	return nil
}

func (l decided) next(by string, at time.Time, code OverrideReason, text string, inspect bool) Override {
	n := len(l.ovs) + 1
	return Override{ID: OverrideID(l.d.ID, n), DecisionID: l.d.ID, N: n, By: by, At: at, ReasonCode: code, ReasonText: text,
		WasInspected: l.cur.Inspect, Inspect: inspect}
}

// Override changes a lot's inspection on a customs officer's authority, in
// one atomic write with its audit entry; a relaxing override is only
// requested (pending, see the top of this file) and takes effect when a
// second officer confirms it (ConfirmOverride). The same override sent
// again (same officer, reason and change, and still the last one, not
// rejected) changes nothing and is returned as Replayed.
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
		if o := l.last(); o != nil && o.SwapWith == "" && o.Status != OverrideRejected && o.Inspect == want && o.By == by.Name &&
			o.ReasonCode == code && o.ReasonText == text {
			out = OverrideOutcome{Decision: viewOf(l.d, l.ovs), Replayed: true}
			return nil
		}
		if err := l.refusePending("inspect"); err != nil {
			return err
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
		c.Subjects = []string{"decision:" + l.d.ID}
		if relaxing(l.d, want, code) {
			// Requested only. Refused now if it could never be confirmed:
			// a result stands.
			if _, err := cancellable(tx, l); err != nil {
				return err
			}
			o.Status = OverridePending
			c.Kind = audit.OverrideRequested
			out.Decision = viewOf(l.d, append(l.ovs, o))
			return tx.PutOverride(o)
		}
		var a Assignment
		if want {
			a, err = openAssignment(tx, c, pol, l.d, o.ID, now)
		} else {
			a, err = cancelAssignment(tx, c, l, o.ID, now)
		}
		if err != nil {
			return err
		}
		o.Agency, o.AssignmentID = a.Agency, a.ID
		if err := tx.PutOverride(o); err != nil {
			return err
		}
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
		if o := out.Decision.Overrides; len(o) > 0 && o[len(o)-1].Status == OverridePending {
			ev = ev.Bool("pending", true)
		}
		if out.Swapped != nil {
			ev = ev.Str("swap_with", out.Swapped.ID)
		}
		ev.Msg("decision overridden")
	}
	return out, nil
}

// loadOverride reads the decision of an override named by its ID
// (decision ID "/" n) and the override.
func loadOverride(tx LotReader, overrideID string) (decided, int, error) {
	decisionID, num, ok := strings.Cut(overrideID, "/")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 1 || strconv.Itoa(n) != num {
		return decided{}, 0, NotFound("no override %q", overrideID)
	}
	l, err := loadDecided(tx, decisionID)
	if errors.Is(err, fault.ErrNotFound) || err == nil && n > len(l.ovs) {
		return decided{}, 0, NotFound("no override %q", overrideID)
	}
	return l, n - 1, err
}

// ConfirmOverride is the second customs officer's confirmation of a
// pending (relaxing) override: it takes effect now, cancelling the lot's
// assignment and telling NSW and the agency, in one write with its audit
// entry. The person who made the override cannot confirm it (whatever key
// they use), and a lot with a result cannot be released (409). The same
// person's confirmation again changes nothing and is Replayed.
func (s *Service) ConfirmOverride(ctx context.Context, by access.Principal, overrideID string) (OverrideOutcome, error) {
	if by.Role != access.RoleCustoms {
		return OverrideOutcome{}, Forbidden("only customs may confirm an override, not %s", by.Role)
	}
	now := s.clock.Now()
	var out OverrideOutcome
	err := s.w.write(ctx, by, audit.OverrideConfirmed, now, func(tx Tx, c *Change) error {
		out = OverrideOutcome{}
		l, i, err := loadToSettle(tx, overrideID, by, "confirm")
		if err != nil {
			return err
		}
		o := l.ovs[i]
		if o.Status == OverrideConfirmed { // this person's confirmation, again
			out = OverrideOutcome{Decision: viewOf(l.d, l.ovs), Replayed: true}
			return nil
		}
		if person(o.By) == person(by.Name) {
			return Forbidden("%s made override %s: a second customs officer confirms it", person(by.Name), o.ID)
		}
		if l.cur.Inspect != o.WasInspected || o.Inspect {
			// Never so: nothing else changes the lot while one waits.
			return Conflict("status", "override %s found decision %s %s, but it is %s now", o.ID, l.d.ID,
				inspectedWord(o.WasInspected), inspectedWord(l.cur.Inspect))
		}
		a, err := cancelAssignment(tx, c, l, o.ID, now)
		if err != nil {
			return err
		}
		at := now
		o.Status, o.ConfirmedBy, o.ConfirmedAt = OverrideConfirmed, by.Name, &at
		o.Agency, o.AssignmentID = a.Agency, a.ID
		if err := tx.ResolveOverride(o); err != nil {
			return err
		}
		ovs := slices.Clone(l.ovs)
		ovs[i] = o
		c.Subjects = []string{"decision:" + l.d.ID}
		out.Decision = viewOf(l.d, ovs)
		emitOverridden(c, l.d, o, a, out.Decision.Agencies())
		return nil
	})
	if err != nil {
		return OverrideOutcome{}, err
	}
	if !out.Replayed {
		s.log.Info().Str("override_id", overrideID).Str("by", by.Name).Bool("inspect", out.Decision.Current.Inspect).Msg("override confirmed")
	}
	return out, nil
}

// RejectOverride refuses a pending override, with a reason: it never takes
// effect, and nothing else changes. Any customs officer may reject one,
// its author too (withdrawing a request relaxes nothing). The same
// person's rejection with the same reason again is Replayed.
func (s *Service) RejectOverride(ctx context.Context, by access.Principal, overrideID, reason string) (OverrideOutcome, error) {
	if by.Role != access.RoleCustoms {
		return OverrideOutcome{}, Forbidden("only customs may reject an override, not %s", by.Role)
	}
	if err := declaration.CheckTextMax("reason", reason, true, maxReasonText); err != nil {
		return OverrideOutcome{}, err
	}
	reason = strings.TrimSpace(reason)
	now := s.clock.Now()
	var out OverrideOutcome
	err := s.w.write(ctx, by, audit.OverrideRejected, now, func(tx Tx, c *Change) error {
		out = OverrideOutcome{}
		l, i, err := loadToSettle(tx, overrideID, by, "reject")
		if err != nil {
			return err
		}
		o := l.ovs[i]
		if o.Status == OverrideRejected { // this person's rejection, again
			if o.RejectReason != reason {
				return Conflict("status", "override %s was rejected by %s for another reason: %s", o.ID, o.RejectedBy, o.RejectReason)
			}
			out = OverrideOutcome{Decision: viewOf(l.d, l.ovs), Replayed: true}
			return nil
		}
		at := now
		o.Status, o.RejectedBy, o.RejectedAt, o.RejectReason = OverrideRejected, by.Name, &at, reason
		if err := tx.ResolveOverride(o); err != nil {
			return err
		}
		ovs := slices.Clone(l.ovs)
		ovs[i] = o
		c.Subjects = []string{"decision:" + l.d.ID}
		out.Decision = viewOf(l.d, ovs)
		return nil
	})
	if err != nil {
		return OverrideOutcome{}, err
	}
	if !out.Replayed {
		s.log.Info().Str("override_id", overrideID).Str("by", by.Name).Msg("override rejected")
	}
	return out, nil
}

// loadToSettle loads an override a customs officer confirms or rejects
// (verb) and refuses one that is not theirs to settle (settled).
func loadToSettle(tx LotReader, overrideID string, by access.Principal, verb string) (decided, int, error) {
	l, i, err := loadOverride(tx, overrideID)
	if err == nil {
		err = settled(l.ovs[i], by, verb)
	}
	return l, i, err
}

// settled refuses to confirm or reject (verb) an override that is not
// pending, but lets the same person's confirmation or rejection be
// replayed: it returns nil for a pending one, and for one that person
// already settled as asked (the caller checks which).
func settled(o Override, by access.Principal, verb string) error {
	switch o.Status {
	case OverridePending:
		return nil
	case OverrideInEffect:
		return Conflict("status", "override %s took effect when it was made: there is nothing to %s", o.ID, verb)
	case OverrideConfirmed:
		if verb == "confirm" && person(o.ConfirmedBy) == person(by.Name) {
			return nil
		}
		return Conflict("status", "override %s was confirmed by %s on %s: it is in effect", o.ID, o.ConfirmedBy, o.ConfirmedAt.Format(time.RFC3339))
	case OverrideRejected:
		if verb == "reject" && person(o.RejectedBy) == person(by.Name) {
			return nil
		}
		return Conflict("status", "override %s was rejected by %s: %s", o.ID, o.RejectedBy, o.RejectReason)
	}
	return Conflict("status", "override %s has status %q", o.ID, o.Status)
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
		if err := x.l.refusePending(x.field); err != nil {
			return err
		}
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
	ra, err := cancelAssignment(tx, c, release, ro.ID, now)
	if err != nil {
		return err
	}
	ca, err := openAssignment(tx, c, pol, check.d, co.ID, now)
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
// active policy's routing. The ledger counts the inspection ordered
// toward the decision's rule.
func openAssignment(tx Tx, c *Change, pol *policy.Policy, d Decision, overrideID string, now time.Time) (Assignment, error) {
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
	c.ledgerInspection(d, +1)
	return a, tx.PutAssignment(a)
}

// cancelAssignment withdraws the lot's open assignment. A lot already
// inspected keeps its result: an override cannot undo what an agency found.
// The ledger no longer counts the inspection.
func cancelAssignment(tx Tx, c *Change, l decided, overrideID string, now time.Time) (Assignment, error) {
	a, err := cancellable(tx, l)
	if err != nil {
		return Assignment{}, err
	}
	c.ledgerInspection(l.d, -1)
	at := now
	a.Status, a.OverrideID, a.CancelledAt = AssignmentCancelled, overrideID, &at
	return a, tx.PutAssignment(a)
}

// cancellable reads the lot's assignment in force and refuses when it has
// a result.
func cancellable(tx LotReader, l decided) (Assignment, error) {
	a, err := tx.Assignment(l.cur.AssignmentID)
	if err != nil {
		return Assignment{}, fmt.Errorf("assignment %s of decision %s: %w", l.cur.AssignmentID, l.d.ID, err)
	}
	if a.Result != nil {
		return Assignment{}, Conflict("inspect", "decision %s's lot was inspected (%s, recorded %s): a result stands and an override cannot undo it",
			l.d.ID, a.Result.Outcome, a.Result.RecordedAt.Format(time.RFC3339))
	}
	return a, nil
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
