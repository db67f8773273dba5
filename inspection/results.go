package inspection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/risk"
)

// ResultInput is an agency's result as sent.
type ResultInput struct {
	Outcome          string    `json:"outcome"`
	InspectedAt      string    `json:"inspected_at"`
	Findings         []Finding `json:"findings"`
	LabReport        string    `json:"lab_report"`
	RejectedQuantity *float64  `json:"rejected_quantity"`
}

// DefaultClockSkew is how far ahead of ktcn's clock a result or alert may
// be dated (an agency's or authority's clock a little fast); anything
// later is refused.
const DefaultClockSkew = 5 * time.Minute

// effectiveAt is the time an event takes its place in history: the time
// its source gave, or, when that is ahead of ktcn's clock (within the
// tolerated skew), now, so every decision from now on sees it; the time
// given is kept as reported.
func effectiveAt(at, now time.Time) (time.Time, *time.Time) {
	if at.After(now) {
		return now, &at
	}
	return at, nil
}

// reportedAt is the time an event's source gave.
func (e Event) reportedAt() time.Time {
	if e.ReportedAt != nil {
		return *e.ReportedAt
	}
	return e.At
}

const maxFindings = 50

func parseResult(in ResultInput, now time.Time, skew time.Duration) (Result, error) {
	r := Result{Outcome: Outcome(in.Outcome)}
	if r.Outcome != OutcomePass && r.Outcome != OutcomeFail {
		return r, Invalid("outcome", "must be pass or fail, got %q", in.Outcome)
	}
	if in.InspectedAt == "" {
		return r, Invalid("inspected_at", "is required")
	}
	at, err := calendar.ParseTime("inspected_at", in.InspectedAt)
	if err != nil {
		return r, err
	}
	if at.After(now.Add(skew)) {
		return r, Invalid("inspected_at", "%s is more than %s ahead of ktcn's clock", in.InspectedAt, skew)
	}
	r.InspectedAt = at
	if len(in.Findings) > maxFindings {
		return r, Invalid("findings", "at most %d findings", maxFindings)
	}
	for i, f := range in.Findings {
		ff := fmt.Sprintf("findings[%d]", i)
		if err := declaration.CheckText(ff+".code", f.Code, true); err != nil {
			return r, err
		}
		if err := declaration.CheckTextMax(ff+".text", f.Text, false, 4*declaration.MaxText); err != nil {
			return r, err
		}
		r.Findings = append(r.Findings, Finding{Code: strings.TrimSpace(f.Code), Text: f.Text})
	}
	if err := declaration.CheckText("lab_report", in.LabReport, false); err != nil {
		return r, err
	}
	r.LabReport = strings.TrimSpace(in.LabReport)
	if in.RejectedQuantity != nil {
		q := *in.RejectedQuantity
		if q < 0 || q != q || q > 1e12 {
			return r, Invalid("rejected_quantity", "must be zero or a positive number, got %v", q)
		}
		r.RejectedQuantity = q
		if q > 0 {
			// A partly rejected lot is a failed lot (Decree 15/2018 reads a
			// lot as one unit); keep the agency's word visible as Partial.
			r.Partial = r.Outcome == OutcomePass
			r.Outcome = OutcomeFail
		}
	}
	if r.Outcome == OutcomeFail && len(r.Findings) == 0 {
		return r, Invalid("findings", "a failed inspection must state at least one finding")
	}
	return r, nil
}

// RecordResultOutcome is what RecordResult returns.
type RecordResultOutcome struct {
	Assignment Assignment
	Replayed   bool
}

