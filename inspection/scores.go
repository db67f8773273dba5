package inspection

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/scoring"
	"github.com/ktcn/ktcn/risk"
)

// RiskReader reads subjects' stored counts and groups' fitted priors.
type RiskReader interface {
	RiskRecord(s risk.Subject) (scoring.Record, error)
	RiskRecords(kind string) ([]scoring.Record, error)
	RiskPrior(group string) (risk.Prior, error)
}

// RiskWriter writes them.
type RiskWriter interface {
	PutRiskRecord(scoring.Record) error
	PutRiskPrior(risk.Prior) error
}

// Risk scores in decisions. Every subject a lot touches (the goods, its HS
// heading × origin, its manufacturer, its importer) keeps time-decayed
// counts updated in the same transaction as each result and alert; a
// decision scores them against their group's prior (refitted by the
// rescoring job) and the policy's score rules may then keep the lot out of
// reduced mode or put it in strict. The legal count rules always run first:
// scores can only make a decision more cautious.

// riskSubjects are the subjects of a lot of g imported by importer, with
// the labels a new risk record gets.
func riskSubjects(g identity.Goods, k identity.Keys, importer string) [riskKindsInDecisions]scoring.Record {
	subs := lotSubjects(k, g.HSCode, importer)
	subs[0].Label = fmt.Sprintf("%s (%s, %s, %s)", g.ProductName, g.HSCode, g.Manufacturer, g.Origin)
	subs[1].Label = fmt.Sprintf("heading %s from %s", g.Heading(), g.Origin)
	subs[2].Label = fmt.Sprintf("%s (%s)", g.Manufacturer, g.Origin)
	subs[3].Label = "importer " + importer
	return subs
}

// lotSubjects are riskSubjects without labels, which deciding a lot does
// not read: the goods (first), its heading × origin, its manufacturer and
// the importer.
func lotSubjects(k identity.Keys, hsCode, importer string) [riskKindsInDecisions]scoring.Record {
	return [...]scoring.Record{
		{Subject: risk.Subject{Kind: risk.KindGoods, ID: k.Goods.String()}, Group: scoring.Group(risk.KindGoods, hsCode)},
		{Subject: risk.Subject{Kind: risk.KindHeadingOrigin, ID: k.HeadingOrigin.String()}, Group: scoring.Group(risk.KindHeadingOrigin, hsCode)},
		{Subject: risk.Subject{Kind: risk.KindManufacturer, ID: k.Manufacturer.String()}, Group: scoring.Group(risk.KindManufacturer, hsCode)},
		{Subject: risk.Subject{Kind: risk.KindImporter, ID: importer}, Group: scoring.Group(risk.KindImporter, "")},
	}
}

// The rule names score rules fire, and how many subjects a lot scores.
const (
	RuleNormalByScore    = "normal.score_threshold"
	RuleStrictByScore    = "strict.score_threshold"
	riskKindsInDecisions = 4
)

