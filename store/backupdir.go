package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ktcn/ktcn/inspection"
)

// BackupDir takes backups into a directory beside the data dir and keeps
// the newest of them (inspection.BackupTarget).
type BackupDir struct {
	db   *DB
	dir  string
	keep int
	rate int64
}

var _ inspection.BackupTarget = (*BackupDir)(nil)

const (
	backupPrefix = "ktcn-"
	backupSuffix = ".backup"
)

// NewBackupDir writes db's backups into dir, keeping the newest keep of
// them (0: all), reading the store at most rate bytes a second (0:
// unbounded). dir must not be inside dataDir: a backup inside the data
// dir would be lost with it, and copied into every later backup.
func NewBackupDir(db *DB, dataDir, dir string, keep int, rate int64) (*BackupDir, error) {
	if dir == "" || keep < 0 || rate < 0 {
		return nil, errors.New("store: backup dir: need a directory, keep >= 0 and rate >= 0")
	}
	absData, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(absData, absDir); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return nil, fmt.Errorf("store: backup dir %s is inside the data dir %s: put it beside it", dir, dataDir)
	}
	return &BackupDir{db: db, dir: dir, keep: keep, rate: rate}, nil
}

// Dir is the backup directory.
func (b *BackupDir) Dir() string { return b.dir }

// CreateBackup writes a new backup file (synced, then renamed into place,
// so a file with the backup name is always whole) and prunes the oldest.
func (b *BackupDir) CreateBackup(ctx context.Context) (inspection.BackupInfo, error) {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return inspection.BackupInfo{}, fmt.Errorf("store: backup dir: %w", err)
	}
	tmp, err := os.CreateTemp(b.dir, ".ktcn-backup-*")
	if err != nil {
		return inspection.BackupInfo{}, fmt.Errorf("store: backup dir: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	m, n, err := b.db.BackupTo(ctx, tmp, b.rate)
	if err != nil {
		return inspection.BackupInfo{}, err
	}
	if err := tmp.Sync(); err != nil {
		return inspection.BackupInfo{}, fmt.Errorf("store: backup: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return inspection.BackupInfo{}, fmt.Errorf("store: backup: %w", err)
	}
	name := backupPrefix + m.CreatedAt.UTC().Format("20060102T150405.000000000Z") + backupSuffix
	if err := os.Rename(tmp.Name(), filepath.Join(b.dir, name)); err != nil {
		return inspection.BackupInfo{}, fmt.Errorf("store: backup: %w", err)
	}
	syncDir(b.dir)
	if _, err := b.Prune(); err != nil {
		b.db.log.Warn().Err(err).Str("dir", b.dir).Msg("store: pruning old backups failed")
	}
	return inspection.BackupInfo{File: name, Size: n, SHA256: m.StreamSHA256, CreatedAt: m.CreatedAt}, nil
}

// WriteBackup streams a backup file to w; its stream is staged in the
// backup directory while it is hashed.
func (b *BackupDir) WriteBackup(ctx context.Context, w io.Writer) (inspection.BackupInfo, error) {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return inspection.BackupInfo{}, fmt.Errorf("store: backup dir: %w", err)
	}
	m, n, err := b.db.Backup(ctx, w, b.dir, b.rate)
	if err != nil {
		return inspection.BackupInfo{}, err
	}
	return inspection.BackupInfo{Size: n, SHA256: m.StreamSHA256, CreatedAt: m.CreatedAt}, nil
}

// Prune removes all but the newest keep backup files (none when keep is
// 0) and returns the names removed. Names sort by creation time.
func (b *BackupDir) Prune() ([]string, error) {
	if b.keep == 0 {
		return nil, nil
	}
	names, err := b.List()
	if err != nil {
		return nil, err
	}
	if len(names) <= b.keep {
		return nil, nil
	}
	old := names[:len(names)-b.keep]
	for _, n := range old {
		if err := os.Remove(filepath.Join(b.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store: prune backups: %w", err)
		}
	}
	return old, nil
}

// List names the backup files in the directory, oldest first.
func (b *BackupDir) List() ([]string, error) {
	ents, err := os.ReadDir(b.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list backups: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
