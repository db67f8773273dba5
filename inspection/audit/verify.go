package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/ktcn/ktcn/inspection/fault"
)

// ErrMismatch marks an audit verification failure (as opposed to an
// error reading the store); every *Break is one.
var ErrMismatch = errors.New("audit verification failed")

// Break is the first thing VerifyAudit found wrong. Seq is the
// position in the chain (0 when the fault has none: a record no entry
// covers).
type Break struct {
	Seq    uint64
	Reason string
}

func (b *Break) Error() string {
	if b.Seq == 0 {
		return "audit log broken: " + b.Reason
	}
	return fmt.Sprintf("audit log broken at entry %d: %s", b.Seq, b.Reason)
}

// Is makes errors.Is(err, ErrMismatch) hold.
func (b *Break) Is(target error) bool { return target == ErrMismatch }

func broken(seq uint64, format string, args ...any) error {
	return &Break{Seq: seq, Reason: fmt.Sprintf(format, args...)}
}

// Reader is what verification reads of a store, in one snapshot.
type Reader interface {
	// AuditHead is the last entry's sequence and hash (fault.ErrNotFound
	// before the first entry).
	AuditHead() (Head, error)
	// AuditEntries calls fn for every stored entry from sequence from on,
	// in key order, with the sequence its key holds (which the verifier
	// compares to the entry's own). An entry that cannot be decoded comes
	// with bad set (and keySeq 0 for a malformed key), so the verifier can
	// name its position. An error from fn ends the scan and is returned
	// unchanged.
	AuditEntries(from uint64, fn func(keySeq uint64, e Entry, bad error) error) error
	// RecordDigest digests a record as stored now; fault.ErrNotFound if it
	// is not stored.
	RecordDigest(kind RecordKind, id string) (RecordDigest, error)
	// Records calls fn with every stored record of a kind and its digest,
	// in no particular order.
	Records(kind RecordKind, fn func(RecordDigest) error) error
}

// Report sums up a verified log.
type Report struct {
	Entries     uint64
	Head        Head
	Records     int // distinct records covered, each checked against the store
	Checkpoints int // signed checkpoints matched against the chain
}

// Verify checks, and reports the first fault by its position:
//
//  1. the chain from entry 1: every sequence present once and in order,
//     each entry's Prev the previous entry's hash and its Hash recomputed
//     (docs/audit.md), the head naming the last entry and its hash, and
//     every checkpoint's hash equal to the chain's at its sequence (the
//     checkpoints' signatures are checked by ReadCheckpoints);
//  2. every record an entry covers, at the latest entry covering it,
//     against the store: present, and hashing to what that entry says
//     (decisions are written once, so any change to one shows);
//  3. every stored record of the audited kinds is covered by some entry.
func Verify(tx Reader, checkpoints []Checkpoint) (Report, error) {
	return VerifyProgress(tx, checkpoints, nil)
}

