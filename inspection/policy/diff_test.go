package policy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/scoring"
)

// defaultDoc is the embedded default policy as canonical JSON.
func defaultDoc(t *testing.T) []byte {
	t.Helper()
	return structDoc(t, func(*policy.Policy) {})
}

// structDoc edits the default policy as a struct and returns its canonical
// JSON, the way a stored version is written.
func structDoc(t *testing.T, edit func(*policy.Policy)) []byte {
	t.Helper()
	p, err := policy.DefaultPolicy()
	if err != nil {
		t.Fatal(err)
	}
	edit(p)
	doc, err := p.Document()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// mapDoc edits the default document as generic JSON, for changes the
// struct cannot express (unknown keys, types, reordering by hand).
func mapDoc(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(defaultDoc(t)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	doc, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		m = m[k].(map[string]any)
	}
	return m
}

func chg(path, oldJSON, newJSON string) policy.Change {
	return policy.Change{Path: path, Kind: policy.ChangeChanged, Old: json.RawMessage(oldJSON), New: json.RawMessage(newJSON)}
}

func added(path, newJSON string) policy.Change {
	return policy.Change{Path: path, Kind: policy.ChangeAdded, New: json.RawMessage(newJSON)}
}

func removed(path, oldJSON string) policy.Change {
	return policy.Change{Path: path, Kind: policy.ChangeRemoved, Old: json.RawMessage(oldJSON)}
}

func show(cs []policy.Change) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "\n  %s %s old=%s new=%s", c.Kind, c.Path, c.Old, c.New)
	}
	if b.Len() == 0 {
		return " (none)"
	}
	return b.String()
}

func sameChanges(a, b []policy.Change) bool {
	return slices.EqualFunc(a, b, func(x, y policy.Change) bool {
		return x.Path == y.Path && x.Kind == y.Kind && bytes.Equal(x.Old, y.Old) && bytes.Equal(x.New, y.New)
	})
}

type diffCase struct {
	name     string
	from, to []byte
	want     []policy.Change
}

