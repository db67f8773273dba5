package inspection

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/risk"
)

// Service runs ktcn's use cases over a Store under one active policy.
type Service struct {
	store  Store
	policy *Policy
	clock  Clock
	keys   QuotaKeys
	log    zerolog.Logger
	audit  AuditObserver
	scores scoreMemo
}

// Config wires a Service; every field is required but Logger,
// AuditObserver, and QuotaKeys when the policy samples reduced lots.
type Config struct {
	Store     Store
	Policy    *Policy
	Clock     Clock
	QuotaKeys QuotaKeys
	Logger    zerolog.Logger
	// AuditObserver hears of every audit head the service commits (the
	// signed checkpoints); nil for none.
	AuditObserver AuditObserver
}

// NewService checks the wiring and returns a Service.
func NewService(c Config) (*Service, error) {
	if c.Store == nil || c.Policy == nil || c.Clock == nil {
		return nil, errors.New("inspection: NewService needs a store, a policy and a clock")
	}
	if c.Policy.Reduced.Sampling.Enabled && c.QuotaKeys == nil {
		return nil, errors.New("inspection: the policy samples reduced lots, so NewService needs quota keys")
	}
	return &Service{store: c.Store, policy: c.Policy, clock: c.Clock, keys: c.QuotaKeys, log: c.Logger, audit: c.AuditObserver}, nil
}

// committed tells the observer of an audit head once its transaction has
// committed (head.Seq is 0 when the use case wrote nothing).
func (s *Service) committed(head AuditHead) {
	if head.Seq > 0 && s.audit != nil {
		s.audit.AuditCommitted(head)
	}
}

// Policy is the active policy.
func (s *Service) Policy() *Policy { return s.policy }

