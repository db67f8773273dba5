package inspection

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
)

// AuditLog pages through the chain for auditors: at most limit entries
// after seq after, and the head.
func (s *Service) AuditLog(ctx context.Context, by access.Principal, after uint64, limit int) ([]audit.Entry, audit.Head, error) {
	if err := by.Require(access.ActReadAudit); err != nil {
		return nil, audit.Head{}, err
	}
	if after > math.MaxInt64 {
		// No chain gets that long; after+1 would wrap to the start.
		return nil, audit.Head{}, Invalid("after", "must be an entry sequence number up to %d, got %d", uint64(math.MaxInt64), after)
	}
	if limit < 1 || limit > 1000 {
		return nil, audit.Head{}, Invalid("limit", "must be between 1 and 1000, got %d", limit)
	}
	var (
		out  []audit.Entry
		head audit.Head
	)
	err := s.reads.View(ctx, func(tx ReadTx) error {
		out = out[:0]
		h, err := tx.AuditHead()
		if errors.Is(err, fault.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		head = h
		return tx.AuditEntries(after+1, func(seq uint64, e audit.Entry, bad error) error {
			if bad != nil {
				return fmt.Errorf("audit entry %d: %w", seq, bad)
			}
			out = append(out, e)
			if len(out) == limit {
				return errStopScan
			}
			return nil
		})
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	return out, head, err
}

// errStopScan ends a scan early; never returned to callers.
var errStopScan = errors.New("stop scan")

// ChainHead reads the audit chain's head (the zero head for an empty log),
// for the checkpointer's last checkpoint at shutdown.
func ChainHead(ctx context.Context, r Reader) (audit.Head, error) {
	var head audit.Head
	err := r.View(ctx, func(tx ReadTx) (err error) {
		head, err = tx.AuditHead()
		return err
	})
	if errors.Is(err, fault.ErrNotFound) {
		return audit.Head{}, nil
	}
	return head, err
}
