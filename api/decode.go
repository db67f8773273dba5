package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"
)

// Request bodies are read by one strict, streaming JSON decoder: the
// mirror of encoding/json/v2 (github.com/go-json-experiment/json, the
// same code Go 1.27 ships as encoding/json/v2). encoding/json (v1) cannot
// be made strict: it matches keys case-insensitively, lets the last
// duplicate win, and turns invalid UTF-8 and escaped lone surrogates into
// U+FFFD before any caller sees the text. v2 refuses all of these by
// default, and reports every error with the JSON pointer of the value.

// decodeJSON reads exactly one JSON object into v from a request sent as
// application/json.
func decodeJSON(c echo.Context, v any) error {
	if err := jsonMediaType(c.Request().Header.Values(echo.HeaderContentType)); err != nil {
		return err
	}
	return DecodeStrict(c.Request().Body, v)
}

// jsonMediaType accepts exactly one Content-Type, application/json with
// at most a charset of utf-8 (RFC 8259 defines no other), in any case.
// application/jsonp, application/json-patch+json and the like are other
// formats, and a body without a type is not known to be JSON.
func jsonMediaType(values []string) error {
	refuse := func(why string) error {
		return &requestError{status: http.StatusUnsupportedMediaType, field: "Content-Type",
			msg: why + ": send Content-Type: application/json"}
	}
	if len(values) == 0 {
		return refuse("no media type")
	}
	if len(values) > 1 {
		return refuse("more than one media type")
	}
	mt, params, err := mime.ParseMediaType(values[0])
	if err != nil || mt != echo.MIMEApplicationJSON {
		return refuse(fmt.Sprintf("media type %.100q", values[0]))
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return refuse(fmt.Sprintf("parameter %.40s=%.40q", k, v))
		}
	}
	return nil
}

// DecodeStrict decodes one JSON value from r into v: names matched
// exactly, no duplicates, no unknown fields, valid UTF-8 only, every
// array within its bound, nothing after the value. Errors name the field
// as a path with indexes (lines[3].line_no).
func DecodeStrict(r io.Reader, v any) error {
	// Unknown members refused; names matched exactly and duplicates,
	// invalid UTF-8 and lone surrogates refused (v2's defaults).
	dec := jsontext.NewDecoder(r, json.RejectUnknownMembers(true))
	if err := json.UnmarshalDecode(dec, v); err != nil {
		return jsonError(reflect.TypeOf(v), err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(reflect.TypeOf(v), err)
		}
		return badRequest("body", "unexpected data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a problem naming the field.
func jsonError(t reflect.Type, err error) error {
	var (
		sem *json.SemanticError
		syn *jsontext.SyntacticError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", mbe.Limit))
	case errors.Is(err, io.EOF):
		return badRequest("body", "empty body: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "truncated JSON")
	case errors.As(err, &syn):
		field := fieldPath(t, syn.JSONPointer)
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return badRequest(field, "%s appears twice: send each field once", field)
		case field == "":
			return badRequest("body", "malformed JSON at byte %d: %.200v", syn.ByteOffset, syn.Err)
		}
		// Invalid UTF-8, a lone surrogate, a control character or a bad
		// escape inside a value: the field it is in.
		return badRequest(field, "%s: malformed JSON at byte %d: %.200v", field, syn.ByteOffset, syn.Err)
	case errors.As(err, &sem):
		field := fieldPath(t, sem.JSONPointer)
		if errors.Is(sem.Err, json.ErrUnknownName) {
			name := clip(sem.JSONPointer.LastToken())
			if known := caseVariant(t, sem.JSONPointer); known != "" {
				return badRequest(field, "unknown field %q: names are case-sensitive, send %q", name, known)
			}
			return badRequest(field, "unknown field %q", name)
		}
		want := "a valid value"
		if sem.GoType != nil {
			want = jsonKind(sem.GoType)
		}
		if field == "" {
			return badRequest("body", "body must be %s, got %s", want, kindName(sem.JSONKind))
		}
		got := kindName(sem.JSONKind)
		if len(sem.JSONValue) > 0 {
			got = fmt.Sprintf("%.64s", sem.JSONValue)
		}
		return badRequest(field, "%s must be %s, got %s", field, want, got)
	}
	return badRequest("body", "invalid JSON: %v", err)
}

// fieldPath turns a JSON pointer into the path problems name fields by:
// "/lines/3/line_no" is lines[3].line_no. The Go type tells an index from
// a member named with digits. Names are cut at 64 bytes: an unknown one
// comes from the client and may be as long as the body.
func fieldPath(t reflect.Type, ptr jsontext.Pointer) string {
	var b strings.Builder
	for tok := range ptr.Tokens() {
		t = deref(t)
		if t != nil && t.Kind() == reflect.Slice {
			if _, err := strconv.ParseUint(tok, 10, 64); err == nil {
				b.WriteString("[" + tok + "]")
				t = t.Elem()
				continue
			}
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(clip(tok))
		t = memberType(t, tok)
	}
	return b.String()
}

// caseVariant returns the field name that the pointer's last name differs
// from only in case, if there is one.
func caseVariant(t reflect.Type, ptr jsontext.Pointer) string {
	parent, name := ptr.Parent(), ptr.LastToken()
	for tok := range parent.Tokens() {
		t = deref(t)
		if t != nil && t.Kind() == reflect.Slice {
			t = t.Elem()
			continue
		}
		t = memberType(t, tok)
	}
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		if n := jsonName(t.Field(i)); n != name && strings.EqualFold(n, name) {
			return n
		}
	}
	return ""
}

// clip cuts a name the client chose at 64 bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	n := 64
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// memberType is the type of the struct field named name in JSON, or nil.
func memberType(t reflect.Type, name string) reflect.Type {
	if t = deref(t); t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for i := range t.NumField() {
		if jsonName(t.Field(i)) == name {
			return t.Field(i).Type
		}
	}
	return nil
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// jsonKind says what JSON a Go type takes, as a problem's detail puts it.
func jsonKind(t reflect.Type) string {
	switch deref(t).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "true or false"
	}
	return "a valid value"
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "something else"
}