func diffCases(t *testing.T) []diffCase {
	base := defaultDoc(t)
	withCerts := structDoc(t, func(p *policy.Policy) {
		p.Certificates = &policy.CertificateRules{MaxTermYears: 5}
	})
	gifts := `{"code":"gifts","description":"Gifts and donations within the duty-free allowance (quality: not motor vehicles, special-use motorcycles or electric bicycles)","procedures":["food_safety","quality"],"refused_when_strict":true}`
	return []diffCase{
		{
			name: "identical documents",
			from: base, to: base,
		},
		{
			name: "integer changed",
			from: base,
			to:   structDoc(t, func(p *policy.Policy) { p.Reduced.ConsecutivePasses = 5 }),
			want: []policy.Change{chg("reduced.consecutive_passes", "3", "5")},
		},
		{
			name: "float changed",
			from: base,
			to:   structDoc(t, func(p *policy.Policy) { p.Reduced.Sampling.Cap = 0.1 }),
			want: []policy.Change{chg("reduced.sampling.cap", "0.05", "0.1")},
		},
		{
			name: "bool toggled",
			from: base,
			to:   structDoc(t, func(p *policy.Policy) { p.QualityExemption.Enabled = false }),
			want: []policy.Change{chg("quality_exemption.enabled", "true", "false")},
		},
		{
			name: "string changed",
			from: base,
			to:   structDoc(t, func(p *policy.Policy) { p.Description = "Draft <2027> & more" }),
			want: []policy.Change{chg("description",
				`"Default policy reproducing Decree 15/2018/ND-CP Art. 16-18 (food safety) and Decree 132/2008/ND-CP as amended by Decrees 74/2018, 154/2018 and 13/2022 (quality of group 2 goods)."`,
				`"Draft <2027> & more"`)},
		},
		{
			name: "string list: element appended",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				p.Reduced.AcceptedCertificates = append(p.Reduced.AcceptedCertificates, "SQF")
			}),
			want: []policy.Change{added("reduced.accepted_certificates[6]", `"SQF"`)},
		},
		{
			name: "string list: last element removed",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				p.Reduced.AcceptedCertificates = p.Reduced.AcceptedCertificates[:5]
			}),
			want: []policy.Change{removed("reduced.accepted_certificates[5]", `"FSSC22000"`)},
		},
		{
			// Scalars have no identity: removing HACCP (index 1) and adding
			// SQF shifts every later index.
			name: "string list: one removed, one added, matched by index",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				p.Reduced.AcceptedCertificates = []string{"GMP", "ISO22000", "IFS", "BRC", "FSSC22000", "SQF"}
			}),
			want: []policy.Change{
				chg("reduced.accepted_certificates[1]", `"HACCP"`, `"ISO22000"`),
				chg("reduced.accepted_certificates[2]", `"ISO22000"`, `"IFS"`),
				chg("reduced.accepted_certificates[3]", `"IFS"`, `"BRC"`),
				chg("reduced.accepted_certificates[4]", `"BRC"`, `"FSSC22000"`),
				chg("reduced.accepted_certificates[5]", `"FSSC22000"`, `"SQF"`),
			},
		},
		{
			name: "nested object field changed",
			from: base,
			to:   structDoc(t, func(p *policy.Policy) { p.Reduced.Sampling.RiskWeights["high"] = 0.8 }),
			want: []policy.Change{chg("reduced.sampling.risk_weights.high", "0.75", "0.8")},
		},
		{
			name: "optional section added",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				p.Identity = &policy.IdentityRules{ResemblanceThreshold: 0.7, CautionWindowDays: 180}
			}),
			want: []policy.Change{added("identity", `{"caution_window_days":180,"resemblance_threshold":0.7}`)},
		},
		{
			name: "optional section removed",
			from: withCerts, to: base,
			want: []policy.Change{removed("certificates", `{"max_term_years":5}`)},
		},
		{
			name: "optional section field changed",
			from: withCerts,
			to:   structDoc(t, func(p *policy.Policy) { p.Certificates = &policy.CertificateRules{MaxTermYears: 3} }),
			want: []policy.Change{chg("certificates.max_term_years", "5", "3")},
		},
		{
			name: "keyed array: element field changed",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				for i := range p.ExemptionCategories {
					if p.ExemptionCategories[i].Code == "personal_luggage" {
						p.ExemptionCategories[i].RefusedWhenStrict = false
					}
				}
			}),
			want: []policy.Change{chg("exemption_categories[code=personal_luggage].refused_when_strict", "true", "false")},
		},
		{
			name: "keyed array: element added",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				p.ExemptionCategories = slices.Insert(p.ExemptionCategories, 0, policy.ExemptionCategory{
					Code: "aid", Description: "Humanitarian aid", Procedures: []policy.Procedure{policy.ProcedureFoodSafety},
				})
			}),
			want: []policy.Change{added("exemption_categories[code=aid]",
				`{"code":"aid","description":"Humanitarian aid","procedures":["food_safety"],"refused_when_strict":false}`)},
		},
		{
			name: "keyed array: element removed",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				p.ExemptionCategories = slices.DeleteFunc(p.ExemptionCategories, func(c policy.ExemptionCategory) bool { return c.Code == "gifts" })
			}),
			want: []policy.Change{removed("exemption_categories[code=gifts]", gifts)},
		},
		{
			name: "keyed arrays reordered: no change",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				slices.Reverse(p.ExemptionCategories)
				slices.Reverse(p.InspectionList)
				slices.Reverse(p.Routing)
			}),
		},
		{
			name: "keyed array renamed key: removed and added",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				for i := range p.ExemptionCategories {
					if p.ExemptionCategories[i].Code == "gifts" {
						p.ExemptionCategories[i].Code = "donations"
					}
				}
			}),
			want: []policy.Change{
				added("exemption_categories[code=donations]", strings.Replace(gifts, `"gifts"`, `"donations"`, 1)),
				removed("exemption_categories[code=gifts]", gifts),
			},
		},
		{
			// A route is identified by what it is chosen by; the prefix
			// alone repeats ("" is every ministry's default).
			name: "routing matched by procedure, ministry and prefix",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				for i, r := range p.Routing {
					if r.Ministry == "MOH" && r.Prefix == "2201" {
						p.Routing[i].Agency = "moh-nifc"
					}
					if r.Ministry == "MOST" && r.Prefix == "" {
						p.Routing[i].Agency = "most-quatest-2"
					}
				}
			}),
			want: []policy.Change{
				chg("routing[procedure=food_safety,ministry=MOH,prefix=2201].agency", `"moh-iph-hcmc"`, `"moh-nifc"`),
				chg(`routing[procedure=quality,ministry=MOST,prefix=""].agency`, `"most-quatest-1"`, `"most-quatest-2"`),
			},
		},
		{
			// A code is unique per procedure, not alone: a second listing of
			// a code under the other procedure is an addition, not a change.
			name: "inspection list matched by code and procedure",
			from: base,
			to: structDoc(t, func(p *policy.Policy) {
				p.InspectionList = append(p.InspectionList, policy.ListEntry{Code: "2710", Procedure: policy.ProcedureFoodSafety, Ministry: "MOIT", Description: "x"})
				for i, e := range p.InspectionList {
					if e.Code == "2710" && e.Procedure == policy.ProcedureQuality {
						p.InspectionList[i].Description = "Motor fuels"
					}
				}
			}),
			want: []policy.Change{
				added("inspection_list[code=2710,procedure=food_safety]", `{"code":"2710","description":"x","ministry":"MOIT","procedure":"food_safety"}`),
				chg("inspection_list[code=2710,procedure=quality].description",
					`"Petroleum oils: motor gasoline, diesel and jet fuel (QCVN 1:2022/BKHCN)"`, `"Motor fuels"`),
			},
		},
		{
			name: "objects without identity: matched by index",
			from: structDoc(t, func(p *policy.Policy) {
				p.Risk.Rules = []scoring.Rule{{Subject: "goods", Above: 0.2, Effect: "strict"}, {Subject: "importer", Above: 0.3, Effect: "no_reduced"}}
			}),
			to: structDoc(t, func(p *policy.Policy) {
				p.Risk.Rules = []scoring.Rule{{Subject: "goods", Above: 0.25, Effect: "strict"}}
			}),
			want: []policy.Change{
				chg("risk.rules[0].above", "0.2", "0.25"),
				removed("risk.rules[1]", `{"above":0.3,"effect":"no_reduced","subject":"importer"}`),
			},
		},
		{
			name: "top-level key added and removed",
			from: mapDoc(t, func(m map[string]any) { m["legacy_mode"] = "on" }),
			to:   mapDoc(t, func(m map[string]any) { m["approval"] = map[string]any{"by": "mh"} }),
			want: []policy.Change{
				added("approval", `{"by":"mh"}`),
				removed("legacy_mode", `"on"`),
			},
		},
		{
			name: "type changed",
			from: base,
			to:   mapDoc(t, func(m map[string]any) { obj(m, "strict")["passes_to_normal"] = "3" }),
			want: []policy.Change{chg("strict.passes_to_normal", "3", `"3"`)},
		},
		{
			name: "object replaced by array",
			from: base,
			to:   mapDoc(t, func(m map[string]any) { m["deadlines"] = []any{json.Number("24"), json.Number("7")} }),
			want: []policy.Change{chg("deadlines", `{"documents_working_hours":24,"strict_working_days":7}`, `[24,7]`)},
		},
		{
			name: "null is a value, not an absence",
			from: []byte(`{"a":null,"b":1}`),
			to:   []byte(`{"a":0}`),
			want: []policy.Change{chg("a", "null", "0"), removed("b", "1")},
		},
		{
			name: "numbers compare by decimal value",
			from: []byte(`{"a":3,"b":0.5,"c":-0,"d":1200,"e":[1,2]}`),
			to:   []byte(`{"a":3.0,"b":5e-1,"c":0.000,"d":1.2E+3,"e":[1.0,2e0]}`),
		},
		{
			name: "a different number keeps each side's spelling",
			from: []byte(`{"a":3.0}`),
			to:   []byte(`{"a":3.01}`),
			want: []policy.Change{chg("a", "3.0", "3.01")},
		},
		{
			name: "odd keys and key values are quoted in paths",
			from: []byte(`{"a.b":1,"l":[{"code":"x]y"}]}`),
			to:   []byte(`{"a.b":2,"l":[]}`),
			want: []policy.Change{
				chg(`["a.b"]`, "1", "2"),
				removed(`l[code="x]y"]`, `{"code":"x]y"}`),
			},
		},
		{
			name: "duplicate keys fall back to index",
			from: []byte(`{"l":[{"code":"a","v":1},{"code":"a","v":2}]}`),
			to:   []byte(`{"l":[{"code":"a","v":1},{"code":"a","v":3}]}`),
			want: []policy.Change{chg("l[1].v", "2", "3")},
		},
	}
}

