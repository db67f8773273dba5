package inspection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/feed"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/scoring"
	"github.com/ktcn/ktcn/risk"
)

// The assignment lifecycle after the decision: open → accepted (by a
// named officer of the agency) → sampled (a strict lot's sample taken) →
// result recorded (results.go), a result corrected by its agency within
// the policy's window; an active assignment past its deadline escalated
// once (reassigned or flagged to customs); cancelled by an override.
// Every transition goes through the write path, audited under its
// principal, and is an event on the NSW feed.

// AssignmentQueueReader reads the agencies' queues from their indexes.
type AssignmentQueueReader interface {
	// Queue pages an agency's active assignments in q.Sort order.
	Queue(q QueueQuery) ([]Assignment, string, error)
	// DueBefore lists active assignments due before t, earliest first,
	// after the cursor, at most limit.
	DueBefore(t time.Time, after string, limit int) ([]Assignment, string, error)
}

// QueueQuery is a page of an agency's queue.
type QueueQuery struct {
	Agency    string
	Status    []AssignmentStatus // none: every active status
	Mode      Mode
	Check     string
	Overdue   bool
	DueBefore time.Time
	DueAfter  time.Time
	Sort      string // "due" or "created"
	After     string
	Limit     int
	Now       time.Time
}

// Matches reports whether a satisfies the query's filters (the indexes
// give the agency, the order and the due range).
func (q QueueQuery) Matches(a Assignment) bool {
	switch {
	case len(q.Status) > 0 && !slices.Contains(q.Status, a.Status),
		q.Mode != "" && a.Mode != q.Mode,
		q.Check != "" && a.Check != q.Check,
		q.Overdue && !a.DueAt.Before(q.Now),
		!q.DueBefore.IsZero() && !a.DueAt.Before(q.DueBefore),
		!q.DueAfter.IsZero() && a.DueAt.Before(q.DueAfter):
		return false
	}
	return true
}

// Current drops from a history the results a later correction superseded.
func Current(evs []Event) []Event {
	superseded := map[string]bool{}
	for _, e := range evs {
		if e.Supersedes != "" {
			superseded[e.Supersedes] = true
		}
	}
	if len(superseded) == 0 {
		return evs
	}
	return slices.DeleteFunc(evs, func(e Event) bool { return superseded[e.ID] })
}

// assignmentChange runs one transition of an agency's own assignment: fn
// changes it; the record is written and the entry names it.
func (s *Service) assignmentChange(ctx context.Context, by access.Principal, kind audit.Kind, id string,
	fn func(tx Tx, c *Change, a *Assignment, now time.Time) (changed bool, err error)) (Assignment, bool, error) {
	if err := by.Require(access.ActRecordResult); err != nil {
		return Assignment{}, false, err
	}
	now := s.clock.Now()
	var (
		out     Assignment
		changed bool
	)
	err := s.w.write(ctx, by, kind, now, func(tx Tx, c *Change) error {
		a, err := tx.Assignment(id)
		if errors.Is(err, fault.ErrNotFound) || err == nil && !by.MaySee(a.Agency) {
			return NotFound("no assignment %q", id)
		}
		if err != nil {
			return err
		}
		if changed, err = fn(tx, c, &a, now); err != nil || !changed {
			out = a
			return err
		}
		out = a
		c.Subjects = append([]string{"assignment:" + a.ID}, c.Subjects...)
		return tx.PutAssignment(a)
	})
	return out, changed, err
}

const maxOfficerLen = 200

