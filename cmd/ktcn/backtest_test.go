package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The backtest command end to end: a history the service decided into a
// store, backtested with the version in force against itself, reproduces
// every stored decision and changes none; a generated history runs too,
// and the changed lots land in the CSV.
func TestBacktestCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, out := runKtcn(t, "fixtures", "generate", "-seed", "4", "-lots", "400", "-years", "1", "-data-dir", dir); code != 0 {
		t.Fatalf("generate: exit %d:\n%s", code, out)
	}
	code, out := runKtcn(t, "backtest", "-data-dir", dir, "-log-level", "error", "-version", "2026.1-default")
	if code != 0 || !strings.Contains(out, "active replay against history: 0 of 400 lots differ") || !strings.Contains(out, "lots changed: 0") {
		t.Fatalf("stored: exit %d:\n%s", code, out)
	}
	csvPath := filepath.Join(t.TempDir(), "changes.csv")
	code, out = runKtcn(t, "backtest", "-data-dir", dir, "-log-level", "error", "-version", "2026.1-default",
		"-generated", "5,2000,1", "-changes", csvPath, "-json")
	if code != 0 || !strings.Contains(out, `"mismatches": 0`) {
		t.Fatalf("generated: exit %d:\n%s", code, out)
	}
	raw, err := os.ReadFile(csvPath)
	if err != nil || !strings.HasPrefix(string(raw), "decision_id,declaration_id,") {
		t.Fatalf("changes CSV: %v %q", err, raw)
	}
	for _, args := range [][]string{
		{"backtest", "-data-dir", dir},
		{"backtest", "-data-dir", dir, "-version", "no-such-version"},
		{"backtest", "-data-dir", dir, "-version", "2026.1-default", "-generated", "1,0,1"},
		{"backtest", "-data-dir", dir, "-version", "2026.1-default", "-from", "yesterday"},
	} {
		if code, out := runKtcn(t, args...); code != 1 {
			t.Errorf("%v: exit %d, want 1:\n%s", args, code, out)
		}
	}
}
