package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/store"
)

// checkRestored opens the store restored into dir and checks it holds
// what writeAll wrote.
func checkRestored(t *testing.T, dir string) {
	t.Helper()
	view(t, openDir(t, dir), func(tx inspection.ReadTx) error {
		for _, tc := range roundTrips() {
			if v, err := tc.get(tx); err != nil || !reflect.DeepEqual(v, tc.want) {
				t.Errorf("%s after restore: got %+v, %v\nwant %+v", tc.name, v, err, tc.want)
			}
		}
		return nil
	})
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	db := openDir(t, t.TempDir())
	update(t, db, writeAll)
	var buf bytes.Buffer
	m, n, err := db.Backup(t.Context(), &buf, t.TempDir(), 0)
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
	checkRestored(t, dir)

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
	db := openDir(t, data)
	if _, err := store.NewBackupDir(db, data, filepath.Join(data, "backups"), 3, 0); err == nil {
		t.Error("a backup dir inside the data dir was accepted")
	}
	bd, err := store.NewBackupDir(db, data, data+".backups", 3, 0)
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

// TestBackupPaced: a backup with a rate reads the store no faster than
// it (a lower bound on its duration, which pacing guarantees however
// fast the machine), a cancelled one stops at once though its pace would
// take minutes, and both leave the store as it was.
func TestBackupPaced(t *testing.T) {
	db := openDir(t, t.TempDir())
	const values, size = 24, 64 << 10 // 1.5 MiB
	for i := range values {
		if err := store.PutRaw(db, []byte{0xEE, 'p', byte(i)}, bytes.Repeat([]byte{byte(i)}, size)); err != nil {
			t.Fatal(err)
		}
	}
	const rate = 2 << 20
	start := time.Now()
	var buf bytes.Buffer
	if _, _, err := db.Backup(t.Context(), &buf, t.TempDir(), rate); err != nil {
		t.Fatalf("paced backup: %v", err)
	}
	// The pacer looks at the clock every 256 KiB, so it can finish up to
	// that much ahead of the rate.
	if took, least := time.Since(start), time.Duration(float64(values*size-256<<10)/rate*float64(time.Second)); took < least {
		t.Errorf("a backup of %d bytes at %d B/s took %v, want at least %v", values*size, rate, took, least)
	}
	if _, err := store.VerifyBackup(bytes.NewReader(buf.Bytes())); err != nil {
		t.Errorf("paced backup does not verify: %v", err)
	}

	// At 1 KiB/s the same store would take 25 minutes.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := db.Backup(ctx, io.Discard, t.TempDir(), 1<<10); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a cancelled paced backup: %v, want context.DeadlineExceeded", err)
	}
}

// TestBackupFormat1Restores: a backup of format 1 (the stream as badger
// wrote it, uncompressed), as builds before format 2 wrote them, is still
// verified and restored; a manifest naming a compression its format does
// not have is refused.
func TestBackupFormat1Restores(t *testing.T) {
	db := openDir(t, t.TempDir())
	update(t, db, writeAll)
	var buf bytes.Buffer
	m, _, err := db.Backup(t.Context(), &buf, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != 2 || m.Compression != "zstd" {
		t.Fatalf("a new backup is format %d, compression %q; want 2, zstd", m.Format, m.Compression)
	}
	// Rewrite it as format 1: the same stream, decompressed.
	raw := buf.Bytes()[buf.Len()-int(m.StreamBytes):]
	zr, err := zstd.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(plain)
	old := m
	old.Format, old.Compression, old.StreamBytes, old.StreamSHA256 = 1, "", int64(len(plain)), hex.EncodeToString(sum[:])
	file := func(m store.BackupManifest, stream []byte) []byte {
		head, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte("KTCN-BACKUP 1\n"+string(head)+"\n"), stream...)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := store.Restore(t.Context(), bytes.NewReader(file(old, plain)), store.Options{Dir: dir, Small: true}); err != nil {
		t.Fatalf("restore of format 1: %v", err)
	}
	checkRestored(t, dir)

	for _, bad := range []struct {
		format      int
		compression string
	}{{1, "zstd"}, {2, ""}, {2, "gzip"}, {3, "zstd"}} {
		mm := m
		mm.Format, mm.Compression = bad.format, bad.compression
		if _, err := store.VerifyBackup(bytes.NewReader(file(mm, raw))); err == nil {
			t.Errorf("format %d, compression %q: verified", bad.format, bad.compression)
		}
	}
}

// FuzzVerifyBackup: a backup file is outside input (an operator hands it
// to restore). Whatever its bytes, VerifyBackup returns rather than
// panics, and accepts only a file whose stream matches its manifest.
func FuzzVerifyBackup(f *testing.F) {
	db, err := store.Open(store.Options{InMemory: true, Small: true})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	var buf bytes.Buffer
	if _, _, err := db.Backup(f.Context(), &buf, f.TempDir(), 0); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()/2])
	f.Add([]byte("KTCN-BACKUP 1\n{\"format\":1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := store.VerifyBackup(bytes.NewReader(b))
		if err != nil {
			return
		}
		stream := b[len(b)-int(m.StreamBytes):]
		if sum := sha256.Sum256(stream); hex.EncodeToString(sum[:]) != m.StreamSHA256 {
			t.Errorf("verified a stream whose SHA-256 is not the manifest's")
		}
	})
}

// TestBackupIntoAFileRestores: a backup the backup dir takes is written
// in place, its manifest filled into a padded slot after the stream, and
// it verifies and restores like a streamed one.
func TestBackupIntoAFileRestores(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	db := openDir(t, data)
	update(t, db, writeAll)
	bd, err := store.NewBackupDir(db, data, data+".backups", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := bd.CreateBackup(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(bd.Dir(), info.File))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != info.Size {
		t.Errorf("the file is %d bytes, the backup says %d", len(b), info.Size)
	}
	head, _, _ := bytes.Cut(b[len("KTCN-BACKUP 1\n"):], []byte("\n"))
	if trimmed := bytes.TrimRight(head, " "); len(head) != 1023 || len(trimmed) == len(head) || !bytes.HasSuffix(trimmed, []byte("}")) {
		t.Errorf("manifest line of %d bytes, want a slot of 1023 padded with spaces: %q", len(head), head)
	}
	m, err := store.VerifyBackup(bytes.NewReader(b))
	if err != nil || m.StreamSHA256 != info.SHA256 {
		t.Fatalf("VerifyBackup: %+v, %v", m, err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := store.Restore(t.Context(), bytes.NewReader(b), store.Options{Dir: dir, Small: true}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	checkRestored(t, dir)
}
