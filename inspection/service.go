package inspection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/inspection/scoring"
	"github.com/ktcn/ktcn/risk"
)

// LotReader reads lots: their declaration, decision, assignment and
// overrides.
type LotReader interface {
	Declaration(id string) (declaration.Record, error)
	Decision(id string) (Decision, error)
	Assignment(id string) (Assignment, error)
	// OpenAssignments lists an agency's open assignments in the order they
	// were created, at most limit, starting after the cursor (empty for the
	// start); next is empty when there are no more.
	OpenAssignments(agency, after string, limit int) (list []Assignment, next string, err error)
	// Overrides lists a decision's overrides in the order they were made.
	Overrides(decisionID string) ([]Override, error)
}

// LotWriter writes them.
type LotWriter interface {
	PutDeclaration(declaration.Record) error
	PutDecision(Decision) error
	// PutAssignment writes a and keeps the agency's open-assignment index
	// in step with a.Status.
	PutAssignment(a Assignment) error
	// PutOverride appends a decision's override; o.N must be one more than
	// the overrides it already has.
	PutOverride(o Override) error
	// ResolveOverride rewrites a pending override as confirmed or
	// rejected, the one change an override record ever gets: the stored
	// override must be pending, and o the same override but for its
	// resolution (status, who, when, why, and the assignment a
	// confirmation cancelled).
	ResolveOverride(o Override) error
}

// Service runs ktcn's use cases over a Store. Each reads the policy in
// force from the store, so a version activated at run time governs every
// decision committed after it.
type Service struct {
	reads      Reader
	w          writePath
	configured *policy.Policy
	policies   policyCache
	inForce    atomic.Pointer[policy.Policy] // the policy last seen in force
	legacy     atomic.Bool                   // the store holds identity version 1 history (legacy.go)
	clock      calendar.Clock
	keys       quota.Keys
	skew       time.Duration
	log        zerolog.Logger
	encoder    RecordEncoder // nil when the store encodes only inside a write
	scores     scoring.Memo
	inputs     inputCache
	folds      foldMemo // goods histories folded for deciding (goodsfold.go)
	// prep counts declarations committed from their prepared evaluation
	// and those evaluated again inside the write transaction.
	prep struct{ used, recomputed atomic.Int64 }
}

// Config wires a Service; every field is required but Logger,
// AuditObserver, Hooks, and QuotaKeys when the policy samples reduced lots.
type Config struct {
	Store Store
	// Policy is the configured policy: Start stores it and puts it in
	// force.
	Policy    *policy.Policy
	Clock     calendar.Clock
	QuotaKeys quota.Keys
	Logger    zerolog.Logger
	// AuditObserver hears of every audit head the service commits (the
	// signed checkpoints); nil for none.
	AuditObserver audit.Observer
	// Hooks run inside the transaction of every change (write.go).
	Hooks []Hook
	// ClockSkew is how far ahead a result or alert may be dated (0:
	// DefaultClockSkew).
	ClockSkew time.Duration
}

// NewService checks the wiring and returns a Service.
func NewService(c Config) (*Service, error) {
	if c.Store == nil || c.Policy == nil || c.Clock == nil {
		return nil, errors.New("inspection: NewService needs a store, a policy and a clock")
	}
	if c.Policy.Reduced.Sampling.Enabled && c.QuotaKeys == nil {
		return nil, errors.New("inspection: the policy samples reduced lots, so NewService needs quota keys")
	}
	s := &Service{reads: c.Store, w: newWritePath(c.Store, c.AuditObserver, c.Hooks),
		configured: c.Policy, clock: c.Clock, keys: c.QuotaKeys, log: c.Logger}
	s.encoder, _ = c.Store.(RecordEncoder)
	if s.skew = c.ClockSkew; s.skew <= 0 {
		s.skew = DefaultClockSkew
	}
	s.policies.put(c.Policy)
	s.inForce.Store(c.Policy)
	return s, nil
}

