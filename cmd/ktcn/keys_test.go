package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run runs the binary's Run with env and returns exit code, stdout, stderr.
func run(env map[string]string, args ...string) (int, string, string) {
	var out, errw bytes.Buffer
	code := Run(context.Background(), args, func(k string) string { return env[k] }, &out, &errw)
	return code, out.String(), errw.String()
}

// TestKeysCommands: create, list and revoke from the command line, then a
// server on the same data dir honours them: the revoked key is refused,
// the other works, and a store that already holds keys gets no development
// credentials. No token reaches the logs or the data dir.
func TestKeysCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_LOG_LEVEL": "info", "USER": "Le.Van_C", "KTCN_ADDR": "127.0.0.1:0"}
	var logs bytes.Buffer

	create := func(args ...string) createdKey {
		t.Helper()
		code, out, errw := run(env, append([]string{"keys", "create"}, args...)...)
		logs.WriteString(errw)
		if code != 0 {
			t.Fatalf("keys create %v: exit %d: %s", args, code, errw)
		}
		var k createdKey
		if err := json.Unmarshal([]byte(out), &k); err != nil || !strings.HasPrefix(k.Token, "ktcn_"+k.ID+"_") {
			t.Fatalf("keys create output %q: %v", out, err)
		}
		return k
	}
	keep := create("-principal", "customs:le.van.c", "-note", "desk 4")
	doomed := create("-principal", "nsw", "-expires-in", "30d")
	if d := time.Until(doomed.ExpiresAt); d < 29*24*time.Hour || d > 30*24*time.Hour {
		t.Fatalf("-expires-in 30d gave %s", doomed.ExpiresAt)
	}
	if d := time.Until(keep.ExpiresAt); d < 89*24*time.Hour || d > 90*24*time.Hour {
		t.Fatalf("the default lifetime is not 90 days: %s", keep.ExpiresAt)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "create"}, "-principal is required"},
		{[]string{"keys", "create", "-principal", "root"}, "does not start with a role"},
		{[]string{"keys", "create", "-principal", "agency:moh-nifc"}, "unknown agency"}, // no fixtures in this store yet
		{[]string{"keys", "create", "-principal", "nsw", "-expires-in", "400d"}, "more than"},
		{[]string{"keys", "create", "-principal", "nsw", "-expires-in", "soon"}, "-expires-in"},
		{[]string{"keys", "create", "-principal", "nsw", "-key-max-ttl", "0d"}, "invalid setting key-max-ttl"},
		{[]string{"keys", "revoke"}, "name the key ID"},
		{[]string{"keys", "revoke", "0123456789abcdef"}, "no key"},
		{[]string{"serve", "-rate-limit", "fast"}, "invalid setting rate-limit"},
		{[]string{"serve", "-rate-burst", "-1"}, "invalid setting rate-burst"},
	} {
		code, _, errw := run(env, tc.args...)
		logs.WriteString(errw)
		wantCode := 1
		if strings.HasPrefix(tc.want, "invalid setting") {
			wantCode = 2 // refused before anything starts
		}
		if code != wantCode || !strings.Contains(errw, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d mentioning %q", tc.args, code, errw, wantCode, tc.want)
		}
	}
	if code, _, errw := run(env, "keys", "create", "-principal", "nsw", "-expires-in", "400d", "-key-max-ttl", "500d"); code != 0 {
		t.Errorf("a longer -key-max-ttl is not honoured: %s", errw)
	}

	code, out, errw := run(env, "keys", "revoke", doomed.ID)
	logs.WriteString(errw)
	if code != 0 || !strings.Contains(out, "revoked "+doomed.ID+" (nsw)") {
		t.Fatalf("revoke: exit %d %q %q", code, out, errw)
	}
	code, out, errw = run(env, "keys", "list")
	logs.WriteString(errw)
	for _, want := range []string{keep.ID + "  customs:le.van.c  active", doomed.ID + "  nsw", "revoked", "admin:cli.le.van_c", "desk 4"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("keys list lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(env, "keys", "list", "-json")
	if code != 0 || strings.Contains(out, "secret") || !strings.Contains(out, `"status": "revoked"`) {
		t.Errorf("keys list -json:\n%s", out)
	}

	// A server on the same data dir: fixtures are loaded, but the store
	// already holds keys, so no development credentials are issued.
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	var serveLogs bytes.Buffer
	go func() {
		done <- withApp(ctx, "serve", nil, func(k string) string { return env[k] }, &serveLogs, func(a *app) error { return a.serve(ctx, ready) })
	}()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, serveLogs.String())
	}
	for _, tc := range []struct {
		token  string
		status int
	}{{keep.Token, http.StatusOK}, {doomed.Token, http.StatusUnauthorized}} {
		resp, err := send(base, tc.token, "GET", "/v1/policy", "")
		if err != nil || resp.StatusCode != tc.status {
			t.Errorf("GET /v1/policy: %v %v, want %d", err, resp, tc.status)
		} else {
			resp.Body.Close()
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	logs.Write(serveLogs.Bytes())
	if _, err := os.Stat(filepath.Join(dir, devCredentialsFile)); !os.IsNotExist(err) {
		t.Errorf("development credentials written into a store that had keys: %v", err)
	}
	if !strings.Contains(logs.String(), keep.ID) {
		t.Error("the log does not name created keys by ID; is it capturing?")
	}
	assertNoTokens(t, dir, logs.Bytes(), map[string]string{"kept": keep.Token, "revoked": doomed.Token})
}

func TestParseLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "720h": 720 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseLifetime(in); err != nil || got != want {
			t.Errorf("parseLifetime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "0d", "-1d", "1.5d", "0h", "-1h", "forever", "99999d"} {
		if _, err := parseLifetime(in); err == nil {
			t.Errorf("parseLifetime(%q) accepted", in)
		}
	}
}
