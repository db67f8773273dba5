package store_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/store"
)

func assignment(id, agency string, created time.Time, status inspection.AssignmentStatus) inspection.Assignment {
	return inspection.Assignment{
		ID: id, DecisionID: "D-" + id, Agency: agency, CreatedAt: created,
		DueAt: created.Add(48 * time.Hour), Status: status, Goods: goods, GoodsKey: goods.Key(),
	}
}

// openIDs lists all of agency's open assignment IDs, paging by limit.
func openIDs(t *testing.T, db *store.DB, agency string, limit int) (ids []string, pages int) {
	t.Helper()
	size := limit
	if size == 0 {
		size = store.DefaultPageSize
	}
	after := ""
	for {
		var page []inspection.Assignment
		var next string
		view(t, db, func(tx inspection.ReadTx) error {
			var err error
			page, next, err = tx.OpenAssignments(agency, after, limit)
			return err
		})
		pages++
		if len(page) > size || (next != "" && len(page) != size) {
			t.Fatalf("page %d: %d assignments, next %q, limit %d", pages, len(page), next, limit)
		}
		for _, a := range page {
			if a.Status != inspection.AssignmentOpen || a.Agency != agency {
				t.Fatalf("listed %+v", a)
			}
			ids = append(ids, a.ID)
		}
		if next == "" {
			return ids, pages
		}
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
		after = next
	}
}

func TestOpenAssignmentsFollowStatus(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB) {
		put := func(a inspection.Assignment) {
			t.Helper()
			update(t, db, func(tx inspection.Tx) error { return tx.PutAssignment(a) })
		}
		expect := func(agency string, want ...string) {
			t.Helper()
			got, _ := openIDs(t, db, agency, 10)
			if len(got) == 0 && len(want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("open for %s = %v, want %v", agency, got, want)
			}
		}

		a := assignment("A1", "AG-1", t0, inspection.AssignmentOpen)
		b := assignment("B1", "AG-1", t0.Add(time.Hour), inspection.AssignmentOpen)
		put(a)
		put(b)
		expect("AG-1", "A1", "B1")

		a.Status = inspection.AssignmentClosed
		put(a)
		expect("AG-1", "B1")

		a.Status = inspection.AssignmentOpen // reopened
		put(a)
		expect("AG-1", "A1", "B1")

		put(a) // rewriting an open assignment keeps one entry
		expect("AG-1", "A1", "B1")

		a.CreatedAt = t0.Add(2 * time.Hour) // moves after B1, without a stale entry
		put(a)
		expect("AG-1", "B1", "A1")

		a.Agency = "AG-2" // re-routed
		put(a)
		expect("AG-1", "B1")
		expect("AG-2", "A1")

		put(assignment("C1", "AG-2", t0, inspection.AssignmentClosed)) // born closed
		expect("AG-2", "A1")

		b.Status = inspection.AssignmentClosed
		a.Status = inspection.AssignmentClosed
		put(b)
		put(a)
		expect("AG-1")
		expect("AG-2")
	})
}

func TestOpenAssignmentsPagination(t *testing.T) {
	backends(t, func(t *testing.T, db *store.DB) {
		const n = 25
		var want []string
		var all []inspection.Assignment
		for i := range n {
			id := fmt.Sprintf("A%02d", i)
			want = append(want, id)
			all = append(all, assignment(id, "AG-1", t0.Add(time.Duration(i)*time.Minute), inspection.AssignmentOpen))
			// Noise: closed ones and another agency's.
			all = append(all, assignment(fmt.Sprintf("C%02d", i), "AG-1", t0.Add(time.Duration(i)*time.Minute), inspection.AssignmentClosed))
			all = append(all, assignment(fmt.Sprintf("O%02d", i), "AG-2", t0.Add(time.Duration(i)*time.Minute), inspection.AssignmentOpen))
		}
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		update(t, db, func(tx inspection.Tx) error {
			for _, a := range all {
				if err := tx.PutAssignment(a); err != nil {
					return err
				}
			}
			return nil
		})

		for _, tc := range []struct{ limit, pages int }{
			{1, n}, {10, 3}, {5, 5}, {25, 1}, {24, 2}, {0, 1}, {1000, 1},
		} {
			got, pages := openIDs(t, db, "AG-1", tc.limit)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("limit %d: got %v, want %v", tc.limit, got, want)
			}
			if pages != tc.pages {
				t.Errorf("limit %d: %d pages, want %d", tc.limit, pages, tc.pages)
			}
		}
	})
}

// A cursor stays usable when the assignment it ends on closes meanwhile.
func TestOpenAssignmentsCursorSurvivesClose(t *testing.T) {
	db := openMemory(t)
	var as []inspection.Assignment
	update(t, db, func(tx inspection.Tx) error {
		for i := range 6 {
			a := assignment(fmt.Sprintf("A%d", i), "AG-1", t0.Add(time.Duration(i)*time.Second), inspection.AssignmentOpen)
			as = append(as, a)
			if err := tx.PutAssignment(a); err != nil {
				return err
			}
		}
		return nil
	})
	var next string
	view(t, db, func(tx inspection.ReadTx) error {
		var err error
		_, next, err = tx.OpenAssignments("AG-1", "", 3)
		return err
	})
	closed := as[2]
	closed.Status = inspection.AssignmentClosed
	update(t, db, func(tx inspection.Tx) error { return tx.PutAssignment(closed) })
	view(t, db, func(tx inspection.ReadTx) error {
		page, next2, err := tx.OpenAssignments("AG-1", next, 3)
		if err != nil {
			return err
		}
		var ids []string
		for _, a := range page {
			ids = append(ids, a.ID)
		}
		if want := []string{"A3", "A4", "A5"}; !reflect.DeepEqual(ids, want) || next2 != "" {
			t.Errorf("second page = %v, %q; want %v, \"\"", ids, next2, want)
		}
		return nil
	})
}

func TestOpenAssignmentsRejectsBadInput(t *testing.T) {
	db := openMemory(t)
	var cursor string
	update(t, db, func(tx inspection.Tx) error {
		for i := range 3 {
			if err := tx.PutAssignment(assignment(fmt.Sprintf("A%d", i), "AG-1", t0, inspection.AssignmentOpen)); err != nil {
				return err
			}
		}
		var err error
		_, cursor, err = tx.OpenAssignments("AG-1", "", 1)
		return err
	})
	if cursor == "" {
		t.Fatal("no cursor")
	}
	tests := []struct {
		name, agency, after string
		limit               int
		field               string
	}{
		{"negative limit", "AG-1", "", -1, "limit"},
		{"limit over max", "AG-1", "", store.MaxPageSize + 1, "limit"},
		{"cursor not hex", "AG-1", "zz", 10, "after"},
		{"cursor too short", "AG-1", cursor[:len(cursor)-2], 10, "after"},
		{"cursor of another agency", "AG-2", cursor, 10, "after"},
		{"cursor of another kind", "AG-1", hex.EncodeToString(make([]byte, len(cursor)/2)), 10, "after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := db.View(t.Context(), func(tx inspection.ReadTx) error {
				_, _, err := tx.OpenAssignments(tc.agency, tc.after, tc.limit)
				return err
			})
			var e *fault.Error
			if !errors.As(err, &e) || e.Code != fault.Invalid || e.Field != tc.field {
				t.Fatalf("err = %v, want invalid %s", err, tc.field)
			}
		})
	}
}
