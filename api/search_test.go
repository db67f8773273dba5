package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection"
)

// search asks GET /v1/decisions with the query q as the env's principal
// and returns the page's decision IDs and cursor.
func (e *env) search(q string) ([]string, api.DecisionSearchResponse) {
	e.t.Helper()
	var page api.DecisionSearchResponse
	if status, _ := e.do("GET", "/v1/decisions?"+q, nil, &page); status != http.StatusOK {
		e.t.Fatalf("search %q: status %d", q, status)
	}
	ids := make([]string, 0, len(page.Decisions))
	for _, d := range page.Decisions {
		ids = append(ids, d.ID)
	}
	return ids, page
}

// TestDecisionSearchOverHTTP: every filter alone and combined, paging
// with a cursor that holds while decisions arrive, an agency seeing only
// its own lots, an override reflected at once, and strict parameters (an
// unknown one 400, a bad value 422, each named).
func TestDecisionSearchOverHTTP(t *testing.T) {
	e := newEnv(t, start)
	cu := e.as("customs")
	step := func() { e.clock.Advance(time.Hour) }

	m1 := e.decide("SRCH-M1", importerA, milk("Search Dairy")) // 2026-01-05 09:00
	step()
	k1 := e.decide("SRCH-K1", importerB, kettle("Search Kettles"))
	step()
	ex := milk("Search Dairy Two")
	ex.Exemption = "personal_luggage"
	x1 := e.decide("SRCH-X1", importerA, ex)
	e.clock.Advance(24 * time.Hour) // 2026-01-06
	m2 := e.decide("SRCH-M2", importerB, milk("Search Dairy Three"))
	if m1.Agency == "" || k1.Agency == "" || m1.Agency == k1.Agency || x1.Inspect || x1.Agency != "" {
		t.Fatalf("setup: milk to %q, kettle to %q, exempt %+v", m1.Agency, k1.Agency, x1)
	}

	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", []string{m1.DecisionID, k1.DecisionID, x1.DecisionID, m2.DecisionID}},
		{"importer=" + importerA, []string{m1.DecisionID, x1.DecisionID}},
		{"declaration=SRCH-K1", []string{k1.DecisionID}},
		{"hs=0402", []string{m1.DecisionID, x1.DecisionID, m2.DecisionID}},
		{"hs=85", []string{k1.DecisionID}},
		{"hs=85167100", []string{k1.DecisionID}},
		{"hs=85167199", nil},
		{"mode=exempt", []string{x1.DecisionID}},
		{"mode=" + string(k1.Mode) + "&hs=8516", []string{k1.DecisionID}},
		{"inspect=false", []string{x1.DecisionID}},
		{"inspect=true&importer=" + importerB, []string{k1.DecisionID, m2.DecisionID}},
		{"agency=" + m1.Agency, []string{m1.DecisionID, m2.DecisionID}},
		{"agency=" + k1.Agency + "&importer=" + importerA, nil},
		{"from=2026-01-06", []string{m2.DecisionID}},
		{"to=2026-01-05", []string{m1.DecisionID, k1.DecisionID, x1.DecisionID}},
		{"from=2026-01-05T10:00:00%2B07:00&to=2026-01-05T11:00:00%2B07:00", []string{k1.DecisionID}},
		{"importer=" + importerA + "&hs=0402&inspect=true&from=2026-01-05&to=2026-01-05", []string{m1.DecisionID}},
		{"overridden=true", nil},
		{"overridden=false&declaration=SRCH-M2", []string{m2.DecisionID}},
	} {
		ids, _ := cu.in(t).search(tc.q)
		if !slices.Equal(ids, tc.want) && !(len(ids) == 0 && len(tc.want) == 0) {
			t.Errorf("search %q: %v, want %v", tc.q, ids, tc.want)
		}
	}

	// Quota state is customs'; the agency reads only its own lots.
	ag := e.as("agency:" + m1.Agency)
	if ids, _ := ag.search(""); !slices.Equal(ids, []string{m1.DecisionID, m2.DecisionID}) {
		t.Errorf("the milk agency finds %v", ids)
	}
	if ids, _ := ag.search("agency=" + k1.Agency); len(ids) != 0 {
		t.Errorf("the milk agency asking for the kettle agency's lots finds %v", ids)
	}
	if ids, _ := ag.search("declaration=SRCH-K1"); len(ids) != 0 {
		t.Errorf("the milk agency finds another's declaration: %v", ids)
	}
	if ids, _ := e.as("agency:" + k1.Agency).search("importer=" + importerB); !slices.Equal(ids, []string{k1.DecisionID}) {
		t.Errorf("the kettle agency finds %v", ids)
	}
	if status, _ := e.as("nsw").do("GET", "/v1/decisions", nil, nil); status != http.StatusForbidden {
		t.Errorf("nsw searches: %d, want 403", status)
	}

	// An override shows at once: overridden, the inspection in force, and
	// a lot an override routes to an agency is that agency's to find.
	override := func(id string, inspect bool) {
		t.Helper()
		body := map[string]any{"reason_code": "intelligence", "reason_text": "search test", "inspect": inspect}
		if status, _ := cu.do("POST", "/v1/decisions/"+id+"/override", body, nil); status != http.StatusCreated {
			t.Fatalf("override %s: %d", id, status)
		}
	}
	override(m1.DecisionID, false)
	override(x1.DecisionID, true)
	ids, page := cu.search("overridden=true")
	if !slices.Equal(ids, []string{m1.DecisionID, x1.DecisionID}) || page.Decisions[0].Current.Inspect || !page.Decisions[1].Current.Inspect ||
		len(page.Decisions[0].Overrides) != 1 || page.Decisions[0].Current.OverrideID == "" {
		t.Fatalf("overridden: %v %+v", ids, page.Decisions)
	}
	if ids, _ := cu.search("inspect=false"); !slices.Equal(ids, []string{m1.DecisionID}) {
		t.Errorf("inspect=false after the overrides: %v", ids)
	}
	if ids, _ := cu.search("inspect=true&importer=" + importerA); !slices.Equal(ids, []string{x1.DecisionID}) {
		t.Errorf("importer A inspected after the overrides: %v", ids)
	}
	if ids, _ := e.as("agency:" + x1Agency(t, e, x1.DecisionID)).search("overridden=true"); !slices.Contains(ids, x1.DecisionID) {
		t.Errorf("the agency an override routed the exempt lot to finds %v", ids)
	}
	// The milk agency keeps the lot it was given, cancelled or not.
	if ids, _ := ag.search("importer=" + importerA); !slices.Contains(ids, m1.DecisionID) {
		t.Errorf("the milk agency lost its cancelled lot: %v", ids)
	}

	t.Run("parameters", func(t *testing.T) {
		e := e.in(t)
		for _, tc := range []struct {
			q      string
			status int
			field  string
		}{
			{"importr=" + importerA, 400, "importr"},
			{"limit=5&Mode=strict", 400, "Mode"},
			{"mode=lenient", 422, "mode"},
			{"inspect=yes", 422, "inspect"},
			{"overridden=1", 422, "overridden"},
			{"from=yesterday", 422, "from"},
			{"to=2026-13-01", 422, "to"},
			{"from=2026-02-01&to=2026-01-01", 422, "to"},
			{"hs=04a2", 422, "hs"},
			{"hs=040", 422, "hs"},
			{"limit=0", 422, "limit"},
			{"limit=1001", 422, "limit"},
			{"after=not-a-cursor", 422, "after"},
			{"importer=a&importer=b", 422, "importer"},
		} {
			var p api.Problem
			status, hdr := e.as("customs").do("GET", "/v1/decisions?"+tc.q, nil, &p)
			if status != tc.status || p.Field != tc.field || hdr.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%q: %d %+v, want %d naming %s", tc.q, status, p, tc.status, tc.field)
			}
		}
		// A cursor of one index is not a cursor of another.
		_, page := e.as("customs").search("importer=" + importerA + "&limit=1")
		var p api.Problem
		if status, _ := e.as("customs").do("GET", "/v1/decisions?hs=0402&limit=1&after="+page.Next, nil, &p); status != 422 || p.Field != "after" {
			t.Errorf("another index's cursor: %d %+v", status, p)
		}
	})

	t.Run("paging while decisions arrive", func(t *testing.T) {
		e := e.in(t)
		var want []string
		for i := range 7 {
			e.clock.Advance(time.Minute)
			want = append(want, e.decide(fmt.Sprintf("SRCH-P%d", i), importerB, kettle("Paging Kettles")).DecisionID)
		}
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("the cursor does not end")
			}
			q := url.Values{"hs": {"8516"}, "limit": {"3"}, "from": {"2026-01-06"}}
			if after != "" {
				q.Set("after", after)
			}
			ids, page := e.as("customs").search(q.Encode())
			got = append(got, ids...)
			// New decisions arrive between pages.
			e.clock.Advance(time.Minute)
			want = append(want, e.decide(fmt.Sprintf("SRCH-N%d", pages), importerB, kettle("Paging Kettles")).DecisionID)
			if after = page.Next; after == "" {
				break
			}
		}
		// Every decision exactly once, in decision order: those before the
		// first page and those that arrived while paging, up to the end.
		if !slices.Equal(got, want[:len(got)]) || len(got) < 7 {
			t.Fatalf("paged %v, want a prefix of %v covering the first 7", got, want)
		}
	})
}

// x1Agency is the agency an override routed a lot to.
func x1Agency(t *testing.T, e *env, id string) string {
	t.Helper()
	var v inspection.DecisionView
	if status, _ := e.as("customs").do("GET", "/v1/decisions/"+id, nil, &v); status != http.StatusOK || v.Current.Agency == "" {
		t.Fatalf("decision %s: %d %+v", id, status, v.Current)
	}
	return v.Current.Agency
}
