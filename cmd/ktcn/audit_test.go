package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The audit commands end to end: serve creates the signing key (0600,
// in the secrets dir) and writes a checkpoint at shutdown; a key command
// that writes leaves a checkpoint when it exits; `audit pubkey` prints the
// key; `verify audit` passes, with and without the checkpoints, and fails
// (non-zero) on an altered checkpoint file or the wrong public key; a key
// others can read, or one inside the data dir, is refused.
func TestAuditCommands(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn", "KTCN_FIXTURES": "off"}
	getenv := func(k string) string { return env[k] }
	run := func(args ...string) (int, string, string) {
		var out, errw bytes.Buffer
		code := Run(context.Background(), args, getenv, &out, &errw)
		return code, out.String(), errw.String()
	}
	logs := serveOnce(t, getenv)
	keyPath, cpPath := filepath.Join(root, "var", "data.audit-key"), filepath.Join(root, "var", "data.audit-checkpoints")
	if info, err := os.Stat(keyPath); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("audit key %v %v", info, err)
	}
	lines := func() int {
		b, _ := os.ReadFile(cpPath)
		return strings.Count(string(b), "\n")
	}
	if lines() != 1 { // the policy's entry, checkpointed at shutdown
		t.Fatalf("%d checkpoints after serve, want 1\n%s", lines(), logs)
	}
	if code, _, errs := run("keys", "create", "-principal", "customs:audit.test"); code != 0 {
		t.Fatalf("keys create: %d %s", code, errs)
	}
	if lines() != 2 {
		t.Fatalf("%d checkpoints after a key was created, want 2", lines())
	}
	code, pub, errs := run("audit", "pubkey")
	pub = strings.TrimSpace(pub)
	if code != 0 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(pub) {
		t.Fatalf("audit pubkey: %d %q %s", code, pub, errs)
	}
	if code, out, errs := run("verify", "audit"); code != 0 || !strings.Contains(out, "2 entries") {
		t.Fatalf("verify audit: %d %s %s", code, out, errs)
	}
	if code, out, errs := run("verify", "audit", "-checkpoints", cpPath, "-pubkey", pub); code != 0 || !strings.Contains(out, "2 signed checkpoints") {
		t.Fatalf("verify audit with checkpoints: %d %s %s", code, out, errs)
	}
	if lines() != 2 {
		t.Fatal("verify wrote a checkpoint")
	}
	pubFile := filepath.Join(root, "auditor.pub")
	if err := os.WriteFile(pubFile, []byte(pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("verify", "audit", "-checkpoints", cpPath, "-pubkey", pubFile); code != 0 {
		t.Fatalf("verify audit with a key file: %d %s", code, errs)
	}
	if code, _, errs := run("verify", "audit", "-checkpoints", cpPath); code == 0 || !strings.Contains(errs, "-pubkey") {
		t.Fatalf("checkpoints without a key: %d %s", code, errs)
	}
	other := strings.Repeat("ab", 32)
	if code, _, errs := run("verify", "audit", "-checkpoints", cpPath, "-pubkey", other); code == 0 || !strings.Contains(errs, "signed by key") {
		t.Fatalf("the wrong key: %d %s", code, errs)
	}
	b, err := os.ReadFile(cpPath)
	if err != nil {
		t.Fatal(err)
	}
	forged := regexp.MustCompile(`"seq":2,"hash":"[0-9a-f]`).ReplaceAllStringFunc(string(b), func(s string) string {
		if strings.HasSuffix(s, "0") {
			return s[:len(s)-1] + "1"
		}
		return s[:len(s)-1] + "0"
	})
	if forged == string(b) {
		t.Fatal("setup: nothing forged")
	}
	if err := os.WriteFile(cpPath, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("verify", "audit", "-checkpoints", cpPath, "-pubkey", pub); code == 0 || !strings.Contains(errs, "line 2") {
		t.Fatalf("an altered checkpoint: %d %s", code, errs)
	}

	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("audit", "pubkey"); code == 0 || !strings.Contains(errs, "readable by others") {
		t.Fatalf("a world-readable key: %d %s", code, errs)
	}
	env["KTCN_AUDIT_KEY"] = filepath.Join(dir, "inside.key")
	if code, _, errs := run("keys", "list"); code == 0 || !strings.Contains(errs, "inside the data dir") {
		t.Fatalf("a key inside the data dir: %d %s", code, errs)
	}
}

// serveOnce starts serve, waits until it listens, and shuts it down as
// SIGTERM does; it returns the log.
func serveOnce(t *testing.T, getenv func(string) string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- withApp(ctx, "serve", nil, getenv, &logs, func(a *app) error { return a.serve(ctx, ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return logs.String()
}

// TestAuditTornCheckpointLine: a checkpoint line torn by a crash is cut
// when the next command opens the file, so the file keeps verifying.
func TestAuditTornCheckpointLine(t *testing.T) {
	root := t.TempDir()
	env := map[string]string{"KTCN_DATA_DIR": filepath.Join(root, "data"), "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn", "KTCN_FIXTURES": "off"}
	getenv := func(k string) string { return env[k] }
	serveOnce(t, getenv)
	cpPath := filepath.Join(root, "var", "data.audit-checkpoints")
	f, err := os.OpenFile(cpPath, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":2,"hash":"ab`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var out, errw bytes.Buffer
	if code := Run(context.Background(), []string{"keys", "create", "-principal", "auditor:torn"}, getenv, &out, &errw); code != 0 ||
		!strings.Contains(errw.String(), "torn") {
		t.Fatalf("keys create: %d %s", code, errw.String())
	}
	out.Reset()
	Run(context.Background(), []string{"audit", "pubkey"}, getenv, &out, &errw)
	pub := strings.TrimSpace(out.String())
	out.Reset()
	if code := Run(context.Background(), []string{"verify", "audit", "-checkpoints", cpPath, "-pubkey", pub}, getenv, &out, &errw); code != 0 ||
		!strings.Contains(out.String(), "2 signed checkpoints") {
		t.Fatalf("verify after a torn line: %d %s %s", code, out.String(), errw.String())
	}
}
