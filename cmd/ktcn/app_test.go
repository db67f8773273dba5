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

// TestServeEndToEnd starts the real wiring on an empty data dir, checks the
// fixtures were loaded and a declaration is decided, shuts down through the
// context (as SIGTERM does), and starts again on the same dir to find the
// decision still there and the fixtures not loaded twice.
func TestServeEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn"}
	getenv := func(k string) string { return env[k] }

	serve := func(check func(base string)) {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		var logs bytes.Buffer
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
	var first map[string]any
	serve(func(base string) {
		resp, err := http.Get(base + "/v1/assignments?agency=moit-firi")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("fixtures not loaded: %v %v", err, resp)
		}
		resp.Body.Close()
		resp, err = http.Post(base+"/v1/declarations", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("declare: %v %v", err, resp)
		}
		_ = json.NewDecoder(resp.Body).Decode(&first)
		resp.Body.Close()
	})
	serve(func(base string) {
		resp, err := http.Post(base+"/v1/declarations", "application/json", strings.NewReader(body))
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
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
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
		{[]string{"serve", "-log-level", "loud", "-data-dir", t.TempDir()}, 1, "log level"},
		{[]string{"serve", "-policy", "/nonexistent.json", "-data-dir", t.TempDir()}, 1, "read policy"},
		{[]string{"serve", "extra"}, 1, "unexpected arguments"},
	}
	for _, tc := range tests {
		var out, errw bytes.Buffer
		code := Run(context.Background(), tc.args, func(string) string { return "" }, &out, &errw)
		if code != tc.code || !strings.Contains(out.String()+errw.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q; want %d containing %q", tc.args, code, out.String()+errw.String(), tc.code, tc.out)
		}
	}
}
