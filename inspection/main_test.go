package inspection_test

import (
	"flag"
	"os"
	"testing"

	"github.com/ktcn/ktcn/inspection/access"
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
