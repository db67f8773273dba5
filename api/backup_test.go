package api_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/store"
)

// TestBackupRoutes: POST writes a backup into the server's backup dir and
// answers what it wrote; GET streams one whose manifest checks out.
func TestBackupRoutes(t *testing.T) {
	e := newEnv(t, start)
	e.decide("BACKUP-1", importerA, milk("Backup Dairy"))
	var info inspection.BackupInfo
	if status, _ := e.as("admin").do("POST", "/v1/admin/backups", nil, &info); status != http.StatusCreated || info.File == "" || info.Size == 0 || len(info.SHA256) != 64 {
		t.Fatalf("POST /v1/admin/backups: %d %+v", status, info)
	}
	f, err := os.Open(filepath.Join(e.backups.Dir(), info.File))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Size() != info.Size {
		t.Errorf("file is %d bytes, the answer says %d", st.Size(), info.Size)
	}
	if m, err := store.VerifyBackup(f); err != nil || m.StreamSHA256 != info.SHA256 {
		t.Errorf("VerifyBackup: %+v %v", m, err)
	}

	var raw []byte
	status, hdr := e.as("admin").do("GET", "/v1/admin/backup", nil, &raw)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET /v1/admin/backup: %d %q", status, hdr.Get("Content-Type"))
	}
	if _, err := store.VerifyBackup(bytes.NewReader(raw)); err != nil {
		t.Errorf("streamed backup: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := store.Restore(t.Context(), bytes.NewReader(raw), store.Options{Dir: dir, Small: true}); err != nil {
		t.Fatalf("restore the streamed backup: %v", err)
	}
}
