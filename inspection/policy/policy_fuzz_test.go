package policy

import (
	"testing"

	"github.com/ktcn/ktcn/inspection/fault"
)

// FuzzParsePolicy: a policy document is outside input (KTCN_POLICY, and
// soon the policy staff's drafts).
func FuzzParsePolicy(f *testing.F) {
	f.Add(defaultPolicyJSON)
	f.Add([]byte(`{"version":"x"}`))
	f.Add([]byte(`{"version":"x","strict":{"passes_to_normal":0}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := ParsePolicy(doc)
		if err != nil {
			if fault.CodeOf(err) != fault.Invalid {
				t.Fatalf("not invalid: %v", err)
			}
			return
		}
		// An accepted policy validates again and routes every listed code.
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted policy no longer validates: %v", err)
		}
		for _, e := range p.InspectionList {
			if l, ok := p.Lookup(e.Procedure, e.Code); ok && !e.Exclude {
				if _, ok := p.Route(l, e.Code); !ok {
					t.Fatalf("listed %s does not route", e.Code)
				}
			}
		}
	})
}
