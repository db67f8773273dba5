package quota

import (
	"cmp"
	"slices"
)

// Usage is how a period's random checks used their allowance, scope by
// scope, for customs and auditors (never for importers: the counts tell
// how much of a scope's budget is left). Allowances use the active policy's
// cap; each decision keeps the cap it was drawn under.
type Usage struct {
	Period         string  `json:"period"`
	Opened         bool    `json:"opened"` // a commitment is stored: the period has drawn
	CapBasisPoints int64   `json:"cap_basis_points"`
	Cap            float64 `json:"cap"`
	ScopeUsage
	// ScopesWithoutAllowance have fewer reduced lots than it takes to allow
	// one check (20 at a 5% cap): the narrow-scope consequence.
	ScopesWithoutAllowance int          `json:"scopes_without_allowance"`
	Scopes                 []ScopeUsage `json:"scopes"`
}

// ScopeUsage is one scope's counts (or a period's totals): Rate is
// Selected / Eligible, ShareOfCap is Rate / cap (1 is the whole allowance),
// Unused the checks the cap still allowed and nobody used.
type ScopeUsage struct {
	Scope      string  `json:"scope,omitempty"`
	Eligible   int64   `json:"eligible"`
	Selected   int64   `json:"selected"`
	Allowance  int64   `json:"allowance"`
	Unused     int64   `json:"unused"`
	Rate       float64 `json:"rate"`
	ShareOfCap float64 `json:"share_of_cap"`
}

func scopeUsage(scope string, eligible, selected, allowance, bp int64) ScopeUsage {
	u := ScopeUsage{Scope: scope, Eligible: eligible, Selected: selected, Allowance: allowance, Unused: max(allowance-selected, 0)}
	if eligible > 0 {
		u.Rate = float64(selected) / float64(eligible)
		if bp > 0 {
			u.ShareOfCap = u.Rate * CapDenominator / float64(bp)
		}
	}
	return u
}

// UsageOf sums a period's counters under a cap in basis points, most
// lots first; opened says whether the period has a commitment (has drawn).
func UsageOf(period string, opened bool, bp int64, counters []Counter) Usage {
	out := Usage{Period: period, Opened: opened, CapBasisPoints: bp, Cap: float64(bp) / CapDenominator, Scopes: []ScopeUsage{}}
	var eligible, selected, allowance int64
	for _, c := range counters {
		a := AllowanceOf(c.Eligible, bp)
		out.Scopes = append(out.Scopes, scopeUsage(c.Scope, c.Eligible, c.Selected, a, bp))
		eligible, selected, allowance = eligible+c.Eligible, selected+c.Selected, allowance+a
		if a == 0 {
			out.ScopesWithoutAllowance++
		}
	}
	out.ScopeUsage = scopeUsage("", eligible, selected, allowance, bp)
	slices.SortStableFunc(out.Scopes, func(a, b ScopeUsage) int { return cmp.Compare(b.Eligible, a.Eligible) })
	return out
}
