package inspection_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/store"
)

// changeLog is an in-transaction hook that notes every change the write
// path runs: only the write path runs hooks, so a change it saw went
// through it.
type changeLog struct {
	mu      sync.Mutex
	changes []inspection.Change
}

func (h *changeLog) InTx(_ inspection.Tx, c inspection.Change) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, c)
	return nil
}

func (h *changeLog) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.changes)
}

// writeRig is a service and the key use cases over one store, with the
// change log hooked into both.
type writeRig struct {
	db     *store.DB
	svc    *inspection.Service
	access *inspection.Access
	hooks  *changeLog
	clock  *fixedClock
}

func newWriteRig(t *testing.T) *writeRig {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	onRecord(t, db)
	r := &writeRig{db: db, hooks: &changeLog{}, clock: &fixedClock{}}
	r.clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	hooks := []inspection.Hook{r.hooks}
	if r.svc, err = inspection.NewService(inspection.Config{Store: db, Policy: mustPolicy(t), Clock: r.clock, QuotaKeys: testKeys,
		Logger: zerolog.Nop(), Hooks: hooks}); err != nil {
		t.Fatal(err)
	}
	if r.access, err = inspection.NewAccess(inspection.AccessConfig{Store: db, Clock: r.clock, Logger: zerolog.Nop(), Hooks: hooks}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *writeRig) entries(t *testing.T) []audit.Entry {
	t.Helper()
	es, _, err := r.svc.AuditLog(ctx, access.SystemPrincipal(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// change runs a use case and reports how it fell short of one change
// through the write path: exactly one new audit entry, of the kind and by
// the actor wanted, and exactly one change the hook saw, the same.
func (r *writeRig) change(t *testing.T, kind audit.Kind, actor string, run func() error) error {
	t.Helper()
	before, seen := len(r.entries(t)), r.hooks.len()
	if err := run(); err != nil {
		return fmt.Errorf("the use case failed: %w", err)
	}
	es := r.entries(t)
	if len(es) != before+1 {
		return fmt.Errorf("%d audit entries appended, want 1", len(es)-before)
	}
	if e := es[len(es)-1]; e.Kind != kind || e.Actor != actor || len(e.Records) == 0 {
		return fmt.Errorf("entry %s by %s covering %d records, want %s by %s covering what it wrote", e.Kind, e.Actor, len(e.Records), kind, actor)
	}
	if n := r.hooks.len() - seen; n != 1 {
		return fmt.Errorf("the write path's hooks ran for %d changes, want 1", n)
	}
	if c := r.hooks.changes[len(r.hooks.changes)-1]; c.Kind != kind || c.By.Name != actor {
		return fmt.Errorf("the hook saw %s by %s, want %s by %s", c.Kind, c.By.Name, kind, actor)
	}
	return nil
}

// unchanged runs a use case that must change nothing (a replay, derived
// data only) and reports any entry or hook it caused.
func (r *writeRig) unchanged(t *testing.T, run func() error) error {
	t.Helper()
	before, seen := len(r.entries(t)), r.hooks.len()
	if err := run(); err != nil {
		return err
	}
	if n, h := len(r.entries(t))-before, r.hooks.len()-seen; n != 0 || h != 0 {
		return fmt.Errorf("%d entries and %d hooked changes, want none", n, h)
	}
	return nil
}

// TestEveryChangeGoesThroughTheWritePath drives every use case that changes
// state and requires each to append exactly one audit entry through the
// write path (its hook saw the change, with the acting principal). The use
// cases are enumerated from the Service's and Access's methods, so a new
// one fails here until it is classified as a change (and driven) or a
// read. A write that goes around the write path is refused by the store,
// and the check above catches one that gets around the store too.
func TestEveryChangeGoesThroughTheWritePath(t *testing.T) {
	changes := map[string]bool{ // use case → driven below
		"Service.Start": false, "Service.LoadReference": false, "Service.Decide": false, "Service.RecordResult": false,
		"Service.RaiseAlert": false, "Service.Override": false, "Service.RevealQuotaKey": false, "Service.Rescore": false, "Service.OpenQuotaPeriod": false,
		"Access.CreateKey": false, "Access.CreateKeys": false, "Access.RevokeKey": false, "Service.RegisterCertificate": false,
		"Service.LinkGoods": false, "Service.UnlinkGoods": false, "Service.ConfirmOverride": false, "Service.RejectOverride": false,
		"Service.CreatePolicy": false, "Service.EditPolicy": false, "Service.SubmitPolicy": false, "Service.ApprovePolicy": false,
		"Service.RejectPolicy": false, "Service.ActivatePolicy": false, "Service.RetirePolicy": false, "Service.ShadowPolicy": false,
		"Service.AcceptAssignment": false, "Service.SampleAssignment": false, "Service.CorrectResult": false, "Service.EscalateOverdue": false,
	}
	reads := []string{"Service.AuditLog", "Service.VerifyAudit", "Service.VerifyAuditProgress", "Service.PolicyInForce", "Service.Policy", "Service.DecisionView", "Service.SearchDecisions",
		"Service.QuotaPeriods", "Service.VerifyQuota", "Service.VerifyOpenQuota", "Service.QuotaUsage", "Service.Configured",
		"Service.Score", "Service.RankedScores", "Service.Assignment", "Service.OpenAssignments", "Service.GoodsState",
		"Access.MaxKeyTTL", "Access.KeyStatus", "Access.Authenticate", "Access.Keys",
		"Service.Queue", "Service.Workload", "Service.Policies", "Service.PolicyVersionOf", "Service.ValidatePolicy", "Service.ShadowReportOf", "Service.DiffPolicies",
		"Service.Effectiveness"}
	for _, v := range []any{&inspection.Service{}, &inspection.Access{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumMethod() {
			name := typ.Elem().Name() + "." + typ.Method(i).Name
			if _, ok := changes[name]; !ok && !slices.Contains(reads, name) {
				t.Errorf("%s is neither a change driven here nor a read: classify it", name)
			}
		}
	}

	r := newWriteRig(t)
	sys, nsw, customs := access.SystemPrincipal(), as("nsw"), as("customs:nguyen.van.a")
	admin, agency, auditor := as("admin:ops"), as("agency:moit-firi"), as("auditor:b")
	step := func(name string, kind audit.Kind, actor string, run func() error) {
		t.Helper()
		if err := r.change(t, kind, actor, run); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		changes[name] = true
	}
	step("Service.Start", audit.PolicyStored, access.ActorSystem, func() error { _, err := r.svc.Start(ctx); return err })
	step("Service.LoadReference", audit.ReferenceLoaded, access.ActorSystem, func() error {
		return r.svc.LoadReference(ctx, sys, reference.Data{Agencies: []reference.Agency{{ID: "moit-firi", Name: "FIRI", Ministry: "MOIT"}}})
	})
	var keys []inspection.IssuedKey
	step("Access.CreateKeys", audit.KeyCreated, admin.Name, func() (err error) {
		keys, err = r.access.CreateKeys(ctx, admin, []inspection.KeyRequest{{Principal: "nsw"}, {Principal: "customs"}})
		return err
	})
	step("Access.CreateKey", audit.KeyCreated, admin.Name, func() error {
		_, err := r.access.CreateKey(ctx, admin, inspection.KeyRequest{Principal: "auditor"})
		return err
	})
	decide := func(id string, l declaration.LineInput) (d inspection.Decision, err error) {
		res, err := r.svc.Decide(ctx, nsw, declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{l}})
		if err == nil {
			d = res.Decisions[0]
		}
		return d, err
	}
	var inspected, other inspection.Decision
	step("Service.Decide", audit.DeclarationDecided, nsw.Name, func() (err error) {
		inspected, err = decide("WP-1", normalLine(1, "Sữa ghi"))
		return err
	})
	if err := r.unchanged(t, func() error { _, err := decide("WP-1", normalLine(1, "Sữa ghi")); return err }); err != nil {
		t.Errorf("a resubmitted declaration: %v", err)
	}
	if err := r.change(t, audit.DeclarationDecided, nsw.Name, func() error { _, err := decide("WP-2", reducedLine("0402.21.20", 1)); return err }); err != nil {
		t.Errorf("a reduced lot: %v", err)
	}
	if err := r.change(t, audit.DeclarationDecided, nsw.Name, func() (err error) { other, err = decide("WP-3", normalLine(1, "Sữa khác")); return err }); err != nil {
		t.Errorf("a second lot: %v", err)
	}
	result := inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Format(time.RFC3339)}
	step("Service.RecordResult", audit.ResultRecorded, agency.Name, func() error {
		_, err := r.svc.RecordResult(ctx, agency, inspected.AssignmentID, result)
		return err
	})
	if err := r.unchanged(t, func() error { _, err := r.svc.RecordResult(ctx, agency, inspected.AssignmentID, result); return err }); err != nil {
		t.Errorf("the same result again: %v", err)
	}
	step("Service.RaiseAlert", audit.AlertRaised, customs.Name, func() error {
		_, err := r.svc.RaiseAlert(ctx, customs, inspection.AlertInput{Authority: "RASFF", Reference: "WP-A", IssuedAt: r.clock.Now().Format(time.RFC3339),
			Reason: "Listeria", Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: "Other Dairy", Origin: "NZ"}})
		return err
	})
	step("Service.CorrectResult", audit.ResultCorrected, agency.Name, func() error {
		_, _, err := r.svc.CorrectResult(ctx, agency, inspected.AssignmentID, inspection.CorrectionInput{Outcome: "fail", Reason: "lab report misread",
			Findings: []inspection.Finding{{Code: "MICRO", Text: "above limit"}}})
		return err
	})
	// A strict lot (its maker has the alert above): accepted, sampled.
	var strict inspection.Decision
	if err := r.change(t, audit.DeclarationDecided, nsw.Name, func() (err error) {
		l := normalLine(1, "Sữa Other")
		l.Manufacturer = "Other Dairy"
		strict, err = decide("WP-S", l)
		return err
	}); err != nil || strict.Mode != inspection.ModeStrict {
		t.Fatalf("a strict lot: %v (%s)", err, strict.Mode)
	}
	step("Service.AcceptAssignment", audit.AssignmentAccepted, agency.Name, func() error {
		_, _, err := r.svc.AcceptAssignment(ctx, agency, strict.AssignmentID, "Officer Tran")
		return err
	})
	step("Service.SampleAssignment", audit.AssignmentSampled, agency.Name, func() error {
		_, _, err := r.svc.SampleAssignment(ctx, agency, strict.AssignmentID, inspection.SampleInput{Laboratory: "Lab 1", Reference: "S-1"})
		return err
	})
	step("Service.Override", audit.DecisionOverridden, customs.Name, func() error {
		_, err := r.svc.Override(ctx, customs, other.ID, inspection.OverrideInput{ReasonCode: "duplicate_declaration", ReasonText: "declared twice", Inspect: ptr(false)})
		return err
	})
	// A relaxing override is requested (its own kind), then confirmed by a
	// second officer; another is rejected.
	second := as("customs:tran.thi.b")
	exemption := inspection.OverrideInput{ReasonCode: "exemption_established", ReasonText: "diplomatic consignment", Inspect: ptr(false)}
	var pending inspection.OverrideOutcome
	for i, id := range []string{"WP-5", "WP-6"} {
		d, err := decide(id, normalLine(1, "Sữa miễn "+id))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.change(t, audit.OverrideRequested, customs.Name, func() (err error) {
			pending, err = r.svc.Override(ctx, customs, d.ID, exemption)
			return err
		}); err != nil {
			t.Errorf("a relaxing override: %v", err)
		}
		o := pending.Decision.Overrides[0]
		if i == 0 {
			step("Service.ConfirmOverride", audit.OverrideConfirmed, second.Name, func() error {
				_, err := r.svc.ConfirmOverride(ctx, second, o.ID)
				return err
			})
			if err := r.unchanged(t, func() error { _, err := r.svc.ConfirmOverride(ctx, second, o.ID); return err }); err != nil {
				t.Errorf("the same confirmation again: %v", err)
			}
			continue
		}
		step("Service.RejectOverride", audit.OverrideRejected, second.Name, func() error {
			_, err := r.svc.RejectOverride(ctx, second, o.ID, "no diplomatic note on file")
			return err
		})
		if err := r.unchanged(t, func() error {
			_, err := r.svc.RejectOverride(ctx, second, o.ID, "no diplomatic note on file")
			return err
		}); err != nil {
			t.Errorf("the same rejection again: %v", err)
		}
	}
	step("Service.RegisterCertificate", audit.CertificateRegistered, agency.Name, func() error {
		_, err := r.svc.RegisterCertificate(ctx, agency, identity.ManufacturerKey("Audit Dairy", "NZ"), inspection.CertificateRegistration{
			Kind: "HACCP", Number: "H-77", ValidUntil: "2028-06-30", Manufacturer: "Audit Dairy", Origin: "NZ"})
		return err
	})
	step("Service.LinkGoods", audit.GoodsLinked, customs.Name, func() error {
		_, err := r.svc.LinkGoods(ctx, customs, other.GoodsKey, inspected.GoodsKey, "one product")
		return err
	})
	step("Service.UnlinkGoods", audit.GoodsUnlinked, customs.Name, func() error {
		_, err := r.svc.UnlinkGoods(ctx, customs, other.GoodsKey, "two products after all")
		return err
	})
	step("Access.RevokeKey", audit.KeyRevoked, admin.Name, func() error { _, err := r.access.RevokeKey(ctx, admin, keys[1].Key.ID); return err })
	author, approver := as("policy-author:lan"), as("policy-approver:minh")
	base := mustPolicy(t).Version
	step("Service.CreatePolicy", audit.PolicyDrafted, author.Name, func() error {
		_, err := r.svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{From: base, Version: "wp-2"})
		return err
	})
	var submitted inspection.PolicyVersion
	step("Service.EditPolicy", audit.PolicyEdited, author.Name, func() error {
		v, err := r.svc.PolicyVersionOf(ctx, author, "wp-2")
		if err == nil {
			_, err = r.svc.EditPolicy(ctx, author, "wp-2", bytes.Replace(v.Document, []byte(`"description":"`), []byte(`"description":"edited: `), 1))
		}
		return err
	})
	step("Service.SubmitPolicy", audit.PolicySubmitted, author.Name, func() (err error) {
		submitted, err = r.svc.SubmitPolicy(ctx, author, "wp-2")
		return err
	})
	step("Service.ApprovePolicy", audit.PolicyApproved, approver.Name, func() error {
		_, err := r.svc.ApprovePolicy(ctx, approver, "wp-2", submitted.SHA256)
		return err
	})
	step("Service.ShadowPolicy", audit.PolicyShadowStarted, approver.Name, func() error {
		_, err := r.svc.ShadowPolicy(ctx, approver, "wp-2", true)
		return err
	})
	step("Service.ActivatePolicy", audit.PolicyActivated, approver.Name, func() error {
		_, err := r.svc.ActivatePolicy(ctx, approver, "wp-2", nil)
		return err
	})
	if _, err := r.svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{From: base, Version: "wp-4"}); err != nil {
		t.Fatal(err)
	}
	step("Service.RetirePolicy", audit.PolicyRetired, approver.Name, func() error {
		_, err := r.svc.RetirePolicy(ctx, approver, "wp-4", "abandoned")
		return err
	})
	if _, err := r.svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{From: "wp-2", Version: "wp-3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.SubmitPolicy(ctx, author, "wp-3"); err != nil {
		t.Fatal(err)
	}
	step("Service.RejectPolicy", audit.PolicyRejected, approver.Name, func() error {
		_, err := r.svc.RejectPolicy(ctx, approver, "wp-3", "no change worth a version")
		return err
	})
	r.clock.Set(time.Date(2027, 1, 4, 9, 0, 0, 0, calendar.Vietnam()))
	step("Service.RevealQuotaKey", audit.QuotaKeyRevealed, auditor.Name, func() error { _, err := r.svc.RevealQuotaKey(ctx, auditor, "2026"); return err })
	step("Service.OpenQuotaPeriod", audit.QuotaPeriodOpened, access.ActorSystem, func() error {
		opened, err := r.svc.OpenQuotaPeriod(ctx, sys, "2027")
		if err == nil && !opened {
			err = errors.New("2027 not opened")
		}
		return err
	})
	if err := r.unchanged(t, func() error { _, err := r.svc.OpenQuotaPeriod(ctx, sys, "2027"); return err }); err != nil {
		t.Errorf("opening an open period again: %v", err)
	}
	if _, err := r.svc.OpenQuotaPeriod(ctx, sys, "2025"); fault.CodeOf(err) != fault.Conflict {
		t.Errorf("opening a period that has ended: %v, want a conflict", err)
	}
	// A year on every inspection still to do is overdue: each escalated
	// once, by the job's run, and a second run escalates nothing.
	before := len(r.entries(t))
	n, err := r.svc.EscalateOverdue(ctx, sys)
	if es := r.entries(t); err != nil || n == 0 || len(es) != before+n {
		t.Errorf("escalation: %d escalated, %d entries (%v)", n, len(es)-before, err)
	} else {
		for _, e := range es[before:] {
			if e.Kind != audit.AssignmentEscalated || e.Actor != access.ActorSystem {
				t.Errorf("escalation entry %s by %s", e.Kind, e.Actor)
			}
		}
	}
	if err := r.unchanged(t, func() error { _, err := r.svc.EscalateOverdue(ctx, sys); return err }); err != nil {
		t.Errorf("the job run again: %v", err)
	}
	changes["Service.EscalateOverdue"] = true
	// Rescoring writes only derived data (risk counts and priors, folds of
	// the audited events): it goes through the write path but covers no
	// record, so it appends no entry.
	if err := r.unchanged(t, func() error { _, err := r.svc.Rescore(ctx, sys); return err }); err != nil {
		t.Errorf("rescoring: %v", err)
	}
	changes["Service.Rescore"] = true
	for name, driven := range changes {
		if !driven {
			t.Errorf("%s changes state but is not driven here", name)
		}
	}
	if _, err := r.svc.VerifyAudit(ctx, sys, nil); err != nil {
		t.Fatalf("the store after every use case fails verification: %v", err)
	}

	// Around the write path: the store refuses a record no entry covers,
	// and commits nothing of it.
	digest, err := r.db.Digest()
	if err != nil {
		t.Fatal(err)
	}
	forged := inspected
	forged.ID, forged.Mode = identity.DecisionID("WP-X", 1), inspection.ModeExempt
	bypass := func() error {
		return r.db.Update(ctx, func(tx inspection.Tx) error { return tx.PutDecision(forged) })
	}
	if err := bypass(); !errors.Is(err, store.ErrUnaudited) {
		t.Fatalf("a decision written around the write path: %v, want store.ErrUnaudited", err)
	}
	if after, _ := r.db.Digest(); after != digest {
		t.Fatal("the refused write changed the store")
	}
	// And the check bites: a use case that got around the store as well
	// (someone with write access to the data directory) is caught.
	raw := func() error {
		return r.db.UpdateRaw(ctx, func(tx inspection.Tx) error { return tx.PutDecision(forged) })
	}
	if err := r.change(t, audit.DeclarationDecided, nsw.Name, raw); err == nil {
		t.Fatal("a write around the write path passed the check")
	}
	if _, err := r.svc.VerifyAudit(ctx, sys, nil); !errors.Is(err, audit.ErrMismatch) {
		t.Fatalf("verify audit after a write around the write path: %v", err)
	}
}

