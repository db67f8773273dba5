package inspection

import (
	"context"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
)

// VerifyAudit checks the audit log in one snapshot (audit.Verify).
func (s *Service) VerifyAudit(ctx context.Context, by access.Principal, checkpoints []audit.Checkpoint) (audit.Report, error) {
	return s.VerifyAuditProgress(ctx, by, checkpoints, nil)
}

// VerifyAuditProgress is VerifyAudit reporting its walk to progress
// (audit.VerifyProgress): `ktcn verify audit` takes seconds per hundred
// thousand entries, and a terminal should see it move.
func (s *Service) VerifyAuditProgress(ctx context.Context, by access.Principal, checkpoints []audit.Checkpoint,
	progress func(done, total uint64)) (audit.Report, error) {
	if err := by.Require(access.ActReadAudit); err != nil {
		return audit.Report{}, err
	}
	var rep audit.Report
	err := s.reads.View(ctx, func(tx ReadTx) (err error) {
		rep, err = audit.VerifyProgress(tx, checkpoints, progress)
		return err
	})
	return rep, err
}
