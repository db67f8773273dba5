package inspection

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/feed"
	"github.com/ktcn/ktcn/inspection/policy"
)

// The policy lifecycle. A version is drafted (empty of rules, copied from
// another version, or sent whole), edited while a draft, validated,
// submitted, and approved or rejected by a second person; an approved
// version is activated now or at a time, and retired when no longer
// wanted. Four eyes are bound to the content: the approval names the
// SHA-256 of the canonical document it approved, and activation refuses a
// document whose hash is not that one; the approver is neither an author
// nor the submitter, refused here and again by the store when the record
// is written. Every step is an audit entry under its principal.
//
// One version is in force at a time. Its pointer (ActivePolicy) may hold
// the next version and when it takes over: every transaction reads the
// pointer and its own "now", so the switch happens exactly at that time,
// atomically, without a job, and every decision names the version in
// force when it committed.

// PolicyState is where a version stands.
type PolicyState string

const (
	PolicyDraft     PolicyState = "draft"
	PolicySubmitted PolicyState = "submitted"
	PolicyApproved  PolicyState = "approved"
	PolicyRejected  PolicyState = "rejected"
	PolicyScheduled PolicyState = "scheduled" // approved, to come into force at ActivateAt
	PolicyActive    PolicyState = "active"
	PolicyRetired   PolicyState = "retired"
)

