package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

// While one batch syncs, the next runs on a transaction that cannot see
// it, with the syncing batch's writes overlaid. Every kind of read must
// still see every write acknowledged or batched before it: each update
// reads a counter (a point read) and counts a list (a scan), requires the
// two to agree, then adds one to each. A read that missed the batch
// syncing would make them disagree or lose an increment.
func TestPipelinedBatchesSeeTheBatchSyncing(t *testing.T) {
	const period, scope, agency = "2026", "heading", "AG-1"
	cases := []struct {
		name string
		// count lists what earlier updates added; add adds update i's.
		count func(tx inspection.Tx) (int, error)
		add   func(tx inspection.Tx, i, n int) error
		// bare scans cannot be served over the overlay: the batch must
		// run again once the one syncing has landed (with what queued
		// meanwhile: batching must survive it).
		bare bool
		n    int
	}{
		{
			name: "scan the batch view serves (quota draws)",
			count: func(tx inspection.Tx) (int, error) {
				ids, err := tx.QuotaDraws(period, scope)
				return len(ids), err
			},
			add: func(tx inspection.Tx, i, n int) error {
				return tx.PutQuotaDraw(period, scope, int64(n+1), fmt.Sprintf("D-%d", i))
			},
			n: 600,
		},
		{
			name: "scan of the bare transaction (open assignments)",
			count: func(tx inspection.Tx) (int, error) {
				list, _, err := tx.OpenAssignments(agency, "", store.MaxPageSize)
				return len(list), err
			},
			add: func(tx inspection.Tx, i, n int) error {
				a := sampleAssignment()
				a.ID, a.Agency, a.Status, a.Result = fmt.Sprintf("AS-%04d", i), agency, inspection.AssignmentOpen, nil
				a.CreatedAt = t0.Add(time.Duration(i) * time.Second)
				return tx.PutAssignment(a)
			},
			bare: true,
			n:    200, // each lists all before it
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openDir(t, t.TempDir())
			n := tc.n
			errs := runConcurrently(db, n, func(i int) func(inspection.Tx) error {
				return func(tx inspection.Tx) error {
					c, err := tx.QuotaCounter(period, scope)
					if errors.Is(err, fault.ErrNotFound) {
						c = quota.Counter{Period: period, Scope: scope}
					} else if err != nil {
						return err
					}
					got, err := tc.count(tx)
					if err != nil {
						return err
					}
					if int64(got) != c.Eligible {
						return fmt.Errorf("counted %d, the counter says %d", got, c.Eligible)
					}
					if err := tc.add(tx, i, got); err != nil {
						return err
					}
					c.Eligible++
					return tx.PutQuotaCounter(c)
				}
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("update %d: %v", i, err)
				}
			}
			var final quota.Counter
			view(t, db, func(tx inspection.ReadTx) error {
				var err error
				final, err = tx.QuotaCounter(period, scope)
				return err
			})
			st := db.CommitStats()
			if final.Eligible != int64(n) {
				t.Fatalf("counter is %d after %d updates (%+v)", final.Eligible, n, st)
			}
			if !tc.bare && st.Overlaid == 0 {
				t.Fatalf("no batch ran while another synced: the test proved nothing (%+v)", st)
			}
			if tc.bare && st.Settled == 0 {
				t.Fatalf("bare scans over an overlay never waited for the batch syncing (%+v)", st)
			}
			if tc.bare && st.Batches > int64(n/4) {
				t.Fatalf("%d updates took %d batches: batching is lost (%+v)", n, st.Batches, st)
			}
			t.Logf("%d updates in %d batches, %d of them over a batch syncing; %d run again after it landed",
				n, st.Batches, st.Overlaid, st.Settled)
		})
	}
}
