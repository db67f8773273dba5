// Package feed owns what ktcn tells the National Single Window after the
// synchronous answer: the outbox events (their types, payloads and who may
// read them), the Standard Webhooks signature, and the delivery of events
// to subscribed receivers with retries, order per declaration and dead
// letters. It does not own how events are written (inspection's write path
// appends them in the transaction of the change they describe) nor where
// they are stored (the store); it declares the small interfaces it needs.
package feed

import (
	"slices"
	"time"
)

// Type is what an event says happened.
type Type string

const (
	DecisionMade        Type = "decision.made"
	DecisionOverridden  Type = "decision.overridden"
	AssignmentOpened    Type = "assignment.opened"
	AssignmentCancelled Type = "assignment.cancelled"
	ResultRecorded      Type = "result.recorded"
	AlertRaised         Type = "alert.raised"
	GoodsModeChanged    Type = "goods.mode_changed"
	// The assignment transitions of the agencies' workflow.
	AssignmentAccepted  Type = "assignment.accepted"
	AssignmentEscalated Type = "assignment.escalated"
	ResultCorrected     Type = "result.corrected"
	// PolicyActivated: a policy version comes into force (now, or at
	// effective_at).
	PolicyActivated Type = "policy.activated"
)

// Types lists every event type, in a stable order.
func Types() []Type {
	return []Type{DecisionMade, DecisionOverridden, AssignmentOpened, AssignmentCancelled, ResultRecorded, AlertRaised,
		GoodsModeChanged, AssignmentAccepted, AssignmentEscalated, ResultCorrected, PolicyActivated}
}

// Valid reports whether t is a known event type.
func (t Type) Valid() bool { return slices.Contains(Types(), t) }

// SchemaVersion is the version of the payload schema every event carries:
// a consumer that meets a higher one knows fields may have changed meaning.
const SchemaVersion = 1

// Event is one outbox event. Seq is assigned in commit order with no gaps;
// ID is minted once, when the event is written, and is the webhook-id of
// every delivery of it.
type Event struct {
	Seq           uint64    `json:"seq"`
	ID            string    `json:"id"`
	Type          Type      `json:"type"`
	SchemaVersion int       `json:"schema_version"`
	OccurredAt    time.Time `json:"occurred_at"`
	DeclarationID string    `json:"declaration_id,omitempty"`
	LineNo        int       `json:"line_no,omitempty"`
	Payload       Payload   `json:"payload"`
	// Agencies are the agencies the lot was routed to when the event was
	// written (by its decision or an override): the only agencies that may
	// read it. Not sent: readers learn the lot's agency from the payload.
	Agencies []string `json:"-"`
	// Subject is what an event is about besides a lot ("goods:<key>",
	// "manufacturer:<key>", …): an event without a declaration (an alert,
	// the mode change it caused) is ordered by it.
	Subject string `json:"subject,omitempty"`
}

// OrderKey is what delivery keeps events in order by: the declaration,
// or the subject of an event about no declaration.
func (e Event) OrderKey() string {
	if e.DeclarationID != "" {
		return "declaration:" + e.DeclarationID
	}
	return e.Subject
}

// VisibleToAgency reports whether an agency may read e: only events about
// lots routed to it.
func (e Event) VisibleToAgency(agency string) bool {
	return agency != "" && slices.Contains(e.Agencies, agency)
}

// Payload is what NSW shows the trader and customs about the change. It
// never carries quota state (eligible, selected, allowance, the draw, u,
// the probability): an importer must not be able to predict a random
// check from what it is told of its own lots.
type Payload struct {
	DecisionID   string `json:"decision_id,omitempty"`
	AssignmentID string `json:"assignment_id,omitempty"`
	Importer     string `json:"importer_tax_code,omitempty"`
	GoodsKey     string `json:"goods_key,omitempty"`
	ProductName  string `json:"product_name,omitempty"`
	HSCode       string `json:"hs_code,omitempty"`
	// Mode is the lot's mode (or, for a mode change, the goods' new one).
	Mode string `json:"mode,omitempty"`
	// Inspected says whether the lot is inspected, Check how ("documents"
	// or "documents_and_sampling"), Agency by whom and DueAt by when.
	Inspected *bool      `json:"inspected,omitempty"`
	Check     string     `json:"check,omitempty"`
	Agency    string     `json:"agency,omitempty"`
	DueAt     *time.Time `json:"due_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	Rule      string     `json:"rule,omitempty"`
	// Outcome of an inspection, when it was made, and its findings.
	Outcome     string     `json:"outcome,omitempty"`
	InspectedAt *time.Time `json:"inspected_at,omitempty"`
	Findings    []string   `json:"findings,omitempty"`
	// Override: which, and its coded reason; a mode change's from.
	OverrideID string `json:"override_id,omitempty"`
	ReasonCode string `json:"reason_code,omitempty"`
	FromMode   string `json:"from_mode,omitempty"`
	// Alert: the authority and its reference.
	Authority string `json:"authority,omitempty"`
	Reference string `json:"reference,omitempty"`
	// Progress is the goods' progress toward its next mode, in words
	// ("2 of 3 passes toward reduced").
	Progress string `json:"progress,omitempty"`
	// PolicyVersion comes into force at EffectiveAt.
	PolicyVersion string     `json:"policy_version,omitempty"`
	EffectiveAt   *time.Time `json:"effective_at,omitempty"`
}

// Head is where the outbox stands: the last sequence written, and the
// compaction horizon (every event at or below Compacted was removed after
// every enabled subscription had it; a reader behind it must resync).
type Head struct {
	Seq       uint64 `json:"seq"`
	Compacted uint64 `json:"compacted"`
}
