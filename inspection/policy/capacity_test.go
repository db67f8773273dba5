package policy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
)

// The default document's digest is what stored decisions cite: the
// optional capacity section and alternates must leave it as it was.
func TestDefaultPolicyDigestUnchanged(t *testing.T) {
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Digest(), "ed0279de2071da6a"; got != want {
		t.Fatalf("default policy digest %s, want %s", got, want)
	}
	doc, err := p.Document()
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"capacity"`, `"alternates"`} {
		if strings.Contains(string(doc), field) {
			t.Errorf("default document carries %s", field)
		}
	}
	if _, limited := p.DailyCapacity("moh-nifc", policy.CheckDocuments); limited {
		t.Error("the default policy limits capacity")
	}
}

// withCapacity is the default policy with MOH's 2201 route designating
// two alternates and a capacity for each, re-parsed from its document.
func withCapacity(t *testing.T, edit func(p *policy.Policy)) (*policy.Policy, error) {
	t.Helper()
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	p.Version = "capacity-test"
	for i, r := range p.Routing {
		if r.Ministry == "MOH" && r.Prefix == "2201" {
			p.Routing[i].Alternates = []string{"moh-nifc", "moh-pasteur-nt"}
		}
	}
	p.Capacity = &policy.CapacityRules{PerDay: map[string]map[string]int{
		"moh-iph-hcmc":   {policy.CheckDocuments: 10, policy.CheckDocumentsAndSampling: 2},
		"moh-nifc":       {policy.CheckDocuments: 5},
		"moh-pasteur-nt": {policy.CheckDocumentsAndSampling: 1},
	}}
	if edit != nil {
		edit(p)
	}
	doc, err := p.Document()
	if err != nil {
		t.Fatal(err)
	}
	return policy.ParsePolicy(doc)
}

func TestCapacityPolicy(t *testing.T) {
	p, err := withCapacity(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	def, _ := policy.DefaultPolicy()
	if p.Digest() == def.Digest() {
		t.Error("a capacity section does not change the digest")
	}
	l, ok := p.Lookup(policy.ProcedureFoodSafety, "22011010")
	if !ok {
		t.Fatal("2201 not listed")
	}
	got, ok := p.Designated(l, "22011010")
	if want := []string{"moh-iph-hcmc", "moh-nifc", "moh-pasteur-nt"}; !ok || !slices.Equal(got, want) {
		t.Errorf("designated %v, want %v", got, want)
	}
	if a, _ := p.Route(l, "22011010"); a != "moh-iph-hcmc" {
		t.Errorf("preferred %s", a)
	}
	if n, limited := p.DailyCapacity("moh-nifc", policy.CheckDocuments); !limited || n != 5 {
		t.Errorf("moh-nifc documents: %d %v", n, limited)
	}
	if _, limited := p.DailyCapacity("moh-nifc", policy.CheckDocumentsAndSampling); limited {
		t.Error("a check kind without a capacity is limited")
	}
	if _, limited := p.DailyCapacity("mard-raho-6", policy.CheckDocuments); limited {
		t.Error("an agency without a capacity is limited")
	}
	if !slices.Contains(p.RoutedAgencies(), "moh-pasteur-nt") {
		t.Error("alternates are not among the routed agencies")
	}
	vn := calendar.Vietnam()
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 3, 2, 9, 0, 0, 0, vn), "2026-03-02"},  // a Monday
		{time.Date(2026, 3, 2, 23, 0, 0, 0, vn), "2026-03-02"}, // after hours, the same day
		{time.Date(2026, 3, 7, 10, 0, 0, 0, vn), "2026-03-09"}, // Saturday → Monday
		{time.Date(2026, 4, 30, 8, 0, 0, 0, vn), "2026-05-04"}, // Reunification Day, May Day, weekend
		{time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC), "2026-03-02"},
		{time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC), "2026-03-02"}, // Monday 01:00 in Vietnam
	} {
		if got := p.CapacityDay(tc.at); got != tc.want {
			t.Errorf("capacity day of %s: %s, want %s", tc.at, got, tc.want)
		}
	}
}

func TestCapacityValidation(t *testing.T) {
	route := func(p *policy.Policy) int {
		for i, r := range p.Routing {
			if r.Ministry == "MOH" && r.Prefix == "2201" {
				return i
			}
		}
		t.Fatal("no 2201 route")
		return -1
	}
	for _, tc := range []struct {
		name, field string
		edit        func(p *policy.Policy)
	}{
		{"empty alternate", "routing[1].alternates[0]", func(p *policy.Policy) { p.Routing[route(p)].Alternates = []string{" "} }},
		{"alternate repeats the agency", "routing[1].alternates[0]", func(p *policy.Policy) {
			p.Routing[route(p)].Alternates = []string{"moh-iph-hcmc"}
		}},
		{"alternate twice", "routing[1].alternates[2]", func(p *policy.Policy) {
			p.Routing[route(p)].Alternates = []string{"moh-nifc", "moh-pasteur-nt", "moh-nifc"}
		}},
		{"no agencies", "capacity.per_day", func(p *policy.Policy) { p.Capacity.PerDay = nil }},
		{"unrouted agency", "capacity.per_day.moh-nowhere", func(p *policy.Policy) {
			p.Capacity.PerDay["moh-nowhere"] = map[string]int{policy.CheckDocuments: 1}
		}},
		{"no check kinds", "capacity.per_day.moh-nifc", func(p *policy.Policy) { p.Capacity.PerDay["moh-nifc"] = map[string]int{} }},
		{"unknown check kind", "capacity.per_day.moh-nifc.lab", func(p *policy.Policy) { p.Capacity.PerDay["moh-nifc"]["lab"] = 3 }},
		{"zero capacity", "capacity.per_day.moh-iph-hcmc.documents", func(p *policy.Policy) {
			p.Capacity.PerDay["moh-iph-hcmc"][policy.CheckDocuments] = 0
		}},
		{"negative capacity", "capacity.per_day.moh-pasteur-nt.documents_and_sampling", func(p *policy.Policy) {
			p.Capacity.PerDay["moh-pasteur-nt"][policy.CheckDocumentsAndSampling] = -4
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := withCapacity(t, tc.edit)
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Code != fault.Invalid || fe.Field != tc.field {
				t.Fatalf("got %v, want an invalid %s", err, tc.field)
			}
		})
	}
	// Unknown fields in the section are refused like anywhere else.
	def, _ := policy.DefaultPolicy()
	doc, _ := def.Document()
	doc = []byte(strings.Replace(string(doc), `"version":`, `"capacity":{"per_day":{"moh-nifc":{"documents":1}},"per_week":{}},"version":`, 1))
	if _, err := policy.ParsePolicy(doc); err == nil || !strings.Contains(err.Error(), "per_week") {
		t.Fatalf("unknown capacity field: %v", err)
	}
}
