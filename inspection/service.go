package inspection

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	// The same bytes as encoding/json (the store's format) at a third of
	// its cost: see store/encoding.go.
	gojson "github.com/goccy/go-json"
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
	inputs inputCache
	// prep counts declarations committed from their prepared evaluation
	// and those evaluated again inside the write transaction.
	prep struct{ used, recomputed atomic.Int64 }
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
//
// The work is split so that the single committer (group commit: every
// Update runs one after another) does only what must be serial. First, in
// the caller's goroutine on a read snapshot, prepareDecision reads each
// lot's history and risk counts, evaluates the mode and scores the lot.
// Then the write transaction checks that no input it read has moved since
// (the store's input versions) and, if so, draws the quota, writes the
// records and appends the audit entry; if any input moved, or the store
// cannot tell, every line is evaluated again inside the transaction, as if
// nothing had been prepared. Either way the same code computes the same
// decision from the same inputs.
func (s *Service) Decide(ctx context.Context, in DeclarationInput, source string) (DecideResult, error) {
	d, err := ParseDeclaration(s.policy, in)
	if err != nil {
		return DecideResult{}, err
	}
	now := s.clock.Now() // once, so a retried transaction decides at the same instant
	keys := make([]goodsKeys, len(d.Lines))
	for i, l := range d.Lines {
		keys[i] = keysOf(l.Goods)
	}
	prep := s.prepareDecision(ctx, d, keys, now)
	var (
		out    DecideResult
		opened []QuotaPeriod
		head   AuditHead
	)
	err = s.store.Update(ctx, func(raw Tx) error {
		out, opened, head = DecideResult{}, nil, AuditHead{}
		if r, ok := raw.(ReadReuser); ok && prep != nil && prep.reads != nil {
			r.Reuse(prep.reads)
		}
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
		lots, err := prep.current(raw)
		if err != nil {
			return err
		}
		rec = DeclarationRecord{ID: d.ID, ImporterTaxCode: d.ImporterTaxCode, Digest: d.Digest, DecidedAt: now}
		if lots != nil {
			s.prep.used.Add(1)
		} else {
			s.prep.recomputed.Add(1)
		}
		for i, l := range d.Lines {
			var (
				e     lotEval
				state *GoodsState
			)
			if lots != nil {
				e = lots[i]
			} else {
				st := GoodsState{}
				if e, st, err = s.evalLot(tx, d, l, keys[i], now); err != nil {
					return fmt.Errorf("line %d: %w", l.LineNo, err)
				}
				state = &st
			}
			dec, err := s.commitLot(tx, d, l, now, e, state, &opened)
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

// lotEval is what deciding a lot computes before the quota draw: the mode
// with its explanation and scores, and the goods' history-only snapshot.
// It depends only on the lot, the policy, the instant and the inputs the
// store versions (InputVersioner), never on the goods state or the quota.
type lotEval struct {
	gk      Key
	ev      Evaluation // the lot's mode, score rules applied
	snap    Evaluation // the goods' mode from history alone (goods state)
	results int        // results in the goods' own history
	// drafted is the decision and assignment made and encoded ahead, when
	// no quota draw can change them (nil otherwise: the committer drafts
	// them, and the store encodes them).
	drafted *draftedLot
}

// draftedLot is a lot's decision and assignment (nil when not inspected)
// as draft made them ahead of the transaction, with their encodings.
type draftedLot struct {
	dec            Decision
	asg            *Assignment
	decEnc, asgEnc encodedRecord
}

// preparedDecision is a declaration evaluated on a snapshot, and the
// input versions that snapshot held.
type preparedDecision struct {
	lots     []lotEval
	versions map[risk.Subject]uint64
	// reads are the snapshot's point reads, for the write transaction to
	// reuse where unchanged (nil when the store does not read ahead).
	reads SnapshotReads
}

// lotInputs are the version subjects a lot's evaluation reads: the
// subjects of its history and risk scores, and the priors.
func (s *Service) lotInputs(k goodsKeys, hsCode, importer string) []risk.Subject {
	subs := lotSubjects(k, hsCode, importer)
	out := make([]risk.Subject, 0, len(subs)+1)
	for _, r := range subs {
		out = append(out, r.Subject)
	}
	return append(out, PriorsSubject())
}

// prepareDecision evaluates every line of d on a read snapshot, outside
// the committer. It returns nil when it cannot help (the store has no
// input versions, or a read failed): the write transaction then does all
// the work, and reports any error. A declaration already stored also
// returns nil: the transaction replays it.
func (s *Service) prepareDecision(ctx context.Context, d Declaration, keys []goodsKeys, now time.Time) *preparedDecision {
	var p *preparedDecision
	prepare := func(tx ReadTx) error {
		iv, ok := tx.(InputVersioner)
		if !ok {
			return nil
		}
		// Read what the write transaction will read again, so that a store
		// that reads ahead (ReadAheadStore) can answer it from here: the
		// declaration (a resubmission is left to the transaction), and the
		// input versions and goods states below.
		if _, err := tx.Declaration(d.ID); !errors.Is(err, ErrNotFound) {
			return nil
		}
		prep := &preparedDecision{lots: make([]lotEval, 0, len(d.Lines)), versions: map[risk.Subject]uint64{}}
		for i, l := range d.Lines {
			for _, sub := range s.lotInputs(keys[i], l.Goods.HSCode, d.ImporterTaxCode) {
				if _, seen := prep.versions[sub]; seen {
					continue
				}
				v, err := iv.InputVersion(sub)
				if err != nil {
					return nil
				}
				prep.versions[sub] = v
			}
			e, _, err := s.evalLot(cachedReadTx{ReadTx: tx, c: &s.inputs, versions: prep.versions}, d, l, keys[i], now)
			if err != nil {
				return nil
			}
			s.encodeDraft(d, l, now, &e)
			prep.lots = append(prep.lots, e)
		}
		p = prep
		return nil
	}
	if ra, ok := s.store.(ReadAheadStore); ok {
		reads, _ := ra.ViewAhead(ctx, prepare)
		if p != nil {
			p.reads = reads
		}
		return p
	}
	_ = s.store.View(ctx, prepare)
	return p
}

// current returns the prepared lots if every input version they were
// evaluated under still holds in tx, else nil (evaluate them again).
func (p *preparedDecision) current(tx Tx) ([]lotEval, error) {
	if p == nil {
		return nil, nil
	}
	iv, ok := tx.(InputVersioner)
	if !ok {
		return nil, nil
	}
	for sub, v := range p.versions {
		now, err := iv.InputVersion(sub)
		if err != nil {
			return nil, err
		}
		if now != v {
			return nil, nil
		}
	}
	return p.lots, nil
}

// evalLot reads what a decision on l depends on and evaluates it: the mode
// from the goods' history and the lot, score rules over the lot's risk
// scores, and the goods' history-only snapshot. It also returns the stored
// goods state, which the commit needs (on a prepared snapshot the read is
// made for the commit to reuse).
func (s *Service) evalLot(tx ReadTx, d Declaration, l Line, k goodsKeys, now time.Time) (lotEval, GoodsState, error) {
	history, certs, state, err := s.goodsContext(tx, k)
	if err != nil {
		return lotEval{}, GoodsState{}, err
	}
	lot := Lot{ImporterTaxCode: d.ImporterTaxCode, Procedure: l.Procedure, Exemption: l.Exemption,
		Certificates: append(append([]Certificate{}, l.Certificates...), certs...)}
	ev := Evaluate(s.policy, history, lot, now)
	// The goods-state snapshot is the history-only mode; when nothing about
	// this lot (certificate, exemption, the quality regime's importer term)
	// can move it, it is this evaluation, and the history need not be
	// replayed a second time.
	snap := ev
	if !(len(lot.Certificates) == 0 && lot.Exemption == "" && lot.Procedure != ProcedureQuality) {
		snap = Evaluate(s.policy, history, Lot{}, now)
	}
	if s.policy.Risk.ScoreDecisions {
		scores, err := s.scoreLot(tx, k, l.Goods.HSCode, d.ImporterTaxCode, history, now)
		if err != nil {
			return lotEval{}, GoodsState{}, err
		}
		s.applyScoreRules(&ev, scores)
		ev.Explanation.Scores = scores
	}
	return lotEval{gk: k.goods, ev: ev, snap: snap, results: goodsResults(history)}, state, nil
}

// draft builds a lot's decision and, when it is inspected, its
// assignment, as far as they go without a quota draw. drawn reports a
// reduced lot under a sampling policy: its decision is completed by the
// draw inside the write transaction.
func (s *Service) draft(d Declaration, l Line, now time.Time, e lotEval) (dec Decision, a *Assignment, drawn bool, err error) {
	ev := e.ev
	dec = Decision{
		ID: DecisionID(d.ID, l.LineNo), DeclarationID: d.ID, LineNo: l.LineNo, ImporterTaxCode: d.ImporterTaxCode,
		Goods: l.Goods, GoodsKey: e.gk, Procedure: l.Procedure, Mode: ev.Mode, PolicyVersion: s.policy.Version,
		DecidedAt: now, Explanation: ev.Explanation, Reason: ev.Explanation.Reason,
	}
	switch ev.Mode {
	case ModeStrict, ModeNormal:
		dec.Inspect = true
	case ModeReduced:
		if s.policy.Reduced.Sampling.Enabled {
			return dec, nil, true, nil
		}
		dec.Reason += "; random sampling disabled by policy, not inspected"
	}
	a, err = s.assign(&dec, d, l, now, e)
	return dec, a, false, err
}

// assign routes an inspected lot to its agency: the assignment, and the
// decision's agency and assignment ID (nil for a lot not inspected).
func (s *Service) assign(dec *Decision, d Declaration, l Line, now time.Time, e lotEval) (*Assignment, error) {
	if !dec.Inspect {
		return nil, nil
	}
	mode := e.ev.Mode
	listing, _ := s.policy.Lookup(l.Procedure, l.Goods.HSCode) // ParseDeclaration checked it is listed
	agency, ok := s.policy.Route(listing, l.Goods.HSCode)
	if !ok {
		return nil, fmt.Errorf("no route for %s %s: %w", l.Procedure, l.Goods.HSCode, errors.New("policy routing incomplete"))
	}
	check := "documents"
	if mode == ModeStrict {
		check = "documents_and_sampling"
	}
	a := Assignment{
		ID: AssignmentID(d.ID, l.LineNo), DecisionID: dec.ID, DeclarationID: d.ID, LineNo: l.LineNo,
		ImporterTaxCode: d.ImporterTaxCode, Agency: agency, Mode: mode, Check: check, Goods: l.Goods,
		GoodsKey: e.gk, Procedure: l.Procedure, CreatedAt: now, DueAt: s.policy.Deadline(mode, now), Status: AssignmentOpen,
	}
	dec.Agency, dec.AssignmentID = agency, a.ID
	return &a, nil
}

// encodeDraft encodes a lot's decision and assignment ahead of the write
// transaction when no quota draw can change them (prepareDecision).
func (s *Service) encodeDraft(d Declaration, l Line, now time.Time, e *lotEval) {
	dec, a, drawn, err := s.draft(d, l, now, *e)
	if err != nil || drawn {
		return // the transaction meets the same error, or draws first
	}
	dj, err := gojson.Marshal(dec)
	if err != nil {
		return
	}
	var aj []byte
	if a != nil {
		if aj, err = gojson.Marshal(*a); err != nil {
			return
		}
	}
	e.drafted = &draftedLot{dec: dec, asg: a, decEnc: newEncodedRecord(dj), asgEnc: newEncodedRecord(aj)}
}

// commitLot decides l from its evaluation inside the write transaction:
// the quota draw for a reduced lot, the assignment, the decision and the
// goods state. state is the goods state already read in this transaction,
// or nil to read it here.
func (s *Service) commitLot(tx *auditTx, d Declaration, l Line, now time.Time, e lotEval, state *GoodsState, opened *[]QuotaPeriod) (Decision, error) {
	if state == nil {
		st, err := readGoodsState(tx, e.gk)
		if err != nil {
			return Decision{}, err
		}
		state = &st
	}
	dec, a, decEnc, asgEnc, err := s.lotRecords(tx, d, l, now, e, opened)
	if err != nil {
		return Decision{}, err
	}
	if a != nil {
		if err := tx.putAssignment(*a, asgEnc); err != nil {
			return Decision{}, err
		}
	}
	if err := tx.putDecision(dec, decEnc); err != nil {
		return Decision{}, err
	}
	st := *state
	st.Lots++
	return dec, s.writeGoodsState(tx, st, l.Goods, e.gk, e.snap, e.results, now)
}

// lotRecords is a lot's decision and assignment: as drafted and encoded
// ahead when they were (the same inputs give the same records), else
// drafted here, with the quota draw for a reduced lot (zero encodings: the
// store encodes them).
func (s *Service) lotRecords(tx Tx, d Declaration, l Line, now time.Time, e lotEval, opened *[]QuotaPeriod) (Decision, *Assignment, encodedRecord, encodedRecord, error) {
	if p := e.drafted; p != nil {
		return p.dec, p.asg, p.decEnc, p.asgEnc, nil
	}
	dec, a, drawn, err := s.draft(d, l, now, e)
	if err != nil || !drawn {
		return dec, a, encodedRecord{}, encodedRecord{}, err
	}
	q, err := s.sample(tx, d, l, goodsRisk(e.ev.Explanation.Scores), now, opened)
	if err != nil {
		return Decision{}, nil, encodedRecord{}, encodedRecord{}, fmt.Errorf("random check: %w", err)
	}
	dec.Quota, dec.Inspect = &q, q.Chosen
	if q.Chosen {
		dec.Reason += "; selected for a random documents check"
	} else {
		dec.Reason += "; not selected for a random check"
	}
	a, err = s.assign(&dec, d, l, now, e)
	return dec, a, encodedRecord{}, encodedRecord{}, err
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
// manufacturer's certificates on record, and the stored goods state.
func (s *Service) goodsContext(tx ReadTx, k goodsKeys) ([]Event, []Certificate, GoodsState, error) {
	var history []Event
	subjects := [...]Subject{
		{SubjectGoods, k.goods},
		{SubjectManufacturer, k.manufacturer},
		{SubjectHeadingOrigin, k.headingOrigin},
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
	state, err := readGoodsState(tx, k.goods)
	if err != nil {
		return nil, nil, GoodsState{}, err
	}
	return history, certs, state, nil
}

// readGoodsState reads the stored goods state; a goods never seen has the
// zero state.
func readGoodsState(tx ReadTx, gk Key) (GoodsState, error) {
	state, err := tx.GoodsState(gk)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return GoodsState{}, err
	}
	return state, nil
}

// putGoodsState refreshes the goods' snapshot from its history alone (no
// lot's certificate or exemption).
func (s *Service) putGoodsState(tx Tx, st GoodsState, g Goods, gk Key, history []Event, now time.Time, snap *Evaluation) error {
	if snap == nil {
		ev := Evaluate(s.policy, history, Lot{}, now)
		snap = &ev
	}
	return s.writeGoodsState(tx, st, g, gk, *snap, goodsResults(history), now)
}

// goodsResults counts the results in the goods' own history.
func goodsResults(history []Event) int {
	n := 0
	for _, e := range history {
		if e.Kind == EventResult && e.Subject.Kind == SubjectGoods {
			n++
		}
	}
	return n
}

// writeGoodsState writes the goods' snapshot: its history-only evaluation
// and result count.
func (s *Service) writeGoodsState(tx Tx, st GoodsState, g Goods, gk Key, snap Evaluation, results int, now time.Time) error {
	st.Key, st.Goods, st.Mode, st.Rule, st.Progress = gk, g, snap.Mode, snap.Explanation.Rule, snap.Explanation.Progress
	st.Results = results
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
