package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestServeEndToEnd starts the real wiring on an empty data dir, checks the
// fixtures were loaded with development credentials and a declaration is
// decided, shuts down through the context (as SIGTERM does), and starts
// again on the same dir to find the decision still there and the fixtures
// (and credentials) not loaded twice.
func TestServeEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn"}
	getenv := func(k string) string { return env[k] }

	var allLogs bytes.Buffer
	serve := func(check func(base string)) {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		var logs bytes.Buffer
		defer func() { allLogs.Write(logs.Bytes()) }()
		go func() {
			done <- withApp(ctx, "serve", nil, getenv, &logs, func(a *app) error { return a.serve(ctx, ready) })
		}()
		select {
		case addr := <-ready:
			check("http://" + addr)
		case err := <-done:
			t.Fatalf("serve ended early: %v\n%s", err, logs.String())
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not start")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("shutdown: %v\n%s", err, logs.String())
		}
		if strings.Contains(logs.String(), `"level":"error"`) {
			t.Fatalf("errors logged:\n%s", logs.String())
		}
	}

	body := `{"declaration_id":"E2E-1","importer_tax_code":"0101234567","lines":[{"line_no":1,"hs_code":"1905.31.10",
	  "product_name":"Bánh quy bơ","manufacturer":"Nobody Biscuits","origin":"DK","procedure":"food_safety","quantity":5,"unit":"kg"}]}`
	var (
		first map[string]any
		creds map[string]string
	)
	credsPath := filepath.Join(dir, devCredentialsFile)
	serve(func(base string) {
		creds = readDevCredentials(t, credsPath)
		if resp, err := http.Get(base + "/v1/assignments?agency=moit-firi"); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no key: %v %v, want 401", err, resp)
		} else {
			resp.Body.Close()
		}
		resp, err := send(base, creds["agency:moit-firi"], "GET", "/v1/assignments", "")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("fixtures not loaded: %v %v", err, resp)
		}
		resp.Body.Close()
		resp, err = send(base, creds["nsw"], "POST", "/v1/declarations", body)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("declare: %v %v", err, resp)
		}
		_ = json.NewDecoder(resp.Body).Decode(&first)
		resp.Body.Close()
	})
	serve(func(base string) {
		resp, err := send(base, creds["nsw"], "POST", "/v1/declarations", body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("resubmission after restart: %v %v", err, resp)
		}
		var again map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&again)
		resp.Body.Close()
		a, _ := json.Marshal(again)
		f, _ := json.Marshal(first)
		if !bytes.Equal(a, f) {
			t.Fatalf("decision changed across restart:\n%s\n%s", f, a)
		}
	})
	if again := readDevCredentials(t, credsPath); !maps.Equal(again, creds) {
		t.Fatal("a restart rewrote the development credentials")
	}
	if n := strings.Count(allLogs.String(), credsPath); n != 1 {
		t.Fatalf("the log names the credentials file %d times, want once:\n%s", n, allLogs.String())
	}
	tokens := map[string]string{}
	for name, tok := range creds {
		tokens[name] = tok
	}
	assertNoTokens(t, dir, allLogs.Bytes(), tokens)
}

// readDevCredentials reads dev-credentials.json, checks that only its owner
// can read it and that it holds a key for every development principal.
func readDevCredentials(t *testing.T, path string) map[string]string {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no development credentials: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, perm)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var creds map[string]string
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{"nsw", "customs", "policy-author", "policy-approver", "auditor", "admin", "agency:moh-nifc"}, devPrincipals()...) {
		if !strings.HasPrefix(creds[name], "ktcn_") {
			t.Fatalf("no key for %s in %s", name, path)
		}
	}
	if len(creds) != len(devPrincipals()) {
		t.Fatalf("%d credentials, want %d", len(creds), len(devPrincipals()))
	}
	return creds
}

// send makes one request with a bearer key.
func send(base, token, method, path, body string) (*http.Response, error) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultClient.Do(req)
}

// assertNoTokens fails if any token, or its secret part, is in a file of
// dir (the development credentials file aside: handing keys out in clear
// is its job) or in logs.
func assertNoTokens(t *testing.T, dir string, logs []byte, tokens map[string]string) {
	t.Helper()
	needles := map[string]string{}
	for name, tok := range tokens {
		needles[name+" token"] = tok
		needles[name+" secret"] = tok[strings.LastIndexByte(tok, '_')+1:]
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == devCredentialsFile {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for what, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s in clear in %s", what, path)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("scan %s: %v (%d files)", dir, err, files)
	}
	for what, n := range needles {
		if bytes.Contains(logs, []byte(n)) {
			t.Errorf("%s in the logs", what)
		}
	}
}

func TestRunCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "Usage"},
		{[]string{"help"}, 0, "Usage"},
		{[]string{"launch"}, 2, "unknown command"},
		{[]string{"serve", "-log-level", "loud", "-data-dir", t.TempDir()}, 2, "invalid setting log-level"},
		{[]string{"serve", "-policy", "/nonexistent.json", "-data-dir", t.TempDir()}, 2, "invalid setting policy"},
		{[]string{"serve", "extra"}, 2, "unexpected arguments"},
		{[]string{"serve", "-auth-fail-limit", "0", "-data-dir", t.TempDir()}, 2, "invalid setting auth-fail-limit"},
		{[]string{"serve", "-auth-fail-window", "1ms", "-data-dir", t.TempDir()}, 2, "invalid setting auth-fail-window"},
		{[]string{"serve", "-h"}, 0, "KTCN_AUTH_FAIL_LIMIT"},
		{[]string{"serve", "-h"}, 0, "KTCN_MAX_CONNS"},
		{[]string{"serve", "-max-conns", "0", "-data-dir", t.TempDir()}, 2, "invalid setting max-conns"},
	}
	for _, tc := range tests {
		var out, errw bytes.Buffer
		code := Run(context.Background(), tc.args, func(string) string { return "" }, &out, &errw)
		if code != tc.code || !strings.Contains(out.String()+errw.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q; want %d containing %q", tc.args, code, out.String()+errw.String(), tc.code, tc.out)
		}
	}
}

func TestServeGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	serveGC(func(string) string { return "" }, zerolog.Nop())
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Errorf("without GOGC: GC percent %d, want %d", got, serveGCPercent)
	}
	serveGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	}, zerolog.Nop())
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GC percent %d, want it left as Go set it (100 here)", got)
	}
}
