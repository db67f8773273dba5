package store

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/scoring"
	"github.com/ktcn/ktcn/risk"
)

// Risk counts live under 0x17 | h16(kind) | h16(id), so one kind is one
// prefix scan (ranked lists, prior fitting); priors under 0x18 | h16(group).

func riskKey(s risk.Subject) []byte { return subjectKey(prefixRisk, s) }

// subjectKey is p | h16(kind) | h16(id): a risk subject's record of kind p.
func subjectKey(p prefix, s risk.Subject) []byte {
	hk, hi := h16(s.Kind), h16(s.ID)
	k := make([]byte, 0, 1+2*hashSize)
	k = append(k, byte(p))
	k = append(k, hk[:]...)
	return append(k, hi[:]...)
}

func (t *readTx) RiskRecord(s risk.Subject) (scoring.Record, error) {
	var r scoring.Record
	what := "risk counts of " + s.String()
	if err := t.load(prefixRisk, riskKey(s), what, &r); err != nil {
		return scoring.Record{}, err
	}
	if r.Subject != s {
		return scoring.Record{}, fmt.Errorf("store: %s: stored record is %s (key hash collision)", what, r.Subject)
	}
	return r, nil
}

// RiskRecords lists a kind's subjects ordered by ID.
func (t *readTx) RiskRecords(kind string) ([]scoring.Record, error) {
	hk := h16(kind)
	var out []scoring.Record
	err := t.iterate(append([]byte{byte(prefixRisk)}, hk[:]...), func(_, val []byte) error {
		var r scoring.Record
		if err := decode(prefixRisk, val, &r); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b scoring.Record) int { return cmp.Compare(a.Subject.ID, b.Subject.ID) })
	return out, nil
}

func (t *readTx) RiskPrior(group string) (risk.Prior, error) {
	return loadID(t, prefixRiskPrior, group, func(p *risk.Prior) string { return p.Group })
}

func (t *writeTx) PutRiskRecord(r scoring.Record) error {
	if r.Subject.Kind == "" || r.Subject.ID == "" {
		return fmt.Errorf("store: put risk counts: empty subject")
	}
	if err := t.bumpInput(r.Subject); err != nil {
		return err
	}
	return t.putDerived(prefixRisk, riskKey(r.Subject), "risk counts of "+r.Subject.String(), r)
}

func (t *writeTx) PutRiskPrior(p risk.Prior) error {
	if err := t.bumpInput(inspection.PriorsSubject()); err != nil {
		return err
	}
	if p.Group == "" {
		return errors.New("store: put risk prior: empty group")
	}
	return t.putDerived(prefixRiskPrior, idKey(prefixRiskPrior, p.Group), "risk prior "+p.Group, p)
}
