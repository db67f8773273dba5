package store

import (
	"encoding/binary"
	"fmt"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/risk"
)

// Decision-input versions (0x19 | h16(kind) | h16(id), a raw uint64): a
// counter per subject that every write able to change what a decision on a
// lot reads about that subject bumps in the same transaction. The writes
// that bump are the store's own, not the callers', so no use case (nor a
// fixture loader) can forget one:
//
//   - AddEvent: the event's subject (goods, manufacturer or heading ×
//     origin, as inspection.Subject) and, for a result, its importer;
//   - PutRiskRecord: the record's subject;
//   - PutManufacturer: the manufacturer (its certificates);
//   - PutRiskPrior: inspection.PriorsSubject, one counter for every prior;
//   - IndexResemblance: the goods (its first state ends it being new) and
//     its resemblance group (inspection.ResemblanceSubject);
//   - PutGoodsLink: both goods.
//
// inspection prepares a decision outside the committer on a snapshot and
// lets the committer use it only if every version it read is unchanged
// (inspection.InputVersioner). Counters only grow and are never deleted,
// so equal means untouched.

// inputVersionKey is 0x19 | h16(kind) | h16(id).
func inputVersionKey(s risk.Subject) []byte { return subjectKey(prefixInputVersion, s) }

var _ inspection.InputVersioner = (*readTx)(nil)

// InputVersion is s's counter (0 before the first bump).
func (t *readTx) InputVersion(s risk.Subject) (uint64, error) {
	val, found, err := t.get(inputVersionKey(s), func() string { return "input version of " + s.String() })
	if err != nil || !found {
		return 0, err
	}
	b, err := unwrap(prefixInputVersion, val)
	if err != nil {
		return 0, fmt.Errorf("store: input version of %s: %w", s, err)
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("store: input version of %s: %d bytes, want 8", s, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// bumpInput adds one to s's counter, once per transaction (a second bump
// in the same transaction would tell a reader nothing more).
func (t *writeTx) bumpInput(s risk.Subject) error {
	if t.bumped[s] {
		return nil
	}
	v, err := t.InputVersion(s)
	if err != nil {
		return err
	}
	if err := t.setDerived(inputVersionKey(s), encodeRaw(binary.BigEndian.AppendUint64(nil, v+1)), func() string { return "input version of " + s.String() }); err != nil {
		return err
	}
	if t.bumped == nil {
		t.bumped = map[risk.Subject]bool{}
	}
	t.bumped[s] = true
	return nil
}