// TestAgencyVisibilityInTheDomain: the agency rows of the API's
// authorization matrix hold when the use cases are called directly, with
// no HTTP in between. Another agency's decision, assignment and result are
// not found, word for word as a missing one; the agency's own are there.
func TestAgencyVisibilityInTheDomain(t *testing.T) {
	r := startedRig(t)
	res, err := r.svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: "VIS-1", ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{normalLine(1, "Sữa thấy")}})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Decisions[0]
	own, stranger := as("agency:"+d.Agency), as("agency:moh-nifc")
	if d.Agency == "" || d.Agency == stranger.Agency {
		t.Fatalf("setup: routed to %q", d.Agency)
	}
	// notFound: err must be the answer a missing record gets, with only the
	// ID it names differing.
	notFound := func(what string, err, missing error, missingID, id string) {
		t.Helper()
		if fault.CodeOf(err) != fault.NotFound || missing == nil || err.Error() != strings.Replace(missing.Error(), missingID, id, 1) {
			t.Errorf("%s as another agency: %v, want word for word what a missing one gets (%v)", what, err, missing)
		}
	}
	_, err = r.svc.DecisionView(ctx, stranger, d.ID)
	_, missing := r.svc.DecisionView(ctx, stranger, "dec_missing")
	notFound("decision", err, missing, "dec_missing", d.ID)
	_, err = r.svc.Assignment(ctx, stranger, d.AssignmentID)
	_, missing = r.svc.Assignment(ctx, stranger, "asg_missing")
	notFound("assignment", err, missing, "asg_missing", d.AssignmentID)
	result := inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Format(time.RFC3339)}
	_, err = r.svc.RecordResult(ctx, stranger, d.AssignmentID, result)
	_, missing = r.svc.RecordResult(ctx, stranger, "asg_missing", result)
	notFound("result", err, missing, "asg_missing", d.AssignmentID)
	_, _, err = r.svc.OpenAssignments(ctx, stranger, d.Agency, "", 10)
	_, _, missing = r.svc.OpenAssignments(ctx, stranger, "no-such-agency", "", 10)
	notFound("queue", err, missing, "no-such-agency", d.Agency)

	if v, err := r.svc.DecisionView(ctx, own, d.ID); err != nil || v.ID != d.ID {
		t.Errorf("own decision: %v", err)
	}
	if list, _, err := r.svc.OpenAssignments(ctx, own, "", "", 10); err != nil || len(list) != 1 {
		t.Errorf("own queue: %d, %v", len(list), err)
	}
	if _, err := r.svc.RecordResult(ctx, own, d.AssignmentID, result); err != nil {
		t.Errorf("own result: %v", err)
	}
	// Roles hold in the domain too: an agency overrides nothing, NSW reads
	// no decision.
	for _, c := range []struct {
		name string
		err  error
	}{
		{"agency override", func() error {
			_, err := r.svc.Override(ctx, own, d.ID, inspection.OverrideInput{ReasonCode: "agency_request", ReasonText: "x", Inspect: ptr(false)})
			return err
		}()},
		{"nsw reads a decision", func() error { _, err := r.svc.DecisionView(ctx, as("nsw"), d.ID); return err }()},
		{"agency reads scores", func() error { _, _, err := r.svc.RankedScores(ctx, own, "goods", 5); return err }()},
	} {
		if fault.CodeOf(c.err) != fault.Forbidden {
			t.Errorf("%s: %v, want forbidden", c.name, c.err)
		}
	}
}