// VerifyProgress is Verify that calls progress, when not nil, as it walks:
// done counts entries over both walks of the chain, total is twice the
// head's sequence (0 when there is no head), so a command can show how far
// a long verification has got. Both are advisory: a damaged log may end
// before or after total.
func VerifyProgress(tx Reader, checkpoints []Checkpoint, progress func(done, total uint64)) (Report, error) {
	var rep Report
	var done, total uint64
	if h, err := tx.AuditHead(); err == nil {
		total = 2 * h.Seq
	}
	step := func() {
		if progress != nil {
			done++
			progress(done, total)
		}
	}
	cps := map[uint64][]Checkpoint{}
	var lastCP uint64
	for _, c := range checkpoints {
		cps[c.Seq] = append(cps[c.Seq], c)
		lastCP = max(lastCP, c.Seq)
	}

	// Pass 1: links. latest maps each record to the last entry covering
	// it; records are keyed by a 128-bit keyed hash of kind and ID, which
	// keeps memory to 24 bytes a record over tens of millions of records.
	latest := map[[2]uint64]uint64{}
	seeds := [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	refKey := func(k RecordKind, id string) [2]uint64 {
		s := string(k) + "\x00" + id
		return [2]uint64{maphash.String(seeds[0], s), maphash.String(seeds[1], s)}
	}
	var (
		expect = uint64(1)
		prev   [sha256.Size]byte
	)
	err := tx.AuditEntries(1, func(keySeq uint64, e Entry, bad error) error {
		switch {
		case bad != nil:
			return broken(expect, "the stored entry cannot be read (%v): it was altered", bad)
		case keySeq != expect:
			return broken(expect, "entry %d is missing (the next stored entry is %d): an entry was deleted", expect, keySeq)
		case e.Seq != keySeq:
			return broken(keySeq, "position %d holds entry %d: entries were reordered or altered", keySeq, e.Seq)
		}
		sum, err := Hash(prev, e)
		if err != nil {
			return broken(keySeq, "%v: the entry was altered", err)
		}
		hash := hex.EncodeToString(sum[:])
		if e.Prev != hex.EncodeToString(prev[:]) {
			if recorded, ok := DecodeHash(e.Prev); ok && keySeq > 1 {
				if alt, err := Hash(recorded, e); err == nil && hex.EncodeToString(alt[:]) == e.Hash {
					// This entry is intact against the predecessor it
					// recorded: that predecessor is what changed.
					return broken(keySeq-1, "entry %d no longer hashes to what entry %d recorded as its predecessor: entry %d was altered (its own hash recomputed), or entry %d's link forged",
						keySeq-1, keySeq, keySeq-1, keySeq)
				}
			}
			if hash == e.Hash {
				return broken(keySeq, "the entry's prev field does not name entry %d's hash: it was altered", keySeq-1)
			}
			return broken(keySeq, "the entry does not follow entry %d: it was altered or moved", keySeq-1)
		}
		if hash != e.Hash {
			return broken(keySeq, "the entry hashes to %s but records %s: it was altered", hash, e.Hash)
		}
		for _, c := range cps[keySeq] {
			if c.Hash != hash {
				return broken(keySeq, "a checkpoint signed at %s says the chain's hash here is %s, the store's chain has %s: the log was rewritten",
					c.At.Format(time.RFC3339), c.Hash, hash)
			}
			rep.Checkpoints++
		}
		for _, r := range e.Records {
			latest[refKey(r.Kind, r.ID)] = keySeq
		}
		prev, expect = sum, expect+1
		step()
		return nil
	})
	if err != nil {
		return rep, err
	}
	last := expect - 1
	rep.Entries = last
	head, err := tx.AuditHead()
	switch {
	case errors.Is(err, fault.ErrNotFound) && last == 0:
		// An empty log; the checks below still look for records no entry
		// covers and for checkpoints beyond it.
	case errors.Is(err, fault.ErrNotFound):
		return rep, broken(last, "the log holds entries 1 to %d but no head", last)
	case err != nil:
		return rep, broken(last, "the head cannot be read (%v): it was altered", err)
	case head.Seq > last:
		return rep, broken(last+1, "the head names entry %d but the log ends at %d: entries were deleted", head.Seq, last)
	case head.Seq < last:
		return rep, broken(head.Seq+1, "the head names entry %d but the log goes on to %d: the head was altered", head.Seq, last)
	case head.Hash != hex.EncodeToString(prev[:]):
		return rep, broken(last, "the head's hash %s is not entry %d's: the head or the entry was altered", head.Hash, last)
	}
	rep.Head = head
	if lastCP > last {
		return rep, broken(last+1, "a signed checkpoint holds the log to entry %d, the store's ends at %d: the log was truncated or rewritten", lastCP, last)
	}

	// Pass 2: each record against the last entry covering it, in chain
	// order, so the first fault found is the earliest.
	err = tx.AuditEntries(1, func(keySeq uint64, e Entry, bad error) error {
		if bad != nil || keySeq > last {
			return fmt.Errorf("audit entry %d changed during verification", keySeq)
		}
		step()
		for _, r := range e.Records {
			if latest[refKey(r.Kind, r.ID)] != keySeq {
				continue // a later entry covers it
			}
			rep.Records++
			now, err := tx.RecordDigest(r.Kind, r.ID)
			switch {
			case errors.Is(err, fault.ErrNotFound):
				return broken(keySeq, "%s %s, recorded here, is missing from the store: it was deleted", r.Kind, r.ID)
			case err != nil:
				return broken(keySeq, "%s %s, recorded here, cannot be read (%v): it was altered", r.Kind, r.ID, err)
			case now.SHA256 != r.SHA256:
				return broken(keySeq, "%s %s hashes to %s, this entry recorded %s: it was altered after it was written",
					r.Kind, r.ID, now.SHA256, r.SHA256)
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}

	// Pass 3: nothing stored beside the log.
	for _, k := range CoveredKinds() {
		err := tx.Records(k, func(d RecordDigest) error {
			if _, ok := latest[refKey(d.Kind, d.ID)]; !ok {
				return broken(0, "%s %s is stored but no entry of the %d covers it: it was written beside the log, or the entries covering it were cut off its end",
					d.Kind, d.ID, last)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}
