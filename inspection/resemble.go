package inspection

import (
	"fmt"
	"time"

	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/risk"
)

// Resemblance errs toward caution. New goods (no goods state before the
// declaration, no result or alert of their own) are
// compared with the known goods of the same manufacturer, HS heading and
// origin (identity.ResemblanceGroup); if the product names share enough
// words (identity.Similarity, threshold in the policy) and the known goods
// are strict, or failed or were warned about within the policy's window,
// the new goods are decided strict too, and the explanation names the
// goods they resemble and how closely. Resemblance never passes on
// leniency: a clean record stays with its own goods.

// Resembling is a known goods of a resemblance group.
type Resembling struct {
	Goods       identity.Key
	ProductName string
	Match       string // the name in match form
}

// Resemblance is what a decision records when resemblance made it strict.
type Resemblance struct {
	Goods       identity.Key `json:"goods_key"`
	ProductName string       `json:"product_name"`
	Similarity  float64      `json:"similarity"`
	Why         string       `json:"why"`
}

// ResemblanceSubject names the input version of a resemblance group, which
// moves whenever goods join it: a decision comparing new goods with the
// group's depends on it.
func ResemblanceSubject(group identity.Key) risk.Subject {
	return risk.Subject{Kind: "resemblance_group", ID: group.String()}
}

// RuleStrictResemblance is the rule resemblance fires.
const RuleStrictResemblance = "strict.resemblance"

// resemble applies resemblance to the evaluation of new goods g (no
// history, no state of its own) and returns the goods subjects it read,
// whose input versions the decision then depends on.
func resemble(tx ReadTx, pol *policy.Policy, g identity.Goods, gk identity.Key, ev *Evaluation, now time.Time) ([]risk.Subject, error) {
	if ev.Mode == ModeStrict {
		return nil, nil // nothing more cautious to inherit, whatever the group holds
	}
	threshold, window := pol.Resemblance()
	group := identity.ResemblanceGroup(g)
	known, err := tx.Resembling(group)
	if err != nil {
		return nil, fmt.Errorf("resemblance of %s: %w", gk, err)
	}
	var best *Resemblance
	read := []risk.Subject{ResemblanceSubject(group)}
	name := identity.MatchText(g.ProductName)
	for _, k := range known {
		sim := identity.MatchSimilarity(name, k.Match)
		if k.Goods == gk || sim < threshold || best != nil && sim <= best.Similarity {
			continue
		}
		sub := Subject{SubjectGoods, k.Goods}
		read = append(read, sub.InputSubject())
		why, err := caution(tx, pol, sub, window, now)
		if err != nil {
			return nil, err
		}
		if why != "" {
			best = &Resemblance{Goods: k.Goods, ProductName: k.ProductName, Similarity: sim, Why: why}
		}
	}
	if best != nil {
		ev.Mode = ModeStrict
		ev.Explanation.Rule = RuleStrictResemblance
		ev.Explanation.Reason = fmt.Sprintf("strict: new goods resembling %q (goods %s, %.0f%% of words shared), which %s",
			best.ProductName, best.Goods, 100*best.Similarity, best.Why)
		ev.Explanation.Resembles = best
		ev.Explanation.Progress = ""
	}
	return read, nil
}

// caution says why known goods call for caution (a failure or an alert
// on them within the window, or strict from their own history now), or ""
// when they do not. Alerts on their manufacturer or heading × origin are
// not theirs alone: they reach the new goods directly.
func caution(tx ReadTx, pol *policy.Policy, sub Subject, window time.Duration, now time.Time) (string, error) {
	own, err := tx.Events(sub)
	if err != nil {
		return "", err
	}
	for i := len(own) - 1; i >= 0; i-- { // latest first
		e := own[i]
		if e.At.After(now) || now.Sub(e.At) > window {
			continue
		}
		switch {
		case e.Kind == EventAlert:
			return fmt.Sprintf("had an alert from %s on %s", e.Authority, e.At.Format(time.DateOnly)), nil
		case e.Outcome == OutcomeFail:
			return fmt.Sprintf("failed an inspection on %s", e.At.Format(time.DateOnly)), nil
		}
	}
	if ev := Evaluate(pol, own, Lot{}, now); ev.Mode == ModeStrict {
		return "is strict (" + ev.Explanation.Rule + ")", nil
	}
	return "", nil
}
