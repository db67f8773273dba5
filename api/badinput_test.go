package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection/declaration"
)

func validLine() map[string]any {
	return map[string]any{"line_no": 1, "hs_code": "0402.21.20", "product_name": "Sữa bột", "manufacturer": "Dairy One",
		"origin": "NZ", "procedure": "food_safety", "quantity": 10, "unit": "kg"}
}

func declarationWith(mutate func(d map[string]any, l map[string]any)) map[string]any {
	l := validLine()
	d := map[string]any{"declaration_id": "BAD000001", "importer_tax_code": "0101234567", "lines": []any{l}}
	mutate(d, l)
	return d
}

// TestBadInputChangesNothing sends malformed requests; each must get a 4xx
// problem+json naming the field, and the store must read exactly as before.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, start)
	// Some state to disturb: one decided lot with an open assignment.
	ld := e.decide("GOOD0001", importerA, milk("Dairy One"))

	long := strings.Repeat("x", 300)
	tests := []struct {
		name   string
		method string
		path   string
		body   any // string: raw bytes
		status int
		field  string
	}{
		{"malformed JSON", "POST", "/v1/declarations", `{"declaration_id": "X1",`, 400, "body"},
		{"not an object", "POST", "/v1/declarations", `[1,2,3]`, 400, "body"},
		{"empty body", "POST", "/v1/declarations", ``, 400, "body"},
		{"trailing data", "POST", "/v1/declarations", `{"declaration_id":"X"} {}`, 400, "body"},
		{"unknown field", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { d["importer"] = "x" }), 400, "importer"},
		{"wrong type", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["quantity"] = "ten" }), 400, "lines[0].quantity"},
		{"missing declaration_id", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { delete(d, "declaration_id") }), 422, "declaration_id"},
		{"bad tax code", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { d["importer_tax_code"] = "12ab" }), 422, "importer_tax_code"},
		{"missing lines", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { delete(d, "lines") }), 422, "lines"},
		{"empty lines", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { d["lines"] = []any{} }), 422, "lines"},
		{"too many lines", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) {
			var ls []any
			for i := 1; i <= declaration.MaxLines+1; i++ {
				c := validLine()
				c["line_no"] = i
				ls = append(ls, c)
			}
			d["lines"] = ls
		}), 422, "lines"},
		{"duplicate line numbers", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) {
			d["lines"] = []any{l, validLine()}
		}), 422, "lines[1].line_no"},
		{"missing line_no", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { delete(l, "line_no") }), 422, "lines[0].line_no"},
		{"malformed HS code", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["hs_code"] = "04a2" }), 422, "lines[0].hs_code"},
		{"HS code too short", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["hs_code"] = "040" }), 422, "lines[0].hs_code"},
		{"unlisted HS code", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["hs_code"] = "8703.23.10" }), 422, "lines[0].hs_code"},
		{"procedure not the listed one", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["procedure"] = "quality" }), 422, "lines[0].procedure"},
		{"unknown procedure", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["procedure"] = "safety" }), 422, "lines[0].procedure"},
		{"missing product name", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["product_name"] = "   " }), 422, "lines[0].product_name"},
		{"oversize product name", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["product_name"] = long }), 422, "lines[0].product_name"},
		{"control character", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["manufacturer"] = "Dairy\u0000One" }), 422, "lines[0].manufacturer"},
		{"bad origin", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["origin"] = "XX" }), 422, "lines[0].origin"},
		{"zero quantity", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["quantity"] = 0 }), 422, "lines[0].quantity"},
		{"missing unit", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { delete(l, "unit") }), 422, "lines[0].unit"},
		{"certificate without date", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) {
			l["certificates"] = []any{map[string]any{"kind": "HACCP", "number": "H1", "valid_until": "soon"}}
		}), 422, "lines[0].certificates[0].valid_until"},
		{"unknown exemption", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { l["exemption"] = "friend_of_minister" }), 422, "lines[0].exemption"},
		{"second line bad, first good: all rejected", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) {
			c := validLine()
			c["line_no"], c["origin"] = 2, "ZZ"
			d["lines"] = []any{l, c}
		}), 422, "lines[1].origin"},
		{"same ID, other content", "POST", "/v1/declarations", declarationWith(func(d, l map[string]any) { d["declaration_id"] = "GOOD0001" }), 409, "declaration_id"},
		{"wrong media type", "POST", "/v1/declarations", nil, 415, "Content-Type"},
		{"oversize body", "POST", "/v1/declarations", `{"declaration_id":"` + strings.Repeat("9", api.DefaultBodyLimit) + `"}`, 413, "body"},
		{"result: unknown assignment", "POST", "/v1/assignments/asg_nope/result", map[string]any{"outcome": "pass", "inspected_at": "2026-01-05T09:00:00+07:00"}, 404, ""},
		{"result: bad outcome", "POST", "/v1/assignments/" + ld.AssignmentID + "/result", map[string]any{"outcome": "ok", "inspected_at": "2026-01-05T10:00:00+07:00"}, 422, "outcome"},
		{"result: future date", "POST", "/v1/assignments/" + ld.AssignmentID + "/result", map[string]any{"outcome": "pass", "inspected_at": "2027-01-05T10:00:00+07:00"}, 422, "inspected_at"},
		{"result: before the decision", "POST", "/v1/assignments/" + ld.AssignmentID + "/result", map[string]any{"outcome": "pass", "inspected_at": "2025-01-05T10:00:00+07:00"}, 422, "inspected_at"},
		{"result: fail without findings", "POST", "/v1/assignments/" + ld.AssignmentID + "/result", map[string]any{"outcome": "fail", "inspected_at": "2026-01-05T09:00:00+07:00"}, 422, "findings"},
		{"alert: unknown target", "POST", "/v1/alerts", map[string]any{"authority": "RASFF", "reference": "R1", "reason": "x", "issued_at": "2026-01-05T08:00:00+07:00", "target": map[string]any{"kind": "country", "origin": "NZ"}}, 422, "target.kind"},
		{"alert: missing authority", "POST", "/v1/alerts", map[string]any{"reference": "R1", "reason": "x", "issued_at": "2026-01-05T08:00:00+07:00", "target": map[string]any{"kind": "manufacturer", "manufacturer": "Dairy One", "origin": "NZ"}}, 422, "authority"},
		{"assignments without agency", "GET", "/v1/assignments", nil, 422, "agency"},
		{"assignments of an unknown agency", "GET", "/v1/assignments?agency=nobody", nil, 422, "agency"},
		{"assignments bad limit", "GET", "/v1/assignments?agency=moit-vinacontrol&limit=0", nil, 422, "limit"},
		{"unknown decision", "GET", "/v1/decisions/dec_nope", nil, 404, ""},
		{"bad goods key", "GET", "/v1/goods/zz", nil, 422, "key"},
	}
	if len(tests) < 20 {
		t.Fatal("the acceptance asks for at least 20 malformed requests")
	}
	before := digest(t, e)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p api.Problem
			var status int
			var hdr http.Header
			if tc.name == "wrong media type" {
				status, hdr = e.doRaw(tc.method, tc.path, "text/plain", `{}`, &p)
			} else {
				status, hdr = e.do(tc.method, tc.path, tc.body, &p)
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d (%+v)", status, tc.status, p)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			if p.Status != status || p.Title == "" || p.Type == "" || p.Detail == "" || p.Field != tc.field {
				t.Fatalf("problem %+v, want field %q", p, tc.field)
			}
			if after := digest(t, e); after != before {
				t.Fatal("the store changed")
			}
		})
	}
}

func digest(t *testing.T, e *env) string {
	t.Helper()
	d, err := e.db.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