// AcceptAssignment has a named officer of the agency take the inspection
// on. The same officer again changes nothing; another officer is a
// conflict: one officer answers for an inspection.
func (s *Service) AcceptAssignment(ctx context.Context, by access.Principal, id, officer string) (Assignment, bool, error) {
	officer = strings.TrimSpace(officer)
	if officer == "" || len(officer) > maxOfficerLen {
		return Assignment{}, false, Invalid("officer", "is required: the name of the officer who takes it on, at most %d bytes", maxOfficerLen)
	}
	return s.assignmentChange(ctx, by, audit.AssignmentAccepted, id, func(_ Tx, c *Change, a *Assignment, now time.Time) (bool, error) {
		switch {
		case a.AcceptedBy == officer:
			return false, nil
		case a.AcceptedBy != "":
			return false, Conflict("officer", "assignment %s was accepted by %s", a.ID, a.AcceptedBy)
		case a.Status != AssignmentOpen:
			return false, Conflict("assignment_id", "assignment %s is %s: only an open one is accepted", a.ID, a.Status)
		}
		a.Status, a.AcceptedBy, a.AcceptedAt = AssignmentAccepted, officer, &now
		emitAssignment(c, feed.AssignmentAccepted, *a, a.ID, "accepted")
		return true, nil
	})
}

// SampleInput is a strict lot's sample as the agency reports it.
type SampleInput struct {
	Laboratory string `json:"laboratory"`
	Reference  string `json:"reference"`
	TakenAt    string `json:"taken_at"`
}

// SampleAssignment records the sample of a strict lot (documents and
// sampling) taken by the officer who accepted it.
func (s *Service) SampleAssignment(ctx context.Context, by access.Principal, id string, in SampleInput) (Assignment, bool, error) {
	in.Laboratory, in.Reference = strings.TrimSpace(in.Laboratory), strings.TrimSpace(in.Reference)
	switch {
	case in.Laboratory == "" || len(in.Laboratory) > maxOfficerLen:
		return Assignment{}, false, Invalid("laboratory", "is required, at most %d bytes", maxOfficerLen)
	case in.Reference == "" || len(in.Reference) > maxOfficerLen:
		return Assignment{}, false, Invalid("reference", "is required, at most %d bytes", maxOfficerLen)
	}
	now := s.clock.Now()
	taken := now
	if in.TakenAt != "" {
		t, err := calendar.ParseTime("taken_at", in.TakenAt)
		if err != nil {
			return Assignment{}, false, err
		}
		if t.After(now.Add(s.skew)) {
			return Assignment{}, false, Invalid("taken_at", "%s is more than %s ahead of ktcn's clock", in.TakenAt, s.skew)
		}
		taken = t
	}
	return s.assignmentChange(ctx, by, audit.AssignmentSampled, id, func(_ Tx, _ *Change, a *Assignment, _ time.Time) (bool, error) {
		sample := Sample{Laboratory: in.Laboratory, Reference: in.Reference, TakenAt: taken, TakenBy: a.AcceptedBy}
		switch {
		case a.Check != "documents_and_sampling":
			return false, Conflict("assignment_id", "assignment %s is a %s check: no sample is taken", a.ID, a.Check)
		case a.Sample != nil && a.Sample.Laboratory == sample.Laboratory && a.Sample.Reference == sample.Reference:
			return false, nil
		case a.Status != AssignmentAccepted:
			return false, Conflict("assignment_id", "assignment %s is %s: a sample is taken once it is accepted", a.ID, a.Status)
		case beforeDecided(taken, a.CreatedAt):
			return false, Invalid("taken_at", "is before the lot was decided (%s)", a.CreatedAt.Format(time.RFC3339))
		}
		a.Status, a.Sample = AssignmentSampled, &sample
		return true, nil
	})
}

// CorrectionInput is an agency's correction of its own result.
type CorrectionInput struct {
	Outcome  string    `json:"outcome"`
	Findings []Finding `json:"findings"`
	Reason   string    `json:"reason"`
}

