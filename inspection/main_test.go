package inspection_test

import (
	"flag"
	"os"
	"testing"
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
