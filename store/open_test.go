package store_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/store"
)

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	update(t, db, writeAll)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openDir(t, dir)
	view(t, db, func(tx inspection.ReadTx) error {
		for _, tc := range roundTrips() {
			got, err := tc.get(tx)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s after reopen: got %+v, %v\nwant %+v", tc.name, got, err, tc.want)
			}
		}
		as, _, err := tx.OpenAssignments("AG-1", "", 0)
		if err != nil || len(as) != 1 || as[0].ID != "A-open" {
			t.Errorf("OpenAssignments after reopen = %+v, %v", as, err)
		}
		return nil
	})
}

func TestOpenRefusesOtherSchema(t *testing.T) {
	tests := []struct {
		name  string
		plant func(db *store.DB) error
	}{
		{"newer version", func(db *store.DB) error {
			return store.PutRaw(db, store.SchemaKey(), store.EncodeSchema(store.SchemaVersion+1))
		}},
		{"version zero", func(db *store.DB) error {
			return store.PutRaw(db, store.SchemaKey(), store.EncodeSchema(0))
		}},
		{"garbled version", func(db *store.DB) error {
			return store.PutRaw(db, store.SchemaKey(), []byte{1, 0})
		}},
		{"data without version", func(db *store.DB) error {
			if err := db.UpdateRaw(t.Context(), func(tx inspection.Tx) error { return tx.PutAgency(sampleAgency) }); err != nil {
				return err
			}
			return store.DeleteRaw(db, store.SchemaKey())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := store.Open(store.Options{Dir: dir, Small: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(db); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = store.Open(store.Options{Dir: dir, Small: true})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrSchemaVersion) {
				t.Errorf("err = %v, want ErrSchemaVersion", err)
			}
			// The refused store was closed: the directory lock is free, so
			// a second try fails the same way, not on the lock.
			if _, err := store.Open(store.Options{Dir: dir, Small: true}); !errors.Is(err, store.ErrSchemaVersion) {
				t.Errorf("second Open: %v", err)
			}
		})
	}
}

func TestOpenValidatesOptions(t *testing.T) {
	for _, opts := range []store.Options{
		{},
		{Dir: t.TempDir(), InMemory: true},
	} {
		if db, err := store.Open(opts); err == nil {
			db.Close()
			t.Errorf("Open(%+v) succeeded", opts)
		}
	}
}

func TestUnknownValueVersion(t *testing.T) {
	db := openMemory(t)
	if err := store.PutRaw(db, store.DecisionKey("D1"), []byte("\x02{}")); err != nil {
		t.Fatal(err)
	}
	view(t, db, func(tx inspection.ReadTx) error {
		_, err := tx.Decision("D1")
		if err == nil || errors.Is(err, fault.ErrNotFound) {
			t.Fatalf("err = %v, want a decode error", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "decision") || !strings.Contains(msg, "version 2") {
			t.Errorf("err %q does not name the kind and version", msg)
		}
		return nil
	})
}

// Badger's own log lines go through the zerolog logger passed in.
func TestBadgerLogsThroughZerolog(t *testing.T) {
	var buf bytes.Buffer
	db, err := store.Open(store.Options{Dir: t.TempDir(), Small: true, Logger: zerolog.New(&buf).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"component":"badger"`) {
		t.Errorf("no badger lines in the log:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), `\n"`) {
		t.Errorf("badger lines keep their trailing newline:\n%s", buf.String())
	}
}

// A store of version 1 (decisions' explanation events inline) opens, its
// records as written, and is marked the current version: what this build
// writes into it from then on, a version 1 build must not read.
func TestOpenUpgradesVersionOne(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutRaw(db, store.SchemaKey(), store.EncodeSchema(1)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(store.Options{Dir: dir, Small: true})
	if err != nil {
		t.Fatalf("open a version 1 store: %v", err)
	}
	defer db.Close()
	got, err := store.GetRaw(db, store.SchemaKey())
	if err != nil || !bytes.Equal(got, store.EncodeSchema(store.SchemaVersion)) {
		t.Errorf("schema after open = %x, %v; want %x", got, err, store.EncodeSchema(store.SchemaVersion))
	}
}
