package inspection

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/access"
)

// Backups: admins (and the operator's jobs) take online backups of the
// store while the service runs. The domain decides who may; the store
// writes them (store.BackupDir implements BackupTarget).

// BackupInfo describes a backup file: its name in the backup directory
// (empty for a streamed backup), its size, and the SHA-256 of its badger
// stream, which its manifest carries and restore checks.
type BackupInfo struct {
	File      string    `json:"file,omitempty"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at"`
}

// BackupTarget takes backups holding everything committed before they
// began.
type BackupTarget interface {
	// CreateBackup writes a backup file into the backup directory (and
	// prunes the oldest beyond those kept).
	CreateBackup(ctx context.Context) (BackupInfo, error)
	// WriteBackup writes a backup file to w.
	WriteBackup(ctx context.Context, w io.Writer) (BackupInfo, error)
}

// Backups is the backup use case.
type Backups struct {
	target BackupTarget
	log    zerolog.Logger
}

// NewBackups wires the backup use case over target.
func NewBackups(target BackupTarget, log zerolog.Logger) (*Backups, error) {
	if target == nil {
		return nil, errors.New("inspection: NewBackups needs a target")
	}
	return &Backups{target: target, log: log}, nil
}

// Create writes a backup into the backup directory.
func (b *Backups) Create(ctx context.Context, p access.Principal) (BackupInfo, error) {
	if err := p.Require(access.ActBackup); err != nil {
		return BackupInfo{}, err
	}
	info, err := b.target.CreateBackup(ctx)
	if err != nil {
		b.log.Error().Err(err).Str("by", p.Name).Msg("backup failed")
		return BackupInfo{}, err
	}
	b.log.Info().Str("by", p.Name).Str("file", info.File).Int64("size", info.Size).Str("sha256", info.SHA256).Msg("backup taken")
	return info, nil
}

// Stream writes a backup to w, for a client that keeps it itself. Call
// p.Require(access.ActBackup) first when w is a response whose status
// is not yet sent.
func (b *Backups) Stream(ctx context.Context, p access.Principal, w io.Writer) (BackupInfo, error) {
	if err := p.Require(access.ActBackup); err != nil {
		return BackupInfo{}, err
	}
	info, err := b.target.WriteBackup(ctx, w)
	if err != nil {
		b.log.Error().Err(err).Str("by", p.Name).Msg("streamed backup failed")
		return BackupInfo{}, err
	}
	b.log.Info().Str("by", p.Name).Int64("size", info.Size).Str("sha256", info.SHA256).Msg("backup streamed")
	return info, nil
}
