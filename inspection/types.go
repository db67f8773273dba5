package inspection

import (
	"time"

	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/reference"
	"github.com/ktcn/ktcn/risk"
)

// Mode is the inspection regime a lot is decided under.
type Mode string

const (
	ModeStrict  Mode = "strict"  // documents + sampling and lab test of every lot
	ModeNormal  Mode = "normal"  // documents of every lot
	ModeReduced Mode = "reduced" // documents of a capped random share of lots
	ModeExempt  Mode = "exempt"  // nothing, unless a warning exists
)

// EventKind is the kind of a history event.
type EventKind string

const (
	EventResult EventKind = "result" // an agency's inspection result
	EventAlert  EventKind = "alert"  // a warning from an authority, or a failed other official inspection
)

// Outcome of an inspection.
type Outcome string

const (
	OutcomePass Outcome = "pass"
	OutcomeFail Outcome = "fail"
)

// Event is one entry of a subject's compliance history. Results are ordered
// by inspection date (At), alerts by issue date.
type Event struct {
	ID      string    `json:"id"`
	Kind    EventKind `json:"kind"`
	Subject Subject   `json:"subject"`
	At      time.Time `json:"at"`
	// ReportedAt is the time the source gave when it was ahead of ktcn's
	// clock (within the tolerated skew); At is then when ktcn learned of it,
	// so every later decision sees the event.
	ReportedAt *time.Time `json:"reported_at,omitempty"`
	// RecordedAt is when ktcn learned of it; results may arrive late and
	// out of order, so mode rules never order by it.
	RecordedAt time.Time `json:"recorded_at"`

	// Results.
	Outcome         Outcome `json:"outcome,omitempty"`
	ImporterTaxCode string  `json:"importer_tax_code,omitempty"`
	DecisionID      string  `json:"decision_id,omitempty"`
	AssignmentID    string  `json:"assignment_id,omitempty"`
	Mode            Mode    `json:"mode,omitempty"` // the mode the lot was decided under

	// Alerts.
	Authority string `json:"authority,omitempty"`
	Reference string `json:"reference,omitempty"`
	Reason    string `json:"reason,omitempty"`

	// Source is who recorded it (the authenticated principal once
	// authentication exists).
	Source string `json:"source"`
	// Supersedes names the result this one corrects: history keeps both,
	// and readers see only the latest (Current).
	Supersedes string `json:"supersedes,omitempty"`
}

// Finding is one observation in an inspection result.
type Finding struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// Result is an agency's outcome for an assignment.
type Result struct {
	Outcome          Outcome   `json:"outcome"`
	InspectedAt      time.Time `json:"inspected_at"`
	Findings         []Finding `json:"findings,omitempty"`
	LabReport        string    `json:"lab_report,omitempty"`
	RejectedQuantity float64   `json:"rejected_quantity,omitempty"`
	// Partial marks a lot partly rejected: recorded as a fail.
	Partial    bool      `json:"partial,omitempty"`
	RecordedAt time.Time `json:"recorded_at"`
	Source     string    `json:"source"`
	// CorrectionReason says why this result replaced the one before
	// (Assignment.Corrected keeps that one).
	CorrectionReason string `json:"correction_reason,omitempty"`
}

// Same reports whether r and o carry the same content (ignoring when and
// by whom they were recorded), so a retried post is recognised.
func (r Result) Same(o Result) bool {
	if r.Outcome != o.Outcome || !r.InspectedAt.Equal(o.InspectedAt) || r.LabReport != o.LabReport ||
		r.RejectedQuantity != o.RejectedQuantity || len(r.Findings) != len(o.Findings) {
		return false
	}
	for i := range r.Findings {
		if r.Findings[i] != o.Findings[i] {
			return false
		}
	}
	return true
}

// AssignmentStatus is where an inspection stands.
type AssignmentStatus string

const (
	AssignmentOpen   AssignmentStatus = "open"
	AssignmentClosed AssignmentStatus = "closed"
	// AssignmentCancelled: a customs override withdrew the inspection
	// before a result; no result is accepted for it.
	AssignmentCancelled AssignmentStatus = "cancelled"
	// AssignmentAccepted: a named officer of the agency took it on.
	AssignmentAccepted AssignmentStatus = "accepted"
	// AssignmentSampled: the sample of a strict lot is taken.
	AssignmentSampled AssignmentStatus = "sampled"
)

// Active reports whether the inspection is still to be done: open,
// accepted or sampled.
func (s AssignmentStatus) Active() bool {
	return s == AssignmentOpen || s == AssignmentAccepted || s == AssignmentSampled
}