// RecordResult records an agency's result on an open assignment in one
// atomic write: the assignment closes, the result joins the goods' history
// and the goods' state is recomputed. The same result again is recorded
// once; a different result on a closed assignment is a conflict.
func (s *Service) RecordResult(ctx context.Context, by access.Principal, assignmentID string, in ResultInput) (RecordResultOutcome, error) {
	if err := by.Require(access.ActRecordResult); err != nil {
		return RecordResultOutcome{}, err
	}
	now := s.clock.Now()
	r, err := parseResult(in, now, s.skew)
	if err != nil {
		return RecordResultOutcome{}, err
	}
	r.RecordedAt, r.Source = now, by.Name
	var out RecordResultOutcome
	err = s.w.write(ctx, by, audit.ResultRecorded, now, func(tx Tx, c *Change) error {
		out = RecordResultOutcome{}
		a, err := tx.Assignment(assignmentID)
		if errors.Is(err, fault.ErrNotFound) || err == nil && !by.MaySee(a.Agency) {
			return NotFound("no assignment %q", assignmentID) // word for word, whoever's it is
		}
		if err != nil {
			return err
		}
		if a.Result != nil {
			if !a.Result.Same(r) {
				return Conflict("outcome", "assignment %s already has a different result, recorded %s", a.ID, a.Result.RecordedAt.Format(time.RFC3339))
			}
			out = RecordResultOutcome{Assignment: a, Replayed: true}
			return nil
		}
		if a.Status == AssignmentCancelled {
			return Conflict("assignment_id", "assignment %s was cancelled by customs override %s: no result is expected", a.ID, a.OverrideID)
		}
		if beforeDecided(r.InspectedAt, a.CreatedAt) {
			return Invalid("inspected_at", "is before the lot was decided (%s)", a.CreatedAt.Format(time.RFC3339))
		}
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return err
		}
		res := r
		a.Result, a.Status = &res, AssignmentClosed
		if err := tx.PutAssignment(a); err != nil {
			return err
		}
		dec, err := tx.Decision(a.DecisionID)
		if err != nil {
			return fmt.Errorf("decision %s of assignment %s: %w", a.DecisionID, a.ID, err)
		}
		c.ledgerResult(dec, a, r.Outcome, +1)
		// The goods' key now, not the assignment's: an assignment made
		// under identity version 1 records its result under version 2.
		keys := s.keysOf(a.Goods)
		e := Event{
			ID: ResultEventID(a.ID), Kind: EventResult,
			Subject: Subject{SubjectGoods, keys.Goods}, RecordedAt: now, Outcome: r.Outcome,
			ImporterTaxCode: a.ImporterTaxCode, DecisionID: a.DecisionID, AssignmentID: a.ID, Mode: a.Mode, Source: by.Name,
		}
		e.At, e.ReportedAt = effectiveAt(r.InspectedAt, now)
		if err := tx.AddEvent(e); err != nil {
			return err
		}
		subjects := riskSubjects(a.Goods, keys, a.ImporterTaxCode)
		if err := observe(tx, pol, subjects[:], risk.Observation{At: e.At, Failed: r.Outcome == OutcomeFail, Ref: e.ID}); err != nil {
			return err
		}
		history, _, state, err := goodsContext(tx, keys)
		if err != nil {
			return err
		}
		out.Assignment = a
		after, err := putGoodsState(tx, pol, state, a.Goods, keys.Goods, history, now)
		if err != nil {
			return err
		}
		emitResult(c, a, after.Progress)
		emitModeChange(c, state, after, a.DeclarationID, a.LineNo, []string{a.Agency}, e.ID)
		c.Subjects = []string{"assignment:" + a.ID, "decision:" + a.DecisionID}
		return nil
	})
	if err != nil {
		return RecordResultOutcome{}, err
	}
	if !out.Replayed {
		s.log.Info().Str("assignment_id", assignmentID).Str("outcome", string(r.Outcome)).Str("source", by.Name).Msg("result recorded")
	}
	return out, nil
}

// ResultEventID is the history event ID of an assignment's result: one
// result per assignment, whatever the retries.
func ResultEventID(assignmentID string) string {
	return "res_" + identity.HashKey("ktcn/result/v1", assignmentID).String()[:24]
}

// AlertInput is a warning from an authority as sent.
type AlertInput struct {
	Authority string      `json:"authority"`
	Reference string      `json:"reference"`
	IssuedAt  string      `json:"issued_at"`
	Reason    string      `json:"reason"`
	Target    AlertTarget `json:"target"`
}

// AlertTarget is what an alert is about: one goods, every goods of a
// manufacturer, or every goods of an HS heading from one origin.
type AlertTarget struct {
	Kind         string `json:"kind"`
	HSCode       string `json:"hs_code"`
	ProductName  string `json:"product_name"`
	Brand        string `json:"brand"`
	Manufacturer string `json:"manufacturer"`
	Origin       string `json:"origin"`
}