// observe adds one observation to the stored counts of the given subjects.
func observe(tx interface {
	RiskReader
	RiskWriter
}, pol *policy.Policy, subjects []scoring.Record, o risk.Observation) error {
	hl := pol.Risk.Params().HalfLife
	for _, sub := range subjects {
		rec, err := tx.RiskRecord(sub.Subject)
		if errors.Is(err, fault.ErrNotFound) {
			rec = sub
		} else if err != nil {
			return err
		}
		if strings.HasSuffix(rec.Group, scoring.UnknownGroup) && !strings.HasSuffix(sub.Group, scoring.UnknownGroup) {
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
func observeAlert(tx interface {
	RiskReader
	RiskWriter
}, pol *policy.Policy, e Event, goods *identity.Goods) error {
	var sub scoring.Record
	switch e.Subject.Kind {
	case SubjectGoods:
		sub = riskSubjects(*goods, identity.KeysWith(*goods, e.Subject.Key), "")[0]
	case SubjectManufacturer:
		sub = scoring.Record{Subject: risk.Subject{Kind: risk.KindManufacturer, ID: e.Subject.Key.String()}, Group: scoring.Group(risk.KindManufacturer, ""), Label: "manufacturer"}
	case SubjectHeadingOrigin:
		sub = scoring.Record{Subject: risk.Subject{Kind: risk.KindHeadingOrigin, ID: e.Subject.Key.String()}, Group: scoring.Group(risk.KindHeadingOrigin, ""), Label: "heading × origin"}
	default:
		return nil
	}
	return observe(tx, pol, []scoring.Record{sub}, risk.Observation{At: e.At, Failed: true, Alert: true, Ref: e.ID})
}

// scoreLot scores the lot's subjects as of the decision's second: the
// goods from its full history (so the evidence lists its most influential
// lots), the others from their stored counts. A subject's prior is its
// group's stored fit, or the policy's fallback until the rescoring job has
// fitted one. Scores are taken at whole seconds (Score.At says which) so
// that lots decided in the same second share them; a second of decay
// changes a score by about 1e-8 at a one-year half-life. The goods is
// scored from fold, the history's fold kept across lots, when there is one
// that holds at that second; it gives the score the history gives
// (risk.ScoreHistory scores through the same fold) without a pass over
// every event.
func (s *Service) scoreLot(tx RiskReader, pol *policy.Policy, k identity.Keys, hsCode, importer string, history []Event, fold *goodsFold, now time.Time) ([]risk.Score, error) {
	p := pol.Risk.Params()
	at := now.Truncate(time.Second)
	subs := lotSubjects(k, hsCode, importer)
	out := make([]risk.Score, 0, len(subs))
	for i, sub := range subs {
		prior, err := tx.RiskPrior(sub.Group)
		if errors.Is(err, fault.ErrNotFound) {
			prior, err = risk.FallbackPrior(sub.Group, p)
		}
		if err != nil {
			return nil, fmt.Errorf("prior of %s: %w", sub.Group, err)
		}
		key := scoring.MemoKey{Subject: sub.Subject, Policy: pol.Version, Prior: prior, At: at.UnixNano()}
		var sc risk.Score
		if i == 0 && fold != nil && fold.scored && fold.holds(at) {
			// Folded under this policy's parameters (foldKey), over the
			// same events as up to at (holds): named as below.
			key.History = [2]uint64{uint64(fold.seen), fold.idHash}
			sc, err = s.scores.Get(key, func() (risk.Score, error) { return fold.score.Score(sub.Subject, prior, at, p) })
		} else if i == 0 {
			// The memo key is taken first and the observations built only
			// on a miss: lots of a goods mostly share their second and
			// history, and building one observation per event for every
			// lot of a long history was the larger part of its cost.
			var seen int
			h := fnv.New64a()
			var idHash uint64
			for i := range history {
				if history[i].At.After(at) {
					continue
				}
				seen++
				h.Reset()
				h.Write([]byte(history[i].ID))
				idHash ^= h.Sum64() // events are immutable and unique by ID: the set identifies the history
			}
			key.History = [2]uint64{uint64(seen), idHash}
			sc, err = s.scores.Get(key, func() (risk.Score, error) {
				return risk.ScoreHistory(sub.Subject, historyObservations(history, at, false), prior, at, p)
			})
		} else {
			rec, rerr := tx.RiskRecord(sub.Subject)
			if rerr != nil && !errors.Is(rerr, fault.ErrNotFound) {
				return nil, rerr
			}
			c, scoreAt := rec.Counts, at
			if !c.Empty() && c.AsOf.After(at) {
				// Counts from a result in this very second: score them as of
				// it (a clock moved back would land here too).
				scoreAt = c.AsOf
			}
			key.Counts, key.At = c, scoreAt.UnixNano()
			sc, err = s.scores.Get(key, func() (risk.Score, error) { return risk.ScoreCounts(sub.Subject, c, prior, scoreAt, p) })
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
func applyScoreRules(pol *policy.Policy, ev *Evaluation, scores []risk.Score) {
	if ev.Mode != ModeNormal && ev.Mode != ModeReduced {
		return
	}
	effect, why, ok := pol.Risk.Fire(ev.Mode == ModeReduced, scores)
	switch {
	case !ok:
	case effect == scoring.EffectStrict:
		ev.Mode = ModeStrict
		ev.Explanation.Rule = RuleStrictByScore
		ev.Explanation.Reason = "strict: " + why
	default:
		ev.Mode = ModeNormal
		ev.Explanation.Rule = RuleNormalByScore
		ev.Explanation.Reason = "normal: " + why + "; reduced withheld"
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
		var recs []scoring.Record
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
			ahead := s.readAheadRisk(ctx, part)
			// Risk counts are derived data: the write path appends no entry
			// for them (nothing the audit covers changes).
			if err := s.w.write(ctx, by, audit.RiskRescored, now, func(tx Tx, _ *Change) error {
				reuse(tx, ahead)
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

// readAheadRisk reads, outside the single committer, what Rescore's
// transaction for recs reads again: each record and the input version its
// write bumps (nil when the store does not read ahead). The transaction
// answers those reads from here where nothing wrote the key since
// (ReadReuser), instead of walking the LSM tree twice a record while
// decisions wait behind it. On a store of 2.7 M decisions, at 200
// declarations a second while the job ran: p90 11 and 7 ms against 27,
// 34 and 44 ms without (docs/performance.md).
func (s *Service) readAheadRisk(ctx context.Context, recs []scoring.Record) SnapshotReads {
	ra, ok := s.reads.(ReadAheadStore)
	if !ok {
		return nil
	}
	reads, err := ra.ViewAhead(ctx, func(tx ReadTx) error {
		iv, ok := tx.(InputVersioner)
		if !ok {
			return nil
		}
		for _, r := range recs {
			if _, err := tx.RiskRecord(r.Subject); err != nil && !errors.Is(err, fault.ErrNotFound) {
				return err
			}
			if _, err := iv.InputVersion(r.Subject); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil // the transaction reads for itself
	}
	return reads
}

// Score returns a subject's current score from its stored counts.
func (s *Service) Score(ctx context.Context, by access.Principal, sub risk.Subject) (risk.Score, scoring.Record, error) {
	if err := by.Require(access.ActReadScores); err != nil {
		return risk.Score{}, scoring.Record{}, err
	}
	var (
		sc  risk.Score
		rec scoring.Record
	)
	now := s.clock.Now()
	err := s.reads.View(ctx, func(tx ReadTx) error {
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return err
		}
		p := pol.Risk.Params()
		rec, err = tx.RiskRecord(sub)
		if errors.Is(err, fault.ErrNotFound) && sub.Kind == risk.KindImporter {
			// A known importer (in the reference data, or one that has
			// declared) with no results yet scores as the prior of all
			// importers: no history is not a clean history. One nobody
			// knows has no score.
			known, kerr := tx.ImporterSeen(sub.ID)
			if _, ierr := tx.Importer(sub.ID); kerr == nil && (known || ierr == nil) {
				rec, err = scoring.Record{Subject: sub, Group: scoring.Group(risk.KindImporter, ""), Label: "importer " + sub.ID}, nil
			} else if kerr != nil {
				return kerr
			}
		}
		if errors.Is(err, fault.ErrNotFound) {
			return NotFound("no scores for %s", sub)
		}
		if err != nil {
			return err
		}
		prior, err := tx.RiskPrior(rec.Group)
		if errors.Is(err, fault.ErrNotFound) {
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
func (s *Service) RankedScores(ctx context.Context, by access.Principal, kind string, limit int) ([]risk.Score, []scoring.Record, error) {
	if err := by.Require(access.ActReadScores); err != nil {
		return nil, nil, err
	}
	if !slices.Contains([]string{risk.KindGoods, risk.KindHeadingOrigin, risk.KindManufacturer, risk.KindImporter}, kind) {
		return nil, nil, Invalid("kind", "must be goods, heading_origin, manufacturer or importer, got %q", kind)
	}
	now := s.clock.Now()
	var (
		scores []risk.Score
		recs   []scoring.Record
	)
	err := s.reads.View(ctx, func(tx ReadTx) error {
		pol, err := s.policyIn(tx, now)
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
				if pr, err = tx.RiskPrior(r.Group); errors.Is(err, fault.ErrNotFound) {
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
		byID := map[risk.Subject]scoring.Record{}
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
