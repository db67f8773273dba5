package inspection

import (
	"context"
	"slices"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
)

// Customs' decision search: decisions by importer, declaration, HS code,
// mode, inspection in force, agency, decision time and whether they were
// overridden, a page at a time. The store answers from indexes kept in
// step with decisions and overrides, one prefix scan a page, and loads
// only the decisions of the page; the use case decides who sees what.

// Search page sizes.
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 1000
)

// DecisionQuery is a decision search as asked. Every field is optional;
// the filters given all apply.
type DecisionQuery struct {
	Importer    string // the importer's tax code
	Declaration string // the declaration ID
	// HS is the start of the goods' HS code, in digits: a chapter (2), a
	// heading (4), a subheading (6) or the AHTN line (8).
	HS   string
	Mode Mode
	// Inspect is the inspection in force (after overrides).
	Inspect *bool
	// Agency: lots routed to it, by the decision or an override. An agency
	// principal always searches its own.
	Agency string
	// From and To bound the decision time: From ≤ decided_at < To.
	From, To   time.Time
	Overridden *bool
	// After is the cursor a previous page returned as Next.
	After string
	// Limit is the page size: 1 to MaxSearchLimit, 0 for DefaultSearchLimit.
	Limit int
}

// DecisionPage is a page of a search: the decisions as customs reads
// them, and the cursor of the next page (empty when there is no more).
// The page may hold fewer than Limit decisions, even none, with a Next:
// a page stops after scanning a bounded number of index entries.
type DecisionPage struct {
	Decisions []DecisionView `json:"decisions"`
	Next      string         `json:"next,omitempty"`
}

// DecisionFilter is a validated search as the store runs it: the agency
// already restricted to what the principal may see.
type DecisionFilter struct {
	Importer    string
	Declaration string
	HS          string // digits, 2 to 8
	Mode        Mode
	Inspect     *bool
	Agency      string
	From, To    time.Time // From ≤ decided_at < To; zero is unbounded
	Overridden  *bool
}

// DecisionHit is a decision a search found, with its overrides.
type DecisionHit struct {
	Decision  Decision
	Overrides []Override
}

// DecisionSearcher is what the search needs of a store: decisions that
// pass every filter of f, in the order of the index the store chose, at
// most limit, after the cursor; next is the cursor of the following page
// (empty when the index has no more). A cursor stays valid while
// decisions are added: it names a position, not a decision.
type DecisionSearcher interface {
	SearchDecisions(f DecisionFilter, after string, limit int) (hits []DecisionHit, next string, err error)
}

var searchModes = []Mode{ModeStrict, ModeNormal, ModeReduced, ModeExempt}

// SearchDecisions answers a decision search. An agency gets only lots
// routed to it: its own agency is the filter, and asking for another's
// answers an empty page, never that agency's lots. Quota state is shown
// only to principals who may read quotas, as in DecisionView.
func (s *Service) SearchDecisions(ctx context.Context, by access.Principal, q DecisionQuery) (DecisionPage, error) {
	if err := by.Require(access.ActReadDecisions); err != nil {
		return DecisionPage{}, err
	}
	f, limit, err := q.filter()
	if err != nil {
		return DecisionPage{}, err
	}
	page := DecisionPage{Decisions: []DecisionView{}}
	if by.Role == access.RoleAgency {
		if f.Agency != "" && f.Agency != by.Agency {
			return page, nil
		}
		f.Agency = by.Agency
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return page, nil // an empty range: nothing to read
	}
	var hits []DecisionHit
	err = s.reads.View(ctx, func(tx ReadTx) (err error) {
		hits, page.Next, err = tx.SearchDecisions(f, q.After, limit)
		return err
	})
	if err != nil {
		return DecisionPage{}, err
	}
	quota := by.Can(access.ActReadQuota)
	for _, h := range hits {
		v := viewOf(h.Decision, h.Overrides)
		if !v.VisibleTo(by) {
			// The index said the lot is routed to the agency and the
			// records say not: never show it, and say so.
			s.log.Error().Str("decision_id", v.ID).Str("principal", by.Name).Msg("decision index out of step with the decision's routing; withheld")
			continue
		}
		if !quota {
			v.Quota = nil
		}
		page.Decisions = append(page.Decisions, v)
	}
	return page, nil
}

// filter validates q: every field is checked here, named as the api names
// its parameter.
func (q DecisionQuery) filter() (DecisionFilter, int, error) {
	f := DecisionFilter{Importer: q.Importer, Declaration: q.Declaration, HS: q.HS, Mode: q.Mode, Inspect: q.Inspect,
		Agency: q.Agency, From: q.From, To: q.To, Overridden: q.Overridden}
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultSearchLimit
	case limit < 1 || limit > MaxSearchLimit:
		return f, 0, Invalid("limit", "must be from 1 to %d, got %d", MaxSearchLimit, limit)
	}
	if f.Mode != "" && !slices.Contains(searchModes, f.Mode) {
		return f, 0, Invalid("mode", "must be one of strict, normal, reduced, exempt; got %.40q", f.Mode)
	}
	if f.HS != "" {
		n := len(f.HS)
		for _, r := range f.HS {
			if r < '0' || r > '9' {
				n = -1
				break
			}
		}
		if n != 2 && n != 4 && n != 6 && n != 8 {
			return f, 0, Invalid("hs", "must be 2, 4, 6 or 8 digits (a chapter, heading, subheading or AHTN code), got %.40q", f.HS)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return f, 0, Invalid("to", "%s is before from %s", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	for _, x := range []struct{ field, v string }{{"importer", f.Importer}, {"declaration", f.Declaration}, {"agency", f.Agency}} {
		if len(x.v) > 256 {
			return f, 0, Invalid(x.field, "is longer than 256 bytes")
		}
	}
	return f, limit, nil
}
