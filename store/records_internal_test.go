package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/reference"
)

// TestEveryPrefixIsClassified: a key the store can write is a record (noted
// for the audit), derived data, the audit chain or the schema, and exactly
// one of them; a prefix added without a class cannot be written, so it
// cannot slip a record past the audit.
func TestEveryPrefixIsClassified(t *testing.T) {
	chain := map[prefix]bool{prefixAuditEntry: true, prefixAuditHead: true, prefixMeta: true}
	for b := range 256 {
		p := prefix(b)
		if strings.HasPrefix(p.String(), "prefix 0x") {
			continue // no such prefix
		}
		_, record := p.recordKind()
		n := 0
		for _, in := range []bool{record, p.derived(), chain[p]} {
			if in {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s (0x%02x) is in %d classes (record %v, derived %v, chain/meta %v), want exactly one", p, b, n, record, p.derived(), chain[p])
		}
	}
}

// TestARecordWrittenAsDerivedDataIsRefused: the derived-data write refuses
// a record's prefix, so only putRecord (which notes it) can write one.
func TestARecordWrittenAsDerivedDataIsRefused(t *testing.T) {
	db, err := Open(Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
		return tx.(*writeTx).setDerived(idKey(prefixDecision, "dec_x"), encodeRaw([]byte(`{}`)), func() string { return "decision" })
	})
	if err == nil || !strings.Contains(err.Error(), "not derived data") {
		t.Fatalf("a decision written as derived data: %v", err)
	}
	// And an entry that does not cover exactly what was written is refused.
	err = db.Update(context.Background(), func(tx inspection.Tx) error {
		if err := tx.PutAgency(reference.Agency{ID: "a"}); err != nil {
			return err
		}
		return tx.(*writeTx).PutAuditEntry(audit.Entry{Seq: 1, Prev: strings.Repeat("0", 64), Hash: strings.Repeat("1", 64)})
	})
	if err == nil || !strings.Contains(err.Error(), "must cover exactly") {
		t.Fatalf("an entry covering nothing of what was written: %v", err)
	}
	if err := db.Update(context.Background(), func(tx inspection.Tx) error { return tx.PutAgency(reference.Agency{ID: "a"}) }); !errors.Is(err, ErrUnaudited) {
		t.Fatalf("an agency written with no entry: %v", err)
	}
}
