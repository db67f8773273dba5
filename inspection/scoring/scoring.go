// Package scoring is how risk scores enter decisions: the policy's scoring
// settings and score rules (which only ever make a decision more cautious),
// the stored record of a subject's time-decayed counts and its prior group,
// and a memo of scores by their exact inputs. The statistics are risk's;
// which subjects a lot touches and when counts change are inspection's.
package scoring

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/risk"
)

// Rules are the policy's scoring settings and rules. Zero settings take
// risk.DefaultParams.
type Rules struct {
	// ScoreDecisions scores every lot's subjects at decision time (shown in
	// the explanation, and needed by Rules). Counts are kept either way.
	ScoreDecisions   bool    `json:"score_decisions"`
	HalfLifeDays     float64 `json:"half_life_days"`
	Level            float64 `json:"level"`
	AlertWeight      float64 `json:"alert_weight"`
	PriorMinStrength float64 `json:"prior_min_strength"`
	PriorMaxStrength float64 `json:"prior_max_strength"`
	FallbackMean     float64 `json:"fallback_mean"`
	Rules            []Rule  `json:"rules"`
}

// Rule: when the pessimistic bound of the subject's violation rate is
// above Above, apply Effect.
type Rule struct {
	Subject string  `json:"subject"` // goods, heading_origin, manufacturer, importer
	Above   float64 `json:"above"`
	// Effect is "no_reduced" (a lot that would be reduced is decided
	// normal) or "strict".
	Effect string `json:"effect"`
}

// Score-rule effects.
const (
	EffectNoReduced = "no_reduced"
	EffectStrict    = "strict"
	// UnknownGroup ends the group of a subject first seen without an HS
	// code (risk.PriorGroup's answer).
	UnknownGroup = "hs_chapter:unknown"
)

// Params converts the rules to risk.Params.
func (r Rules) Params() risk.Params {
	p := risk.DefaultParams()
	if r.HalfLifeDays > 0 {
		p.HalfLife = time.Duration(r.HalfLifeDays * 24 * float64(time.Hour))
	}
	if r.Level > 0 {
		p.Level = r.Level
	}
	if r.AlertWeight > 0 {
		p.AlertWeight = r.AlertWeight
	}
	if r.PriorMinStrength > 0 {
		p.PriorMinStrength = r.PriorMinStrength
	}
	if r.PriorMaxStrength > 0 {
		p.PriorMaxStrength = r.PriorMaxStrength
	}
	if r.FallbackMean > 0 {
		p.FallbackMean = r.FallbackMean
	}
	return p
}

// Validate checks the rules; an error names the field under f.
func (r Rules) Validate(f string) error {
	if err := r.Params().Validate(); err != nil {
		return fault.Of(fault.Invalid, f, "%v", err)
	}
	if len(r.Rules) > 0 && !r.ScoreDecisions {
		return fault.Of(fault.Invalid, f+".score_decisions", "must be true for score rules to apply")
	}
	for i, sr := range r.Rules {
		rf := fmt.Sprintf("%s.rules[%d]", f, i)
		if !slices.Contains([]string{risk.KindGoods, risk.KindHeadingOrigin, risk.KindManufacturer, risk.KindImporter}, sr.Subject) {
			return fault.Of(fault.Invalid, rf+".subject", "must be goods, heading_origin, manufacturer or importer, got %q", sr.Subject)
		}
		if !(sr.Above > 0 && sr.Above < 1) {
			return fault.Of(fault.Invalid, rf+".above", "must be a rate between 0 and 1, got %v", sr.Above)
		}
		if sr.Effect != EffectNoReduced && sr.Effect != EffectStrict {
			return fault.Of(fault.Invalid, rf+".effect", "must be no_reduced or strict, got %q", sr.Effect)
		}
	}
	return nil
}

// Record is a subject's stored counts.
type Record struct {
	Subject risk.Subject `json:"subject"`
	// Group is the prior group (HS chapter, or all importers).
	Group  string      `json:"group"`
	Label  string      `json:"label"`
	Counts risk.Counts `json:"counts"`
}

// Group names the prior group of a subject: its kind and its wider
// group (HS chapter, or all importers). Kinds are never pooled: goods and
// manufacturers of one chapter have different spreads.
func Group(kind, hsCode string) string { return kind + "/" + risk.PriorGroup(kind, hsCode) }

// Memo remembers scores by their exact inputs (subject, counts or
// history fingerprint, prior, scoring second). The Beta quantiles cost
// ~20 µs a subject and run inside the single committer, while the
// importer, heading × origin and manufacturer of a burst of lots mostly
// repeat: the same inputs give the same score, so it is computed once.
type Memo struct {
	mu sync.Mutex
	m  map[MemoKey]risk.Score
}

// MemoKey is a score's exact inputs.
type MemoKey struct {
	Subject risk.Subject
	Policy  string // the policy version: its risk parameters
	Counts  risk.Counts
	History [2]uint64 // goods: number of observations and an order-free hash of their IDs
	Prior   risk.Prior
	At      int64
}

// memoSize bounds the memo; it is emptied when full (scores change
// every second anyway).
const memoSize = 4096

// Get returns the score for k, computing it once.
func (m *Memo) Get(k MemoKey, compute func() (risk.Score, error)) (risk.Score, error) {
	m.mu.Lock()
	sc, ok := m.m[k]
	m.mu.Unlock()
	if ok {
		return sc, nil
	}
	sc, err := compute()
	if err != nil {
		return sc, err
	}
	m.mu.Lock()
	if m.m == nil || len(m.m) >= memoSize {
		m.m = make(map[MemoKey]risk.Score, memoSize)
	}
	m.m[k] = sc
	m.mu.Unlock()
	return sc, nil
}

// Fire applies the rules, in order, to the scores of a lot that would be
// decided normal or reduced (reduced): a strict rule that trips decides
// strict at once; a no-reduced rule that trips while the lot is still
// reduced makes it normal, and later rules still apply. ok is false when
// no rule changed anything. Rules only ever make a decision more cautious.
func (r Rules) Fire(reduced bool, scores []risk.Score) (effect, why string, ok bool) {
	for _, rule := range r.Rules {
		for _, sc := range scores {
			if sc.Subject.Kind != rule.Subject || sc.Pessimistic <= rule.Above {
				continue
			}
			w := fmt.Sprintf("pessimistic %s violation rate %.1f%% (%.0f%% interval %.1f–%.1f%%) is above %.1f%%",
				rule.Subject, 100*sc.Pessimistic, 100*sc.Level, 100*sc.Interval.Lo, 100*sc.Interval.Hi, 100*rule.Above)
			switch {
			case rule.Effect == EffectStrict:
				return EffectStrict, w, true
			case rule.Effect == EffectNoReduced && reduced:
				effect, why, ok, reduced = EffectNoReduced, w, true, false
			}
		}
	}
	return effect, why, ok
}
