package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/store"
)

// Backups. Badger admits one process, so a backup of a running service is
// taken through it: `ktcn backup` streams one from GET /v1/admin/backup,
// POST /v1/admin/backups leaves one in the backup dir (as backupNow, for a
// scheduled job, does). `ktcn restore` checks a backup's SHA-256 and
// loads it into an empty directory. The quota master secret, the audit
// signing key and the checkpoints live in the secrets dir, not in the data
// dir, so no backup holds them: keep them apart (README, "Backup and restore").

// DefaultBackupKeep is how many backups the backup dir keeps.
const DefaultBackupKeep = 7

// DefaultBackupRate is how many MiB a second a backup reads the store
// at (store.backupPacer says why it is bounded).
const DefaultBackupRate = 32

func newBackups(cfg Config, db *store.DB, log zerolog.Logger) (*inspection.Backups, error) {
	keep, err := wholeSetting("backup-keep", cfg.BackupKeep, DefaultBackupKeep, 0, 1<<20)
	if err != nil {
		return nil, err
	}
	rate, err := wholeSetting("backup-rate", cfg.BackupRate, DefaultBackupRate, 0, 1<<20)
	if err != nil {
		return nil, err
	}
	bd, err := store.NewBackupDir(db, cfg.DataDir, cfg.BackupDir, keep, int64(rate)<<20)
	if err != nil {
		return nil, err
	}
	return inspection.NewBackups(bd, log)
}

// backupNow takes a backup into the backup dir on the operator's
// authority (a scheduled job), pruning the oldest beyond those kept.
func (a *app) backupNow(ctx context.Context) (inspection.BackupInfo, error) {
	return a.backups.Create(ctx, access.SystemPrincipal())
}

// adminToken finds the admin key: the flag, $KTCN_ADMIN_KEY, then the
// "admin" entry of the development credentials in the data dir.
func adminToken(flagKey string, getenv func(string) string, dataDir string) (string, error) {
	return credential(flagKey, getenv("KTCN_ADMIN_KEY"), "KTCN_ADMIN_KEY", dataDir, "admin")
}

func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr    = fs.String("addr", env("KTCN_ADDR", "127.0.0.1:8080"), "the running server: host:port or a URL")
		key     = fs.String("key", "", "admin API key (default: $KTCN_ADMIN_KEY, then the data dir's development credentials)")
		dataDir = fs.String("data-dir", env("KTCN_DATA_DIR", "./data"), "data dir holding dev-credentials.json (when no -key)")
		out     = fs.String("out", "", "file to write the backup to (must not exist)")
		timeout = fs.Duration("timeout", time.Hour, "give up after this long")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return errors.New("backup: -out FILE is required")
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("backup: %s exists; not overwriting it", *out)
	}
	token, err := adminToken(*key, getenv, *dataDir)
	if err != nil {
		return err
	}
	base := *addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	m, size, err := fetchBackup(ctx, strings.TrimRight(base, "/")+"/v1/admin/backup", token, *out, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s: %d bytes, stream sha256 %s, taken %s\n", *out, size, m.StreamSHA256, m.CreatedAt.Format(time.RFC3339))
	fmt.Fprintln(stdout, "it holds neither the quota secret nor the audit key: keep those apart (README, \"Backup and restore\")")
	return nil
}

// fetchBackup streams a backup into a temporary file beside out, checks
// its manifest, syncs it and renames it to out.
func fetchBackup(ctx context.Context, url, token, out string, stderr io.Writer) (store.BackupManifest, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return store.BackupManifest{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return store.BackupManifest{}, 0, fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return store.BackupManifest{}, 0, fmt.Errorf("backup: the server answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return store.BackupManifest{}, 0, fmt.Errorf("backup: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	// Size unknown ahead (the server streams): bytes and rate only.
	bar := newProgress(stderr, "backup", "bytes", max(resp.ContentLength, 0))
	size, err := io.Copy(tmp, bar.Reader(resp.Body))
	bar.Done()
	if err != nil {
		return store.BackupManifest{}, 0, fmt.Errorf("backup: transfer failed after %d bytes: %w", size, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return store.BackupManifest{}, 0, err
	}
	m, err := store.VerifyBackup(tmp)
	if err != nil {
		return m, 0, fmt.Errorf("backup: the received file does not check out: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return m, 0, fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return m, 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Link(tmp.Name(), out); err != nil { // fails if out appeared meanwhile
		return m, 0, fmt.Errorf("backup: %w", err)
	}
	return m, size, nil
}

func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("log-level", "warn", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("usage: ktcn restore [-log-level L] FILE DIR (DIR must not exist or be empty)")
	}
	file, dir := fs.Arg(0), fs.Arg(1)
	log, err := newLogger(*level, stderr)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	var total int64
	if info, err := f.Stat(); err == nil {
		total = info.Size()
	}
	// The file is read once to check it and copy the stream aside, then
	// loaded: the line shows the first part (the load follows, unmetered).
	bar := newProgress(stderr, "restore: checking", "bytes", total)
	m, err := store.Restore(ctx, bar.Reader(f), store.Options{Dir: dir, Logger: log})
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s (taken %s, stream sha256 %s) into %s\n", file, m.CreatedAt.Format(time.RFC3339), m.StreamSHA256, dir)
	secrets := getenv("KTCN_SECRETS_DIR")
	fmt.Fprintf(stdout, "put the quota secret at %s and the audit key and checkpoints at %s, %s (or pass -secrets-dir, or -quota-secret, -audit-key, -audit-checkpoints)\n",
		defaultSecretPath(secrets, dir, ".quota-secret"), defaultSecretPath(secrets, dir, ".audit-key"), defaultSecretPath(secrets, dir, ".audit-checkpoints"))
	return nil
}
