package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// logLines decodes the JSON log lines whose message is msg.
func logLines(t *testing.T, logs string, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line not JSON: %q", l)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Every request gets an X-Request-Id (the client's when sane, else
// generated), echoed in the response, its problem body and its log line.
func TestRequestIDs(t *testing.T) {
	var logs syncBuffer
	e := newEnvWith(t, start, envOptions{logs: &logs})
	req := func(id string) (*http.Response, map[string]any) {
		r, _ := http.NewRequest("GET", e.srv.URL+"/v1/assignments/nope", nil)
		r.Header.Set("Authorization", "Bearer "+e.tokens["customs"])
		if id != "" {
			r.Header.Set("X-Request-Id", id)
		}
		resp, err := e.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp, p
	}
	for _, c := range []struct{ sent, want string }{
		{"", ""}, {"nsw-batch-42.line:7", "nsw-batch-42.line:7"},
		{strings.Repeat("a", 65), ""}, {"evil\" injected", ""},
	} {
		resp, p := req(c.sent)
		got := resp.Header.Get("X-Request-Id")
		if got == "" || (c.want != "" && got != c.want) || (c.want == "" && got == c.sent) || len(got) > 64 {
			t.Errorf("sent %q: X-Request-Id %q, want %q (or generated)", c.sent, got, c.want)
		}
		if resp.StatusCode != http.StatusNotFound || p["request_id"] != got || p["instance"] != "/v1/assignments/nope" {
			t.Errorf("sent %q: %d problem %v, want 404 with request_id %q", c.sent, resp.StatusCode, p, got)
		}
		found := false
		for _, l := range logLines(t, string(logs.Bytes()), "http") {
			if l["request_id"] == got {
				found = l["took_ms"] != nil && l["status"] == float64(404)
			}
		}
		if !found {
			t.Errorf("sent %q: no http log line with request_id %q and took_ms", c.sent, got)
		}
	}
}

// Client errors are logged at info, sampled: a flood of 404s leaves a
// burst of lines, not one per request; successes are debug.
func TestClientErrorLogsSampled(t *testing.T) {
	var logs syncBuffer
	e := newEnvWith(t, start, envOptions{logs: &logs})
	for range 300 {
		e.as("customs").do("GET", "/v1/assignments/nope", nil, nil)
	}
	e.as("customs").do("GET", "/v1/policy", nil, nil)
	var info, debug int
	for _, l := range logLines(t, string(logs.Bytes()), "http") {
		switch {
		case l["status"] == float64(404) && l["level"] == "info":
			info++
		case l["status"] == float64(200) && l["level"] == "debug":
			debug++
		}
	}
	if info < 20 || info >= 300 {
		t.Errorf("%d info lines for 300 404s, want the sampled burst (20) and a few more", info)
	}
	if debug != 1 {
		t.Errorf("%d debug lines for one 200, want 1", debug)
	}
}