// Start stores the configured policy and, on a store with no policy in
// force (a first install), puts it in force, recorded as a version
// approved by the system on its operator's authority. On a store with a
// policy in force the lifecycle decides what is in force: a configured
// version the store does not know is recorded as a draft for policy staff
// to submit, and changes nothing. It reports routed agencies of the policy
// in force that the store does not know.
func (s *Service) Start(ctx context.Context) (missingAgencies []string, err error) {
	pol := s.configured
	doc, err := pol.Document()
	if err != nil {
		return nil, fmt.Errorf("encode policy %s: %w", pol.Version, err)
	}
	now := s.clock.Now()
	var other string
	err = s.w.write(ctx, access.SystemPrincipal(), audit.PolicyStored, now, func(tx Tx, c *Change) error {
		missingAgencies, other = nil, ""
		if err := s.markIdentity(tx); err != nil {
			return err
		}
		old, err := tx.Policy(pol.Version)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			old = nil
		case err != nil:
			return err
		default:
			if prev, perr := policy.ParsePolicy(old); perr == nil && prev.Digest() != pol.Digest() {
				// A version label is a promise that the rules it names never
				// change; decisions already cite the stored content.
				return Conflict("version", "policy %s is stored with different content (digest %s, now %s): give the new rules a new version",
					pol.Version, prev.Digest(), pol.Digest())
			}
		}
		rec, err := tx.PolicyVersion(pol.Version)
		recorded := err == nil
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		active, err := tx.ActivePolicy()
		inForce := err == nil
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		if inForce && active.Version != pol.Version {
			other = active.Version
			if !recorded && old == nil {
				// Policy staff take it from here: submit, approve, activate.
				if err := tx.PutPolicyVersion(PolicyVersion{Version: pol.Version, State: PolicyDraft, Document: doc, SHA256: DocumentSHA256(doc),
					Source: "configured at start (KTCN_POLICY) while " + active.Version + " was in force", Authors: []string{access.ActorSystem},
					CreatedAt: now, UpdatedAt: now}); err != nil {
					return err
				}
				c.Kind, c.Subjects = audit.PolicyDrafted, []string{"policy:" + pol.Version}
			}
			return s.startChecks(tx, now, &missingAgencies)
		}
		if old == nil {
			if err := tx.PutPolicy(pol.Version, doc); err != nil {
				return err
			}
		}
		if !recorded {
			source := "configured at first start"
			if inForce {
				source = "in force before the policy lifecycle"
			}
			at := now
			if inForce {
				at = active.ActivatedAt
			}
			sha := DocumentSHA256(doc)
			if err := tx.PutPolicyVersion(PolicyVersion{Version: pol.Version, State: PolicyActive, Document: doc, SHA256: sha, Source: source,
				Authors: []string{}, CreatedAt: now, UpdatedAt: now, ApprovedBy: access.ActorSystem, ApprovedAt: &at, ApprovedSHA256: sha,
				ActivatedBy: access.ActorSystem, ActivateAt: &at}); err != nil {
				return err
			}
		} else if rec.State != PolicyActive && !inForce {
			return Conflict("version", "policy %s is recorded as %s but nothing is in force", pol.Version, rec.State)
		}
		if !inForce {
			if err := tx.PutActivePolicy(ActivePolicy{Version: pol.Version, Digest: pol.Digest(), ActivatedAt: now, ActivatedBy: access.ActorSystem}); err != nil {
				return err
			}
		}
		c.Subjects = []string{"policy:" + pol.Version}
		return s.startChecks(tx, now, &missingAgencies)
	})
	if err == nil && other != "" {
		s.log.Warn().Str("configured", pol.Version).Str("in_force", other).
			Msg("the configured policy is not the one in force: policy staff activate versions (POST /v1/policies/{version}/activate)")
	}
	if err == nil {
		_, err = s.recountLedger(ctx)
	}
	return missingAgencies, err
}

