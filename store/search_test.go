package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/store"
)

// searchDecision is the i-th decision of a synthetic store: importer
// IMP-X every 400th (50 in 20,000), else one of 97; two HS headings; a
// second's apart.
func searchDecision(i int) inspection.Decision {
	importer := fmt.Sprintf("IMP-%d", i%97)
	if i%400 == 0 {
		importer = "IMP-X"
	}
	g := identity.Goods{HSCode: "04022120", ProductName: "milk powder", Manufacturer: "M", Origin: "NZ"}
	if i%2 == 1 {
		g.HSCode = "85167100"
	}
	mode, inspect, agency := inspection.ModeNormal, true, fmt.Sprintf("AG-%d", i%7)
	if i%10 == 0 {
		mode, inspect, agency = inspection.ModeExempt, false, ""
	}
	return inspection.Decision{ID: fmt.Sprintf("D%06d/1", i), DeclarationID: fmt.Sprintf("D%06d", i), LineNo: 1, ImporterTaxCode: importer,
		Goods: g, Mode: mode, Inspect: inspect, Agency: agency, Reason: "synthetic", PolicyVersion: "p1",
		DecidedAt: t0.Add(time.Duration(i) * time.Second)}
}

// putDecisions writes decisions from..to-1 without audit entries, in
// transactions of batch.
func putDecisions(tb testing.TB, db *store.DB, from, to, batch int) {
	tb.Helper()
	for i := from; i < to; i += batch {
		err := db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
			for j := i; j < min(i+batch, to); j++ {
				if err := tx.PutDecision(searchDecision(j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func search(tb testing.TB, db *store.DB, f inspection.DecisionFilter, after string, limit int) (ids []string, next string, keys int) {
	tb.Helper()
	err := db.View(context.Background(), func(tx inspection.ReadTx) error {
		hits, n, err := tx.SearchDecisions(f, after, limit)
		for _, h := range hits {
			ids = append(ids, h.Decision.ID)
		}
		next, keys = n, store.KeysRead(tx)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ids, next, keys
}

// TestDecisionSearchReadsThePageNotTheStore: with 20,000 decisions of
// which 50 are importer IMP-X's, a page of 10 of them (also with more
// filters) reads a number of keys proportional to the page, and the
// cursor walks all 50 in decision order.
func TestDecisionSearchReadsThePageNotTheStore(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 decisions")
	}
	db, err := store.Open(store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 20_000
	putDecisions(t, db, 0, n, 1000)

	var want []string
	for i := 0; i < n; i += 400 {
		want = append(want, searchDecision(i).ID)
	}
	f := inspection.DecisionFilter{Importer: "IMP-X"}
	ids, next, keys := search(t, db, f, "", 10)
	if !slices.Equal(ids, want[:10]) || next == "" {
		t.Fatalf("first page %v (next %q), want %v", ids, next, want[:10])
	}
	t.Logf("a page of 10 of 50 matches among %d decisions read %d keys", n, keys)
	if keys >= 200 {
		t.Fatalf("a page of 10 read %d keys, want < 200", keys)
	}
	var all []string
	for after := ""; ; {
		ids, next, _ := search(t, db, f, after, 10)
		all = append(all, ids...)
		if after = next; after == "" {
			break
		}
	}
	if !slices.Equal(all, want) {
		t.Fatalf("paged %d decisions, want the 50 in order", len(all))
	}

	// More filters on the same index: checked on the entries, still only
	// the page loaded. IMP-X's lots are every 400th: all exempt.
	exempt := inspection.ModeExempt
	ids, _, keys = search(t, db, inspection.DecisionFilter{Importer: "IMP-X", Mode: exempt, HS: "0402"}, "", 10)
	if !slices.Equal(ids, want[:10]) || keys >= 200 {
		t.Fatalf("importer+mode+hs: %v, %d keys", ids, keys)
	}
	// A declaration is one entry.
	ids, next, keys = search(t, db, inspection.DecisionFilter{Declaration: "D012345"}, "", 10)
	if !slices.Equal(ids, []string{"D012345/1"}) || next != "" || keys > 5 {
		t.Fatalf("declaration: %v next %q, %d keys", ids, next, keys)
	}
	// An agency's lots in a time window: the agency index, seeked to from.
	from, to := t0.Add(1000*time.Second), t0.Add(1100*time.Second)
	ids, _, keys = search(t, db, inspection.DecisionFilter{Agency: "AG-3", From: from, To: to}, "", 100)
	for _, id := range ids {
		var i int
		fmt.Sscanf(id, "D%06d/1", &i)
		if d := searchDecision(i); d.Agency != "AG-3" || d.DecidedAt.Before(from) || !d.DecidedAt.Before(to) {
			t.Fatalf("agency window: %s is %+v", id, d)
		}
	}
	if len(ids) < 10 || keys > 3*len(ids)+5 {
		t.Fatalf("agency window: %d decisions, %d keys", len(ids), keys)
	}
	// A filter no index serves is bounded per page, and says where to go on.
	ids, next, keys = search(t, db, inspection.DecisionFilter{Importer: "IMP-5", Inspect: new(false), Mode: inspection.ModeNormal}, "", 10)
	if len(ids) != 0 || next != "" || keys > n/97+10 {
		t.Fatalf("no match on a selective index: %v next %q keys %d", ids, next, keys)
	}
}

// TestDecisionSearchBackfill: a store written before the indexes has
// none; the next Open indexes every decision, overrides included, once.
func TestDecisionSearchBackfill(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	putDecisions(t, db, 0, n, 40)
	// An override of an exempt lot routes it to an agency and inspects it.
	ov := inspection.Override{ID: inspection.OverrideID(searchDecision(10).ID, 1), DecisionID: searchDecision(10).ID, N: 1, By: "customs",
		At: t0.Add(time.Hour), ReasonCode: "intelligence", ReasonText: "x", Inspect: true, Agency: "AG-NEW", AssignmentID: "A-10"}
	if err := db.UpdateRaw(t.Context(), func(tx inspection.Tx) error { return tx.PutOverride(ov) }); err != nil {
		t.Fatal(err)
	}
	indexed, err := store.CountDecisionIndexKeys(db)
	if err != nil {
		t.Fatal(err)
	}
	check := func(db *store.DB) {
		t.Helper()
		if ids, _, _ := search(t, db, inspection.DecisionFilter{Agency: "AG-NEW"}, "", 10); !slices.Equal(ids, []string{ov.DecisionID}) {
			t.Fatalf("the override's agency finds %v", ids)
		}
		if ids, _, _ := search(t, db, inspection.DecisionFilter{Overridden: new(true), Inspect: new(true)}, "", 10); !slices.Equal(ids, []string{ov.DecisionID}) {
			t.Fatalf("overridden and inspected: %v", ids)
		}
		var all []string
		for after := ""; ; {
			ids, next, _ := search(t, db, inspection.DecisionFilter{}, after, 1000)
			all = append(all, ids...)
			if after = next; after == "" {
				break
			}
		}
		if len(all) != n {
			t.Fatalf("the time index holds %d decisions, want %d", len(all), n)
		}
	}
	check(db)
	if err := store.DropDecisionIndexes(db); err != nil {
		t.Fatal(err)
	}
	if ids, _, _ := search(t, db, inspection.DecisionFilter{}, "", 10); len(ids) != 0 {
		t.Fatalf("dropped indexes still answer %v", ids)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(store.Options{Dir: dir, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db)
	if again, err := store.CountDecisionIndexKeys(db); err != nil || again != indexed {
		t.Fatalf("backfill wrote %d index keys, the writes %d (%v)", again, indexed, err)
	}
}

// BenchmarkDecisionSearchPage is the latency of one page of 50 with
// 100,000 decisions in the store: by importer (an index prefix), by HS
// heading and inspect (the heading index, filtered), and by mode alone
// (the time index, filtered on the entries).
func BenchmarkDecisionSearchPage(b *testing.B) {
	db, err := store.Open(store.Options{Dir: benchDir(b), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 100_000
	putDecisions(b, db, 0, n, 2000)
	for _, bc := range []struct {
		name string
		f    inspection.DecisionFilter
	}{
		{"importer", inspection.DecisionFilter{Importer: "IMP-13"}},
		{"heading+inspect", inspection.DecisionFilter{HS: "8516", Inspect: new(true)}},
		{"mode", inspection.DecisionFilter{Mode: inspection.ModeExempt}},
		{"rare-importer", inspection.DecisionFilter{Importer: "IMP-X"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			keys := 0
			for b.Loop() {
				ids, _, k := search(b, db, bc.f, "", 50)
				if len(ids) != 50 {
					b.Fatalf("%d decisions, want 50", len(ids))
				}
				keys += k
			}
			b.ReportMetric(float64(keys)/float64(b.N), "keys/op")
		})
	}
}
