package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/store"
)

func TestBackupRestoreRoundTrip(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir(), Small: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	update(t, db, writeAll)
	var buf bytes.Buffer
	m, n, err := db.Backup(t.Context(), &buf, t.TempDir())
	if err != nil || n != int64(buf.Len()) || m.StreamBytes == 0 {
		t.Fatalf("Backup: %+v %d %v (wrote %d)", m, n, err, buf.Len())
	}
	if _, err := store.VerifyBackup(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("VerifyBackup: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := store.Restore(t.Context(), bytes.NewReader(buf.Bytes()), store.Options{Dir: dir, Small: true}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got := openDir(t, dir)
	view(t, got, func(tx inspection.ReadTx) error {
		for _, tc := range roundTrips() {
			v, err := tc.get(tx)
			if err != nil || !reflect.DeepEqual(v, tc.want) {
				t.Errorf("%s after restore: got %+v, %v\nwant %+v", tc.name, v, err, tc.want)
			}
		}
		return nil
	})

	// A non-empty target is refused, and left alone.
	if _, err := store.Restore(t.Context(), bytes.NewReader(buf.Bytes()), store.Options{Dir: dir, Small: true}); !errors.Is(err, store.ErrRestoreTarget) {
		t.Errorf("restore into a non-empty dir: %v, want ErrRestoreTarget", err)
	}

	// One flipped byte anywhere in the stream is refused before dir is touched.
	flipped := bytes.Clone(buf.Bytes())
	flipped[len(flipped)-int(m.StreamBytes/2)-1] ^= 0x01
	if _, err := store.VerifyBackup(bytes.NewReader(flipped)); !errors.Is(err, store.ErrBackupChecksum) {
		t.Errorf("VerifyBackup of a flipped byte: %v", err)
	}
	empty := t.TempDir()
	_, err = store.Restore(t.Context(), bytes.NewReader(flipped), store.Options{Dir: empty, Small: true})
	if !errors.Is(err, store.ErrBackupChecksum) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("restore of a flipped byte: %v, want a checksum error", err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("a refused restore wrote %d entries", len(ents))
	}
	// A truncated file too.
	if _, err := store.Restore(t.Context(), bytes.NewReader(buf.Bytes()[:buf.Len()-1]), store.Options{Dir: empty, Small: true}); !errors.Is(err, store.ErrBackupChecksum) {
		t.Errorf("restore of a truncated file: %v", err)
	}
}

func TestBackupDirKeepsNewest(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	db, err := store.Open(store.Options{Dir: data, Small: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := store.NewBackupDir(db, data, filepath.Join(data, "backups"), 3); err == nil {
		t.Error("a backup dir inside the data dir was accepted")
	}
	bd, err := store.NewBackupDir(db, data, data+".backups", 3)
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for range 5 {
		info, err := bd.CreateBackup(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, info.File)
	}
	names, err := bd.List()
	if err != nil || !reflect.DeepEqual(names, made[2:]) {
		t.Errorf("kept %v, %v; want the newest three %v", names, err, made[2:])
	}
	ents, _ := os.ReadDir(data + ".backups")
	if len(ents) != 3 {
		t.Errorf("backup dir holds %d entries (temporary files left?)", len(ents))
	}
}
