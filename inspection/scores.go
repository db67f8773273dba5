package inspection

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/risk"
)

// Risk scores in decisions. Every subject a lot touches (the goods, its HS
// heading × origin, its manufacturer, its importer) keeps time-decayed
// counts updated in the same transaction as each result and alert; a
// decision scores them against their group's prior (refitted by the
// rescoring job) and the policy's score rules may then keep the lot out of
// reduced mode or put it in strict. The legal count rules always run first:
// scores can only make a decision more cautious.

// RiskRules are the policy's scoring settings and rules. Zero settings take
// risk.DefaultParams.
type RiskRules struct {
	// ScoreDecisions scores every lot's subjects at decision time (shown in
	// the explanation, and needed by Rules). Counts are kept either way.
	ScoreDecisions   bool        `json:"score_decisions"`
	HalfLifeDays     float64     `json:"half_life_days"`
	Level            float64     `json:"level"`
	AlertWeight      float64     `json:"alert_weight"`
	PriorMinStrength float64     `json:"prior_min_strength"`
	PriorMaxStrength float64     `json:"prior_max_strength"`
	FallbackMean     float64     `json:"fallback_mean"`
	Rules            []ScoreRule `json:"rules"`
}

// ScoreRule: when the pessimistic bound of the subject's violation rate is
// above Above, apply Effect.
type ScoreRule struct {
	Subject string  `json:"subject"` // goods, heading_origin, manufacturer, importer
	Above   float64 `json:"above"`
	// Effect is "no_reduced" (a lot that would be reduced is decided
	// normal) or "strict".
	Effect string `json:"effect"`
}

// Score-rule effects and the rule names they fire.
const (
	EffectNoReduced      = "no_reduced"
	EffectStrict         = "strict"
	RuleNormalByScore    = "normal.score_threshold"
	RuleStrictByScore    = "strict.score_threshold"
	riskKindsInDecisions = 4
	// unknownGroup is risk.PriorGroup's answer without an HS code.
	unknownGroup = "hs_chapter:unknown"
)

