// Package audit is ktcn's tamper-evident log: the hash chain of entries
// (one per change, naming the actor, the kind, the subjects and the
// SHA-256 of every record the change wrote), its verification against the
// stored records, and the Ed25519-signed checkpoints kept outside the
// store that catch a rewrite of the whole chain. docs/audit.md is the
// auditor's description of the encoding; keep the two in step.
//
// It owns the encoding, hashing, signing and checking. Which records a
// change wrote is the store's to note and inspection's write path's to put
// in an entry; this package never reads a store except through Reader.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// The chain (TestAuditHashMatchesTheDocument pins the example in
// docs/audit.md).
//
// Every use case that writes appends exactly one entry, in the same
// transaction as its writes, so the entry and the change commit together
// or not at all. The entry names the actor, the time (the injected clock),
// what happened, the IDs it concerns and, for every record the transaction
// wrote, the SHA-256 of the record as stored. An entry's hash covers the
// previous entry's hash, so altering, removing or reordering any entry
// breaks every link after it; the record digests make a later rewrite of a
// stored decision (or assignment, result, key…) detectable too.
//
// A rewrite of the whole chain by someone who can write the store is
// caught by signed checkpoints kept outside it (audit_checkpoint.go).

// Kind is what an audit entry records.
type Kind string

const (
	// DeclarationDecided covers one declaration: its record, every
	// line's decision and assignment, goods states, quota counters and, when
	// its first reduced lot opened a quota period, the period (with its key
	// commitment). One entry per declaration, not per line: the decisions
	// of a declaration are one atomic write and one NSW answer.
	DeclarationDecided Kind = "declaration.decided"
	ResultRecorded     Kind = "result.recorded"
	AlertRaised        Kind = "alert.raised"
	// DecisionOverridden covers a customs override: the override
	// records (two for a swap) and the assignments opened or cancelled.
	DecisionOverridden Kind = "decision.overridden"
	// Four eyes on relaxing overrides (inspection/override.go): the
	// request, stored pending and changing nothing else; the second
	// customs officer's confirmation (the override and the assignment it
	// cancels); the rejection (the override only).
	OverrideRequested Kind = "override.requested"
	OverrideConfirmed Kind = "override.confirmed"
	OverrideRejected  Kind = "override.rejected"
	KeyCreated        Kind = "apikey.created"
	KeyRevoked        Kind = "apikey.revoked"
	QuotaKeyRevealed  Kind = "quota.key_revealed"
	QuotaPeriodOpened Kind = "quota.period_opened"
	PolicyStored      Kind = "policy.stored"
	// PolicyActivated covers the switch of the policy in force to a
	// version already stored.
	PolicyActivated Kind = "policy.activated"
	// The policy lifecycle's other steps (inspection/policies.go).
	PolicyDrafted       Kind = "policy.drafted"
	PolicyEdited        Kind = "policy.edited"
	PolicySubmitted     Kind = "policy.submitted"
	PolicyApproved      Kind = "policy.approved"
	PolicyRejected      Kind = "policy.rejected"
	PolicyRetired       Kind = "policy.retired"
	PolicyShadowStarted Kind = "policy.shadow_started"
	PolicyShadowStopped Kind = "policy.shadow_stopped"
	// The assignment lifecycle (inspection/assignments.go).
	AssignmentAccepted  Kind = "assignment.accepted"
	AssignmentSampled   Kind = "assignment.sampled"
	AssignmentEscalated Kind = "assignment.escalated"
	ResultCorrected     Kind = "result.corrected"
	// ReferenceLoaded covers reference data (agencies, importers,
	// manufacturers) loaded in bulk.
	ReferenceLoaded Kind = "reference.loaded"
	// RiskRescored names the rescoring job's changes; they write only
	// derived data (risk counts and priors), so no entry is appended.
	RiskRescored Kind = "risk.rescored"
	// CertificateRegistered covers a certificate put on a manufacturer's
	// record by the body that checked it.
	CertificateRegistered Kind = "certificate.registered"
	// GoodsLinked and GoodsUnlinked cover customs joining two goods
	// identities (one carries the other's history) and parting them.
	GoodsLinked   Kind = "goods.linked"
	GoodsUnlinked Kind = "goods.unlinked"
	// Webhook subscriptions: created, their secret rotated, redelivery
	// asked for, disabled (by an admin, or a receiver's 410 Gone).
	WebhookCreated  Kind = "webhook.created"
	WebhookRotated  Kind = "webhook.secret_rotated"
	WebhookDisabled Kind = "webhook.disabled"
)

// RecordKind names a kind of stored record for audit digests.
type RecordKind string