func TestDiff(t *testing.T) {
	for _, tc := range diffCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policy.Diff(tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if !sameChanges(got, tc.want) {
				t.Errorf("got:%s\nwant:%s", show(got), show(tc.want))
			}
		})
	}
}

func TestDiffRefusesNonObjects(t *testing.T) {
	good := []byte(`{"version":"1"}`)
	for _, tc := range []struct {
		name     string
		from, to []byte
		side     string
	}{
		{"from invalid JSON", []byte(`{"version":`), good, "from"},
		{"to invalid JSON", good, []byte(`not json`), "to"},
		{"from empty", nil, good, "from"},
		{"to an array", good, []byte(`[1,2]`), "to"},
		{"from a string", []byte(`"policy"`), good, "from"},
		{"to null", good, []byte(`null`), "to"},
		{"to with trailing data", good, []byte(`{"version":"1"} {"version":"2"}`), "to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := policy.Diff(tc.from, tc.to)
			if err == nil {
				t.Fatalf("no error, got %s", show(got))
			}
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Code != fault.Invalid || fe.Field != tc.side {
				t.Fatalf("error %v: want an invalid fault naming %q", err, tc.side)
			}
			if !strings.Contains(err.Error(), tc.side) {
				t.Errorf("error %q does not name %q", err, tc.side)
			}
		})
	}
	// The decoder's own error stays reachable for callers that want detail.
	_, err := policy.Diff([]byte(`{"a":}`), good)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("error %v does not wrap the *json.SyntaxError", err)
	}
}