// CorrectResult replaces an agency's result within the policy's window.
// Both results are kept; the history, the risk counts and the goods' mode
// follow the corrected one (the mode is a function of history, so it is
// recomputed exactly).
func (s *Service) CorrectResult(ctx context.Context, by access.Principal, id string, in CorrectionInput) (Assignment, bool, error) {
	in.Reason = strings.TrimSpace(in.Reason)
	if in.Reason == "" || len(in.Reason) > maxReasonText {
		return Assignment{}, false, Invalid("reason", "is required, at most %d bytes", maxReasonText)
	}
	return s.assignmentChange(ctx, by, audit.ResultCorrected, id, func(tx Tx, c *Change, a *Assignment, now time.Time) (bool, error) {
		if a.Result == nil || a.Status != AssignmentClosed {
			return false, Conflict("assignment_id", "assignment %s has no result to correct", a.ID)
		}
		old := *a.Result
		r, err := parseResult(ResultInput{Outcome: in.Outcome, InspectedAt: old.InspectedAt.Format(time.RFC3339Nano), Findings: in.Findings,
			LabReport: old.LabReport}, now, s.skew)
		if err != nil {
			return false, err
		}
		r.RejectedQuantity = old.RejectedQuantity
		if r.Same(old) && old.CorrectionReason == in.Reason {
			return false, nil // this correction again
		}
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return false, err
		}
		if until := pol.AddWorkingDays(old.RecordedAt, pol.Workflow().CorrectionWorkingDays); now.After(until) {
			return false, Conflict("assignment_id", "assignment %s's result was recorded %s: the window to correct it ended %s",
				a.ID, old.RecordedAt.Format(time.RFC3339), until.Format(time.RFC3339))
		}
		r.InspectedAt, r.RecordedAt, r.Source, r.CorrectionReason = old.InspectedAt, now, by.Name, in.Reason
		a.Corrected = append(a.Corrected, old)
		a.Result = &r
		keys := s.keysOf(a.Goods)
		prevID := ResultEventID(a.ID)
		if n := len(a.Corrected); n > 1 {
			prevID = fmt.Sprintf("%s-c%d", ResultEventID(a.ID), n-1)
		}
		prev, err := tx.Event(prevID)
		if err != nil {
			return false, fmt.Errorf("result event %s: %w", prevID, err)
		}
		e := prev
		e.ID, e.Supersedes, e.Outcome, e.RecordedAt, e.Source = fmt.Sprintf("%s-c%d", ResultEventID(a.ID), len(a.Corrected)), prev.ID, r.Outcome, now, by.Name
		if err := tx.AddEvent(e); err != nil {
			return false, err
		}
		if old.Outcome != r.Outcome {
			// The ledger follows: the old outcome out, the new one in.
			dec, err := tx.Decision(a.DecisionID)
			if err != nil {
				return false, fmt.Errorf("decision %s of assignment %s: %w", a.DecisionID, a.ID, err)
			}
			c.ledgerResult(dec, *a, old.Outcome, -1)
			c.ledgerResult(dec, *a, r.Outcome, +1)
			subjects := riskSubjects(a.Goods, keys, a.ImporterTaxCode)
			if err := reclassify(tx, pol, subjects[:], risk.Observation{At: prev.At, Failed: old.Outcome == OutcomeFail, Ref: prev.ID}, r.Outcome == OutcomeFail); err != nil {
				return false, err
			}
		}
		history, _, state, err := goodsContext(tx, keys)
		if err != nil {
			return false, err
		}
		after, err := putGoodsState(tx, pol, state, a.Goods, keys.Goods, history, now)
		if err != nil {
			return false, err
		}
		emitCorrected(c, *a, old, after.Progress)
		emitModeChange(c, state, after, a.DeclarationID, a.LineNo, []string{a.Agency}, e.ID)
		c.Subjects = []string{"decision:" + a.DecisionID}
		return true, nil
	})
}

