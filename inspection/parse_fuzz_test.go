package inspection

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
)

// Fuzz targets for the other parsers of outside input: agencies' results,
// authorities' alerts and policy documents. None may panic; what they
// reject is "invalid"; what they accept is internally consistent.

var fuzzNow = time.Date(2026, 6, 1, 9, 0, 0, 0, calendar.Vietnam())

func FuzzParseResult(f *testing.F) {
	for _, s := range []string{
		`{"outcome":"pass","inspected_at":"2026-05-30T10:00:00+07:00"}`,
		`{"outcome":"fail","inspected_at":"2026-05-30","findings":[{"code":"MICRO","text":"E. coli"}],"rejected_quantity":3}`,
		`{"outcome":"pass","inspected_at":"2026-05-30T10:00:00+07:00","rejected_quantity":1,"findings":[{"code":"LBL","text":"label"}]}`,
		`{"outcome":"fail"}`, `{}`, `{"findings":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in ResultInput
		if json.Unmarshal(body, &in) != nil {
			return
		}
		r, err := parseResult(in, fuzzNow, DefaultClockSkew)
		if err != nil {
			if fault.CodeOf(err) != fault.Invalid {
				t.Fatalf("not invalid: %v", err)
			}
			return
		}
		if r.Outcome != OutcomePass && r.Outcome != OutcomeFail {
			t.Fatalf("outcome %q accepted", r.Outcome)
		}
		if r.Outcome == OutcomeFail && len(r.Findings) == 0 {
			t.Fatal("a fail without findings accepted")
		}
		if r.RejectedQuantity > 0 && r.Outcome != OutcomeFail {
			t.Fatal("a partly rejected lot recorded as a pass")
		}
		if r.InspectedAt.After(fuzzNow.Add(DefaultClockSkew)) {
			t.Fatal("a future inspection date accepted")
		}
	})
}

func FuzzParseAlert(f *testing.F) {
	for _, s := range []string{
		`{"authority":"RASFF","reference":"R-1","reason":"Salmonella","issued_at":"2026-05-01","target":{"kind":"manufacturer","manufacturer":"Dairy One","origin":"nz"}}`,
		`{"authority":"INFOSAN","reference":"I-9","reason":"x","issued_at":"2026-05-01T00:00:00Z","target":{"kind":"goods","hs_code":"0402.21.20","product_name":"Milk","manufacturer":"M","origin":"NZ"}}`,
		`{"authority":"MOH","reference":"H","reason":"r","issued_at":"2026-05-01","target":{"kind":"heading_origin","hs_code":"1905","origin":"CN"}}`,
		`{"target":{"kind":"country"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in AlertInput
		if json.Unmarshal(body, &in) != nil {
			return
		}
		e, goods, err := parseAlert(in, fuzzNow, DefaultClockSkew)
		if err != nil {
			if fault.CodeOf(err) != fault.Invalid {
				t.Fatalf("not invalid: %v", err)
			}
			return
		}
		if e.Kind != EventAlert || e.ID == "" || e.At.After(fuzzNow.Add(DefaultClockSkew)) {
			t.Fatalf("accepted a malformed alert: %+v", e)
		}
		if (e.Subject.Kind == SubjectGoods) != (goods != nil) {
			t.Fatalf("goods target %v but goods %v", e.Subject.Kind, goods)
		}
		if goods != nil && goods.Key() != e.Subject.Key {
			t.Fatal("the alert's subject is not its goods' key")
		}
	})
}
