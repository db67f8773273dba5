package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The quota commands end to end: serve decides reduced lots and opens
// the period; the operator verifies the open period with the master
// secret; reveal refuses an open period; a world-readable secret or one
// inside the data dir is refused.
func TestQuotaCommands(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn"}
	getenv := func(k string) string { return env[k] }
	run := func(args ...string) (int, string) {
		var out, errw bytes.Buffer
		code := Run(context.Background(), args, getenv, &out, &errw)
		return code, out.String() + errw.String()
	}
	// serve once so the store, fixtures and secret exist, and a period opens.
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- withApp(ctx, "serve", nil, getenv, &bytes.Buffer{}, func(a *app) error { return a.serve(ctx, ready) })
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
	secret := filepath.Join(root, "var", "data.quota-secret")
	if info, err := os.Stat(secret); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret %v %v", info, err)
	}
	year := time.Now().In(time.FixedZone("ICT", 7*3600)).Format("2006")
	if code, out := run("quota", "reveal", "-period", year); code == 0 || !strings.Contains(out, "still open") {
		t.Fatalf("reveal of an open period: %d %s", code, out)
	}
	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := run("verify", "quota", "-period", year, "-open"); code == 0 || !strings.Contains(out, "readable by others") {
		t.Fatalf("a world-readable secret: %d %s", code, out)
	}
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	env["KTCN_QUOTA_SECRET"] = filepath.Join(dir, "inside.secret")
	if code, out := run("verify", "quota", "-period", year, "-open"); code == 0 || !strings.Contains(out, "inside the data dir") {
		t.Fatalf("a secret inside the data dir: %d %s", code, out)
	}
	delete(env, "KTCN_QUOTA_SECRET")
}