// TestDecisionFollowsThePolicyInForceAtCommit changes the policy in force
// between a decision's preparation and its commit: the decision follows,
// and names, the version in force at the commit.
func TestDecisionFollowsThePolicyInForceAtCommit(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	onRecord(t, db)
	st := &interleaving{DB: db}
	clock := &fixedClock{}
	clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	a := mustPolicy(t)
	svc, err := inspection.NewService(inspection.Config{Store: st, Policy: a, Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Version B samples no reduced lot: a reduced lot decided under it has
	// no draw and says why.
	b := mustPolicy(t)
	b.Version, b.Reduced.Sampling.Enabled = "race-b", false
	doc, err := b.Document()
	if err != nil {
		t.Fatal(err)
	}
	if b, err = policy.ParsePolicy(doc); err != nil {
		t.Fatal(err)
	}
	decide := func(id string) inspection.Decision {
		t.Helper()
		res, err := svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{reducedLine("0402.21.20", 3)}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Decisions[0]
	}
	before := decide("RACE-0")
	if before.PolicyVersion != a.Version || before.Mode != inspection.ModeReduced || before.Quota == nil {
		t.Fatalf("control under %s: %+v", a.Version, before)
	}
	used0, re0 := inspection.PreparedStats(svc)
	approveVersion(t, svc, b)
	st.between = func() {
		if _, err := svc.ActivatePolicy(ctx, as("policy-approver:minh"), b.Version, nil); err != nil { // puts B in force
			t.Error(err)
		}
	}
	d := decide("RACE-1")
	if d.PolicyVersion != b.Version || d.Quota != nil || d.Inspect || !strings.Contains(d.Reason, "random sampling disabled by policy") {
		t.Fatalf("decided across the switch: version %s, quota %v, reason %q; want %s's rules", d.PolicyVersion, d.Quota, d.Reason, b.Version)
	}
	if used, re := inspection.PreparedStats(svc); used != used0 || re != re0+1 {
		t.Errorf("prepared %d→%d, recomputed %d→%d: the evaluation prepared under %s must not commit", used0, used, re0, re, a.Version)
	}
	st2, err := svc.GoodsState(ctx, access.SystemPrincipal(), d.GoodsKey)
	if err != nil || st2.PolicyVersion != b.Version {
		t.Errorf("goods state names %q (%v), want %s", st2.PolicyVersion, err, b.Version)
	}
	if p, err := svc.PolicyInForce(ctx); err != nil || p.Version != b.Version {
		t.Errorf("in force: %v %v", p, err)
	}
}

// TestCertificateTermsUnderThePolicyInForceAtCommit: a declaration read
// under one policy and committed under another is held to the other's
// longest certificate term, like every other rule of it.
func TestCertificateTermsUnderThePolicyInForceAtCommit(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	onRecord(t, db)
	st := &interleaving{DB: db}
	clock := &fixedClock{}
	clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	svc, err := inspection.NewService(inspection.Config{Store: st, Policy: mustPolicy(t), Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The line's certificate runs to 2028-12-31: within the default's 3
	// years, beyond version B's 1.
	b := mustPolicy(t)
	b.Version, b.Certificates = "term-b", &policy.CertificateRules{MaxTermYears: 1}
	approveVersion(t, svc, b)
	st.between = func() {
		if _, err := svc.ActivatePolicy(ctx, as("policy-approver:minh"), b.Version, nil); err != nil { // puts B in force
			t.Error(err)
		}
	}
	in := declaration.Input{DeclarationID: "TERM-1", ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{reducedLine("0402.21.20", 3)}}
	_, err = svc.Decide(ctx, as("nsw"), in)
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Code != fault.Invalid || fe.Field != "lines[0].certificates[0].valid_until" {
		t.Fatalf("decided under B with a certificate beyond its term: %v", err)
	}
	if _, err := svc.DecisionView(ctx, access.SystemPrincipal(), identity.DecisionID("TERM-1", 1)); fault.CodeOf(err) != fault.NotFound {
		t.Fatalf("a refused declaration left a decision: %v", err)
	}
}

// approveVersion takes p through the policy lifecycle to approved: sent
// and submitted by an author, approved by an approver.
func approveVersion(t *testing.T, svc *inspection.Service, p *policy.Policy) {
	t.Helper()
	doc, err := p.Document()
	if err != nil {
		t.Fatal(err)
	}
	author, approver := as("policy-author:lan"), as("policy-approver:minh")
	if _, err := svc.CreatePolicy(ctx, author, inspection.PolicyDraftInput{Document: doc}); err != nil {
		t.Fatal(err)
	}
	v, err := svc.SubmitPolicy(ctx, author, p.Version)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ApprovePolicy(ctx, approver, p.Version, v.SHA256); err != nil {
		t.Fatal(err)
	}
}