func parseAlert(in AlertInput, now time.Time, skew time.Duration) (Event, *identity.Goods, error) {
	var e Event
	for _, t := range []struct{ field, value string }{
		{"authority", in.Authority}, {"reference", in.Reference}, {"reason", in.Reason},
	} {
		if err := declaration.CheckText(t.field, t.value, true); err != nil {
			return e, nil, err
		}
	}
	if in.IssuedAt == "" {
		return e, nil, Invalid("issued_at", "is required")
	}
	at, err := calendar.ParseTime("issued_at", in.IssuedAt)
	if err != nil {
		return e, nil, err
	}
	if at.After(now.Add(skew)) {
		return e, nil, Invalid("issued_at", "%s is more than %s ahead of ktcn's clock", in.IssuedAt, skew)
	}
	t := in.Target
	origin := strings.ToUpper(strings.TrimSpace(t.Origin))
	if !identity.ValidCountry(origin) {
		return e, nil, Invalid("target.origin", "must be an ISO 3166-1 alpha-2 country code, got %q", t.Origin)
	}
	hs := identity.HSDigits(t.HSCode)
	validHS := func(minLen int) error {
		if !declaration.HSInput(t.HSCode) || len(hs) < minLen || len(hs) > 10 {
			return Invalid("target.hs_code", "must be %d-10 digits, dots allowed, got %q", minLen, t.HSCode)
		}
		return nil
	}
	var goods *identity.Goods
	switch SubjectKind(t.Kind) {
	case SubjectGoods:
		if err := validHS(4); err != nil {
			return e, nil, err
		}
		for _, f := range []struct {
			field, value string
			required     bool
		}{{"target.product_name", t.ProductName, true}, {"target.brand", t.Brand, false}, {"target.manufacturer", t.Manufacturer, true}} {
			if err := declaration.CheckText(f.field, f.value, f.required); err != nil {
				return e, nil, err
			}
		}
		g := identity.Goods{HSCode: hs, ProductName: t.ProductName, Brand: t.Brand, Manufacturer: t.Manufacturer, Origin: origin}.Canonical()
		goods = &g
		e.Subject = Subject{SubjectGoods, g.Key()}
	case SubjectManufacturer:
		if err := declaration.CheckText("target.manufacturer", t.Manufacturer, true); err != nil {
			return e, nil, err
		}
		e.Subject = Subject{SubjectManufacturer, identity.ManufacturerKey(t.Manufacturer, origin)}
	case SubjectHeadingOrigin:
		if err := validHS(4); err != nil {
			return e, nil, err
		}
		e.Subject = Subject{SubjectHeadingOrigin, identity.HeadingOriginKey(hs, origin)}
	default:
		return e, nil, Invalid("target.kind", "must be goods, manufacturer or heading_origin, got %q", t.Kind)
	}
	e.Kind, e.RecordedAt = EventAlert, now
	e.At, e.ReportedAt = effectiveAt(at, now)
	e.Authority, e.Reference, e.Reason = strings.TrimSpace(in.Authority), strings.TrimSpace(in.Reference), strings.TrimSpace(in.Reason)
	// One alert per authority reference: a retry finds the same ID.
	e.ID = "alr_" + identity.HashKey("ktcn/alert/v1", identity.CanonicalText(e.Authority), e.Reference).String()[:24]
	return e, goods, nil
}

// RaiseAlertOutcome is what RaiseAlert returns.
type RaiseAlertOutcome struct {
	Alert    Event
	Replayed bool
}

// RaiseAlert records a warning; the goods it concerns are strict from its
// issue date on. The same authority reference again is recorded once.
func (s *Service) RaiseAlert(ctx context.Context, by access.Principal, in AlertInput) (RaiseAlertOutcome, error) {
	if err := by.Require(access.ActRaiseAlert); err != nil {
		return RaiseAlertOutcome{}, err
	}
	now := s.clock.Now()
	e, goods, err := parseAlert(in, now, s.skew)
	if err != nil {
		return RaiseAlertOutcome{}, err
	}
	e.Source = by.Name
	var out RaiseAlertOutcome
	err = s.w.write(ctx, by, audit.AlertRaised, now, func(tx Tx, c *Change) error {
		out = RaiseAlertOutcome{}
		old, err := tx.Event(e.ID)
		if err == nil {
			if old.Subject != e.Subject || !old.reportedAt().Equal(e.reportedAt()) || old.Reason != e.Reason {
				return Conflict("reference", "alert %s from %s was already recorded with different content", e.Reference, e.Authority)
			}
			out = RaiseAlertOutcome{Alert: old, Replayed: true}
			return nil
		}
		if !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return err
		}
		if err := tx.AddEvent(e); err != nil {
			return err
		}
		if err := observeAlert(tx, pol, e, goods); err != nil {
			return err
		}
		out.Alert = e
		if goods != nil {
			gk := goods.Key()
			history, _, state, err := goodsContext(tx, s.keysOf(*goods))
			if err != nil {
				return err
			}
			after, err := putGoodsState(tx, pol, state, *goods, gk, history, now)
			if err != nil {
				return err
			}
			emitAlert(c, e)
			emitModeChange(c, state, after, "", 0, nil, e.ID)
		} else {
			emitAlert(c, e)
		}
		c.Subjects = []string{"event:" + e.ID}
		return nil
	})
	if err != nil {
		return RaiseAlertOutcome{}, err
	}
	if !out.Replayed {
		s.log.Warn().Str("alert_id", e.ID).Str("authority", e.Authority).Str("target", string(e.Subject.Kind)).Str("source", by.Name).Msg("alert recorded")
	}
	return out, nil
}

// beforeDecided reports whether an agency's time (of inspection, of a
// sample) falls before its lot was decided. Agencies give times to the
// second while ktcn decides to the nanosecond, so a time in the very second
// of the decision is not before it: refusing "10:15:03" for a lot decided at
// 10:15:03.4 would refuse the truth, and the refusal would print the same
// second it refused.
func beforeDecided(t, decided time.Time) bool {
	return t.Before(decided.Truncate(time.Second))
}