// PolicyVersion is a version's record: its document and its lifecycle.
type PolicyVersion struct {
	Version string      `json:"version"`
	State   PolicyState `json:"state"`
	// Document is the version's policy document: as sent while a draft
	// (it may not validate yet), canonical from submission on. SHA256 is
	// the hex SHA-256 of Document.
	Document json.RawMessage `json:"document"`
	SHA256   string          `json:"sha256"`
	From     string          `json:"from,omitempty"` // the version it was copied from
	// Source says where a version ktcn recorded on its own came from (the
	// configured policy at start).
	Source string `json:"source,omitempty"`
	// Authors are everyone who wrote the document (its creator first).
	Authors     []string   `json:"authors"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	SubmittedBy string     `json:"submitted_by,omitempty"`
	SubmittedAt *time.Time `json:"submitted_at,omitempty"`
	// ApprovedSHA256 is the document the approver approved.
	ApprovedBy     string     `json:"approved_by,omitempty"`
	ApprovedAt     *time.Time `json:"approved_at,omitempty"`
	ApprovedSHA256 string     `json:"approved_sha256,omitempty"`
	RejectedBy     string     `json:"rejected_by,omitempty"`
	RejectedAt     *time.Time `json:"rejected_at,omitempty"`
	RejectReason   string     `json:"reject_reason,omitempty"`
	// ActivateAt is when it comes (or came) into force; ActivatedBy who
	// activated it.
	ActivatedBy  string     `json:"activated_by,omitempty"`
	ActivateAt   *time.Time `json:"activate_at,omitempty"`
	RetiredBy    string     `json:"retired_by,omitempty"`
	RetiredAt    *time.Time `json:"retired_at,omitempty"`
	RetireReason string     `json:"retire_reason,omitempty"`
	// Shadow is set while the version runs in shadow (shadow.go).
	Shadow *ShadowRun `json:"shadow,omitempty"`
}

// ShadowRun says since when, and on whose authority, a version runs in
// shadow.
type ShadowRun struct {
	Since time.Time `json:"since"`
	By    string    `json:"by"`
}

// FourEyes reports a broken four-eyes rule in v: an approver who wrote or
// submitted the document, or a version in force whose document is not the
// one approved. The domain refuses these before writing; the store calls
// it again on every write of a version record, inside the transaction.
func (v PolicyVersion) FourEyes() error {
	if v.ApprovedBy != "" && v.wroteOrSubmitted(v.ApprovedBy) {
		return fmt.Errorf("policy %s: approved by %s, who wrote or submitted it", v.Version, v.ApprovedBy)
	}
	switch v.State {
	case PolicyApproved, PolicyScheduled, PolicyActive:
		if v.ApprovedBy == "" || v.ApprovedSHA256 == "" || v.ApprovedSHA256 != DocumentSHA256(v.Document) {
			return fmt.Errorf("policy %s: %s without an approval of this document", v.Version, v.State)
		}
	}
	return nil
}

// person is who a principal name is, whatever the role: "lan" of
// "policy-author:lan" and "policy-approver:lan", so one person holding an
// author's key and an approver's cannot be both pairs of eyes.
func person(name string) string {
	if _, who, ok := strings.Cut(name, ":"); ok && who != "" {
		return who
	}
	return name
}

// wroteOrSubmitted reports whether the person behind name wrote or
// submitted the version.
func (v PolicyVersion) wroteOrSubmitted(name string) bool {
	p := person(name)
	return slices.ContainsFunc(v.Authors, func(a string) bool { return person(a) == p }) || v.SubmittedBy != "" && person(v.SubmittedBy) == p
}

// DocumentSHA256 is the hex SHA-256 of a policy document's bytes.
func DocumentSHA256(doc []byte) string {
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}

// PolicyVersionReader reads version records.
type PolicyVersionReader interface {
	PolicyVersion(version string) (PolicyVersion, error)
	PolicyVersions() ([]PolicyVersion, error)
}

// PolicyVersionWriter writes one (the store checks FourEyes).
type PolicyVersionWriter interface {
	PutPolicyVersion(PolicyVersion) error
}

// ScheduledPolicy is the version that takes over at At.
type ScheduledPolicy struct {
	Version string    `json:"version"`
	Digest  string    `json:"digest"`
	At      time.Time `json:"at"`
	By      string    `json:"by"`
}

// effective is the version in force at now: the pointer's, or the
// scheduled one once its time has come.
func (a ActivePolicy) effective(now time.Time) (version string, since time.Time) {
	if a.Next != nil && !now.Before(a.Next.At) {
		return a.Next.Version, a.Next.At
	}
	return a.Version, a.ActivatedAt
}

// view is a record as of now: a scheduled version whose time has come is
// active, and the version it replaced retired, whether or not a write has
// folded the switch into the records yet.
func (v PolicyVersion) view(a ActivePolicy, now time.Time) PolicyVersion {
	if a.Next == nil || now.Before(a.Next.At) {
		return v
	}
	switch {
	case v.Version == a.Next.Version && v.State == PolicyScheduled:
		v.State = PolicyActive
	case v.Version == a.Version && v.State == PolicyActive:
		at := a.Next.At
		v.State, v.RetiredBy, v.RetiredAt, v.RetireReason = PolicyRetired, a.Next.By, &at, "superseded by "+a.Next.Version
	}
	return v
}

// policyInput is the body of POST /v1/policies: a version to copy, or a
// document; Version names the new version (required with a document it
// must match; optional with From).
type PolicyDraftInput struct {
	From     string          `json:"from"`
	Version  string          `json:"version"`
	Document json.RawMessage `json:"document"`
}

const maxPolicyVersionLen = 64

func checkVersionLabel(v string) error {
	if v == "" || len(v) > maxPolicyVersionLen || strings.TrimSpace(v) != v || strings.ContainsAny(v, "/?#%\\ \t\r\n") {
		return Invalid("version", "must be 1 to %d characters without spaces, '/', '?', '#', '%%' or '\\', got %q", maxPolicyVersionLen, v)
	}
	return nil
}

// draftDocument reads a draft's document: any JSON object, compacted, its
// "version" member set to version (a copy is renamed; a document sent
// must name the draft's version or none). It need not validate yet.
func draftDocument(raw []byte, version string, copied bool) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, Invalid("document", "must be a JSON object")
	}
	if v, ok := m["version"]; ok && v != version && !copied {
		return nil, Invalid("version", "the document says version %v, the draft is %s", v, version)
	}
	m["version"] = version
	doc, err := json.Marshal(m)
	if err != nil {
		return nil, Invalid("document", "must be a JSON object: %v", err)
	}
	return doc, nil
}

// loadVersion reads a version record for a change, folding a due switch
// first; a missing one is not found.
func loadVersion(tx interface{ PolicyVersionReader }, version string) (PolicyVersion, error) {
	v, err := tx.PolicyVersion(version)
	if errors.Is(err, fault.ErrNotFound) {
		return v, NotFound("no policy version %q", version)
	}
	return v, err
}

// foldSwitch writes a scheduled switch whose time has come into the
// records and the pointer, so the lifecycle's writes start from what is
// in force. Decisions need not: they read the pointer with their now.
func foldSwitch(tx Tx, now time.Time) (ActivePolicy, error) {
	a, err := tx.ActivePolicy()
	if err != nil {
		return a, fmt.Errorf("policy in force: %w", err)
	}
	if a.Next == nil || now.Before(a.Next.At) {
		return a, nil
	}
	for _, name := range []string{a.Version, a.Next.Version} {
		v, err := tx.PolicyVersion(name)
		if errors.Is(err, fault.ErrNotFound) {
			continue // a store from before version records
		}
		if err != nil {
			return a, err
		}
		if w := v.view(a, now); w.State != v.State {
			if err := tx.PutPolicyVersion(w); err != nil {
				return a, err
			}
		}
	}
	n := *a.Next
	a = ActivePolicy{Version: n.Version, Digest: n.Digest, ActivatedAt: n.At, ActivatedBy: n.By}
	return a, tx.PutActivePolicy(a)
}

// Policies lists every version, newest first, as of now.
func (s *Service) Policies(ctx context.Context, by access.Principal) ([]PolicyVersion, error) {
	now := s.clock.Now()
	return read(ctx, s.reads, by, access.ActReadPolicy, func(tx ReadTx) ([]PolicyVersion, error) {
		vs, err := tx.PolicyVersions()
		if err != nil {
			return nil, err
		}
		a, err := tx.ActivePolicy()
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return nil, err
		}
		for i := range vs {
			vs[i] = vs[i].view(a, now)
			vs[i].Document = nil // the list is for finding one; read it whole by version
		}
		slices.SortStableFunc(vs, func(x, y PolicyVersion) int { return y.CreatedAt.Compare(x.CreatedAt) })
		return vs, nil
	})
}

// PolicyVersionOf returns one version, with its document, as of now.
func (s *Service) PolicyVersionOf(ctx context.Context, by access.Principal, version string) (PolicyVersion, error) {
	now := s.clock.Now()
	return read(ctx, s.reads, by, access.ActReadPolicy, func(tx ReadTx) (PolicyVersion, error) {
		v, err := loadVersion(tx, version)
		if err != nil {
			return v, err
		}
		a, err := tx.ActivePolicy()
		if err != nil && !errors.Is(err, fault.ErrNotFound) {
			return v, err
		}
		return v.view(a, now), nil
	})
}

// lifecycle runs one lifecycle step as by's change: fn gets the version
// record (after a due switch is folded in) and returns it changed; the
// record is written and the entry names the version.
func (s *Service) lifecycle(ctx context.Context, by access.Principal, act access.Action, kind audit.Kind, version string,
	fn func(tx Tx, c *Change, a ActivePolicy, v *PolicyVersion, now time.Time) error) (PolicyVersion, error) {
	if err := by.Require(act); err != nil {
		return PolicyVersion{}, err
	}
	now := s.clock.Now()
	var out PolicyVersion
	err := s.w.write(ctx, by, kind, now, func(tx Tx, c *Change) error {
		a, err := foldSwitch(tx, now)
		if err != nil {
			return err
		}
		v, err := loadVersion(tx, version)
		if err != nil {
			return err
		}
		if err := fn(tx, c, a, &v, now); err != nil {
			return err
		}
		if err := v.FourEyes(); err != nil {
			return Forbidden("%v", err)
		}
		c.Subjects = append(c.Subjects, "policy:"+v.Version)
		out = v
		return tx.PutPolicyVersion(v)
	})
	return out, err
}

// CreatePolicy starts a draft: a copy of a stored version's document, or
// the document sent.
func (s *Service) CreatePolicy(ctx context.Context, by access.Principal, in PolicyDraftInput) (PolicyVersion, error) {
	if err := by.Require(access.ActDraftPolicy); err != nil {
		return PolicyVersion{}, err
	}
	if (in.From == "") == (len(in.Document) == 0) {
		return PolicyVersion{}, Invalid("from", "give either from (a version to copy) or document")
	}
	now := s.clock.Now()
	var out PolicyVersion
	err := s.w.write(ctx, by, audit.PolicyDrafted, now, func(tx Tx, c *Change) error {
		version, raw := in.Version, []byte(in.Document)
		if in.From != "" {
			from, err := tx.PolicyVersion(in.From)
			if errors.Is(err, fault.ErrNotFound) {
				return Invalid("from", "no policy version %q", in.From)
			}
			if err != nil {
				return err
			}
			raw = from.Document
			if version == "" {
				for n := 2; ; n++ {
					version = fmt.Sprintf("%s-r%d", in.From, n)
					if _, err := tx.PolicyVersion(version); errors.Is(err, fault.ErrNotFound) {
						break
					} else if err != nil {
						return err
					}
				}
			}
		} else if version == "" {
			var head struct {
				Version string `json:"version"`
			}
			_ = json.Unmarshal(raw, &head)
			version = head.Version
		}
		if err := checkVersionLabel(version); err != nil {
			return err
		}
		if _, err := tx.PolicyVersion(version); err == nil {
			return Conflict("version", "policy version %s exists: a version is never reused", version)
		} else if !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		if _, err := tx.Policy(version); err == nil {
			return Conflict("version", "policy version %s exists: a version is never reused", version)
		} else if !errors.Is(err, fault.ErrNotFound) {
			return err
		}
		doc, err := draftDocument(raw, version, in.From != "")
		if err != nil {
			return err
		}
		out = PolicyVersion{Version: version, State: PolicyDraft, Document: doc, SHA256: DocumentSHA256(doc), From: in.From,
			Authors: []string{by.Name}, CreatedAt: now, UpdatedAt: now}
		c.Subjects = []string{"policy:" + version}
		return tx.PutPolicyVersion(out)
	})
	return out, err
}

// EditPolicy replaces a draft's document.
func (s *Service) EditPolicy(ctx context.Context, by access.Principal, version string, doc json.RawMessage) (PolicyVersion, error) {
	return s.lifecycle(ctx, by, access.ActDraftPolicy, audit.PolicyEdited, version, func(_ Tx, _ *Change, _ ActivePolicy, v *PolicyVersion, now time.Time) error {
		if v.State != PolicyDraft {
			return Conflict("version", "policy %s is %s: only a draft is edited (draft a new version from it)", v.Version, v.State)
		}
		d, err := draftDocument(doc, v.Version, false)
		if err != nil {
			return err
		}
		v.Document, v.SHA256, v.UpdatedAt = d, DocumentSHA256(d), now
		if !slices.Contains(v.Authors, by.Name) {
			v.Authors = append(v.Authors, by.Name)
		}
		return nil
	})
}

// PolicyValidation is what validating a version found.
type PolicyValidation struct {
	Version string             `json:"version"`
	Valid   bool               `json:"valid"`
	SHA256  string             `json:"sha256"`
	Errors  []PolicyFieldError `json:"errors"`
}

// PolicyFieldError is one error, at a JSON path of the document.
type PolicyFieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidatePolicy checks a version's document as submission will, and
// changes nothing.
func (s *Service) ValidatePolicy(ctx context.Context, by access.Principal, version string) (PolicyValidation, error) {
	v, err := s.PolicyVersionOf(ctx, by, version)
	if err != nil {
		return PolicyValidation{}, err
	}
	out := PolicyValidation{Version: version, SHA256: v.SHA256, Errors: []PolicyFieldError{}}
	if _, err := policy.ParsePolicy(v.Document); err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) {
			out.Errors = append(out.Errors, PolicyFieldError{Path: fe.Field, Message: fe.Message})
		} else {
			out.Errors = append(out.Errors, PolicyFieldError{Path: "", Message: err.Error()})
		}
	}
	out.Valid = len(out.Errors) == 0
	return out, nil
}

// SubmitPolicy asks for approval: the document must validate, and is
// stored in canonical form from now on.
func (s *Service) SubmitPolicy(ctx context.Context, by access.Principal, version string) (PolicyVersion, error) {
	return s.lifecycle(ctx, by, access.ActDraftPolicy, audit.PolicySubmitted, version, func(_ Tx, _ *Change, _ ActivePolicy, v *PolicyVersion, now time.Time) error {
		if v.State != PolicyDraft {
			return Conflict("version", "policy %s is %s: only a draft is submitted", v.Version, v.State)
		}
		p, err := policy.ParsePolicy(v.Document)
		if err != nil {
			var fe *fault.Error
			if errors.As(err, &fe) {
				return Invalid("document."+fe.Field, "%s", fe.Message)
			}
			return Invalid("document", "%v", err)
		}
		canon, err := p.Document()
		if err != nil {
			return err
		}
		v.Document, v.SHA256 = canon, DocumentSHA256(canon)
		v.State, v.SubmittedBy, v.SubmittedAt = PolicySubmitted, by.Name, &now
		return nil
	})
}

// ApprovePolicy approves the submitted document whose SHA-256 the
// approver names: another person than its authors and its submitter.
func (s *Service) ApprovePolicy(ctx context.Context, by access.Principal, version, sha string) (PolicyVersion, error) {
	return s.lifecycle(ctx, by, access.ActApprovePolicy, audit.PolicyApproved, version, func(_ Tx, _ *Change, _ ActivePolicy, v *PolicyVersion, now time.Time) error {
		if v.State != PolicySubmitted {
			return Conflict("version", "policy %s is %s: only a submitted version is approved", v.Version, v.State)
		}
		if v.wroteOrSubmitted(by.Name) {
			return Forbidden("%s wrote or submitted policy %s: a second person approves it", person(by.Name), v.Version)
		}
		if !strings.EqualFold(strings.TrimSpace(sha), v.SHA256) {
			return Conflict("sha256", "policy %s's document has SHA-256 %s, not %q: approve the document you read", v.Version, v.SHA256, sha)
		}
		v.State, v.ApprovedBy, v.ApprovedAt, v.ApprovedSHA256 = PolicyApproved, by.Name, &now, v.SHA256
		return nil
	})
}

const maxPolicyReason = 2000

// RejectPolicy sends a submitted version back with a reason; it stays
// rejected (draft a new version from it).
func (s *Service) RejectPolicy(ctx context.Context, by access.Principal, version, reason string) (PolicyVersion, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxPolicyReason {
		return PolicyVersion{}, Invalid("reason", "is required, at most %d bytes", maxPolicyReason)
	}
	return s.lifecycle(ctx, by, access.ActApprovePolicy, audit.PolicyRejected, version, func(_ Tx, _ *Change, _ ActivePolicy, v *PolicyVersion, now time.Time) error {
		if v.State != PolicySubmitted {
			return Conflict("version", "policy %s is %s: only a submitted version is rejected", v.Version, v.State)
		}
		if v.wroteOrSubmitted(by.Name) {
			return Forbidden("%s wrote or submitted policy %s: a second person decides on it", person(by.Name), v.Version)
		}
		v.State, v.RejectedBy, v.RejectedAt, v.RejectReason = PolicyRejected, by.Name, &now, reason
		return nil
	})
}

// ActivatePolicy puts an approved version in force now, or schedules it
// for at (one scheduled version at a time). The document must be the one
// approved, byte for byte.
func (s *Service) ActivatePolicy(ctx context.Context, by access.Principal, version string, at *time.Time) (PolicyVersion, error) {
	return s.lifecycle(ctx, by, access.ActApprovePolicy, audit.PolicyActivated, version, func(tx Tx, c *Change, a ActivePolicy, v *PolicyVersion, now time.Time) error {
		if v.State != PolicyApproved {
			return Conflict("version", "policy %s is %s: only an approved version is activated", v.Version, v.State)
		}
		if v.ApprovedSHA256 != DocumentSHA256(v.Document) {
			return Conflict("sha256", "policy %s's document is not the one approved (approved %s, now %s)", v.Version, v.ApprovedSHA256, DocumentSHA256(v.Document))
		}
		p, err := policy.ParsePolicy(v.Document)
		if err != nil || p.Version != v.Version {
			return Conflict("document", "policy %s's approved document does not parse as that version: %v", v.Version, err)
		}
		if err := putDocument(tx, p, v.Document); err != nil {
			return err
		}
		when := now
		if at != nil && at.After(now) {
			if a.Next != nil {
				return Conflict("at", "policy %s is already scheduled for %s: retire it first", a.Next.Version, a.Next.At.Format(time.RFC3339))
			}
			when = *at
			a.Next = &ScheduledPolicy{Version: v.Version, Digest: p.Digest(), At: when, By: by.Name}
			v.State = PolicyScheduled
		} else {
			prev, err := tx.PolicyVersion(a.Version)
			switch {
			case err == nil && prev.Version != v.Version:
				prev.State, prev.RetiredBy, prev.RetiredAt, prev.RetireReason = PolicyRetired, by.Name, &now, "superseded by "+v.Version
				if err := tx.PutPolicyVersion(prev); err != nil {
					return err
				}
			case err != nil && !errors.Is(err, fault.ErrNotFound):
				return err
			}
			a.Version, a.Digest, a.ActivatedAt, a.ActivatedBy = v.Version, p.Digest(), now, by.Name
			v.State = PolicyActive
		}
		v.ActivatedBy, v.ActivateAt = by.Name, &when
		if err := tx.PutActivePolicy(a); err != nil {
			return err
		}
		if c.emitting {
			e := newEvent(feed.PolicyActivated, now, "", 0, feed.Payload{PolicyVersion: v.Version, EffectiveAt: timep(when)}, v.Version, when.String())
			e.Subject = "policy:" + v.Version
			c.emit(e)
		}
		return nil
	})
}

// putDocument stores an approved document where decisions cite it (the
// same bytes again are a no-op for the store's content).
func putDocument(tx Tx, p *policy.Policy, doc []byte) error {
	old, err := tx.Policy(p.Version)
	switch {
	case errors.Is(err, fault.ErrNotFound):
		return tx.PutPolicy(p.Version, doc)
	case err != nil:
		return err
	}
	if prev, perr := policy.ParsePolicy(old); perr == nil && prev.Digest() == p.Digest() {
		return nil
	}
	return Conflict("version", "policy %s is stored with other content: a version label never changes its rules", p.Version)
}

// RetirePolicy retires a version that is not in force (a scheduled one is
// unscheduled). The version in force is replaced by activating another.
func (s *Service) RetirePolicy(ctx context.Context, by access.Principal, version, reason string) (PolicyVersion, error) {
	return s.lifecycle(ctx, by, access.ActApprovePolicy, audit.PolicyRetired, version, func(tx Tx, _ *Change, a ActivePolicy, v *PolicyVersion, now time.Time) error {
		switch v.State {
		case PolicyActive:
			return Conflict("version", "policy %s is in force: activate another version to replace it", v.Version)
		case PolicyRetired:
			return Conflict("version", "policy %s is retired already", v.Version)
		case PolicyScheduled:
			a.Next = nil
			if err := tx.PutActivePolicy(a); err != nil {
				return err
			}
		}
		if v.Shadow != nil {
			v.Shadow = nil
			if err := setShadow(tx, a, v.Version, false); err != nil {
				return err
			}
		}
		if reason = strings.TrimSpace(reason); reason == "" {
			reason = "retired by " + by.Name
		}
		v.State, v.RetiredBy, v.RetiredAt, v.RetireReason = PolicyRetired, by.Name, &now, reason
		return nil
	})
}

// DiffPolicies compares two versions' documents field by field.
func (s *Service) DiffPolicies(ctx context.Context, by access.Principal, from, to string) ([]policy.Change, error) {
	return read(ctx, s.reads, by, access.ActReadPolicy, func(tx ReadTx) ([]policy.Change, error) {
		a, err := loadVersion(tx, from)
		if err != nil {
			return nil, err
		}
		b, err := tx.PolicyVersion(to)
		if errors.Is(err, fault.ErrNotFound) {
			return nil, Invalid("to", "no policy version %q", to)
		}
		if err != nil {
			return nil, err
		}
		return policy.Diff(a.Document, b.Document)
	})
}
