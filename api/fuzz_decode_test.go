package api

// Fuzz targets of the strict, streaming decoder. They are inside the
// package because their properties are about the problem a refusal
// becomes (its status and field), before it is an HTTP answer.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
)

// refusal is what a decoding error becomes: a 4xx naming a field.
func refusal(t *testing.T, err error) (status int, field string) {
	t.Helper()
	var (
		re *requestError
		fe *fault.Error
	)
	switch {
	case errors.As(err, &re):
		status, field = re.status, re.field
	case errors.As(err, &fe) && fe.Code == fault.Invalid:
		status, field = http.StatusUnprocessableEntity, fe.Field
	default:
		t.Fatalf("refusal %T %v is neither a request error nor invalid input", err, err)
	}
	if status < 400 || status > 499 || field == "" {
		t.Fatalf("refusal %d naming %q: want a 4xx naming a field (%v)", status, field, err)
	}
	return status, field
}

// checkAccepted holds the properties of a body the strict decoder took
// into v (a pointer): encoding/json, lax as it is, reads the same value;
// the value round-trips through its JSON; and the same JSON with its
// first member repeated, or with that member's name in another case, is
// refused naming it.
func checkAccepted(t *testing.T, body []byte, v any) {
	t.Helper()
	typ := reflect.TypeOf(v).Elem()
	lax := reflect.New(typ)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(lax.Interface()); err != nil {
		t.Fatalf("strict took what encoding/json refuses (%v): %q", err, body)
	}
	if !reflect.DeepEqual(lax.Elem().Interface(), reflect.ValueOf(v).Elem().Interface()) {
		t.Fatalf("strict and encoding/json read %q differently:\n%#v\n%#v", body, v, lax.Interface())
	}
	canon, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	again := reflect.New(typ)
	if err := DecodeStrict(bytes.NewReader(canon), again.Interface()); err != nil {
		t.Fatalf("its own JSON %s refused: %v", canon, err)
	}
	if !reflect.DeepEqual(again.Elem().Interface(), reflect.ValueOf(v).Elem().Interface()) {
		t.Fatalf("round trip changed the value:\n%#v\n%#v", v, again.Interface())
	}
	// The canonical JSON opens with the first field's member: repeat it,
	// then send it once more in another case.
	first := jsonName(typ.Field(0))
	for _, name := range []string{first, strings.ToUpper(first[:1]) + first[1:]} {
		mutated := append([]byte(`{"`+name+`":"x",`), canon[1:]...)
		err := DecodeStrict(bytes.NewReader(mutated), reflect.New(typ).Interface())
		if err == nil {
			t.Fatalf("%s accepted", mutated)
		}
		if status, field := refusal(t, err); status != http.StatusBadRequest || field != name {
			t.Fatalf("%s: %d naming %q, want 400 naming %q", mutated, status, field, name)
		}
	}
}

