package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/api"
)

// TestNumericQueryParametersRangeChecked: a number no caller could mean is
// refused with 422 naming the parameter, never wrapped or saturated; the
// bounds themselves are served.
func TestNumericQueryParametersRangeChecked(t *testing.T) {
	e := newEnv(t, start)
	// The audit log is the auditor's; the rest customs'.
	as := func(path string) *env {
		if strings.HasPrefix(path, "/v1/audit") {
			return e.as("auditor")
		}
		return e.as("customs")
	}
	const agency = "/v1/assignments?agency=moit-vinacontrol"
	refused := []struct {
		path, field string
	}{
		{"/v1/audit?after=18446744073709551615", "after"}, // 2^64-1: after+1 wrapped to the start
		{"/v1/audit?after=9223372036854775808", "after"},  // 2^63
		{"/v1/audit?after=99999999999999999999999", "after"},
		{"/v1/audit?after=-1", "after"},
		{"/v1/audit?after=%2B1", "after"}, // +1
		{"/v1/audit?after=1e3", "after"},
		{"/v1/audit?after=0x10", "after"},
		{"/v1/audit?after=", ""}, // empty is absent: served
		{"/v1/audit?after=1&after=2", "after"},
		{"/v1/audit?limit=0", "limit"},
		{"/v1/audit?limit=1001", "limit"},
		{"/v1/audit?limit=18446744073709551617", "limit"},
		{"/v1/audit?limit=-1", "limit"},
		{"/v1/audit?limit=%2B5", "limit"},
		{"/v1/audit?limit=5&limit=5000", "limit"},
		{agency + "&limit=0", "limit"},
		{agency + "&limit=65537", "limit"},
		{agency + "&limit=9223372036854775808", "limit"},
		{agency + "&limit=ten", "limit"},
		{"/v1/scores?limit=0", "limit"},
		{"/v1/scores?limit=1001", "limit"},
		{"/v1/scores?limit=4294967297", "limit"},
		{"/v1/scores?limit=1&limit=2", "limit"},
		{"/v1/quota/periods/18446744073709551617/scopes", "period"},
		{"/v1/quota/periods/-2026/scopes", "period"},
	}
	for _, tc := range refused {
		var p api.Problem
		status, hdr := as(tc.path).do("GET", tc.path, nil, &p)
		if tc.field == "" {
			if status != http.StatusOK {
				t.Errorf("%s: status %d %+v, want 200", tc.path, status, p)
			}
			continue
		}
		if status != http.StatusUnprocessableEntity || p.Field != tc.field || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: status %d %+v, want 422 naming %s", tc.path, status, p, tc.field)
		}
	}
	served := []string{"/v1/audit?after=0&limit=1", "/v1/audit?limit=1000", agency + "&limit=1", agency + "&limit=1000",
		"/v1/scores?limit=1", "/v1/scores?limit=1000"}
	for _, path := range served {
		if status, _ := as(path).do("GET", path, nil, nil); status != http.StatusOK {
			t.Errorf("%s: status %d, want 200", path, status)
		}
	}
	// The largest sequence there can be: a page after it is empty, not
	// the start of the chain.
	var page api.AuditPage
	if status, _ := e.as("auditor").do("GET", "/v1/audit?after=9223372036854775807", nil, &page); status != http.StatusOK || len(page.Entries) != 0 || page.Head.Seq == 0 {
		t.Fatalf("after the largest sequence: status %d, %d entries (head %d), want none", status, len(page.Entries), page.Head.Seq)
	}
}