// TestDiffProperties: a document never differs from itself, and swapping
// the sides swaps Old/New and added/removed on the same paths in the same
// order, over every document and every pair the table builds, and across
// pairs of the table's documents (two edits against each other).
func TestDiffProperties(t *testing.T) {
	cases := diffCases(t)
	var docs [][]byte
	for _, tc := range cases {
		docs = append(docs, tc.from, tc.to)
	}
	for i, a := range docs {
		got, err := policy.Diff(a, a)
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		if len(got) != 0 {
			t.Errorf("Diff(doc %d, itself):%s", i, show(got))
		}
	}
	for _, tc := range cases {
		checkSwap(t, tc.name, tc.from, tc.to)
	}
	// Every pair is quadratic and slow under -race; consecutive cases'
	// target documents pair different edits against each other.
	for i := 1; i < len(cases); i++ {
		checkSwap(t, cases[i-1].name+" vs "+cases[i].name, cases[i-1].to, cases[i].to)
	}
}

func checkSwap(t *testing.T, name string, a, b []byte) {
	t.Helper()
	swapKind := map[string]string{
		policy.ChangeChanged: policy.ChangeChanged,
		policy.ChangeAdded:   policy.ChangeRemoved,
		policy.ChangeRemoved: policy.ChangeAdded,
	}
	ab, err := policy.Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := policy.Diff(b, a)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]policy.Change, len(ab))
	for k, c := range ab {
		want[k] = policy.Change{Path: c.Path, Kind: swapKind[c.Kind], Old: c.New, New: c.Old}
	}
	if !sameChanges(ba, want) {
		t.Errorf("%s: Diff(b, a) is not Diff(a, b) swapped\nDiff(a, b):%s\nDiff(b, a):%s", name, show(ab), show(ba))
	}
	for _, c := range ab {
		if c.Kind == policy.ChangeChanged && (c.Old == nil || c.New == nil) ||
			c.Kind == policy.ChangeAdded && (c.Old != nil || c.New == nil) ||
			c.Kind == policy.ChangeRemoved && (c.Old == nil || c.New != nil) {
			t.Errorf("%s: malformed %+v", name, c)
		}
	}
}

// FuzzDiff: documents come from policy staff's drafts. Diff never panics,
// refuses only with an invalid fault, finds nothing between a document and
// itself, and is symmetric.
func FuzzDiff(f *testing.F) {
	p, err := policy.DefaultPolicy()
	if err != nil {
		f.Fatal(err)
	}
	doc, err := p.Document()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc, []byte(`{"version":"x"}`))
	f.Add([]byte(`{"a":3,"l":[{"code":"x"},{"code":"y"}]}`), []byte(`{"a":3.0,"l":[{"code":"y"},{"code":"z","v":1e400}]}`))
	f.Add([]byte(`{"n":1e9223372036854775807}`), []byte(`{"n":10e9223372036854775807}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if _, err := policy.Diff(a, b); err != nil {
			if fault.CodeOf(err) != fault.Invalid {
				t.Fatalf("not invalid: %v", err)
			}
			return
		}
		if self, err := policy.Diff(a, a); err != nil || len(self) != 0 {
			t.Fatalf("Diff(a, a) = %s, %v", show(self), err)
		}
		checkSwap(t, "fuzz", a, b)
	})
}
