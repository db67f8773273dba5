package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// limitedServer is `ktcn serve` in process with a small connection limit.
type limitedServer struct {
	addr  string
	creds map[string]string
}

// serveLimited starts serve on a new data dir (reference data only, so it
// starts at once) with -max-conns n and the given timeouts, stopped when
// the test ends.
func serveLimited(t *testing.T, n string, timeouts serverTimeouts) limitedServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"KTCN_DATA_DIR": dir, "KTCN_ADDR": "127.0.0.1:0", "KTCN_LOG_LEVEL": "warn",
		"KTCN_FIXTURES": "reference", "KTCN_MAX_CONNS": n}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- withApp(ctx, "serve", nil, func(k string) string { return env[k] }, &logs, func(a *app) error {
			a.timeouts = timeouts
			return a.serve(ctx, ready)
		})
	}()
	var s limitedServer
	select {
	case s.addr = <-ready:
	case err := <-done:
		t.Fatalf("serve ended early: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v\n%s", err, logs.String())
		}
	})
	s.creds = readDevCredentials(t, filepath.Join(dir, devCredentialsFile))
	return s
}

// ask makes an authenticated request on a connection of its own and
// reports the status, or the error once timeout has passed.
func (s limitedServer) ask(timeout time.Duration) (int, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/v1/policy", nil)
	req.Header.Set("Authorization", "Bearer "+s.creds["customs"])
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// silent opens a connection that sends nothing.
func (s limitedServer) silent(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustWait checks that a request gets no answer while every slot is
// taken: the limit is in force.
func (s limitedServer) mustWait(t *testing.T) {
	t.Helper()
	status, err := s.ask(300 * time.Millisecond)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("with every slot taken a request was answered (%d, %v): no limit", status, err)
	}
}

// answered starts a request now and returns a check that it was answered
// 200 (within a generous bound, so a failure is a hang, not a slow run).
func (s limitedServer) answered(t *testing.T) func() {
	t.Helper()
	type result struct {
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		status, err := s.ask(20 * time.Second)
		got <- result{status, err}
	}()
	return func() {
		t.Helper()
		r := <-got
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("authenticated request: %d, %v; want an answer once a slot frees", r.status, r.err)
		}
	}
}

// TestConnectionLimit: with -max-conns 2 and both slots held, an
// authenticated request gets its answer once a slot frees: a client
// closing, a timeout cutting a connection that sends nothing or its
// headers too slowly, or at once by giving up an idle keep-alive
// connection.
func TestConnectionLimit(t *testing.T) {
	long := serverTimeouts{readHeader: time.Minute, read: time.Minute, write: time.Minute, idle: time.Minute}

	t.Run("a client closes", func(t *testing.T) {
		s := serveLimited(t, "2", long)
		a, _ := s.silent(t), s.silent(t)
		s.mustWait(t)
		check := s.answered(t)
		time.Sleep(100 * time.Millisecond) // the request waits for a slot
		a.Close()
		check()
	})

	t.Run("silent and slow connections time out", func(t *testing.T) {
		short := long
		short.readHeader = time.Second
		s := serveLimited(t, "2", short)
		s.silent(t)
		slow := s.silent(t)
		// Headers a byte at a time: the header deadline is absolute, so
		// trickling does not extend it.
		go func() {
			for _, b := range []byte("GET /v1/policy HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)) {
				if _, err := slow.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		s.mustWait(t)
		s.answered(t)() // no client closes: the timeout frees the slots
	})

	t.Run("idle keep-alive connections give way", func(t *testing.T) {
		s := serveLimited(t, "2", long)
		// Two clients that keep their connection open between requests.
		for range 2 {
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			req, _ := http.NewRequest("GET", "http://"+s.addr+"/v1/policy", nil)
			req.Header.Set("Authorization", "Bearer "+s.creds["customs"])
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("keep-alive client: %v %v", err, resp)
			}
			resp.Body.Close()
		}
		// Both slots are held by idle connections for a minute; a new
		// client is served now.
		s.answered(t)()
	})
}

// TestMaxConnsFlag: -max-conns and KTCN_MAX_CONNS are read and checked.
func TestMaxConnsFlag(t *testing.T) {
	for _, tc := range []struct {
		flag, env string
		want      int
		err       string
	}{
		{"", "", DefaultMaxConns, ""},
		{"16", "", 16, ""},
		{"", "32", 32, ""},
		{"8", "32", 8, ""},
		{"0", "", 0, "max-conns"},
		{"-3", "", 0, "max-conns"},
		{"many", "", 0, "max-conns"},
	} {
		var args []string
		if tc.flag != "" {
			args = []string{"-max-conns", tc.flag}
		}
		cfg, err := parseConfig("serve", args, func(k string) string {
			if k == "KTCN_MAX_CONNS" {
				return tc.env
			}
			return ""
		}, os.Stderr, nil)
		if err == nil {
			_, err = parseClientLimits(cfg)
		}
		if err != nil && tc.err == "" {
			t.Fatal(err)
		}
		l, _ := parseClientLimits(cfg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q/%q: %v, want an error naming %s", tc.flag, tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || l.maxConns != tc.want {
			t.Errorf("%q/%q: %d, %v; want %d", tc.flag, tc.env, l.maxConns, err, tc.want)
		}
	}
}