// Params converts the rules to risk.Params.
func (r RiskRules) Params() risk.Params {
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

func (r RiskRules) validate(f string) error {
	if err := r.Params().Validate(); err != nil {
		return Invalid(f, "%v", err)
	}
	if len(r.Rules) > 0 && !r.ScoreDecisions {
		return Invalid(f+".score_decisions", "must be true for score rules to apply")
	}
	for i, sr := range r.Rules {
		rf := fmt.Sprintf("%s.rules[%d]", f, i)
		if !slices.Contains([]string{risk.KindGoods, risk.KindHeadingOrigin, risk.KindManufacturer, risk.KindImporter}, sr.Subject) {
			return Invalid(rf+".subject", "must be goods, heading_origin, manufacturer or importer, got %q", sr.Subject)
		}
		if !(sr.Above > 0 && sr.Above < 1) {
			return Invalid(rf+".above", "must be a rate between 0 and 1, got %v", sr.Above)
		}
		if sr.Effect != EffectNoReduced && sr.Effect != EffectStrict {
			return Invalid(rf+".effect", "must be no_reduced or strict, got %q", sr.Effect)
		}
	}
	return nil
}

// RiskRecord is a subject's stored counts.
type RiskRecord struct {
	Subject risk.Subject `json:"subject"`
	// Group is the prior group (HS chapter, or all importers).
	Group  string      `json:"group"`
	Label  string      `json:"label"`
	Counts risk.Counts `json:"counts"`
}

// riskGroup names the prior group of a subject: its kind and its wider
// group (HS chapter, or all importers). Kinds are never pooled: goods and
// manufacturers of one chapter have different spreads.
func riskGroup(kind, hsCode string) string { return kind + "/" + risk.PriorGroup(kind, hsCode) }

// riskSubjects are the subjects of a lot of g imported by importer, with
// the labels a new risk record gets.
func riskSubjects(g identity.Goods, k identity.Keys, importer string) [riskKindsInDecisions]RiskRecord {
	subs := lotSubjects(k, g.HSCode, importer)
	subs[0].Label = fmt.Sprintf("%s (%s, %s, %s)", g.ProductName, g.HSCode, g.Manufacturer, g.Origin)
	subs[1].Label = fmt.Sprintf("identity.Heading %s from %s", g.Heading(), g.Origin)
	subs[2].Label = fmt.Sprintf("%s (%s)", g.Manufacturer, g.Origin)
	subs[3].Label = "importer " + importer
	return subs
}

// lotSubjects are riskSubjects without labels, which deciding a lot does
// not read: the goods (first), its heading × origin, its manufacturer and
// the importer.
func lotSubjects(k identity.Keys, hsCode, importer string) [riskKindsInDecisions]RiskRecord {
	return [...]RiskRecord{
		{Subject: risk.Subject{Kind: risk.KindGoods, ID: k.Goods.String()}, Group: riskGroup(risk.KindGoods, hsCode)},
		{Subject: risk.Subject{Kind: risk.KindHeadingOrigin, ID: k.HeadingOrigin.String()}, Group: riskGroup(risk.KindHeadingOrigin, hsCode)},
		{Subject: risk.Subject{Kind: risk.KindManufacturer, ID: k.Manufacturer.String()}, Group: riskGroup(risk.KindManufacturer, hsCode)},
		{Subject: risk.Subject{Kind: risk.KindImporter, ID: importer}, Group: riskGroup(risk.KindImporter, "")},
	}
}

// observe adds one observation to the stored counts of the given subjects.
func observe(tx Tx, pol *Policy, subjects []RiskRecord, o risk.Observation) error {
	hl := pol.Risk.Params().HalfLife
	for _, sub := range subjects {
		rec, err := tx.RiskRecord(sub.Subject)
		if errors.Is(err, ErrNotFound) {
			rec = sub
		} else if err != nil {
			return err
		}
		if strings.HasSuffix(rec.Group, unknownGroup) && !strings.HasSuffix(sub.Group, unknownGroup) {
			// First seen through an alert; a result tells its HS chapter.
			rec.Group, rec.Label = sub.Group, sub.Label
		}
		if rec.Counts, err = rec.Counts.Add(o, hl); err != nil {
			return fmt.Errorf("risk counts of %s: %w", sub.Subject, err)
		}
		if err := tx.PutRiskRecord(rec); err != nil {
			return err
		}
	}
	return nil
}

// observeAlert adds an alert to the subject it targets.
func observeAlert(tx Tx, pol *Policy, e Event, goods *identity.Goods) error {
	var sub RiskRecord
	switch e.Subject.Kind {
	case SubjectGoods:
		sub = riskSubjects(*goods, identity.KeysWith(*goods, e.Subject.Key), "")[0]
	case SubjectManufacturer:
		sub = RiskRecord{Subject: risk.Subject{Kind: risk.KindManufacturer, ID: e.Subject.Key.String()}, Group: riskGroup(risk.KindManufacturer, ""), Label: "manufacturer"}
	case SubjectHeadingOrigin:
		sub = RiskRecord{Subject: risk.Subject{Kind: risk.KindHeadingOrigin, ID: e.Subject.Key.String()}, Group: riskGroup(risk.KindHeadingOrigin, ""), Label: "identity.Heading × origin"}
	default:
		return nil
	}
	return observe(tx, pol, []RiskRecord{sub}, risk.Observation{At: e.At, Failed: true, Alert: true, Ref: e.ID})
}

// scoreMemo remembers scores by their exact inputs (subject, counts or
// history fingerprint, prior, scoring second). The Beta quantiles cost
// ~20 µs a subject and run inside the single committer, while the
// importer, heading × origin and manufacturer of a burst of lots mostly
// repeat: the same inputs give the same score, so it is computed once.
type scoreMemo struct {
	mu sync.Mutex
	m  map[scoreKey]risk.Score
}

type scoreKey struct {
	sub     risk.Subject
	policy  string // its risk parameters
	counts  risk.Counts
	history [2]uint64 // goods: number of observations and an order-free hash of their IDs
	prior   risk.Prior
	at      int64
}

// scoreMemoSize bounds the memo; it is emptied when full (scores change
// every second anyway).
const scoreMemoSize = 4096

func (m *scoreMemo) get(k scoreKey, compute func() (risk.Score, error)) (risk.Score, error) {
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
	if m.m == nil || len(m.m) >= scoreMemoSize {
		m.m = make(map[scoreKey]risk.Score, scoreMemoSize)
	}
	m.m[k] = sc
	m.mu.Unlock()
	return sc, nil
}

// scoreLot scores the lot's subjects as of the decision's second: the
// goods from its full history (so the evidence lists its most influential
// lots), the others from their stored counts. A subject's prior is its
// group's stored fit, or the policy's fallback until the rescoring job has
// fitted one. Scores are taken at whole seconds (Score.At says which) so
// that lots decided in the same second share them; a second of decay
// changes a score by about 1e-8 at a one-year half-life.
func (s *Service) scoreLot(tx ReadTx, pol *Policy, k identity.Keys, hsCode, importer string, history []Event, now time.Time) ([]risk.Score, error) {
	p := pol.Risk.Params()
	at := now.Truncate(time.Second)
	subs := lotSubjects(k, hsCode, importer)
	out := make([]risk.Score, 0, len(subs))
	for i, sub := range subs {
		prior, err := tx.RiskPrior(sub.Group)
		if errors.Is(err, ErrNotFound) {
			prior, err = risk.FallbackPrior(sub.Group, p)
		}
		if err != nil {
			return nil, fmt.Errorf("prior of %s: %w", sub.Group, err)
		}
		key := scoreKey{sub: sub.Subject, policy: pol.Version, prior: prior, at: at.UnixNano()}
		var sc risk.Score
		if i == 0 {
			obs := make([]risk.Observation, 0, len(history))
			h := fnv.New64a()
			var idHash uint64
			for _, e := range history {
				if e.At.After(at) {
					continue
				}
				obs = append(obs, risk.Observation{At: e.At, Failed: e.Kind == EventAlert || e.Outcome == OutcomeFail,
					Alert: e.Kind == EventAlert, Ref: e.ID})
				h.Reset()
				h.Write([]byte(e.ID))
				idHash ^= h.Sum64() // events are immutable and unique by ID: the set identifies the history
			}
			key.history = [2]uint64{uint64(len(obs)), idHash}
			sc, err = s.scores.get(key, func() (risk.Score, error) { return risk.ScoreHistory(sub.Subject, obs, prior, at, p) })
		} else {
			rec, rerr := tx.RiskRecord(sub.Subject)
			if rerr != nil && !errors.Is(rerr, ErrNotFound) {
				return nil, rerr
			}
			c, scoreAt := rec.Counts, at
			if !c.Empty() && c.AsOf.After(at) {
				// Counts from a result in this very second: score them as of
				// it (a clock moved back would land here too).
				scoreAt = c.AsOf
			}
			key.counts, key.at = c, scoreAt.UnixNano()
			sc, err = s.scores.get(key, func() (risk.Score, error) { return risk.ScoreCounts(sub.Subject, c, prior, scoreAt, p) })
		}
		if err != nil {
			return nil, fmt.Errorf("score %s: %w", sub.Subject, err)
		}
		out = append(out, sc)
	}
	return out, nil
}

// applyScoreRules makes an evaluation more cautious when a score rule
// fires; it never relaxes one.
func applyScoreRules(pol *Policy, ev *Evaluation, scores []risk.Score) {
	if ev.Mode != ModeNormal && ev.Mode != ModeReduced {
		return
	}
	for _, r := range pol.Risk.Rules {
		for _, sc := range scores {
			if sc.Subject.Kind != r.Subject || sc.Pessimistic <= r.Above {
				continue
			}
			why := fmt.Sprintf("pessimistic %s violation rate %.1f%% (%.0f%% interval %.1f–%.1f%%) is above %.1f%%",
				r.Subject, 100*sc.Pessimistic, 100*sc.Level, 100*sc.Interval.Lo, 100*sc.Interval.Hi, 100*r.Above)
			switch {
			case r.Effect == EffectStrict:
				ev.Mode = ModeStrict
				ev.Explanation.Rule = RuleStrictByScore
				ev.Explanation.Reason = "strict: " + why
				return
			case r.Effect == EffectNoReduced && ev.Mode == ModeReduced:
				ev.Mode = ModeNormal
				ev.Explanation.Rule = RuleNormalByScore
				ev.Explanation.Reason = "normal: " + why + "; reduced withheld"
			}
		}
	}
}

// Rescore refits every group's prior from its members' counts decayed to
// now and stores the members' decayed counts, so ranked lists and priors
// follow time even for subjects with no new results. The cron job runs it.
func (s *Service) Rescore(ctx context.Context, by access.Principal) (groups int, err error) {
	if err := by.Require(access.ActAdminister); err != nil {
		return 0, err
	}
	pol, err := s.PolicyInForce(ctx)
	if err != nil {
		return 0, err
	}
	now := s.clock.Now()
	p := pol.Risk.Params()
	for _, kind := range []string{risk.KindGoods, risk.KindHeadingOrigin, risk.KindManufacturer, risk.KindImporter} {
		var recs []RiskRecord
		if err := s.reads.View(ctx, func(tx ReadTx) (err error) {
			recs, err = tx.RiskRecords(kind)
			return err
		}); err != nil {
			return groups, err
		}
		byGroup := map[string][]risk.Counts{}
		for i := range recs {
			if recs[i].Counts.AsOf.Before(now) && !recs[i].Counts.Empty() {
				if recs[i].Counts, err = recs[i].Counts.DecayTo(now); err != nil {
					return groups, fmt.Errorf("decay %s: %w", recs[i].Subject, err)
				}
			}
			byGroup[recs[i].Group] = append(byGroup[recs[i].Group], recs[i].Counts)
		}
		priors := map[string]risk.Prior{}
		for g, members := range byGroup {
			if priors[g], err = risk.FitPrior(g, members, now, p); err != nil {
				return groups, fmt.Errorf("fit prior %s: %w", g, err)
			}
		}
		// Written in slices small enough for one transaction each.
		const chunk = 500
		for i := 0; i < len(recs); i += chunk {
			part := recs[i:min(i+chunk, len(recs))]
			// Risk counts are derived data: the write path appends no entry
			// for them (nothing the audit covers changes).
			if err := s.w.write(ctx, by, audit.RiskRescored, now, func(tx Tx, _ *Change) error {
				for _, r := range part {
					// Only decay what has not changed since it was read.
					cur, err := tx.RiskRecord(r.Subject)
					if err != nil || cur.Counts.N != r.Counts.N || cur.Counts.NAlerts != r.Counts.NAlerts {
						continue
					}
					if err := tx.PutRiskRecord(r); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return groups, err
			}
		}
		if err := s.w.write(ctx, by, audit.RiskRescored, now, func(tx Tx, _ *Change) error {
			for _, pr := range priors {
				if err := tx.PutRiskPrior(pr); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return groups, err
		}
		groups += len(priors)
	}
	return groups, nil
}

// Score returns a subject's current score from its stored counts.
func (s *Service) Score(ctx context.Context, by access.Principal, sub risk.Subject) (risk.Score, RiskRecord, error) {
	if err := by.Require(access.ActReadScores); err != nil {
		return risk.Score{}, RiskRecord{}, err
	}
	var (
		sc  risk.Score
		rec RiskRecord
	)
	now := s.clock.Now()
	err := s.reads.View(ctx, func(tx ReadTx) error {
		pol, err := s.policyIn(tx)
		if err != nil {
			return err
		}
		p := pol.Risk.Params()
		rec, err = tx.RiskRecord(sub)
		if errors.Is(err, ErrNotFound) && sub.Kind == risk.KindImporter {
			// An importer with no results yet scores as the prior of all
			// importers: no history is not a clean history.
			rec, err = RiskRecord{Subject: sub, Group: riskGroup(risk.KindImporter, ""), Label: "importer " + sub.ID}, nil
		}
		if errors.Is(err, ErrNotFound) {
			return NotFound("no scores for %s", sub)
		}
		if err != nil {
			return err
		}
		prior, err := tx.RiskPrior(rec.Group)
		if errors.Is(err, ErrNotFound) {
			prior, err = risk.FallbackPrior(rec.Group, p)
		}
		if err != nil {
			return err
		}
		sc, err = risk.ScoreCounts(sub, rec.Counts, prior, now, p)
		return err
	})
	return sc, rec, err
}

// RankedScores returns the riskiest subjects of a kind, by pessimistic bound.
func (s *Service) RankedScores(ctx context.Context, by access.Principal, kind string, limit int) ([]risk.Score, []RiskRecord, error) {
	if err := by.Require(access.ActReadScores); err != nil {
		return nil, nil, err
	}
	if !slices.Contains([]string{risk.KindGoods, risk.KindHeadingOrigin, risk.KindManufacturer, risk.KindImporter}, kind) {
		return nil, nil, Invalid("kind", "must be goods, heading_origin, manufacturer or importer, got %q", kind)
	}
	now := s.clock.Now()
	var (
		scores []risk.Score
		recs   []RiskRecord
	)
	err := s.reads.View(ctx, func(tx ReadTx) error {
		pol, err := s.policyIn(tx)
		if err != nil {
			return err
		}
		p := pol.Risk.Params()
		all, err := tx.RiskRecords(kind)
		if err != nil {
			return err
		}
		priors := map[string]risk.Prior{}
		for _, r := range all {
			pr, ok := priors[r.Group]
			if !ok {
				if pr, err = tx.RiskPrior(r.Group); errors.Is(err, ErrNotFound) {
					pr, err = risk.FallbackPrior(r.Group, p)
				}
				if err != nil {
					return err
				}
				priors[r.Group] = pr
			}
			sc, err := risk.ScoreCounts(r.Subject, r.Counts, pr, now, p)
			if err != nil {
				return err
			}
			scores = append(scores, sc)
		}
		scores = risk.Rank(scores)
		if len(scores) > limit {
			scores = scores[:limit]
		}
		byID := map[risk.Subject]RiskRecord{}
		for _, r := range all {
			byID[r.Subject] = r
		}
		for _, sc := range scores {
			recs = append(recs, byID[sc.Subject])
		}
		return nil
	})
	return scores, recs, err
}
