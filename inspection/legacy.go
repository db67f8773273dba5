package inspection

import (
	"errors"

	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
)

// Identity version 2 changed every goods and manufacturer key (identity's
// match.go), so history recorded before it sits under version 1's keys.
// It is mapped, not migrated: a store that held data before version 2 is
// marked legacy when the service starts (store.go's IdentityLegacy), and
// then a decision reads each goods' history under both its keys, takes the
// manufacturer's certificates on record under either, and carries on the
// goods' lot count. Everything written from then on is under version 2, so
// the version 1 history never changes and needs no input version of its
// own. Why not a migration: events are append-only records covered by the
// audit chain; re-keying them would rewrite audited records, while reading
// both keys costs a decision two more prefix reads, and only on a store
// that has legacy history. What the mapping cannot do is join variants
// whose presentation differed under version 1 (their version 1 keys
// differ); they join from their first lot under version 2.

// keysOf is the keys a decision reads goods g by: version 2's, and on a
// legacy store version 1's too.
func (s *Service) keysOf(g identity.Goods) identity.Keys {
	k := identity.KeysOf(g)
	if s.legacy.Load() {
		k = k.WithLegacy(g)
	}
	return k
}

// markIdentity, at start, reads whether the store holds version 1
// history, recording it the first time: a store that already had an audit
// chain was written before version 2.
func (s *Service) markIdentity(tx Tx) error {
	legacy, marked, err := tx.IdentityLegacy()
	if err != nil {
		return err
	}
	if !marked {
		_, herr := tx.AuditHead()
		if herr != nil && !errors.Is(herr, fault.ErrNotFound) {
			return herr
		}
		legacy = herr == nil
		if err := tx.MarkIdentity(legacy); err != nil {
			return err
		}
	}
	s.legacy.Store(legacy)
	return nil
}
