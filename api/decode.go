package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/declaration"
)

// Request bodies are read by one strict, streaming JSON decoder: the
// mirror of encoding/json/v2 (github.com/go-json-experiment/json, the
// same code Go 1.27 ships as encoding/json/v2). encoding/json (v1) cannot
// be made strict: it matches keys case-insensitively, lets the last
// duplicate win, and turns invalid UTF-8 and escaped lone surrogates into
// U+FFFD before any caller sees the text. v2 refuses all of these by
// default, reports every error with the JSON pointer of the value, and
// lets a type-specific unmarshaler read an array element by element from
// the token stream, which is how no list is ever materialised past its
// bound.

// maxListLen bounds every JSON array of a request body but the
// declaration's lines, which stop at declaration.MaxLines. The domain's
// own limits are lower (10 certificates, 50 findings) and answer with
// their own message; this bound only stops a list of empty objects from
// costing memory in proportion to the body before the domain sees it.
const maxListLen = 100

// decodeOptions: unknown members refused; names matched exactly and
// duplicates, invalid UTF-8 and lone surrogates refused (v2's defaults,
// which these options leave on); every list read element by element and
// cut at its bound. Lines stop at the line limit itself, so a declaration
// over it costs MaxLines+1 line structs, never one per line sent.
//
// Every list type of a request body is here: a body with another must add
// it (TestEveryBodyListBounded walks the bodies the handlers read). The
// lists are named one by one rather than by a hook on every value, which
// costs twice the decoding time.
var decodeOptions = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.WithUnmarshalers(json.JoinUnmarshalers(
		boundedList[declaration.LineInput](declaration.MaxLines),
		boundedList[declaration.CertificateInput](maxListLen),
		boundedList[inspection.Finding](maxListLen),
	)),
)

// tooLong is a list cut off at its bound.
type tooLong struct{ limit int }

func (e *tooLong) Error() string { return fmt.Sprintf("more than %d elements", e.limit) }

// boundedList reads a JSON array of T one element at a time and stops at
// the element after limit, without reading further. null, and anything
// that is not an array, is left to the default unmarshaler.
func boundedList[T any](limit int) *json.Unmarshalers {
	return json.UnmarshalFromFunc(func(dec *jsontext.Decoder, v *[]T) error {
		if dec.PeekKind() != '[' {
			return errors.ErrUnsupported
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		list := []T{}
		for {
			switch dec.PeekKind() {
			case ']':
				if _, err := dec.ReadToken(); err != nil {
					return err
				}
				*v = list
				return nil
			case 0: // a syntax error or the end of input: ReadToken reports it
				_, err := dec.ReadToken()
				return err
			}
			if len(list) == limit {
				return &tooLong{limit: limit}
			}
			var elem T
			if err := json.UnmarshalDecode(dec, &elem); err != nil {
				return err
			}
			list = append(list, elem)
		}
	})
}

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
	dec := jsontext.NewDecoder(r, decodeOptions)
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
		tl  *tooLong
	)
	switch {
	case errors.As(err, &mbe):
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", mbe.Limit))
	case errors.Is(err, io.EOF):
		return badRequest("body", "empty body: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "truncated JSON")
	case errors.As(err, &tl) && errors.As(err, &sem):
		field := fieldPath(t, sem.JSONPointer)
		if field == "lines" && t == reflect.TypeFor[*declaration.Input]() {
			// The domain's words, so the answer is the same whether the
			// decoder or declaration.Parse counted.
			return inspection.Invalid("lines", "at most %d lines per declaration, got more", tl.limit)
		}
		return inspection.Invalid(field, "at most %d elements, got more", tl.limit)
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
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &requestError{status: http.StatusRequestTimeout, field: "body", msg: "the body did not arrive within the read timeout"}
	}
	// Reading failed (a malformed chunk, a connection cut): say why, not
	// the decoder's wrapping nor the connection's addresses.
	for next := errors.Unwrap(err); next != nil; next = errors.Unwrap(err) {
		err = next
	}
	return badRequest("body", "the body could not be read: %.200v", err)
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
		if tok == "" {
			tok = `""` // a member with an empty name still has a place
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
