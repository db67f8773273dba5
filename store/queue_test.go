package store_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/store"
)

// queueStore is a store holding n active assignments of one agency, due
// an hour apart from base, every 50th strict and accepted.
func queueStore(tb testing.TB, n int, base time.Time) *store.DB {
	tb.Helper()
	db, err := store.Open(store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	const batch = 2000
	for i := 0; i < n; i += batch {
		err := db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
			for j := i; j < min(i+batch, n); j++ {
				a := inspection.Assignment{ID: fmt.Sprintf("asg_q%07d", j), DecisionID: fmt.Sprintf("dec_q%07d", j), Agency: "moit-firi",
					Mode: inspection.ModeNormal, Check: "documents", Status: inspection.AssignmentOpen,
					CreatedAt: base.Add(time.Duration(j) * time.Minute), DueAt: base.Add(time.Duration(j) * time.Hour)}
				if j%50 == 0 {
					a.Mode, a.Check, a.Status = inspection.ModeStrict, "documents_and_sampling", inspection.AssignmentAccepted
				}
				if err := tx.PutAssignment(a); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// TestQueuePageReadsItsPage: a page of the queue by deadline, of what is
// overdue or due in a range, reads a number of keys proportional to the
// page, the same with 2,000 assignments as with 200,000
// (KTCN_QUEUE_SCALE to change the larger).
func TestQueuePageReadsItsPage(t *testing.T) {
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, calendar.Vietnam())
	big := 200000
	if s := os.Getenv("KTCN_QUEUE_SCALE"); s != "" {
		fmt.Sscan(s, &big)
	}
	var reads []int
	for _, n := range []int{2000, big} {
		db := queueStore(t, n, base)
		now := base.Add(30*time.Hour + time.Minute) // 31 overdue
		for _, q := range []inspection.QueueQuery{
			{Agency: "moit-firi", Sort: "due", Overdue: true, Limit: 20, Now: now},
			{Agency: "moit-firi", Sort: "due", DueAfter: base.Add(500 * time.Hour), DueBefore: base.Add(600 * time.Hour), Limit: 20, Now: now},
		} {
			var (
				page []inspection.Assignment
				keys int
			)
			err := db.View(context.Background(), func(tx inspection.ReadTx) (err error) {
				page, _, err = tx.Queue(q)
				keys = store.KeysRead(tx)
				return err
			})
			if err != nil || len(page) != 20 {
				t.Fatalf("%d assignments: page of %d (%v)", n, len(page), err)
			}
			for i := 1; i < len(page); i++ {
				if page[i].DueAt.Before(page[i-1].DueAt) {
					t.Fatalf("page out of deadline order at %d", i)
				}
			}
			if keys > 3*len(page)+2 {
				t.Errorf("%d assignments: a page of %d read %d keys", n, len(page), keys)
			}
			reads = append(reads, keys)
		}
	}
	if reads[0] != reads[2] || reads[1] != reads[3] {
		t.Errorf("keys read grew with the store: %v", reads)
	}
	t.Logf("keys read per page of 20 (2,000 and %d assignments): %v", big, reads)
}

// BenchmarkQueuePage is one filtered page of an agency's queue among
// 200,000 active assignments.
func BenchmarkQueuePage(b *testing.B) {
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, calendar.Vietnam())
	db := queueStore(b, 200000, base)
	q := inspection.QueueQuery{Agency: "moit-firi", Sort: "due", DueAfter: base.Add(50000 * time.Hour), Limit: 50, Now: base}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := db.View(context.Background(), func(tx inspection.ReadTx) error {
			page, _, err := tx.Queue(q)
			if err == nil && len(page) != 50 {
				err = fmt.Errorf("page of %d", len(page))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/page")
}
