package store

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/ktcn/ktcn/inspection"
)

// Ledger tallies (0x2D) are keyed h16(version) | h16(rule), so a
// version's tallies are one prefix scan of a few keys (one per rule). They
// are derived data, like the search indexes: a fold of the audited
// decisions, overrides and results, kept by inspection's write path in
// the transaction of each; nothing decides from them, and a recount over
// those records reproduces them.

func ledgerKey(version, rule string) []byte {
	hv, hr := h16(version), h16(rule)
	k := make([]byte, 0, 1+2*hashSize)
	k = append(k, byte(prefixLedger))
	k = append(k, hv[:]...)
	return append(k, hr[:]...)
}

func (t *readTx) LedgerTally(version, rule string) (inspection.LedgerTally, error) {
	var l inspection.LedgerTally
	what := func() string { return fmt.Sprintf("ledger tally %s %s", version, rule) }
	if err := t.loadF(prefixLedger, ledgerKey(version, rule), what, &l); err != nil {
		return inspection.LedgerTally{}, err
	}
	if l.Version != version || l.Rule != rule {
		return inspection.LedgerTally{}, fmt.Errorf("store: %s: stored tally is %s %s (key hash collision)", what(), l.Version, l.Rule)
	}
	return l, nil
}

// LedgerTallies lists a version's tallies ordered by rule.
func (t *readTx) LedgerTallies(version string) ([]inspection.LedgerTally, error) {
	hv := h16(version)
	var out []inspection.LedgerTally
	err := t.iterate(append([]byte{byte(prefixLedger)}, hv[:]...), func(_, val []byte) error {
		var l inspection.LedgerTally
		if err := decode(prefixLedger, val, &l); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if l.Version == version { // a version hash collision is another version's
			out = append(out, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b inspection.LedgerTally) int { return cmp.Compare(a.Rule, b.Rule) })
	return out, nil
}

func (t *writeTx) PutLedgerTally(l inspection.LedgerTally) error {
	if l.Version == "" {
		return fmt.Errorf("store: put ledger tally of rule %q: no policy version", l.Rule)
	}
	return t.putDerived(prefixLedger, ledgerKey(l.Version, l.Rule), "ledger tally "+l.Version+" "+l.Rule, l)
}

// LedgerEmpty reports whether the ledger holds no tally at all.
func (t *readTx) LedgerEmpty() (bool, error) {
	empty := true
	err := t.iterate([]byte{byte(prefixLedger)}, func(_, _ []byte) error {
		empty = false
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return false, err
	}
	return empty, nil
}

// EachDecision calls fn with every stored decision, in key order, for a
// recount over the whole store (once, at start: see inspection's
// recountLedger); fn's error ends the scan and is returned. The decisions
// come without their explanation's events (stored by reference,
// decision.go): a recount reads modes, rules and draws, and rebuilding
// up to twenty events per decision would multiply a whole-store scan's
// reads by as much. Their scores are restored (arithmetic, no reads).
func (t *readTx) EachDecision(fn func(inspection.Decision) error) error {
	return t.iterate([]byte{byte(prefixDecision)}, func(_, val []byte) error {
		var s storedDecision
		if err := decode(prefixDecision, val, &s); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return fn(s.withScores())
	})
}