// Assignment is an inspection given to an agency.
type Assignment struct {
	ID              string           `json:"id"`
	DecisionID      string           `json:"decision_id"`
	DeclarationID   string           `json:"declaration_id"`
	LineNo          int              `json:"line_no"`
	ImporterTaxCode string           `json:"importer_tax_code"`
	Agency          string           `json:"agency"`
	Mode            Mode             `json:"mode"`
	Check           string           `json:"check"` // "documents" or "documents_and_sampling"
	Goods           identity.Goods   `json:"goods"`
	GoodsKey        identity.Key     `json:"goods_key"`
	Procedure       policy.Procedure `json:"procedure"`
	CreatedAt       time.Time        `json:"created_at"`
	DueAt           time.Time        `json:"due_at"`
	Status          AssignmentStatus `json:"status"`
	Result          *Result          `json:"result,omitempty"`
	// OverrideID is the customs override that last opened or cancelled
	// the assignment (empty for one the decision made). Results of lots a
	// swap checked are told apart from the draw's by it.
	OverrideID  string     `json:"override_id,omitempty"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	// Under a policy with a capacity section (capacity.go): the working
	// day the lot counts toward, the agency preferred for it when another
	// designated agency took it, and whether every designated agency was
	// full, so the preferred one took it over capacity.
	CapacityDay     string `json:"capacity_day,omitempty"`
	PreferredAgency string `json:"preferred_agency,omitempty"`
	OverCapacity    bool   `json:"over_capacity,omitempty"`
	// AcceptedBy is the agency officer who took it on.
	AcceptedBy string     `json:"accepted_by,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	// Sample is the sample of a strict lot, once taken.
	Sample *Sample `json:"sample,omitempty"`
	// Escalation is set, once, when the inspection ran past its deadline.
	Escalation *Escalation `json:"escalation,omitempty"`
	// Corrected are the results this one's agency replaced, oldest first.
	Corrected []Result `json:"corrected,omitempty"`
}

// Sample is a strict lot's sample: where it went and its reference.
type Sample struct {
	Laboratory string    `json:"laboratory"`
	Reference  string    `json:"reference"`
	TakenAt    time.Time `json:"taken_at"`
	TakenBy    string    `json:"taken_by"`
}

// Escalation records an inspection past its deadline: reassigned to
// another designated agency, or flagged to customs.
type Escalation struct {
	At         time.Time `json:"at"`
	FromAgency string    `json:"from_agency"`
	// ToAgency is set when it was reassigned; otherwise customs was told.
	ToAgency string    `json:"to_agency,omitempty"`
	Reason   string    `json:"reason"`
	WasDue   time.Time `json:"was_due"`
}

// EventRef is the short form of an event a decision saw.
type EventRef struct {
	ID        string    `json:"id"`
	Kind      EventKind `json:"kind"`
	Subject   string    `json:"subject"` // subject kind
	At        time.Time `json:"at"`
	Outcome   Outcome   `json:"outcome,omitempty"`
	Importer  string    `json:"importer_tax_code,omitempty"`
	Authority string    `json:"authority,omitempty"`
}

// Explanation is why a lot got its mode: enough for a customs officer to
// defend the decision years later.
type Explanation struct {
	Rule     string `json:"rule"`               // e.g. "reduced.consecutive_passes"
	Reason   string `json:"reason"`             // one sentence
	Progress string `json:"progress,omitempty"` // e.g. "2 of 3 passes toward reduced"
	// EventsSeen counts every history event the evaluation read; Events
	// lists the ones that decided the mode (since the last reset).
	EventsSeen  int                    `json:"events_seen"`
	Events      []EventRef             `json:"events"`
	Certificate *reference.Certificate `json:"certificate,omitempty"` // the certificate that qualified for reduced
	Exemption   string                 `json:"exemption,omitempty"`   // category or "quality_importer"
	// ExemptUntil is the end of a quality-regime importer exemption.
	ExemptUntil *time.Time `json:"exempt_until,omitempty"`
	// Scores are the risk scores the decision saw, with their intervals
	// and evidence (goods, heading × origin, manufacturer, importer).
	Scores []risk.Score `json:"scores,omitempty"`
	// Resembles names the known goods whose caution new goods inherited.
	Resembles *Resemblance `json:"resembles,omitempty"`
	// Pending lists certificates presented with the lot that no designated
	// body has registered: they count once verified.
	Pending []string `json:"pending_certificates,omitempty"`
}

// Decision is the inspection decision for one lot (declaration line).
type Decision struct {
	ID              string           `json:"id"`
	DeclarationID   string           `json:"declaration_id"`
	LineNo          int              `json:"line_no"`
	ImporterTaxCode string           `json:"importer_tax_code"`
	Goods           identity.Goods   `json:"goods"`
	GoodsKey        identity.Key     `json:"goods_key"`
	Procedure       policy.Procedure `json:"procedure"`
	Mode            Mode             `json:"mode"`
	Inspect         bool             `json:"inspect"`
	Agency          string           `json:"agency,omitempty"`
	AssignmentID    string           `json:"assignment_id,omitempty"`
	Reason          string           `json:"reason"`
	PolicyVersion   string           `json:"policy_version"`
	DecidedAt       time.Time        `json:"decided_at"`
	Explanation     Explanation      `json:"explanation"`
	// Quota is the random-check state a reduced-mode lot saw.
	Quota *quota.Record `json:"quota,omitempty"`
}

// GoodsState is the stored snapshot of a goods' mode (for display and the
// NSW feed); it is recomputed from history, never the source of a decision.
type GoodsState struct {
	Key           identity.Key   `json:"key"`
	Goods         identity.Goods `json:"goods"`
	Mode          Mode           `json:"mode"`
	Rule          string         `json:"rule"`
	Progress      string         `json:"progress,omitempty"`
	Lots          int            `json:"lots"`
	Results       int            `json:"results"`
	PolicyVersion string         `json:"policy_version"`
	UpdatedAt     time.Time      `json:"updated_at"`
}
