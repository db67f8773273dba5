package backtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
)

var errStopped = errors.New("backtest: history no longer read")

// Stored streams a store's history as a backtest replays it, in commit
// order: the audit chain, which records every change in the order it was
// made and is never compacted, names the decisions, results and alerts
// each change wrote, and each is read back as stored. It reads in one
// read transaction (a consistent snapshot): run it against a stopped store
// or a copy, or accept that a long backtest holds an old snapshot.
//
// What the replay reads that the store keeps only as it is now, not as it
// was: the manufacturer's certificates on record and the importer's
// compliance level. A lot's claimed exemption is not stored as such; it
// is recovered from the decision's explanation (the category that made
// it exempt, or that was refused while strict), which is every claim the
// version in force knew.
func Stored(ctx context.Context, r inspection.Reader) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		err := r.View(ctx, func(tx inspection.ReadTx) error {
			return tx.AuditEntries(1, func(_ uint64, e audit.Entry, bad error) error {
				if bad != nil {
					return fmt.Errorf("audit entry: %w", bad)
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				return storedEntry(tx, e, yield)
			})
		})
		if err != nil && !errors.Is(err, errStopped) {
			yield(Item{}, err)
		}
	}
}

func storedEntry(tx inspection.ReadTx, e audit.Entry, yield func(Item, error) bool) error {
	switch e.Kind {
	case audit.DeclarationDecided:
		var decs []inspection.Decision
		for _, rec := range e.Records {
			if rec.Kind != audit.RecordDecision {
				continue
			}
			d, err := tx.Decision(rec.ID)
			if err != nil {
				return fmt.Errorf("decision %s: %w", rec.ID, err)
			}
			decs = append(decs, d)
		}
		slices.SortFunc(decs, func(a, b inspection.Decision) int { return cmp.Compare(a.LineNo, b.LineNo) })
		for i := range decs {
			l, err := storedLot(tx, &decs[i])
			if err != nil {
				return err
			}
			if !yield(Item{Lot: l}, nil) {
				return errStopped
			}
		}
	case audit.ResultRecorded, audit.AlertRaised:
		for _, rec := range e.Records {
			if rec.Kind != audit.RecordEvent {
				continue
			}
			ev, err := tx.Event(rec.ID)
			if err != nil {
				return fmt.Errorf("event %s: %w", rec.ID, err)
			}
			it, err := storedEvent(tx, ev)
			if err != nil {
				return err
			}
			if !yield(it, nil) {
				return errStopped
			}
		}
	}
	return nil
}

func storedLot(tx inspection.ReadTx, d *inspection.Decision) (*Lot, error) {
	keys := identity.KeysOf(d.Goods)
	l := &Lot{DeclarationID: d.DeclarationID, LineNo: d.LineNo, At: d.DecidedAt, Goods: d.Goods, GoodsKey: d.GoodsKey,
		Procedure: d.Procedure, ImporterTaxCode: d.ImporterTaxCode, Exemption: claimedExemption(d.Explanation),
		Manufacturer: keys.Manufacturer, HeadingOrigin: keys.HeadingOrigin,
		Recorded: &Recorded{Mode: d.Mode, Inspect: d.Inspect}}
	if q := d.Quota; q != nil {
		l.Recorded.Sampled, l.Recorded.Draw = q.Chosen, q.Draw
	}
	switch im, err := tx.Importer(d.ImporterTaxCode); {
	case err == nil:
		l.ImporterLevel = im.ComplianceLevel
	case !errors.Is(err, fault.ErrNotFound):
		return nil, fmt.Errorf("importer of %s: %w", d.ID, err)
	}
	switch m, err := tx.Manufacturer(keys.Manufacturer); {
	case err == nil:
		l.Certificates = m.Certificates
	case !errors.Is(err, fault.ErrNotFound):
		return nil, fmt.Errorf("manufacturer of %s: %w", d.ID, err)
	}
	return l, nil
}

// claimedExemption recovers the exemption a lot claimed from its
// decision's explanation (inspection.Evaluate: "exempt.category" names the
// category; a category refused while strict is named in the reason).
func claimedExemption(ex inspection.Explanation) string {
	if ex.Rule == inspection.RuleExemptCategory {
		return ex.Exemption
	}
	const before, after = "; exemption ", " refused while strict"
	if i := strings.Index(ex.Reason, before); i >= 0 {
		rest := ex.Reason[i+len(before):]
		if j := strings.Index(rest, after); j > 0 {
			return rest[:j]
		}
	}
	return ""
}

func storedEvent(tx inspection.ReadTx, ev inspection.Event) (Item, error) {
	if ev.Kind == inspection.EventResult {
		return Item{Result: &Result{ID: ev.ID, DecisionID: ev.DecisionID, GoodsKey: ev.Subject.Key, ImporterTaxCode: ev.ImporterTaxCode,
			Outcome: ev.Outcome, InspectedAt: ev.At, RecordedAt: ev.RecordedAt}}, nil
	}
	a := &Alert{ID: ev.ID, Authority: ev.Authority, IssuedAt: ev.At, RecordedAt: ev.RecordedAt}
	if ev.Subject.Kind != inspection.SubjectGoods {
		a.Subject = ev.Subject
		return Item{Alert: a}, nil
	}
	st, err := tx.GoodsState(ev.Subject.Key)
	if err != nil {
		return Item{}, fmt.Errorf("goods of alert %s: %w", ev.ID, err)
	}
	a.Goods, a.OnGoods, a.Target = []identity.Key{ev.Subject.Key}, true, st.Goods
	return Item{Alert: a}, nil
}
