package inspection

import (
	"context"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
)

// VerifyAudit checks the audit log in one snapshot; see VerifyAuditTx.
func (s *Service) VerifyAudit(ctx context.Context, by access.Principal, checkpoints []audit.Checkpoint) (audit.Report, error) {
	if err := by.Require(access.ActReadAudit); err != nil {
		return audit.Report{}, err
	}
	var rep audit.Report
	err := s.reads.View(ctx, func(tx ReadTx) (err error) {
		rep, err = audit.Verify(tx, checkpoints)
		return err
	})
	return rep, err
}
