package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/store"
)

// TestBackupUnderWritesRestores: eight NSW clients decide declarations
// while `ktcn backup` takes a backup from the running server. Restored
// into a fresh directory, the backup holds every decision acknowledged
// before the backup request began, and verify audit and verify quota pass
// on it (given the quota secret and audit key, which live beside the
// original data dir and are not in the backup). A backup with one flipped
// byte, or a non-empty target, is refused and the target left as it was.
func TestBackupUnderWritesRestores(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn", "KTCN_BACKUP_KEEP": "2"}
	base, stop := serveInProcess(t, env)
	creds := readDevCredentials(t, filepath.Join(dir, devCredentialsFile))
	call := caller(t, base, creds)

	var (
		mu      sync.Mutex
		acked   []string // decision IDs, in the order acknowledged
		next    atomic.Int64
		halt    atomic.Bool
		wg      sync.WaitGroup
		started = make(chan struct{})
		once    sync.Once
	)
	for range 8 {
		wg.Go(func() {
			for !halt.Load() {
				i := next.Add(1)
				body := map[string]any{"declaration_id": fmt.Sprintf("BKP-%06d", i), "importer_tax_code": "0101234567",
					"lines": []map[string]any{{"line_no": 1, "hs_code": "0402.21.20", "product_name": fmt.Sprintf("Sữa bột %d", i%53),
						"manufacturer": "Backup Dairy", "origin": "NZ", "procedure": "food_safety", "quantity": 10, "unit": "kg"}}}
				var out struct {
					Lines []struct {
						DecisionID string `json:"decision_id"`
					} `json:"lines"`
				}
				if status := call("nsw", "POST", "/v1/declarations", body, &out); status != http.StatusCreated || len(out.Lines) != 1 {
					t.Errorf("declare %d: %d", i, status)
					return
				}
				mu.Lock()
				acked = append(acked, out.Lines[0].DecisionID)
				if len(acked) >= 40 {
					once.Do(func() { close(started) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("no decisions acknowledged")
	}
	// The quota periods opened before the backup (by the generated
	// history serve loads in the background): verified on the restore.
	var periods struct {
		Periods []struct {
			Period string `json:"period"`
		} `json:"periods"`
	}
	for deadline := time.Now().Add(90 * time.Second); len(periods.Periods) == 0; time.Sleep(200 * time.Millisecond) {
		if status := call("customs", "GET", "/v1/quota/periods", nil, &periods); status != http.StatusOK || time.Now().After(deadline) {
			halt.Store(true)
			wg.Wait()
			t.Fatalf("GET /v1/quota/periods: %d %+v", status, periods)
		}
	}
	mu.Lock()
	before := slices.Clone(acked)
	mu.Unlock()
	file := filepath.Join(root, "ktcn.backup")
	var out, errw bytes.Buffer
	code := Run(context.Background(), []string{"backup", "-addr", base, "-key", creds["admin"], "-out", file}, func(string) string { return "" }, &out, &errw)
	if code != 0 {
		t.Fatalf("ktcn backup: %d %s%s", code, out.String(), errw.String())
	}
	// The scheduled job's path, under the same writes: it keeps the newest
	// KTCN_BACKUP_KEEP in the backup dir.
	for range 3 {
		var info inspection.BackupInfo
		if status := call("admin", "POST", "/v1/admin/backups", nil, &info); status != http.StatusCreated || info.SHA256 == "" {
			t.Fatalf("POST /v1/admin/backups: %d %+v", status, info)
		}
	}
	halt.Store(true)
	wg.Wait()
	stop()
	if ents, err := os.ReadDir(filepath.Join(root, "var", "data.backups")); err != nil || len(ents) != 2 {
		t.Errorf("backup dir holds %d entries (%v), want the newest 2", len(ents), err)
	}
	mu.Lock()
	t.Logf("%d decisions acknowledged before the backup began, %d in all", len(before), len(acked))
	mu.Unlock()

	// Restore into a fresh directory, and find every decision acknowledged
	// before the backup began.
	restored := filepath.Join(root, "restored")
	run := func(args ...string) (int, string) {
		var out, errw bytes.Buffer
		code := Run(context.Background(), args, func(string) string { return "" }, &out, &errw)
		return code, out.String() + errw.String()
	}
	if code, msg := run("restore", file, restored); code != 0 || !strings.Contains(msg, "restored") {
		t.Fatalf("ktcn restore: %d %s", code, msg)
	}
	db, err := store.Open(store.Options{Dir: restored})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	err = db.View(context.Background(), func(tx inspection.ReadTx) error {
		for _, id := range before {
			if _, err := tx.Decision(id); err != nil {
				missing++
				t.Errorf("decision %s acknowledged before the backup is not in it: %v", id, err)
			}
		}
		return nil
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if missing > 0 {
		t.Fatalf("%d of %d decisions missing", missing, len(before))
	}

	// The audit chain and the open quota period check out on the restored
	// store, with the secrets kept in the original data dir's secrets dir.
	secrets := []string{"-data-dir", restored, "-quota-secret", filepath.Join(root, "var", "data.quota-secret"), "-audit-key", filepath.Join(root, "var", "data.audit-key"),
		"-audit-checkpoints", filepath.Join(root, "restored.audit-checkpoints"), "-log-level", "warn"}
	if code, msg := run(append([]string{"verify", "audit"}, secrets...)...); code != 0 {
		t.Errorf("verify audit on the restored store: %d %s", code, msg)
	}
	for _, p := range periods.Periods {
		if code, msg := run(append([]string{"verify", "quota", "-period", p.Period, "-open"}, secrets...)...); code != 0 {
			t.Errorf("verify quota %s on the restored store: %d %s", p.Period, code, msg)
		} else {
			t.Logf("verify quota %s: %s", p.Period, strings.TrimSpace(msg))
		}
	}

	// A restore into a non-empty directory is refused.
	if code, msg := run("restore", file, restored); code == 0 || !strings.Contains(msg, "not an empty directory") {
		t.Errorf("restore into a non-empty dir: %d %s", code, msg)
	}
	// One flipped byte in the middle of the file: refused, naming the
	// checksum, and the target stays empty.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)*2/3] ^= 0x20
	bad := filepath.Join(root, "flipped.backup")
	if err := os.WriteFile(bad, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if code, msg := run("restore", bad, empty); code == 0 || !strings.Contains(msg, "checksum") {
		t.Errorf("restore of a flipped byte: %d %s", code, msg)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("a refused restore left %d entries in the target", len(ents))
	}
	f, _ := os.Open(bad)
	defer f.Close()
	if _, err := store.VerifyBackup(f); !errors.Is(err, store.ErrBackupChecksum) {
		t.Errorf("VerifyBackup of the flipped file: %v", err)
	}
}

// TestBackupNowKeepsNewest: the job's entry point takes a backup into the
// backup dir (<data dir's parent>/var/<name>.backups) and keeps the newest KTCN_BACKUP_KEEP.
func TestBackupNowKeepsNewest(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	getenv := func(k string) string {
		return map[string]string{"KTCN_DATA_DIR": dir, "KTCN_FIXTURES": "off", "KTCN_LOG_LEVEL": "warn", "KTCN_BACKUP_KEEP": "2"}[k]
	}
	err := withApp(context.Background(), "serve", nil, getenv, &bytes.Buffer{}, func(a *app) error {
		var names []string
		for range 3 {
			info, err := a.backupNow(context.Background())
			if err != nil {
				return err
			}
			names = append(names, info.File)
		}
		ents, err := os.ReadDir(filepath.Join(root, "var", "data.backups"))
		if err != nil {
			return err
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, names[1:]) {
			return fmt.Errorf("backup dir holds %v, want %v", got, names[1:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A backup dir inside the data dir is refused.
	inside := func(k string) string {
		return map[string]string{"KTCN_DATA_DIR": dir, "KTCN_LOG_LEVEL": "warn", "KTCN_BACKUP_DIR": filepath.Join(dir, "b")}[k]
	}
	if err := withApp(context.Background(), "keys list", nil, inside, &bytes.Buffer{}, func(*app) error { return nil }); err == nil || !strings.Contains(err.Error(), "inside the data dir") {
		t.Errorf("backup dir inside the data dir: %v", err)
	}
}
