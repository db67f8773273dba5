package inspection_test

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/reference"
)

// TestMain lets `make test` / `make soak` set rapid's iteration count for
// every package through RAPID_CHECKS (a -rapid.checks flag would break the
// packages that do not define it).
func TestMain(m *testing.M) {
	flag.Parse()
	if v := os.Getenv("RAPID_CHECKS"); v != "" {
		if err := flag.Set("rapid.checks", v); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// as is the principal a test acts as, by its name (see
// access.ParsePrincipal).
func as(name string) access.Principal {
	p, err := access.ParsePrincipal(name)
	if err != nil {
		panic(err) // a test's own literal: a bug in the test
	}
	return p
}

// onRecord puts the certificates the test lines present on their
// manufacturers' records (as reference data loaded before the log began):
// a presented certificate counts toward reduced only once on record.
func onRecord(tb interface{ Fatal(...any) }, db interface {
	UpdateRaw(context.Context, func(inspection.Tx) error) error
}) {
	until := time.Date(2028, 12, 31, 23, 59, 59, 0, calendar.Vietnam())
	err := db.UpdateRaw(context.Background(), func(tx inspection.Tx) error {
		for _, m := range []reference.Manufacturer{
			{Name: "Certified Foods", Origin: "TH", Certificates: []reference.Certificate{{Kind: "HACCP", Number: "H-1", ValidUntil: until}}},
			{Name: "Bench Foods", Origin: "TH", Certificates: []reference.Certificate{{Kind: "HACCP", Number: "H-1", ValidUntil: until}}},
		} {
			if err := tx.PutManufacturer(m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}