const (
	RecordDeclaration   RecordKind = "declaration"    // ID: declaration ID
	RecordDecision      RecordKind = "decision"       // ID: decision ID
	RecordAssignment    RecordKind = "assignment"     // ID: assignment ID
	RecordEvent         RecordKind = "event"          // ID: event ID (results, alerts)
	RecordGoodsState    RecordKind = "goods_state"    // ID: goods key (hex)
	RecordGoodsLink     RecordKind = "goods_link"     // ID: the linked goods' key (hex)
	RecordQuotaCounter  RecordKind = "quota_counter"  // ID: period "/" scope
	RecordQuotaPeriod   RecordKind = "quota_period"   // ID: period
	RecordPolicy        RecordKind = "policy"         // ID: policy version
	RecordAPIKey        RecordKind = "api_key"        // ID: key ID
	RecordOverride      RecordKind = "override"       // ID: decision ID "/" n
	RecordAgency        RecordKind = "agency"         // ID: agency ID
	RecordImporter      RecordKind = "importer"       // ID: tax code
	RecordManufacturer  RecordKind = "manufacturer"   // ID: manufacturer key (hex)
	RecordWebhook       RecordKind = "webhook"        // ID: subscription ID
	RecordPolicyVersion RecordKind = "policy_version" // ID: policy version
	// ID: agency "/" working day "/" check kind
	RecordCapacityCounter RecordKind = "capacity_counter"
)

// CoveredKinds are the record kinds VerifyAudit requires an entry to
// cover, so it reports any stored record of these kinds that no entry
// covers (a record slipped in beside the log, or an entry cut off the
// end). Every record is written through the write path and covered;
// agencies, importers and manufacturers are not required to be, since
// stores written before reference data went through the write path hold
// them uncovered.
func CoveredKinds() []RecordKind {
	return []RecordKind{
		RecordDeclaration, RecordDecision, RecordAssignment, RecordEvent, RecordGoodsState, RecordGoodsLink,
		RecordQuotaCounter, RecordQuotaPeriod, RecordPolicy, RecordAPIKey, RecordOverride, RecordWebhook, RecordPolicyVersion,
		RecordCapacityCounter,
	}
}

// RecordDigest names a stored record and the SHA-256 (hex) of its stored
// encoding: the JSON body the store keeps (encoding/json of the inspection
// type, without the store's one-byte version prefix), or the raw document
// for a policy. An auditor hashes the stored bytes; nothing is re-encoded.
type RecordDigest struct {
	Kind   RecordKind `json:"kind"`
	ID     string     `json:"id"`
	SHA256 string     `json:"sha256"`
}

// Entry is one link of the chain.
type Entry struct {
	Seq uint64 `json:"seq"` // 1, 2, 3… in commit order
	// Prev is the hex hash of entry Seq-1 (64 zeros for entry 1).
	Prev  string    `json:"prev"`
	At    time.Time `json:"at"`
	Actor string    `json:"actor"` // principal name, or ActorSystem
	// Key is the API key the actor authenticated with (empty for ktcn's
	// own system principal); the key's record names who issued it.
	Key      string         `json:"key,omitempty"`
	Kind     Kind           `json:"kind"`
	Subjects []string       `json:"subjects"` // "declaration:<id>", "decision:<id>", …
	Records  []RecordDigest `json:"records"`
	// Hash is hex SHA-256(prev hash ‖ Message(entry)).
	Hash string `json:"hash"`
}

// Head is the last entry's sequence and hash.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// auditTag starts every entry's message, so a hash of some other ktcn
// structure can never pass for an entry hash.
const auditTag = "ktcn/audit-entry/v1"

// auditTagKeyed starts the message of an entry that names the actor's API
// key: the v1 message with the key after the actor. Entries without a key
// (all entries written before keys were named, and the system's) keep v1,
// so every stored chain verifies as it was written.
const auditTagKeyed = "ktcn/audit-entry/v2"

// Message is the byte string an entry hash covers after the previous
// hash (docs/audit.md): the tag, Seq (8 bytes big-endian), At as UnixNano
// (8 bytes big-endian, two's complement), Actor, the Key when there is one
// (then under the v2 tag), Kind, the number of
// subjects (4 bytes big-endian) and each subject, the number of records
// and, for each, its kind, its ID and its 32-byte digest. Strings are a
// 4-byte big-endian length and their UTF-8 bytes. A digest that is not 64
// hex digits is an error: it could not have been written by ktcn.
func Message(e Entry) ([]byte, error) {
	b := make([]byte, 0, 128+len(e.Records)*96)
	str := func(s string) { b = binary.BigEndian.AppendUint32(b, uint32(len(s))); b = append(b, s...) }
	if e.Key == "" {
		str(auditTag)
	} else {
		str(auditTagKeyed)
	}
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixNano()))
	str(e.Actor)
	if e.Key != "" {
		str(e.Key)
	}
	str(string(e.Kind))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Subjects)))
	for _, s := range e.Subjects {
		str(s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Records)))
	for _, r := range e.Records {
		sum, err := hex.DecodeString(r.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("record %s %q: digest %q is not 64 hex digits", r.Kind, r.ID, r.SHA256)
		}
		str(string(r.Kind))
		str(r.ID)
		b = append(b, sum...)
	}
	return b, nil
}

// Hash is SHA-256(prev ‖ Message(e)).
func Hash(prev [sha256.Size]byte, e Entry) ([sha256.Size]byte, error) {
	msg, err := Message(e)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	h := sha256.New()
	h.Write(prev[:])
	h.Write(msg)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, nil
}

// DecodeHash reads a 64-hex-digit hash.
func DecodeHash(s string) ([sha256.Size]byte, bool) {
	var out [sha256.Size]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return out, false
	}
	copy(out[:], b)
	return out, true
}

// Observer hears of every audit head a Service commits, after the
// commit, from the committing caller's goroutine (so in no fixed order
// across callers). The checkpointer is one.
type Observer interface {
	AuditCommitted(Head)
}
