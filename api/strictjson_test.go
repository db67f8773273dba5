package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection/declaration"
)

// lineJSON is a valid declaration line with line number n.
func lineJSON(n int) string {
	return fmt.Sprintf(`{"line_no":%d,"hs_code":"0402.21.20","product_name":"Sữa bột","manufacturer":"Dairy One","origin":"NZ","procedure":"food_safety","quantity":10,"unit":"kg"}`, n)
}

// declJSON is a declaration with the given lines (raw JSON objects).
func declJSON(id string, lines ...string) string {
	return `{"declaration_id":"` + id + `","importer_tax_code":"0101234567","lines":[` + strings.Join(lines, ",") + `]}`
}

// emptyLinesBody is a body of exactly size bytes whose lines are all {}:
// issue 15's 349,501 empty lines in 1 MiB.
func emptyLinesBody(size int) []byte {
	head, tail := `{"declaration_id":"EMPTY1","importer_tax_code":"0101234567","lines":[{}`, `]}`
	var b bytes.Buffer
	b.WriteString(head)
	for b.Len()+3+len(tail) <= size {
		b.WriteString(",{}")
	}
	b.WriteString(strings.Repeat(" ", size-b.Len()-len(tail)))
	b.WriteString(tail)
	return b.Bytes()
}

