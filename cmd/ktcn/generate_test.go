package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runKtcn(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := Run(context.Background(), args, func(string) string { return "" }, &out, &errw)
	return code, out.String() + errw.String()
}

// TestFixturesGenerateFile: the same flags write the same file, and the
// summary says what was generated.
func TestFixturesGenerateFile(t *testing.T) {
	dir := t.TempDir()
	var files [2][]byte
	for i := range files {
		path := filepath.Join(dir, "h.jsonl")
		code, out := runKtcn(t, "fixtures", "generate", "-seed", "3", "-lots", "1500", "-years", "1", "-out", path)
		if code != 0 || !strings.Contains(out, "lots          1500") || !strings.Contains(out, "failure rate") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		var err error
		if files[i], err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	if len(files[0]) == 0 || !bytes.Equal(files[0], files[1]) {
		t.Fatal("two runs with the same flags wrote different files")
	}
	for _, want := range []string{`{"type":"declaration","at":"2026-01-`, `{"type":"decision",`, `{"type":"result",`, `{"type":"alert",`} {
		if !bytes.Contains(files[0], []byte(want)) {
			t.Errorf("no %s in the file", want)
		}
	}
}

// TestFixturesGenerateDataDir replays a small history through the service
// into a new data dir; the service decides every lot as the generator did.
func TestFixturesGenerateDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, out := runKtcn(t, "fixtures", "generate", "-seed", "2", "-lots", "150", "-years", "1", "-data-dir", dir)
	if code != 0 || !strings.Contains(out, "150 decisions (0 differ from the generator)") || !strings.Contains(out, "(0 skipped)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "var", "data.quota-secret")); err != nil {
		t.Errorf("no quota secret in the secrets dir of the new data dir: %v", err)
	}
}

func TestFixturesGenerateFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"fixtures", "generate", "-lots", "10"},
		{"fixtures", "generate", "-lots", "10", "-out", filepath.Join(dir, "x"), "-data-dir", filepath.Join(dir, "d")},
		{"fixtures", "generate", "-lots", "0", "-out", filepath.Join(dir, "x")},
		{"fixtures", "generate", "-out", filepath.Join(dir, "x"), "-end", "tomorrow"},
	} {
		if code, out := runKtcn(t, args...); code != 1 {
			t.Errorf("%v: exit %d, want 1:\n%s", args, code, out)
		}
	}
}