// FuzzDeclarationDecoder: anything the declaration decoder accepts has at
// most MaxLines lines and holds checkAccepted's properties (the duplicate
// and the case variant are tried in the first line too); anything it
// refuses is a 4xx naming a field; a body with more than MaxLines lines
// is refused whatever else it holds.
func FuzzDeclarationDecoder(f *testing.F) {
	for _, seed := range []string{
		`{"declaration_id":"105123456780","importer_tax_code":"0101234567","lines":[{"line_no":1,"hs_code":"0402.21.20","product_name":"Sữa bột","manufacturer":"Fonterra","origin":"NZ","procedure":"food_safety","quantity":1200,"unit":"kg"}]}`,
		`{"declaration_id":"A","lines":[{"line_no":2,"brand":"K","certificates":[{"kind":"ISO 22000","number":"1","valid_until":"2030-01-01"}],"exemption":"personal_luggage","quantity":1e2}]}`,
		`{"lines":[{},{},{}],"declaration_id":"B"}`,
		`{"lines":[` + strings.Repeat(`{},`, declaration.MaxLines) + `{}]}`,
		`{"declaration_id":"\ud83d\ude00","lines":null}`,
		`{"declaration_id":"a","Declaration_ID":"b"}`,
		`{"lines":[{"line_no":1,"line_no":2}]}`,
		`{"declaration_id":"\ud800"}`, "{\"declaration_id\":\"\xff\"}",
		`[]`, `{`, ``, `null`, `{"lines":[{"line_no":"1"}]}`, `{"lines":[{"certificates":[[]]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in declaration.Input
		err := DecodeStrict(bytes.NewReader(body), &in)
		// What encoding/json sees in "lines", key matched exactly.
		var loose struct {
			Lines []json.RawMessage `json:"lines"`
		}
		overLimit := json.Unmarshal(body, &loose) == nil && len(loose.Lines) > declaration.MaxLines &&
			bytes.Contains(body, []byte(`"lines"`))
		if err != nil {
			refusal(t, err)
			return
		}
		if overLimit || len(in.Lines) > declaration.MaxLines {
			t.Fatalf("%d lines accepted: %q", len(in.Lines), body)
		}
		checkAccepted(t, body, &in)
		if len(in.Lines) > 0 {
			canon, _ := json.Marshal(in)
			i := bytes.Index(canon, []byte(`"lines":[{`)) + len(`"lines":[{`)
			for _, name := range []string{"line_no", "Line_no"} {
				mutated := append(append(append([]byte{}, canon[:i]...), `"`+name+`":1,`...), canon[i:]...)
				err := DecodeStrict(bytes.NewReader(mutated), &declaration.Input{})
				if err == nil {
					t.Fatalf("%s accepted", mutated)
				}
				if status, field := refusal(t, err); status != http.StatusBadRequest || field != "lines[0]."+name {
					t.Fatalf("%s: %d naming %q, want 400 naming lines[0].%s", mutated, status, field, name)
				}
			}
		}
	})
}

// countingReader counts the bytes the decoder took.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzDeclarationLineLimit: a declaration of more than MaxLines copies of
// any element is refused; when the element is a line the decoder takes,
// the refusal is the line limit (422 naming lines), read no further than
// the element after the limit and the decoder's read-ahead.
func FuzzDeclarationLineLimit(f *testing.F) {
	f.Add([]byte(`{}`), uint32(0))
	f.Add([]byte(`{}`), uint32(349_450))
	f.Add([]byte(`{"line_no":1,"hs_code":"0402.21.20","product_name":"x","quantity":2}`), uint32(3))
	f.Add([]byte(`{"certificates":[{},{}]}`), uint32(1))
	f.Add([]byte(`null`), uint32(7))
	f.Add([]byte(`{"line_no":"1"}`), uint32(0))
	f.Fuzz(func(t *testing.T, elem []byte, extra uint32) {
		// At least one line over the limit, and no more than fit the body
		// limit (what a client can send).
		n := max(declaration.MaxLines+1, min(declaration.MaxLines+1+int(extra), DefaultBodyLimit/(len(elem)+1)))
		var b bytes.Buffer
		b.WriteString(`{"declaration_id":"L","importer_tax_code":"0101234567","lines":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(elem)
		}
		b.WriteString(`]}`)
		r := &countingReader{r: bytes.NewReader(b.Bytes())}
		var in declaration.Input
		err := DecodeStrict(r, &in)
		if err == nil {
			t.Fatalf("%d lines of %q accepted", n, elem)
		}
		status, field := refusal(t, err)
		two := append(append(append(append([]byte(`{"lines":[`), elem...), ','), elem...), `]}`...)
		if DecodeStrict(bytes.NewReader(two), &declaration.Input{}) != nil {
			return // the element itself is refused: any refusal will do
		}
		if status != http.StatusUnprocessableEntity || field != "lines" {
			t.Fatalf("%d lines of %q: %d naming %q, want 422 naming lines", n, elem, status, field)
		}
		head := len(`{"declaration_id":"L","importer_tax_code":"0101234567","lines":[`)
		if limit := head + (declaration.MaxLines+1)*(len(elem)+1) + len(elem) + 8<<10; r.n > limit {
			t.Fatalf("read %d bytes of %d, want at most %d", r.n, b.Len(), limit)
		}
	})
}

// FuzzStrictObject: the other bodies (an alert, a result, an override, a
// key request) hold checkAccepted's properties, and every refusal is a
// 4xx naming a field. The first byte picks the type.
func FuzzStrictObject(f *testing.F) {
	for _, seed := range []string{
		"a" + `{"authority":"RASFF","reference":"R1","reason":"x","issued_at":"2026-01-05T08:00:00+07:00","target":{"kind":"manufacturer","manufacturer":"Dairy One","origin":"NZ"}}`,
		"a" + `{"target":{"kind":"goods","kind":"x"}}`,
		"a" + `{"issued_at":5}`,
		"r" + `{"outcome":"fail","inspected_at":"2026-01-05","findings":[{"code":"A","text":"\u00e9"}],"rejected_quantity":0.5}`,
		"r" + `{"findings":[` + strings.Repeat(`{},`, maxListLen) + `{}]}`,
		"o" + `{"reason_code":"DOC","reason_text":"t","inspect":true,"swap_with":"dec_1"}`,
		"o" + `{"inspect":null,"Inspect":false}`,
		"k" + `{"principal":"agency:moh-nifc","expires_at":"2026-06-30","note":"n"}`,
		"\x04" + `{"url":"https://nsw.gov.vn/hooks","event_types":["decision.made"],"note":"n"}`,
		"\x04" + `{"event_types":"decision.made"}`,
		"\x05" + `{"from":1,"to":18446744073709551615}`,
		"\x05" + `{"from":-1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		var v any
		switch data[0] % 6 {
		case 0:
			v = &inspection.AlertInput{}
		case 1:
			v = &inspection.ResultInput{}
		case 2:
			v = &inspection.OverrideInput{}
		case 4:
			v = &inspection.WebhookInput{}
		case 5:
			v = &RedeliverRequest{}
		default:
			v = &KeyCreateRequest{}
		}
		body := data[1:]
		if err := DecodeStrict(bytes.NewReader(body), v); err != nil {
			refusal(t, err)
			return
		}
		if r, ok := v.(*inspection.ResultInput); ok && len(r.Findings) > maxListLen {
			t.Fatalf("%d findings accepted", len(r.Findings))
		}
		checkAccepted(t, body, v)
	})
}

// FuzzEventQuery: any query string of a pull is read or refused naming
// after, limit, types or wait (422), or an unknown parameter sent (400);
// what is read is in bounds.
func FuzzEventQuery(f *testing.F) {
	for _, seed := range []string{"after=10&limit=100&types=decision.made,result.recorded&wait=30s", "wait=30", "after=-1",
		"limit=0", "types=,,", "wait=1h", "after=9223372036854775808", "after=1&after=2", "%zz", "wait=-5s", "since=4"} {
		f.Add(seed)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, raw string) {
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/v1/events", RawQuery: raw}, Header: http.Header{}}
		q, err := eventQuery(e.NewContext(req, httptest.NewRecorder()))
		if err != nil {
			status, field := refusal(t, err)
			known := []string{"after", "limit", "types", "wait"}
			_, sent := req.URL.Query()[field]
			if !slices.Contains(known, field) && !(status == http.StatusBadRequest && (sent || field == "query")) {
				t.Fatalf("%q refused naming %q (%d)", raw, field, status)
			}
			return
		}
		if q.Limit < 1 || q.Limit > maxPage || q.After >= 1<<63 {
			t.Fatalf("%q read as %+v", raw, q)
		}
	})
}

// FuzzQueueAndSearchQueries: any query string of the agency's queue or of
// the decision search is read or refused with a 4xx naming a parameter it
// knows or one that was sent (or the nameless one, "query").
func FuzzQueueAndSearchQueries(f *testing.F) {
	for _, seed := range []string{"status=open,accepted&mode=strict&overdue=true&sort=due&limit=5",
		"due_before=2026-03-02&due_after=2026-03-01T08:00:00+07:00", "sort=risk", "overdue=1", "importer=0101234567&from=2026-01-01&to=2025-01-01",
		"hs=04&inspect=true&overridden=false", "after=%%%", "=", "mode=reduced&mode=strict", "limit=0", "bogus=1"} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, raw string, queue bool) {
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/v1/x", RawQuery: raw}, Header: http.Header{}}
		c := e.NewContext(req, httptest.NewRecorder())
		var err error
		if queue {
			_, err = queueQuery(c)
		} else {
			_, err = decisionQuery(c)
		}
		if err == nil {
			return
		}
		status, field := refusal(t, err)
		_, sent := req.URL.Query()[field]
		if !sent && field != "query" && status != http.StatusUnprocessableEntity {
			t.Fatalf("%q refused %d naming %q, a parameter not sent", raw, status, field)
		}
	})
}