// Start stores the active policy document beside the decisions that will
// cite it, and reports routed agencies that the store does not know.
func (s *Service) Start(ctx context.Context) (missingAgencies []string, err error) {
	doc, err := s.policy.Document()
	if err != nil {
		return nil, fmt.Errorf("encode policy %s: %w", s.policy.Version, err)
	}
	now := s.clock.Now()
	var head AuditHead
	err = s.store.Update(ctx, func(raw Tx) error {
		missingAgencies, head = nil, AuditHead{}
		tx := audited(raw)
		old, err := tx.Policy(s.policy.Version)
		switch {
		case errors.Is(err, ErrNotFound):
			if err := tx.PutPolicy(s.policy.Version, doc); err != nil {
				return err
			}
			// ktcn stores the policy it was configured with on its own
			// authority; activation by a second person is the policy
			// lifecycle's entry when it lands.
			if head, err = tx.append(now, ActorSystem, AuditPolicyStored, "policy:"+s.policy.Version); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if prev, perr := ParsePolicy(old); perr == nil && prev.Digest() != s.policy.Digest() {
				// A version label is a promise that the rules it names never
				// change; decisions already cite the stored content.
				return Conflict("version", "policy %s is stored with different content (digest %s, now %s): give the new rules a new version",
					s.policy.Version, prev.Digest(), s.policy.Digest())
			}
		}
		if s.policy.Reduced.Sampling.Enabled {
			if err := checkQuotaKeys(tx, s.keys); err != nil {
				return err
			}
		}
		for _, id := range s.policy.RoutedAgencies() {
			if _, err := tx.Agency(id); errors.Is(err, ErrNotFound) {
				missingAgencies = append(missingAgencies, id)
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.committed(head)
	}
	return missingAgencies, err
}

// DecideResult is what Decide returns: the decisions, one per line in
// line order, and whether they were decided earlier (a resubmission).
type DecideResult struct {
	Decisions []Decision
	Replayed  bool
}

// Decide validates a declaration and decides every line in one atomic
// write: decisions, assignments, goods state and the declaration record,
// or nothing. The same declaration again returns the stored decisions and
// writes nothing; the same ID with other content is a conflict.
func (s *Service) Decide(ctx context.Context, in DeclarationInput, source string) (DecideResult, error) {
	d, err := ParseDeclaration(s.policy, in)
	if err != nil {
		return DecideResult{}, err
	}
	now := s.clock.Now() // once, so a retried transaction decides at the same instant
	var (
		out    DecideResult
		opened []QuotaPeriod
		head   AuditHead
	)
	err = s.store.Update(ctx, func(raw Tx) error {
		out, opened, head = DecideResult{}, nil, AuditHead{}
		tx := audited(raw)
		rec, err := tx.Declaration(d.ID)
		if err == nil {
			if rec.Digest != d.Digest {
				return Conflict("declaration_id", "declaration %s was already submitted with different content", d.ID)
			}
			out.Replayed = true
			for _, id := range rec.DecisionIDs {
				dec, err := tx.Decision(id)
				if err != nil {
					return fmt.Errorf("load decision %s of declaration %s: %w", id, d.ID, err)
				}
				out.Decisions = append(out.Decisions, dec)
			}
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		rec = DeclarationRecord{ID: d.ID, ImporterTaxCode: d.ImporterTaxCode, Digest: d.Digest, DecidedAt: now}
		for _, l := range d.Lines {
			dec, err := s.decideLine(tx, d, l, now, &opened)
			if err != nil {
				return fmt.Errorf("line %d: %w", l.LineNo, err)
			}
			rec.DecisionIDs = append(rec.DecisionIDs, dec.ID)
			out.Decisions = append(out.Decisions, dec)
		}
		if err := tx.PutDeclaration(rec); err != nil {
			return err
		}
		subjects := []string{"declaration:" + d.ID}
		for _, p := range opened {
			subjects = append(subjects, "quota_period:"+p.Period)
		}
		head, err = tx.append(now, source, AuditDeclarationDecided, subjects...)
		return err
	})
	if err != nil {
		return DecideResult{}, err
	}
	s.committed(head)
	for _, p := range opened {
		// The commitment goes to the log as well as the store, so a later
		// rewrite of the stored one is caught by comparing the two.
		s.log.Info().Str("period", p.Period).Str("commitment", p.Commitment).Msg("quota period opened")
	}
	if !out.Replayed {
		s.log.Info().Str("declaration_id", d.ID).Int("lines", len(d.Lines)).Str("source", source).Msg("declaration decided")
	}
	return out, nil
}

func (s *Service) decideLine(tx Tx, d Declaration, l Line, now time.Time, opened *[]QuotaPeriod) (Decision, error) {
	gk := l.Goods.Key()
	history, certs, state, err := s.goodsContext(tx, l.Goods, gk)
	if err != nil {
		return Decision{}, err
	}
	lot := Lot{ImporterTaxCode: d.ImporterTaxCode, Procedure: l.Procedure, Exemption: l.Exemption,
		Certificates: append(append([]Certificate{}, l.Certificates...), certs...)}
	ev := Evaluate(s.policy, history, lot, now)
	// The goods-state snapshot is the history-only mode; when nothing about
	// this lot (certificate, exemption, the quality regime's importer term)
	// can move it, it is this evaluation, and the decision path need not
	// replay the history a second time.
	var snap *Evaluation
	if len(lot.Certificates) == 0 && lot.Exemption == "" && lot.Procedure != ProcedureQuality {
		base := ev
		snap = &base
	}
	if s.policy.Risk.ScoreDecisions {
		scores, err := s.scoreLot(tx, l.Goods, gk, d.ImporterTaxCode, history, now)
		if err != nil {
			return Decision{}, err
		}
		s.applyScoreRules(&ev, scores)
		ev.Explanation.Scores = scores
	}
	dec := Decision{
		ID: DecisionID(d.ID, l.LineNo), DeclarationID: d.ID, LineNo: l.LineNo, ImporterTaxCode: d.ImporterTaxCode,
		Goods: l.Goods, GoodsKey: gk, Procedure: l.Procedure, Mode: ev.Mode, PolicyVersion: s.policy.Version,
		DecidedAt: now, Explanation: ev.Explanation, Reason: ev.Explanation.Reason,
	}
	switch ev.Mode {
	case ModeStrict, ModeNormal:
		dec.Inspect = true
	case ModeReduced:
		if !s.policy.Reduced.Sampling.Enabled {
			dec.Reason += "; random sampling disabled by policy, not inspected"
			break
		}
		q, err := s.sample(tx, d, l, goodsRisk(ev.Explanation.Scores), now, opened)
		if err != nil {
			return Decision{}, fmt.Errorf("random check: %w", err)
		}
		dec.Quota, dec.Inspect = &q, q.Chosen
		if q.Chosen {
			dec.Reason += "; selected for a random documents check"
		} else {
			dec.Reason += "; not selected for a random check"
		}
	}
	if dec.Inspect {
		listing, _ := s.policy.Lookup(l.Procedure, l.Goods.HSCode) // ParseDeclaration checked it is listed
		agency, ok := s.policy.Route(listing, l.Goods.HSCode)
		if !ok {
			return Decision{}, fmt.Errorf("no route for %s %s: %w", l.Procedure, l.Goods.HSCode, errors.New("policy routing incomplete"))
		}
		check := "documents"
		if ev.Mode == ModeStrict {
			check = "documents_and_sampling"
		}
		a := Assignment{
			ID: AssignmentID(d.ID, l.LineNo), DecisionID: dec.ID, DeclarationID: d.ID, LineNo: l.LineNo,
			ImporterTaxCode: d.ImporterTaxCode, Agency: agency, Mode: ev.Mode, Check: check, Goods: l.Goods,
			GoodsKey: gk, Procedure: l.Procedure, CreatedAt: now, DueAt: s.policy.Deadline(ev.Mode, now), Status: AssignmentOpen,
		}
		if err := tx.PutAssignment(a); err != nil {
			return Decision{}, err
		}
		dec.Agency, dec.AssignmentID = agency, a.ID
	}
	if err := tx.PutDecision(dec); err != nil {
		return Decision{}, err
	}
	state.Lots++
	return dec, s.putGoodsState(tx, state, l.Goods, gk, history, now, snap)
}

// goodsRisk is the goods' posterior violation rate among a decision's
// scores, 0 when the goods was not scored.
func goodsRisk(scores []risk.Score) float64 {
	for _, sc := range scores {
		if sc.Subject.Kind == risk.KindGoods {
			return sc.Mean
		}
	}
	return 0
}

// goodsContext reads what a decision on g depends on: its history (own
// events and alerts on its manufacturer and heading × origin), the
// manufacturer's certificates on record, and the stored goods state. The
// state is read even though it is only a snapshot so that two transactions
// touching the same goods conflict and one retries, rather than leaving a
// stale snapshot.
func (s *Service) goodsContext(tx ReadTx, g Goods, gk Key) ([]Event, []Certificate, GoodsState, error) {
	var history []Event
	subjects := [...]Subject{
		{SubjectGoods, gk},
		{SubjectManufacturer, ManufacturerKey(g.Manufacturer, g.Origin)},
		{SubjectHeadingOrigin, HeadingOriginKey(g.HSCode, g.Origin)},
	}
	for _, sub := range subjects {
		evs, err := tx.Events(sub)
		if err != nil {
			return nil, nil, GoodsState{}, fmt.Errorf("history of %s %s: %w", sub.Kind, sub.Key, err)
		}
		history = append(history, evs...)
	}
	var certs []Certificate
	m, err := tx.Manufacturer(subjects[1].Key)
	switch {
	case err == nil:
		certs = m.Certificates
	case !errors.Is(err, ErrNotFound):
		return nil, nil, GoodsState{}, err
	}
	state, err := tx.GoodsState(gk)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, nil, GoodsState{}, err
	}
	return history, certs, state, nil
}

// putGoodsState refreshes the goods' snapshot from its history alone (no
// lot's certificate or exemption).
func (s *Service) putGoodsState(tx Tx, st GoodsState, g Goods, gk Key, history []Event, now time.Time, snap *Evaluation) error {
	if snap == nil {
		ev := Evaluate(s.policy, history, Lot{}, now)
		snap = &ev
	}
	ev := *snap
	st.Key, st.Goods, st.Mode, st.Rule, st.Progress = gk, g, ev.Mode, ev.Explanation.Rule, ev.Explanation.Progress
	st.Results = 0
	for _, e := range history {
		if e.Kind == EventResult && e.Subject.Kind == SubjectGoods {
			st.Results++
		}
	}
	st.PolicyVersion, st.UpdatedAt = s.policy.Version, now
	return tx.PutGoodsState(st)
}

// DecisionID is the decision's ID for a lot: derived from the lot ID, so a
// retry can never mint a second decision.
func DecisionID(declarationID string, lineNo int) string {
	k := hashKey("ktcn/decision/v1", declarationID, strconv.Itoa(lineNo))
	return "dec_" + k.String()[:24]
}

// AssignmentID is the assignment's ID for a lot.
func AssignmentID(declarationID string, lineNo int) string {
	k := hashKey("ktcn/assignment/v1", declarationID, strconv.Itoa(lineNo))
	return "asg_" + k.String()[:24]
}

// Decision returns a stored decision.
func (s *Service) Decision(ctx context.Context, id string) (Decision, error) {
	var d Decision
	err := s.store.View(ctx, func(tx ReadTx) (err error) {
		d, err = tx.Decision(id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return d, NotFound("no decision %q", id)
	}
	return d, err
}

// Assignment returns a stored assignment.
func (s *Service) Assignment(ctx context.Context, id string) (Assignment, error) {
	var a Assignment
	err := s.store.View(ctx, func(tx ReadTx) (err error) {
		a, err = tx.Assignment(id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return a, NotFound("no assignment %q", id)
	}
	return a, err
}

// OpenAssignments lists an agency's open inspections, oldest first.
func (s *Service) OpenAssignments(ctx context.Context, agency, after string, limit int) ([]Assignment, string, error) {
	var (
		list []Assignment
		next string
	)
	err := s.store.View(ctx, func(tx ReadTx) error {
		if _, err := tx.Agency(agency); err != nil {
			if errors.Is(err, ErrNotFound) {
				return Invalid("agency", "unknown agency %q", agency)
			}
			return err
		}
		var err error
		list, next, err = tx.OpenAssignments(agency, after, limit)
		return err
	})
	return list, next, err
}

// GoodsState returns the stored snapshot of a goods' mode.
func (s *Service) GoodsState(ctx context.Context, k Key) (GoodsState, error) {
	var st GoodsState
	err := s.store.View(ctx, func(tx ReadTx) (err error) {
		st, err = tx.GoodsState(k)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return st, NotFound("no goods %s", k)
	}
	return st, err
}
