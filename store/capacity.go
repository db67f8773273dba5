package store

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ktcn/ktcn/inspection"
)

// Capacity counters (0x2C) are keyed h16(day) | h16(agency) | h16(check),
// so a working day's counters are one prefix scan. They are records,
// audited like the quota counters: routing reads them, so a counter
// changed beside the log would move lots without a trace.

func capacityKey(agency, day, check string) []byte {
	hd, ha, hc := h16(day), h16(agency), h16(check)
	k := make([]byte, 0, 1+3*hashSize)
	k = append(k, byte(prefixCapacity))
	k = append(k, hd[:]...)
	k = append(k, ha[:]...)
	return append(k, hc[:]...)
}

func (t *readTx) CapacityCounter(agency, day, check string) (inspection.CapacityCounter, error) {
	var c inspection.CapacityCounter
	what := func() string {
		return fmt.Sprintf("capacity counter %s", inspection.CapacityCounterID(agency, day, check))
	}
	if err := t.loadF(prefixCapacity, capacityKey(agency, day, check), what, &c); err != nil {
		return inspection.CapacityCounter{}, err
	}
	if c.Agency != agency || c.Day != day || c.Check != check {
		return inspection.CapacityCounter{}, fmt.Errorf("store: %s: stored record is %s (key hash collision)", what(), c.ID())
	}
	return c, nil
}

// CapacityCounters lists a working day's counters ordered by agency and
// check kind.
func (t *readTx) CapacityCounters(day string) ([]inspection.CapacityCounter, error) {
	hd := h16(day)
	var out []inspection.CapacityCounter
	err := t.iterate(append([]byte{byte(prefixCapacity)}, hd[:]...), func(_, val []byte) error {
		var c inspection.CapacityCounter
		if err := decode(prefixCapacity, val, &c); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if c.Day == day { // a day hash collision is another day's
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b inspection.CapacityCounter) int {
		return cmp.Or(cmp.Compare(a.Agency, b.Agency), cmp.Compare(a.Check, b.Check))
	})
	return out, nil
}

func (t *writeTx) PutCapacityCounter(c inspection.CapacityCounter) error {
	if c.Agency == "" || c.Day == "" || c.Check == "" || c.Routed < 0 || c.Over < 0 || c.Over > c.Routed {
		return fmt.Errorf("store: put capacity counter %q: routed %d, over %d", c.ID(), c.Routed, c.Over)
	}
	return t.putRecord(prefixCapacity, capacityKey(c.Agency, c.Day, c.Check), c.ID(), c)
}