// reclassify moves a result's weight between passed and failed in every
// subject's risk counts.
func reclassify(tx interface {
	RiskReader
	RiskWriter
}, pol *policy.Policy, subjects []scoring.Record, o risk.Observation, failed bool) error {
	hl := pol.Risk.Params().HalfLife
	for _, sub := range subjects {
		rec, err := tx.RiskRecord(sub.Subject)
		if errors.Is(err, fault.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if rec.Counts, err = rec.Counts.Reclassify(o, failed, hl); err != nil {
			return fmt.Errorf("risk counts of %s: %w", sub.Subject, err)
		}
		if err := tx.PutRiskRecord(rec); err != nil {
			return err
		}
	}
	return nil
}

// EscalateOverdue escalates every active assignment past its deadline at
// now that has not been escalated: each once, in its own write, so the
// job run twice, or again after a restart, escalates nothing twice. It
// returns how many it escalated.
func (s *Service) EscalateOverdue(ctx context.Context, by access.Principal) (int, error) {
	if err := by.Require(access.ActAdminister); err != nil {
		return 0, err
	}
	now := s.clock.Now()
	n, after := 0, ""
	for {
		var page []Assignment
		err := s.reads.View(ctx, func(tx ReadTx) (err error) {
			page, after, err = tx.DueBefore(now, after, 500)
			return err
		})
		if err != nil {
			return n, err
		}
		for _, a := range page {
			if a.Escalation != nil {
				continue
			}
			ok, err := s.escalate(ctx, by, a.ID, now)
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
		if after == "" {
			return n, nil
		}
	}
}

// escalate escalates one assignment if it is still active, overdue and
// not escalated, as its transaction sees it.
func (s *Service) escalate(ctx context.Context, by access.Principal, id string, now time.Time) (bool, error) {
	done := false
	err := s.w.write(ctx, by, audit.AssignmentEscalated, now, func(tx Tx, c *Change) error {
		done = false
		a, err := tx.Assignment(id)
		if err != nil {
			return err
		}
		if !a.Status.Active() || a.Escalation != nil || !a.DueAt.Before(now) {
			return nil
		}
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return err
		}
		esc := Escalation{At: now, FromAgency: a.Agency, WasDue: a.DueAt,
			Reason: fmt.Sprintf("past its deadline %s", a.DueAt.In(calendar.Vietnam()).Format(time.RFC3339))}
		if pol.Workflow().Escalation == policy.EscalateReassign {
			to, ok, err := s.reassignTarget(tx, pol, a, now)
			if err != nil {
				return err
			}
			if ok {
				esc.ToAgency = to
			}
		}
		if esc.ToAgency != "" {
			esc.Reason += "; reassigned to " + esc.ToAgency
			a.Agency, a.Status, a.AcceptedBy, a.AcceptedAt, a.Sample = esc.ToAgency, AssignmentOpen, "", nil, nil
			a.DueAt, a.CapacityDay = Deadline(pol, a.Mode, now), pol.CapacityDay(now)
		} else {
			esc.Reason += "; customs is told"
		}
		a.Escalation = &esc
		if err := tx.PutAssignment(a); err != nil {
			return err
		}
		agencies := []string{esc.FromAgency}
		if esc.ToAgency != "" {
			agencies = append(agencies, esc.ToAgency)
		}
		emitEscalated(c, a, agencies)
		c.Subjects = []string{"assignment:" + a.ID}
		done = true
		return nil
	})
	return done, err
}

// Queue pages an agency's queue: an agency reads its own (agency empty
// means the caller's), customs and auditors any.
func (s *Service) Queue(ctx context.Context, by access.Principal, q QueueQuery) ([]Assignment, string, error) {
	if err := by.Require(access.ActReadAssignments); err != nil {
		return nil, "", err
	}
	if q.Agency == "" && by.Role == access.RoleAgency {
		q.Agency = by.Agency
	}
	if q.Agency == "" {
		return nil, "", Invalid("agency", "is required")
	}
	if !by.MaySee(q.Agency) {
		return nil, "", NotFound("no agency %q", q.Agency)
	}
	switch q.Sort {
	case "":
		q.Sort = "due"
	case "due", "created":
	default:
		return nil, "", Invalid("sort", "must be due or created, got %q", q.Sort)
	}
	for _, st := range q.Status {
		if !st.Active() {
			return nil, "", Invalid("status", "must be open, accepted or sampled (the queue holds what is still to do), got %q", st)
		}
	}
	if q.Mode != "" && !slices.Contains([]Mode{ModeStrict, ModeNormal, ModeReduced, ModeExempt}, q.Mode) {
		return nil, "", Invalid("mode", "unknown mode %q", q.Mode)
	}
	if q.Check != "" && q.Check != "documents" && q.Check != "documents_and_sampling" {
		return nil, "", Invalid("check", "must be documents or documents_and_sampling, got %q", q.Check)
	}
	if q.Limit == 0 {
		q.Limit = 50
	}
	if q.Limit < 1 || q.Limit > 1000 {
		return nil, "", Invalid("limit", "must be between 1 and 1000, got %d", q.Limit)
	}
	q.Now = s.clock.Now()
	var (
		list []Assignment
		next string
	)
	err := s.reads.View(ctx, func(tx ReadTx) error {
		if _, err := tx.Agency(q.Agency); err != nil {
			if errors.Is(err, fault.ErrNotFound) {
				return Invalid("agency", "unknown agency %q", q.Agency)
			}
			return err
		}
		var err error
		list, next, err = tx.Queue(q)
		return err
	})
	if list == nil {
		list = []Assignment{}
	}
	return list, next, err
}

// emitAssignment: a transition of an assignment, read by its agency.
func emitAssignment(c *Change, t feed.Type, a Assignment, cause ...string) {
	if !c.emitting {
		return
	}
	p := assignmentOnly(a)
	p.DueAt, p.Inspected = timep(a.DueAt), boolp(true)
	e := newEvent(t, c.At, a.DeclarationID, a.LineNo, p, cause...)
	e.Agencies = []string{a.Agency}
	c.emit(e)
}

// emitEscalated: an inspection past its deadline, reassigned or flagged.
func emitEscalated(c *Change, a Assignment, agencies []string) {
	if !c.emitting || a.Escalation == nil {
		return
	}
	p := assignmentOnly(a)
	p.DueAt, p.Inspected, p.Reason = timep(a.DueAt), boolp(true), a.Escalation.Reason
	e := newEvent(feed.AssignmentEscalated, c.At, a.DeclarationID, a.LineNo, p, a.ID, "escalated")
	e.Agencies = agencies
	c.emit(e)
}

// emitCorrected: an agency corrected its result.
func emitCorrected(c *Change, a Assignment, old Result, progress string) {
	if !c.emitting || a.Result == nil {
		return
	}
	p := resultPayload(a, progress)
	p.Reason = a.Result.CorrectionReason
	e := newEvent(feed.ResultCorrected, c.At, a.DeclarationID, a.LineNo, p, a.ID, fmt.Sprint(len(a.Corrected)), string(old.Outcome))
	e.Agencies = []string{a.Agency}
	c.emit(e)
}

// reassignTarget is another agency designated for the lot's goods to take
// an overdue inspection over: the first after its current agency, in the
// route's preference, with room on today's working day (any, without a
// capacity section); the chosen agency's capacity counts it. None: customs
// is told.
func (s *Service) reassignTarget(tx Tx, pol *policy.Policy, a Assignment, now time.Time) (string, bool, error) {
	listing, ok := pol.Lookup(a.Procedure, a.Goods.HSCode)
	if !ok {
		return "", false, nil
	}
	designated, ok := pol.Designated(listing, a.Goods.HSCode)
	if !ok {
		return "", false, nil
	}
	day := pol.CapacityDay(now)
	for _, agency := range designated {
		if agency == a.Agency {
			continue
		}
		if !routesByCapacity(pol) {
			return agency, true, nil
		}
		c, err := tx.CapacityCounter(agency, day, a.Check)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			c = CapacityCounter{Agency: agency, Day: day, Check: a.Check}
		case err != nil:
			return "", false, err
		}
		if n, limited := pol.DailyCapacity(agency, a.Check); limited && c.Routed >= int64(n) {
			continue
		}
		c.Routed++
		return agency, true, tx.PutCapacityCounter(c)
	}
	return "", false, nil
}
