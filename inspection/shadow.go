package inspection

import (
	"context"
	"slices"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/policy"
)

// Shadow evaluation. An approved version can run in shadow: each decision
// also evaluates it, in the same place the decision's own evaluation
// happens (the preparation, or the transaction when the preparation is
// stale), on the same history, and stores what it would have decided
// beside the decision. It never draws from the quota (a reduced lot's
// shadow says "reduced", not whether it would be checked), never writes
// anything a decision reads, and never changes what is decided.

// ShadowOutcome is one lot's decision under the version in force and what
// a version in shadow would have decided.
type ShadowOutcome struct {
	Version       string    `json:"version"` // the version in shadow
	DecisionID    string    `json:"decision_id"`
	DeclarationID string    `json:"declaration_id"`
	LineNo        int       `json:"line_no"`
	DecidedAt     time.Time `json:"decided_at"`
	LiveVersion   string    `json:"live_version"`
	LiveMode      Mode      `json:"live_mode"`
	LiveRule      string    `json:"live_rule"`
	ShadowMode    Mode      `json:"shadow_mode"`
	ShadowRule    string    `json:"shadow_rule"`
	ShadowReason  string    `json:"shadow_reason"`
}

// Differs reports whether the shadow would have decided another mode.
func (o ShadowOutcome) Differs() bool { return o.LiveMode != o.ShadowMode }

// ShadowReader and ShadowWriter keep shadow outcomes: derived data, in
// decision order per version.
type ShadowReader interface {
	ShadowOutcomes(version string, fn func(ShadowOutcome) (more bool, err error)) error
}

type ShadowWriter interface {
	PutShadowOutcome(ShadowOutcome) error
}

// setShadow adds or removes version in the pointer's shadow list.
func setShadow(tx Tx, a ActivePolicy, version string, on bool) error {
	has := slices.Contains(a.Shadow, version)
	switch {
	case on && !has:
		a.Shadow = append(slices.Clone(a.Shadow), version)
	case !on && has:
		a.Shadow = slices.DeleteFunc(slices.Clone(a.Shadow), func(v string) bool { return v == version })
	default:
		return nil
	}
	return tx.PutActivePolicy(a)
}

// ShadowPolicy starts or stops running a version in shadow. Only an
// approved (or scheduled) version runs in shadow: the comparison is of
// rules someone has signed off.
func (s *Service) ShadowPolicy(ctx context.Context, by access.Principal, version string, on bool) (PolicyVersion, error) {
	kind := audit.PolicyShadowStopped
	if on {
		kind = audit.PolicyShadowStarted
	}
	return s.lifecycle(ctx, by, access.ActApprovePolicy, kind, version, func(tx Tx, _ *Change, a ActivePolicy, v *PolicyVersion, now time.Time) error {
		if on {
			if v.State != PolicyApproved && v.State != PolicyScheduled {
				return Conflict("version", "policy %s is %s: only an approved version runs in shadow", v.Version, v.State)
			}
			if v.Shadow != nil {
				return Conflict("version", "policy %s runs in shadow already, since %s", v.Version, v.Shadow.Since.Format(time.RFC3339))
			}
			p, err := policy.ParsePolicy(v.Document)
			if err != nil {
				return Conflict("document", "policy %s does not parse: %v", v.Version, err)
			}
			if err := putDocument(tx, p, v.Document); err != nil {
				return err
			}
			v.Shadow = &ShadowRun{Since: now, By: by.Name}
		} else {
			if v.Shadow == nil {
				return Conflict("version", "policy %s does not run in shadow", v.Version)
			}
			v.Shadow = nil
		}
		return setShadow(tx, a, v.Version, on)
	})
}

// shadowEval is what one version in shadow would have decided for a lot.
type shadowEval struct {
	version, rule, reason string
	mode                  Mode
}

// shadowsAt are the versions in shadow the pointer a names beside live,
// parsed (the pointer as inForceAt read it: the decision path reads it
// once).
func (s *Service) shadowsAt(tx PolicyReader, a ActivePolicy, live *policy.Policy) ([]*policy.Policy, error) {
	var out []*policy.Policy
	for _, v := range a.Shadow {
		if v == live.Version {
			continue // in force now: nothing to compare
		}
		p, err := s.storedPolicy(tx, v)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ShadowReport is what a version in shadow would have changed since it
// began: lots per mode under each policy, the transitions between them,
// and the lots that differ (paged by decision order).
type ShadowReport struct {
	Version string     `json:"version"`
	Since   *time.Time `json:"since,omitempty"`
	Lots    int        `json:"lots"`
	// Live and Shadow count lots per mode under the version in force and
	// under the version in shadow; Transitions[live][shadow] counts lots.
	Live        map[Mode]int          `json:"live"`
	Shadow      map[Mode]int          `json:"shadow"`
	Transitions map[Mode]map[Mode]int `json:"transitions"`
	Differing   int                   `json:"differing"`
	// Differences are a page of the lots whose mode would differ, with
	// the rule each policy fired; Next is the cursor for the next page.
	Differences []ShadowOutcome `json:"differences"`
	Next        string          `json:"next,omitempty"`
}

// ShadowReportOf reports on a version's shadow run. after is a decision
// ID from a previous page's Next ("" for the first page).
func (s *Service) ShadowReportOf(ctx context.Context, by access.Principal, version, after string, limit int) (ShadowReport, error) {
	if limit <= 0 || limit > MaxEventLimit {
		return ShadowReport{}, Invalid("limit", "must be between 1 and %d, got %d", MaxEventLimit, limit)
	}
	return read(ctx, s.reads, by, access.ActReadPolicy, func(tx ReadTx) (ShadowReport, error) {
		v, err := loadVersion(tx, version)
		if err != nil {
			return ShadowReport{}, err
		}
		r := ShadowReport{Version: version, Live: map[Mode]int{}, Shadow: map[Mode]int{}, Transitions: map[Mode]map[Mode]int{},
			Differences: []ShadowOutcome{}}
		if v.Shadow != nil {
			since := v.Shadow.Since
			r.Since = &since
		}
		paging := after == ""
		err = tx.ShadowOutcomes(version, func(o ShadowOutcome) (bool, error) {
			r.Lots++
			r.Live[o.LiveMode]++
			r.Shadow[o.ShadowMode]++
			if r.Transitions[o.LiveMode] == nil {
				r.Transitions[o.LiveMode] = map[Mode]int{}
			}
			r.Transitions[o.LiveMode][o.ShadowMode]++
			if !o.Differs() {
				return true, nil
			}
			r.Differing++
			switch {
			case !paging:
				paging = o.DecisionID == after
			case len(r.Differences) < limit:
				r.Differences = append(r.Differences, o)
				r.Next = ""
				if len(r.Differences) == limit {
					r.Next = o.DecisionID
				}
			}
			return true, nil
		})
		return r, err
	})
}