// startChecks refuses a quota secret the stored periods did not commit to
// and lists the routed agencies the store does not know.
func (s *Service) startChecks(tx ReadTx, now time.Time, missing *[]string) error {
	pol, err := s.policyIn(tx, now)
	if err != nil {
		return err
	}
	if pol.Reduced.Sampling.Enabled {
		if err := checkQuotaKeys(tx, s.keys); err != nil {
			return err
		}
	}
	for _, id := range pol.RoutedAgencies() {
		if _, err := tx.Agency(id); errors.Is(err, fault.ErrNotFound) {
			*missing = append(*missing, id)
		} else if err != nil {
			return err
		}
	}
	return nil
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
func (s *Service) Decide(ctx context.Context, by access.Principal, in declaration.Input) (DecideResult, error) {
	if err := by.Require(access.ActDecide); err != nil {
		return DecideResult{}, err
	}
	// The policy last seen in force reads the declaration, with no read of
	// its own (a transaction opened during a commit waits for its sync);
	// the transaction checks it is still in force. A refusal is made only
	// under the policy in force now.
	now := s.clock.Now() // once, so a retried transaction decides at the same instant
	pol := s.inForce.Load()
	d, err := readDeclaration(pol, in, now)
	if err != nil {
		current, cerr := s.PolicyInForce(ctx)
		if cerr != nil || current.Version == pol.Version {
			return DecideResult{}, err
		}
		pol = current
		if d, err = readDeclaration(pol, in, now); err != nil {
			return DecideResult{}, err
		}
	}
	keys := make([]identity.Keys, len(d.Lines))
	for i, l := range d.Lines {
		keys[i] = s.keysOf(l.Goods)
	}
	prep := s.prepareDecision(ctx, pol, d, keys, now)
	var (
		out    DecideResult
		opened []quota.Period
	)
	err = s.w.write(ctx, by, audit.DeclarationDecided, now, func(tx Tx, c *Change) error {
		out, opened = DecideResult{}, nil
		if prep != nil {
			reuse(tx, prep.reads)
		}
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
		if !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		// The policy in force decides: if another version came into force
		// since the declaration was read and prepared, read it again under
		// that one and evaluate every line here.
		dd, lp, p := d, prep, pol
		var active ActivePolicy
		if p, active, err = s.inForceAt(tx, now); err != nil {
			return err
		}
		ks := keys
		if p.Version != pol.Version {
			if dd, err = readDeclaration(p, in, now); err != nil {
				return err
			}
			lp, ks = nil, make([]identity.Keys, len(dd.Lines))
			for i, l := range dd.Lines {
				ks[i] = s.keysOf(l.Goods)
			}
		}
		lots, err := lp.current(tx)
		if err != nil {
			return err
		}
		rec = declaration.Record{ID: dd.ID, ImporterTaxCode: dd.ImporterTaxCode, Digest: dd.Digest, DecidedAt: now}
		if lots != nil {
			s.prep.used.Add(1)
		} else {
			s.prep.recomputed.Add(1)
		}
		if lots == nil {
			// Every line is evaluated before any is written, as the
			// preparation does on its snapshot: what a line's goods were
			// before this declaration decides it, not its place in it.
			shadows, err := s.shadowsAt(tx, active, p)
			if err != nil {
				return err
			}
			lots = make([]lotEval, len(dd.Lines))
			for i, l := range dd.Lines {
				if lots[i], _, err = s.evalLot(tx, p, shadows, dd, l, ks[i], now); err != nil {
					return fmt.Errorf("line %d: %w", l.LineNo, err)
				}
			}
		}
		for i, l := range dd.Lines {
			e := lots[i]
			dec, err := s.commitLot(tx, c, p, dd, l, now, e, nil, &opened)
			if err != nil {
				return fmt.Errorf("line %d: %w", l.LineNo, err)
			}
			rec.DecisionIDs = append(rec.DecisionIDs, dec.ID)
			out.Decisions = append(out.Decisions, dec)
		}
		if err := tx.PutDeclaration(rec); err != nil {
			return err
		}
		if seen, err := tx.ImporterSeen(dd.ImporterTaxCode); err != nil {
			return err
		} else if !seen {
			if err := tx.NoteImporter(dd.ImporterTaxCode); err != nil {
				return err
			}
		}
		c.Subjects = []string{"declaration:" + dd.ID}
		for _, q := range opened {
			c.Subjects = append(c.Subjects, "quota_period:"+q.Period)
		}
		return nil
	})
	if err != nil {
		return DecideResult{}, err
	}
	for _, p := range opened {
		// The commitment goes to the log as well as the store, so a later
		// rewrite of the stored one is caught by comparing the two.
		s.log.Info().Str("period", p.Period).Str("commitment", p.Commitment).Msg("quota period opened")
	}
	if !out.Replayed {
		// Debug: one line per declaration is NSW's whole traffic; the
		// request log and the group commit stats say how much there was.
		s.log.Debug().Str("declaration_id", d.ID).Int("lines", len(d.Lines)).Str("source", by.Name).Msg("declaration decided")
	}
	return out, nil
}

// lotEval is what deciding a lot computes before the quota draw: the mode
// with its explanation and scores, and the goods' history-only snapshot.
// It depends only on the lot, the policy, the instant and the inputs the
// store versions (InputVersioner), never on the goods state or the quota.
type lotEval struct {
	gk identity.Key
	ev Evaluation // the lot's mode, score rules applied
	// moreInputs are the goods subjects resemblance and a link read: their
	// input versions too must hold at the commit.
	moreInputs []risk.Subject
	snap       Evaluation // the goods' mode from history alone (goods state)
	results    int        // results in the goods' own history
	// drafted is the decision and assignment made and encoded ahead, when
	// no quota draw can change them (nil otherwise: the committer drafts
	// them, and the store encodes them).
	drafted *draftedLot
	// shadows are what the versions in shadow would have decided
	// (shadow.go).
	shadows []shadowEval
}

// draftedLot is a lot's decision and assignment (nil when not inspected)
// as draft made them ahead of the transaction, with their encodings by
// the store (RecordEncoder).
type draftedLot struct {
	dec            Decision
	asg            *Assignment
	decEnc, asgEnc Encoded
}

// preparedDecision is a declaration evaluated on a snapshot under one
// policy version, and the input versions that snapshot held.
type preparedDecision struct {
	lots     []lotEval
	versions map[risk.Subject]uint64
	// reads are the snapshot's point reads, for the write transaction to
	// reuse where unchanged (nil when the store does not read ahead).
	reads SnapshotReads
}

// lotInputs are the version subjects a lot's evaluation reads: the
// subjects of its history and risk scores, and the priors.
func (s *Service) lotInputs(k identity.Keys, hsCode, importer string) []risk.Subject {
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
func (s *Service) prepareDecision(ctx context.Context, pol *policy.Policy, d declaration.Declaration, keys []identity.Keys, now time.Time) *preparedDecision {
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
		if _, err := tx.Declaration(d.ID); !errors.Is(err, fault.ErrNotFound) {
			return nil
		}
		if _, err := tx.ImporterSeen(d.ImporterTaxCode); err != nil { // for the transaction to reuse
			return nil
		}
		// Prepared under another policy than the snapshot's in force, it
		// could not commit: leave the lots to the transaction.
		cur, active, err := s.inForceAt(tx, now)
		if err != nil || cur.Version != pol.Version {
			return nil
		}
		shadows, err := s.shadowsAt(tx, active, pol)
		if err != nil {
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
			e, _, err := s.evalLot(cachedReadTx{ReadTx: tx, c: &s.inputs, versions: prep.versions}, pol, shadows, d, l, keys[i], now)
			if err != nil {
				return nil
			}
			for _, sub := range e.moreInputs {
				if _, seen := prep.versions[sub]; !seen {
					v, err := iv.InputVersion(sub)
					if err != nil {
						return nil
					}
					prep.versions[sub] = v
				}
			}
			s.encodeDraft(pol, d, l, now, &e)
			prep.lots = append(prep.lots, e)
		}
		p = prep
		return nil
	}
	if ra, ok := s.reads.(ReadAheadStore); ok {
		reads, _ := ra.ViewAhead(ctx, prepare)
		if p != nil {
			p.reads = reads
		}
		return p
	}
	_ = s.reads.View(ctx, prepare)
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
func (s *Service) evalLot(tx ReadTx, pol *policy.Policy, shadows []*policy.Policy, d declaration.Declaration, l declaration.Line, k identity.Keys, now time.Time) (lotEval, GoodsState, error) {
	k, linked, err := resolveGoods(tx, k)
	if err != nil {
		return lotEval{}, GoodsState{}, err
	}
	history, certs, state, subjects, err := goodsContextOf(tx, k)
	if err != nil {
		return lotEval{}, GoodsState{}, err
	}
	hid := historyID(tx, subjects)
	// A history the snapshot names by its versions is decided from its
	// fold (goodsfold.go), kept across lots: the same evaluations and
	// score, without a pass over every event of a long history.
	var fold *goodsFold
	if hid != "" {
		fold = s.folds.get(hid, pol.Risk.Params(), history, now)
	}
	evaluate := func(p *policy.Policy, lot Lot) Evaluation {
		if fold != nil {
			return fold.evaluate(p, lot, now)
		}
		return Evaluate(p, history, lot, now)
	}
	var (
		results int  // goodsResults(history)
		own     bool // hasGoodsEvents(history)
	)
	if fold != nil {
		results, own = fold.results, fold.own
	} else {
		results, own = goodsResults(history), hasGoodsEvents(history)
	}
	// Certificates on record count; one presented with the lot counts only
	// once it is on record (certificate.go): until then it is pending.
	lot := Lot{ImporterTaxCode: d.ImporterTaxCode, Procedure: l.Procedure, Exemption: l.Exemption, Certificates: certs}
	ev := evaluate(pol, lot)
	if pending := pendingCertificates(l.Certificates, certs, now); len(pending) > 0 {
		ev.Explanation.Pending = pending
		ev.Explanation.Reason += "; certificate " + strings.Join(pending, ", ") +
			" pending verification: it counts once the designated body registers it"
	}
	// The goods-state snapshot is the history-only mode; when nothing about
	// this lot (certificate, exemption, the quality regime's importer term)
	// can move it, it is this evaluation, and the history need not be
	// replayed a second time.
	snap := ev
	if !(len(lot.Certificates) == 0 && lot.Exemption == "" && lot.Procedure != policy.ProcedureQuality) {
		snap = evaluate(pol, Lot{})
	}
	var resembled []risk.Subject
	if state.Key == (identity.Key{}) && !own {
		if resembled, err = resemble(tx, pol, l.Goods, k.Goods, &ev, now); err != nil {
			return lotEval{}, GoodsState{}, err
		}
		if ev.Explanation.Resembles != nil {
			snap = ev // the goods' own record starts as cautious as the lot
		}
	}
	if pol.Risk.ScoreDecisions {
		scores, err := s.scoreLot(tx, pol, k, l.Goods.HSCode, d.ImporterTaxCode, history, fold, now)
		if err != nil {
			return lotEval{}, GoodsState{}, err
		}
		applyScoreRules(pol, &ev, scores)
		ev.Explanation.Scores = scores
	}
	e := lotEval{gk: k.Goods, ev: ev, snap: snap, results: results, moreInputs: append(resembled, linked...)}
	for _, sp := range shadows {
		// The same history and lot under the version in shadow, with its
		// resemblance and its score rules over the same scores; no draw.
		sev := evaluate(sp, lot)
		if state.Key == (identity.Key{}) && !own {
			if _, err := resemble(tx, sp, l.Goods, k.Goods, &sev, now); err != nil {
				return lotEval{}, GoodsState{}, err
			}
		}
		if sp.Risk.ScoreDecisions && ev.Explanation.Scores != nil {
			applyScoreRules(sp, &sev, ev.Explanation.Scores)
		}
		e.shadows = append(e.shadows, shadowEval{version: sp.Version, mode: sev.Mode, rule: sev.Explanation.Rule, reason: sev.Explanation.Reason})
	}
	return e, state, nil
}

// draft builds a lot's decision and, when it is inspected, its
// assignment, as far as they go without a quota draw. drawn reports a
// reduced lot under a sampling policy: its decision is completed by the
// draw inside the write transaction.
func draft(pol *policy.Policy, d declaration.Declaration, l declaration.Line, now time.Time, e lotEval) (dec Decision, a *Assignment, drawn bool, err error) {
	ev := e.ev
	dec = Decision{
		ID: identity.DecisionID(d.ID, l.LineNo), DeclarationID: d.ID, LineNo: l.LineNo, ImporterTaxCode: d.ImporterTaxCode,
		Goods: l.Goods, GoodsKey: e.gk, Procedure: l.Procedure, Mode: ev.Mode, PolicyVersion: pol.Version,
		DecidedAt: now, Explanation: ev.Explanation, Reason: ev.Explanation.Reason,
	}
	switch ev.Mode {
	case ModeStrict, ModeNormal:
		dec.Inspect = true
	case ModeReduced:
		if pol.Reduced.Sampling.Enabled {
			return dec, nil, true, nil
		}
		dec.Reason += "; random sampling disabled by policy, not inspected"
	}
	a, err = assign(pol, &dec, d, l, now, e)
	return dec, a, false, err
}

// assign routes an inspected lot to its agency: the assignment, and the
// decision's agency and assignment ID (nil for a lot not inspected).
func assign(pol *policy.Policy, dec *Decision, d declaration.Declaration, l declaration.Line, now time.Time, e lotEval) (*Assignment, error) {
	if !dec.Inspect {
		return nil, nil
	}
	mode := e.ev.Mode
	listing, _ := pol.Lookup(l.Procedure, l.Goods.HSCode) // declaration.Parse checked it is listed
	agency, ok := pol.Route(listing, l.Goods.HSCode)
	if !ok {
		return nil, fmt.Errorf("no route for %s %s: %w", l.Procedure, l.Goods.HSCode, errors.New("policy routing incomplete"))
	}
	check := "documents"
	if mode == ModeStrict {
		check = "documents_and_sampling"
	}
	a := Assignment{
		ID: identity.AssignmentID(d.ID, l.LineNo), DecisionID: dec.ID, DeclarationID: d.ID, LineNo: l.LineNo,
		ImporterTaxCode: d.ImporterTaxCode, Agency: agency, Mode: mode, Check: check, Goods: l.Goods,
		GoodsKey: e.gk, Procedure: l.Procedure, CreatedAt: now, DueAt: Deadline(pol, mode, now), Status: AssignmentOpen,
	}
	dec.Agency, dec.AssignmentID = agency, a.ID
	return &a, nil
}

// encodeDraft has the store encode a lot's decision and assignment ahead
// of the write transaction when no quota draw can change them
// (prepareDecision), if the store can (RecordEncoder).
func (s *Service) encodeDraft(pol *policy.Policy, d declaration.Declaration, l declaration.Line, now time.Time, e *lotEval) {
	if s.encoder == nil {
		return
	}
	dec, a, drawn, err := draft(pol, d, l, now, *e)
	if err != nil || drawn {
		return // the transaction meets the same error, or draws first
	}
	if a != nil && routesByCapacity(pol) {
		return // routed in the transaction, by the capacity counters there
	}
	dj, aj, err := s.encodeLot(dec, a)
	if err != nil {
		return
	}
	e.drafted = &draftedLot{dec: dec, asg: a, decEnc: dj, asgEnc: aj}
}

// encodeLot has the store encode a new lot's decision and assignment
// (nil encodings when the store cannot: no RecordEncoder).
func (s *Service) encodeLot(dec Decision, a *Assignment) (dj, aj Encoded, err error) {
	if s.encoder == nil {
		return nil, nil, nil
	}
	if dj, err = s.encoder.EncodeDecision(dec); err != nil {
		return nil, nil, err
	}
	if a != nil {
		if aj, err = s.encoder.EncodeAssignment(*a); err != nil {
			return nil, nil, err
		}
	}
	return dj, aj, nil
}

// commitLot decides l from its evaluation inside the write transaction:
// the quota draw for a reduced lot, the assignment, the decision and the
// goods state. state is the goods state already read in this transaction,
// or nil to read it here.
func (s *Service) commitLot(tx Tx, c *Change, pol *policy.Policy, d declaration.Declaration, l declaration.Line, now time.Time, e lotEval, state *GoodsState, opened *[]quota.Period) (Decision, error) {
	if state == nil {
		st, err := readGoodsState(tx, e.gk)
		if err != nil {
			return Decision{}, err
		}
		if st.Key == (identity.Key{}) && s.legacy.Load() {
			// The goods' first lot under identity version 2 carries on the
			// count version 1 kept (legacy.go).
			if old, err := readGoodsState(tx, l.Goods.LegacyKey()); err == nil {
				st.Lots = old.Lots
			}
		}
		state = &st
	}
	dec, a, decEnc, asgEnc, err := s.lotRecords(tx, pol, d, l, now, e, opened)
	if err != nil {
		return Decision{}, err
	}
	w, encoded := tx.(EncodedWriter)
	if a != nil {
		if encoded && asgEnc != nil {
			err = w.PutAssignmentEncoded(*a, asgEnc)
		} else {
			err = tx.PutAssignment(*a)
		}
		if err != nil {
			return Decision{}, err
		}
	}
	if encoded && decEnc != nil {
		err = w.PutDecisionEncoded(dec, decEnc)
	} else {
		err = tx.PutDecision(dec)
	}
	if err != nil {
		return Decision{}, err
	}
	c.ledgerDecided(dec)
	st := *state
	st.Lots++
	after, err := writeGoodsState(tx, pol, st, l.Goods, e.gk, e.snap, e.results, now)
	if err != nil {
		return Decision{}, err
	}
	emitDecided(c, dec, a, after.Progress)
	for _, sh := range e.shadows {
		if err := tx.PutShadowOutcome(ShadowOutcome{Version: sh.version, DecisionID: dec.ID, DeclarationID: dec.DeclarationID, LineNo: dec.LineNo,
			DecidedAt: now, LiveVersion: pol.Version, LiveMode: dec.Mode, LiveRule: dec.Explanation.Rule,
			ShadowMode: sh.mode, ShadowRule: sh.rule, ShadowReason: sh.reason}); err != nil {
			return Decision{}, err
		}
	}
	var agencies []string
	if dec.Agency != "" {
		agencies = []string{dec.Agency}
	}
	emitModeChange(c, *state, after, dec.DeclarationID, dec.LineNo, agencies, dec.ID)
	return dec, nil
}

// lotRecords is a lot's decision and assignment: as drafted and encoded
// ahead when they were (the same inputs give the same records), else
// drafted here, with the quota draw for a reduced lot and, under a
// capacity policy, the routing by the day's counters, and encoded here.
// Encoded, the store writes them as a new lot's (EncodedWriter), without
// first looking for a previous version: a read that misses every level of
// the LSM tree, 3% of the server's CPU in a closed loop on a store of
// 2.4 M decisions, where most lots are reduced and so drawn here. The
// encoding is what the store would spend on them anyway.
func (s *Service) lotRecords(tx Tx, pol *policy.Policy, d declaration.Declaration, l declaration.Line, now time.Time, e lotEval, opened *[]quota.Period) (Decision, *Assignment, Encoded, Encoded, error) {
	if p := e.drafted; p != nil && !(p.asg != nil && routesByCapacity(pol)) {
		// (encodeDraft drafts no assignment under a capacity policy; a
		// draft that has one is never committed unrouted.)
		return p.dec, p.asg, p.decEnc, p.asgEnc, nil
	}
	dec, a, drawn, err := draft(pol, d, l, now, e)
	if err == nil && !drawn && a != nil && routesByCapacity(pol) {
		err = routeByCapacity(tx, pol, a, &dec, now)
	}
	if err != nil {
		return Decision{}, nil, nil, nil, err
	}
	if !drawn {
		dj, aj, err := s.encodeLot(dec, a)
		return dec, a, dj, aj, err
	}
	q, err := s.sample(tx, pol, d, l, e.gk, goodsRisk(e.ev.Explanation.Scores), now, opened)
	if err != nil {
		return Decision{}, nil, nil, nil, fmt.Errorf("random check: %w", err)
	}
	dec.Quota, dec.Inspect = &q, q.Chosen
	if q.Chosen {
		dec.Reason += "; selected for a random documents check"
	} else {
		dec.Reason += "; not selected for a random check"
	}
	if a, err = assign(pol, &dec, d, l, now, e); err == nil && a != nil && routesByCapacity(pol) {
		err = routeByCapacity(tx, pol, a, &dec, now)
	}
	if err != nil {
		return Decision{}, nil, nil, nil, err
	}
	dj, aj, err := s.encodeLot(dec, a)
	return dec, a, dj, aj, err
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
func goodsContext(tx interface {
	HistoryReader
	ReferenceReader
	LinkReader
}, k identity.Keys) ([]Event, []reference.Certificate, GoodsState, error) {
	history, certs, state, _, err := goodsContextOf(tx, k)
	return history, certs, state, err
}

// goodsContextOf is goodsContext with the subjects whose events make up
// the history, in the order joined (what historyID names it by).
func goodsContextOf(tx interface {
	HistoryReader
	ReferenceReader
	LinkReader
}, k identity.Keys) ([]Event, []reference.Certificate, GoodsState, []Subject, error) {
	var history []Event
	subjects := []Subject{
		{SubjectGoods, k.Goods},
		{SubjectManufacturer, k.Manufacturer},
		{SubjectHeadingOrigin, k.HeadingOrigin},
	}
	if k.LegacyGoods != (identity.Key{}) {
		// History recorded under identity version 1 (legacy.go).
		subjects = append(subjects, Subject{SubjectGoods, k.LegacyGoods}, Subject{SubjectManufacturer, k.LegacyManufacturer})
	}
	linked, err := tx.LinkedInto(k.Goods) // goods customs linked into this one (link.go)
	if err != nil {
		return nil, nil, GoodsState{}, nil, err
	}
	for _, l := range linked {
		subjects = append(subjects, Subject{SubjectGoods, l})
	}
	// The subjects' histories are joined in this order, as they always
	// were: scoring sums the goods' weights in history order, so another
	// order could move a score in its last bits. Most goods have history
	// under one subject only (alerts on a manufacturer or a heading are
	// rare), and then that history is returned as read, without a copy:
	// copying every event of a long history into a new slice was most of
	// what a decision on it cost (BenchmarkDecideGoodsHistory). Callers
	// only read it (the slice may be shared by the input cache).
	parts := make([][]Event, 0, len(subjects))
	total, nonEmpty := 0, 0
	for _, sub := range subjects {
		evs, err := tx.Events(sub)
		if err != nil {
			return nil, nil, GoodsState{}, nil, fmt.Errorf("history of %s %s: %w", sub.Kind, sub.Key, err)
		}
		parts = append(parts, evs)
		if len(evs) > 0 {
			total, nonEmpty = total+len(evs), nonEmpty+1
		}
	}
	switch {
	case nonEmpty == 1:
		for _, evs := range parts {
			if len(evs) > 0 {
				history = evs
			}
		}
	case nonEmpty > 1:
		history = make([]Event, 0, total)
		for _, evs := range parts {
			history = append(history, evs...)
		}
	}
	var certs []reference.Certificate
	m, err := tx.Manufacturer(k.Manufacturer)
	if errors.Is(err, fault.ErrNotFound) && k.LegacyManufacturer != (identity.Key{}) {
		m, err = tx.Manufacturer(k.LegacyManufacturer)
	}
	switch {
	case err == nil:
		certs = m.Certificates
	case !errors.Is(err, fault.ErrNotFound):
		return nil, nil, GoodsState{}, nil, err
	}
	state, err := readGoodsState(tx, k.Goods)
	if err == nil && state.Key == (identity.Key{}) && k.LegacyGoods != (identity.Key{}) {
		// The goods' first lot under version 2 carries on its count.
		if legacy, lerr := readGoodsState(tx, k.LegacyGoods); lerr == nil {
			state.Lots, state.Results = legacy.Lots, legacy.Results
		}
	}
	if err != nil {
		return nil, nil, GoodsState{}, nil, err
	}
	return history, certs, state, subjects, nil
}

// readGoodsState reads the stored goods state; a goods never seen has the
// zero state.
func readGoodsState(tx HistoryReader, gk identity.Key) (GoodsState, error) {
	state, err := tx.GoodsState(gk)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return GoodsState{}, err
	}
	return state, nil
}

// putGoodsState refreshes the goods' snapshot from its history alone (no
// lot's certificate or exemption) and returns it.
func putGoodsState(tx HistoryWriter, pol *policy.Policy, st GoodsState, g identity.Goods, gk identity.Key, history []Event, now time.Time) (GoodsState, error) {
	return writeGoodsState(tx, pol, st, g, gk, Evaluate(pol, history, Lot{}, now), goodsResults(history), now)
}

// hasGoodsEvents reports whether any event of the history is the goods'
// own (a result or an alert on the goods itself).
func hasGoodsEvents(history []Event) bool {
	return slices.ContainsFunc(history, func(e Event) bool { return e.Subject.Kind == SubjectGoods })
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
// and result count; it returns what it wrote.
func writeGoodsState(tx HistoryWriter, pol *policy.Policy, st GoodsState, g identity.Goods, gk identity.Key, snap Evaluation, results int, now time.Time) (GoodsState, error) {
	if st.Key == (identity.Key{}) {
		// New goods: later new goods of its maker, heading and origin are
		// compared with it (resemble.go).
		if err := tx.IndexResemblance(identity.ResemblanceGroup(g), gk, g.ProductName, identity.MatchText(g.ProductName)); err != nil {
			return GoodsState{}, err
		}
	}
	st.Key, st.Goods, st.Mode, st.Rule, st.Progress = gk, g, snap.Mode, snap.Explanation.Rule, snap.Explanation.Progress
	st.Results = results
	st.PolicyVersion, st.UpdatedAt = pol.Version, now
	return st, tx.PutGoodsState(st)
}

// Assignment returns a stored assignment. An agency sees only its own: any
// other is not found, word for word what a missing one gets, so an agency
// cannot learn that another's exists. An assignment's agency is fixed when
// it is created, so checking before a write cannot race with a change of
// owner.
func (s *Service) Assignment(ctx context.Context, by access.Principal, id string) (Assignment, error) {
	a, err := read(ctx, s.reads, by, access.ActReadAssignments, func(tx ReadTx) (Assignment, error) { return tx.Assignment(id) })
	if errors.Is(err, fault.ErrNotFound) || err == nil && !by.MaySee(a.Agency) {
		return Assignment{}, NotFound("no assignment %q", id)
	}
	return a, err
}

// OpenAssignments lists an agency's open inspections, oldest first. An
// agency lists its own (agency empty means the caller's own); another
// agency's list is not found, whether or not that agency exists.
func (s *Service) OpenAssignments(ctx context.Context, by access.Principal, agency, after string, limit int) ([]Assignment, string, error) {
	if err := by.Require(access.ActReadAssignments); err != nil {
		return nil, "", err
	}
	if agency == "" && by.Role == access.RoleAgency {
		agency = by.Agency
	}
	if agency == "" {
		return nil, "", Invalid("agency", "is required")
	}
	if !by.MaySee(agency) {
		return nil, "", NotFound("no agency %q", agency)
	}
	var (
		list []Assignment
		next string
	)
	err := s.reads.View(ctx, func(tx ReadTx) error {
		if _, err := tx.Agency(agency); err != nil {
			if errors.Is(err, fault.ErrNotFound) {
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
func (s *Service) GoodsState(ctx context.Context, by access.Principal, k identity.Key) (GoodsState, error) {
	st, err := read(ctx, s.reads, by, access.ActReadGoods, func(tx ReadTx) (GoodsState, error) { return tx.GoodsState(k) })
	if errors.Is(err, fault.ErrNotFound) {
		return st, NotFound("no goods %s", k)
	}
	return st, err
}
