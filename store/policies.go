package store

import (
	"errors"
	"fmt"

	"github.com/ktcn/ktcn/inspection"
)

// Policy version records (0x24, audited) and shadow outcomes (0x25,
// derived: 0x25 | h16(version) | decided at (8) | h16(decision id), so a
// version's outcomes are one prefix scan in decision order).

func (t *readTx) PolicyVersion(version string) (inspection.PolicyVersion, error) {
	return loadID(t, prefixPolicyVer, version, func(v *inspection.PolicyVersion) string { return v.Version })
}

// PolicyVersions lists every version record (in key order).
func (t *readTx) PolicyVersions() ([]inspection.PolicyVersion, error) {
	var out []inspection.PolicyVersion
	err := t.iterate([]byte{byte(prefixPolicyVer)}, func(_, val []byte) error {
		var v inspection.PolicyVersion
		if err := decode(prefixPolicyVer, val, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// PutPolicyVersion writes a version record. The four-eyes rule is checked
// again here, inside the transaction that writes it, whoever the caller.
func (t *writeTx) PutPolicyVersion(v inspection.PolicyVersion) error {
	if err := v.FourEyes(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return t.putID(prefixPolicyVer, v.Version, v)
}

func shadowKey(o inspection.ShadowOutcome) ([]byte, error) {
	k, err := appendTime(idKey(prefixShadow, o.Version), "decided_at", o.DecidedAt)
	if err != nil {
		return nil, err
	}
	h := h16(o.DecisionID)
	return append(k, h[:]...), nil
}

func (t *writeTx) PutShadowOutcome(o inspection.ShadowOutcome) error {
	k, err := shadowKey(o)
	if err != nil {
		return fmt.Errorf("store: shadow outcome of %s: %w", o.DecisionID, err)
	}
	return t.putDerived(prefixShadow, k, "shadow outcome", o)
}

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("store: scan stopped")

// ShadowOutcomes calls fn with a version's outcomes in decision order.
func (t *readTx) ShadowOutcomes(version string, fn func(inspection.ShadowOutcome) (bool, error)) error {
	stop := errStopScan
	err := t.iterate(idKey(prefixShadow, version), func(_, val []byte) error {
		var o inspection.ShadowOutcome
		if err := decode(prefixShadow, val, &o); err != nil {
			return err
		}
		more, err := fn(o)
		if err != nil {
			return err
		}
		if !more {
			return stop
		}
		return nil
	})
	if errors.Is(err, stop) {
		return nil
	}
	return err
}
