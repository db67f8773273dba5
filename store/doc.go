// Package store keeps ktcn's data in badger and satisfies inspection.Store.
// It is the only package that imports badger.
//
// It owns the key layout, the value encoding (records are encoded here,
// also ahead of a transaction for the committer: EncodeDecision), the
// transactions (group commit, retry on write conflicts), iteration, and
// the schema version, and three storage concerns the domain relies on but
// does not decide:
//
//   - its indexes, kept in step with the records;
//   - which writes change a decision's inputs (inputs.go): the writes that
//     bump a subject's input version are the store's own, so no caller can
//     forget one;
//   - which keys are records and which derived data (records.go): every
//     record a transaction writes is noted with its digest, and a
//     transaction that wrote a record no audit entry covers exactly is
//     refused (ErrUnaudited). inspection's write path builds the entry
//     from the notes; UpdateRaw skips the check for tests and repairs.
//
// What to write, and whether a use case may write it, is decided in
// inspection. A replicated engine can sit under the same key layout and
// committer: nothing of badger crosses into the domain.
//
// # Durability and transactions
//
// SyncWrites is on, so Update returns nil only once the commit is on disk.
// Update re-runs fn on badger.ErrConflict (up to MaxUpdateAttempts, with a
// short random pause), so fn must have no effect outside its Tx. Errors
// from fn come back unchanged; a missing record is an error for which
// errors.Is(err, fault.ErrNotFound) holds.
//
// By default every Update goes through one committer goroutine (group
// commit, committer.go): many Updates share one transaction and one sync,
// the next batch running while the previous one syncs. Being the only
// writer, the committer can also tell exactly which keys changed after a
// read snapshot, so a caller's reads made ahead on its own snapshot
// (DB.ViewAhead) are reused by its Update where nothing wrote them since
// (readahead.go).
//
// # Key layout
//
// Every key is one prefix byte naming the record kind, then fixed-width
// parts, so prefixes and seeks never need escaping:
//
//	prefix  key after the prefix byte                          value
//	0x01    h16(declaration_id)                                DeclarationRecord
//	0x02    h16(decision_id)                                   Decision
//	0x03    h16(assignment_id)                                 Assignment
//	0x04    h16(agency) | created_at | h16(assignment_id)      assignment_id (raw)
//	0x05    subject kind | subject key | at | h16(event_id)    Event
//	0x06    h16(event_id)                                      0x05 history key (raw)
//	0x07    goods key                                          GoodsState
//	0x08    manufacturer key (Manufacturer.Key())              Manufacturer
//	0x09    h16(tax_code)                                      Importer
//	0x0A    h16(agency_id)                                     Agency
//	0x0B    h16(policy version)                                policy document (raw)
//	0x0C    h16(tax_code) | at | h16(event_id)                 0x05 history key (raw): the importer's results
//	0x0D    h16(key_id)                                        APIKey (the secret only as SHA-256; never the token)
//	0x10    event sequence (8, BE)                             feed.Event: an outbox event (with the agencies that may read it)
//	0x11    h16(period) | h16(scope)                           QuotaCounter
//	0x12    h16(period)                                        QuotaPeriod
//	0x13    h16(period) | h16(scope) | eligible (8, BE)        decision_id (raw)
//	0x14    seq (8, BE)                                        AuditEntry
//	0x15    (nothing)                                          AuditHead {seq, hash}
//	0x16    h16(decision_id) | n (8, BE)                       Override (the decision's n-th)
//	0x17    h16(subject kind) | h16(subject id)                RiskRecord (time-decayed counts)
//	0x18    h16(prior group)                                   risk.Prior
//	0x19    h16(subject kind) | h16(subject id)                decision-input version (raw uint64, big-endian; inputs.go)
//	0x1A    (nothing)                                          ActivePolicy: the policy version in force
//	0x1B    h16(tax_code)                                      (empty): the importer has declared
//	0x1C    (nothing)                                          1 if the store holds identity version 1 history, else 0
//	0x1D    resemblance group | goods key                      the goods' product name (raw): new goods are compared with these
//	0x1E    goods key                                          GoodsLink: customs' link of this goods into another
//	0x1F    goods key (into) | goods key (linked)              (empty): the goods an active link joins into it
//	0x20    (nothing)                                          feed.Head: the last sequence and the compaction horizon
//	0x21    h16(subscription id)                               feed.Subscription: a webhook receiver, its secrets
//	0x22    h16(subscription id)                               feed.State: its delivery progress
//	0x23    h16(subscription id) | event sequence (8, BE)      feed.DeadLetter: an event delivery gave up on
//	0x24    h16(version)                                       PolicyVersion: a policy version's document and lifecycle
//	0x25    h16(version) | decided at | h16(decision id)       ShadowOutcome: what a version in shadow would have decided
//	0x26    decided_at | h16(decision id)                      decision summary (search.go): the decisions in time order
//	0x27    h16(tax_code) | decided_at | h16(decision id)      decision summary: an importer's decisions
//	0x28    h16(declaration_id) | line (4, BE)                 decision summary: a declaration's decisions by line
//	0x29    HS heading (4 digits) | decided_at | h16(decision id)  decision summary: a heading's decisions
//	0x2A    h16(agency) | decided_at | h16(decision id)        decision summary: the decisions routed to an agency (by the decision or an override)
//	0x2B    (nothing)                                          (empty): every decision is indexed (the backfill at Open is done)
//	0x2C    h16(day) | h16(agency) | h16(check)                CapacityCounter: lots routed to an agency for a check kind on a working day
//	0xFF    "schema"                                           schema version (raw uint32, big-endian)
//
// Parts:
//   - h16(s) is SHA-256 of the string truncated to 16 bytes. External IDs
//     have any length and alphabet, so keys hold the hash and the record
//     holds the full ID; getters check that the two agree.
//   - goods, manufacturer and subject keys are the 16-byte identity.Key.
//   - subject kind is one byte: goods 1, manufacturer 2, heading_origin 3.
//   - times (created_at, at) are 8 bytes: big-endian UnixNano with the sign
//     bit flipped, so byte order is time order (before 1970 too). Times
//     UnixNano cannot represent (before 1678, after 2262) are refused.
//
// 0x04 holds an entry exactly while the assignment's Status is open;
// PutAssignment adds, moves and deletes it. Its order is created_at, then
// the hash of the ID; OpenAssignments' cursor is the hex of the last index
// key returned. 0x05 orders a subject's history by At, then by the hash of
// the event ID; Events re-sorts equal instants by ID. 0x06 makes
// Event(id) one extra read.
//
// 0x14 is the audit chain in sequence order and 0x15 its head; the
// inspection package builds the entries, the store refuses one that does
// not follow the head or does not cover exactly the records written since
// the transaction's last entry (PutAuditEntry). Records (covered): 0x01,
// 0x02, 0x03, 0x05, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0D, 0x11, 0x12, 0x16,
// 0x1E, 0x21, 0x24, 0x2C (capacity counters: routing reads them, like the
// quota's).
// Derived (not covered): 0x04, 0x06, 0x0C, 0x13, 0x17, 0x18, 0x19, 0x1A,
// 0x1B, 0x1C, 0x1D, 0x1F, 0x10 and 0x20 (the outbox: a projection of the
// records its transaction wrote, compacted after delivery), 0x22, 0x23
// (delivery's bookkeeping), 0x25 (shadow outcomes: they decide nothing),
// 0x26-0x2B (the decision search's indexes and their marker).
//
// 0x26-0x2A each hold, for every decision, the same summary (mode,
// inspection in force, agencies, overridden, importer, HS code, time, ID),
// written with the decision and rewritten by each override in the same
// transaction, so a search scans one prefix of the most selective index
// its filters name (declaration, importer, agency, heading, else time),
// checks the rest on the summaries and loads only the page's decisions.
// Its cursor is the last index key read (base64url), so it holds while
// decisions are added. A store without 0x2B is indexed at Open.
// A record digest (RecordDigest) is SHA-256 over the record's stored value
// without its version byte: the JSON of a record, the document of a policy
// (docs/audit.md).
//
// # Values
//
// Every value starts with an encoding version byte (1). Records follow as
// JSON (encoding/json of the inspection type; a decision's explanation
// names its events by ID, rebuilt from them on read, and keeps its risk
// scores without what they derive: decision.go); index
// entries, policy documents and the schema version follow as raw bytes. A
// value with an unknown version byte is an error naming its kind. Tables
// are compressed by badger (ZSTD over 32 KiB blocks: db.go), below all this.
//
// # Schema
//
// Open writes 0xFF "schema" = SchemaVersion into a new store, marks a store
// of an older version it reads (oldestSchema on) as SchemaVersion, and
// refuses a store of any other version, or one that holds data but no
// version.
package store