// TestStrictJSONRefused: keys are matched exactly, duplicates, invalid
// UTF-8 and lone surrogates are refused, type errors name the path with
// its indexes, and only application/json is read. Each answer is a 4xx
// problem+json naming the field, and the store reads exactly as before.
func TestStrictJSONRefused(t *testing.T) {
	e := newEnv(t, start)
	ld := e.decide("GOOD0001", importerA, milk("Dairy One"))
	good := lineJSON(1)
	withLine := func(l string) string { return declJSON("STRICT1", l) }
	alert := func(members string) string {
		return `{"authority":"RASFF","reference":"R1","reason":"x",` + members + `}`
	}
	target := `"target":{"kind":"manufacturer","manufacturer":"Dairy One","origin":"NZ"}`
	result := "/v1/assignments/" + ld.AssignmentID + "/result"
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		field                                 string
	}{
		// Keys matched exactly.
		{"key differs in case", "POST", "/v1/declarations", "", strings.Replace(withLine(good), `"declaration_id"`, `"Declaration_ID"`, 1), 400, "Declaration_ID"},
		{"nested key differs in case", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"hs_code"`, `"HS_CODE"`, 1)), 400, "lines[0].HS_CODE"},
		{"duplicate key", "POST", "/v1/declarations", "", strings.Replace(withLine(good), `{"declaration_id":"STRICT1"`, `{"declaration_id":"STRICT1","declaration_id":"STRICT2"`, 1), 400, "declaration_id"},
		{"duplicate key in a line", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"origin":"NZ"`, `"origin":"NZ","origin":"CN"`, 1)), 400, "lines[0].origin"},
		{"case variant after the key", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"unit":"kg"`, `"unit":"kg","Unit":"t"`, 1)), 400, "lines[0].Unit"},
		{"duplicate key in an alert target", "POST", "/v1/alerts", "", alert(`"issued_at":"2026-01-05T08:00:00+07:00","target":{"kind":"goods","kind":"manufacturer","manufacturer":"Dairy One","origin":"NZ"}`), 400, "target.kind"},
		{"unknown field in a line", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"unit":"kg"`, `"unit":"kg","colour":"red"`, 1)), 400, "lines[0].colour"},
		{"member with an empty name", "POST", "/v1/declarations", "", `{"":1}`, 400, `""`},
		{"admin key field in another case", "POST", "/v1/admin/keys", "", `{"Principal":"nsw"}`, 400, "Principal"},
		// Text that is not valid Unicode.
		{"invalid UTF-8", "POST", "/v1/declarations", "", withLine(strings.Replace(good, "Sữa bột", "S\xffa", 1)), 400, "lines[0].product_name"},
		{"escaped lone high surrogate", "POST", "/v1/declarations", "", withLine(strings.Replace(good, "Dairy One", `Dairy\ud800One`, 1)), 400, "lines[0].manufacturer"},
		{"escaped lone low surrogate", "POST", "/v1/declarations", "", withLine(strings.Replace(good, "Dairy One", `Dairy\udc00`, 1)), 400, "lines[0].manufacturer"},
		{"surrogates in the wrong order", "POST", "/v1/alerts", "", alert(`"issued_at":"2026-01-05T08:00:00+07:00","target":{"kind":"manufacturer","manufacturer":"\udc00\ud800","origin":"NZ"}`), 400, "target.manufacturer"},
		{"invalid UTF-8 in an override reason", "POST", "/v1/decisions/" + ld.DecisionID + "/override", "", "{\"reason_code\":\"DOC\",\"reason_text\":\"\xc3\",\"inspect\":false}", 400, "reason_text"},
		// Type errors name the whole path.
		{"type error in the fourth line", "POST", "/v1/declarations", "", declJSON("STRICT1", lineJSON(1), lineJSON(2), lineJSON(3), strings.Replace(lineJSON(4), `"line_no":4`, `"line_no":"4"`, 1)), 400, "lines[3].line_no"},
		{"line number not whole", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"line_no":1`, `"line_no":1.5`, 1)), 400, "lines[0].line_no"},
		{"line number out of range", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"line_no":1`, `"line_no":1e400`, 1)), 400, "lines[0].line_no"},
		{"type error in a certificate", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"unit":"kg"`, `"unit":"kg","certificates":[{"kind":"HACCP","number":"1","valid_until":"2030-01-01"},{"kind":"HACCP","number":"2","valid_until":20300101}]`, 1)), 400, "lines[0].certificates[1].valid_until"},
		{"alert issued_at not a string", "POST", "/v1/alerts", "", alert(`"issued_at":20260105,` + target), 400, "issued_at"},
		{"result finding code not a string", "POST", result, "", `{"outcome":"fail","inspected_at":"2026-01-05T09:00:00+07:00","findings":[{"code":"A","text":"x"},{"code":7,"text":"y"}]}`, 400, "findings[1].code"},
		{"override inspect not a boolean", "POST", "/v1/decisions/" + ld.DecisionID + "/override", "", `{"reason_code":"DOC","inspect":"yes"}`, 400, "inspect"},
		{"lines not an array", "POST", "/v1/declarations", "", `{"declaration_id":"STRICT1","importer_tax_code":"0101234567","lines":{"line_no":1}}`, 400, "lines"},
		// Lists stop at their bound.
		{"more lines than the limit", "POST", "/v1/declarations", "", declJSON("STRICT1", strings.Split(strings.Repeat("{},", declaration.MaxLines+1)+"{}", ",")...), 422, "lines"},
		{"certificates without end", "POST", "/v1/declarations", "", withLine(strings.Replace(good, `"unit":"kg"`, `"unit":"kg","certificates":[`+strings.Repeat("{},", 5000)+`{}]`, 1)), 422, "lines[0].certificates"},
		// Only application/json.
		{"application/jsonp", "POST", "/v1/declarations", "application/jsonp", withLine(good), 415, "Content-Type"},
		{"application/json-patch+json", "POST", "/v1/declarations", "application/json-patch+json", withLine(good), 415, "Content-Type"},
		{"no content type", "POST", "/v1/declarations", "-", withLine(good), 415, "Content-Type"},
		{"text/plain", "POST", "/v1/alerts", "text/plain", alert(`"issued_at":"2026-01-05T08:00:00+07:00",` + target), 415, "Content-Type"},
		{"another charset", "POST", "/v1/declarations", "application/json; charset=iso-8859-1", withLine(good), 415, "Content-Type"},
		{"UTF-16", "POST", "/v1/declarations", "application/json; charset=utf-16", withLine(good), 415, "Content-Type"},
		{"another parameter", "POST", "/v1/declarations", "application/json; profile=x", withLine(good), 415, "Content-Type"},
		{"malformed media type", "POST", "/v1/declarations", "application/json;;", withLine(good), 415, "Content-Type"},
		{"result as form", "POST", result, "application/x-www-form-urlencoded", `outcome=pass`, 415, "Content-Type"},
	}
	before := digest(t, e)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			ct := tc.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			var p api.Problem
			status, hdr := e.doRaw(tc.method, tc.path, ct, tc.body, &p)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%+v)", status, tc.status, p)
			}
			if got := hdr.Get("Content-Type"); got != "application/problem+json" {
				t.Fatalf("content type %q", got)
			}
			if p.Status != status || p.Detail == "" || p.Field != tc.field {
				t.Fatalf("problem %+v, want field %q", p, tc.field)
			}
			if after := digest(t, e); after != before {
				t.Fatal("the store changed")
			}
		})
	}
}

// TestJSONMediaTypeAccepted: application/json in any case, with or
// without charset=utf-8, is read.
func TestJSONMediaTypeAccepted(t *testing.T) {
	e := newEnv(t, start)
	for i, ct := range []string{"application/json", "Application/JSON", "application/json; charset=utf-8", "application/json;charset=UTF-8", `application/json; charset="utf-8"`} {
		var resp api.DeclarationResponse
		if status, _ := e.doRaw("POST", "/v1/declarations", ct, declJSON(fmt.Sprintf("MEDIA%d", i), lineJSON(1)), &resp); status != http.StatusCreated {
			t.Errorf("%q: status %d", ct, status)
		}
	}
	// Two Content-Type headers: which one the body is in is anyone's guess.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/declarations", strings.NewReader(declJSON("MEDIA9", lineJSON(1))))
	req.Header.Add("Content-Type", "application/json")
	req.Header.Add("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+e.tokens["nsw"])
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("two content types: status %d, want 415", resp.StatusCode)
	}
}

// TestEmptyLinesBodyRefusedAtTheLimit: issue 15's body of 349,501 empty
// lines in 1 MiB gets 422 naming lines, and the store is unchanged.
func TestEmptyLinesBodyRefusedAtTheLimit(t *testing.T) {
	e := newEnv(t, start)
	before := digest(t, e)
	body := emptyLinesBody(api.DefaultBodyLimit)
	var p api.Problem
	status, hdr := e.send("POST", "/v1/declarations", "application/json", bytes.NewReader(body), &p)
	if status != http.StatusUnprocessableEntity || p.Field != "lines" || hdr.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d %+v, want 422 naming lines", status, p)
	}
	if !strings.Contains(p.Detail, fmt.Sprint(declaration.MaxLines)) {
		t.Errorf("detail %q does not say the limit", p.Detail)
	}
	if digest(t, e) != before {
		t.Fatal("the store changed")
	}
}

// countingReader counts the bytes the decoder took.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestDeclarationDecoderStopsAtLineLimit: the decoder stops reading at the
// line after the limit, wherever lines are in the object, so the rest of
// a 1 MiB body of empty lines is never read, let alone held in memory.
func TestDeclarationDecoderStopsAtLineLimit(t *testing.T) {
	body := emptyLinesBody(api.DefaultBodyLimit)
	// The same lines before the other members.
	first := append([]byte(`{"lines":[{}`), body[bytes.Index(body, []byte(`,{}`)):bytes.LastIndexByte(body, ']')+1]...)
	first = append(first, `,"declaration_id":"E","importer_tax_code":"0101234567"}`...)
	for name, b := range map[string][]byte{"lines last": body, "lines first": first} {
		r := &countingReader{r: bytes.NewReader(b)}
		var in declaration.Input
		err := api.DecodeStrict(r, &in)
		if err == nil || !strings.Contains(err.Error(), "at most") {
			t.Fatalf("%s: %v, want the line limit", name, err)
		}
		// The decoder reads ahead a few KiB at most; the whole body is 256 times that.
		if r.n > 16<<10 {
			t.Errorf("%s: read %d of %d bytes before refusing", name, r.n, len(b))
		}
		if len(in.Lines) > declaration.MaxLines {
			t.Errorf("%s: %d lines materialised", name, len(in.Lines))
		}
	}
}

// TestStrictDecodeRoundTrip: what the strict decoder accepts decodes to
// the same value as encoding/json reads, for bodies both accept.
func TestStrictDecodeRoundTrip(t *testing.T) {
	body := declJSON("RT1", lineJSON(1), strings.Replace(lineJSON(2), `"unit":"kg"`, `"unit":"kg","brand":"\u00e9\ud83d\ude00","certificates":[{"kind":"HACCP","number":"1","valid_until":"2030-01-01"}]`, 1))
	var strict, lax declaration.Input
	if err := api.DecodeStrict(strings.NewReader(body), &strict); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &lax); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(strict)
	b, _ := json.Marshal(lax)
	if !bytes.Equal(a, b) {
		t.Fatalf("strict %s\nlax    %s", a, b)
	}
}
