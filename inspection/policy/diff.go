package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ktcn/ktcn/inspection/fault"
)

// Change is one difference between two policy documents.
type Change struct {
	// Path is the JSON path of the value, e.g. "reduced.consecutive_passes",
	// "risk.rules[3].above" or
	// "exemption_categories[code=personal_luggage].refused_when_strict".
	Path string `json:"path"`
	// Kind is "changed" (Old and New set), "added" (New set) or "removed"
	// (Old set).
	Kind string          `json:"kind"`
	Old  json.RawMessage `json:"old,omitempty"`
	New  json.RawMessage `json:"new,omitempty"`
}

// Change kinds.
const (
	ChangeChanged = "changed"
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
)

// identityKeys are the field sets that identify an element of an array of
// objects, most specific first, taken from the document's own uniqueness
// rules so a reviewer sees "this route changed agency" rather than every
// index after an insertion shifting:
//   - routing: procedure, ministry and prefix are what a route is chosen
//     by (the prefix alone repeats: "" is every ministry's default);
//   - inspection_list: a code is unique per procedure (Validate), not alone;
//   - exemption_categories: the code is unique (Validate).
//
// The sets are tried in order and the first that identifies every element
// of both arrays wins; being tried before "code" alone, code+procedure
// stays the inspection list's key in every version of a document.
var identityKeys = [][]string{
	{"procedure", "ministry", "prefix"},
	{"code", "procedure"},
	{"code"},
}

// Diff compares two policy documents (any JSON objects; canonical or not)
// and returns every difference, in path order: object keys sorted,
// index-matched array elements by index, key-matched ones by their key.
// The order depends only on the paths, so Diff(b, a) lists the same paths
// as Diff(a, b), with Old/New and added/removed swapped.
//
// Numbers compare by decimal value (3, 3.0 and 3e0 are equal), because a
// document re-encoded by another tool must not show changes it does not
// have; the Old/New of a changed number keep each side's own spelling.
//
// Arrays are matched by key when every element of both is an object
// carrying, as strings, all fields of one identityKeys set, and the key is
// unique within each array: elements are paired by key (path
// "exemption_categories[code=gifts]"), so reordering is no change and an
// element whose key changed is one removed and one added. Any other array
// (scalars, objects without such a key, duplicate keys) is matched by
// index ("routing[3]"), and the longer array's tail is added or removed.
func Diff(from, to []byte) ([]Change, error) {
	a, err := decodeObject("from", from)
	if err != nil {
		return nil, err
	}
	b, err := decodeObject("to", to)
	if err != nil {
		return nil, err
	}
	d := differ{}
	d.value("", a, b)
	if d.err != nil {
		return nil, d.err
	}
	return d.out, nil
}

// decodeObject decodes one side, naming it in the error so the caller can
// say which version is broken.
func decodeObject(side string, doc []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &fault.Error{Code: fault.Invalid, Field: side, Message: "not valid JSON", Err: err}
	}
	// A second value would be silently ignored by a single Decode, so a
	// concatenated or truncated-and-appended document is refused.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fault.Of(fault.Invalid, side, "unexpected data after the document")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fault.Of(fault.Invalid, side, "is not a JSON object")
	}
	return m, nil
}

// differ accumulates changes; the first encoding error stops the output
// mattering (it cannot happen for decoded values, but is not ignored).
type differ struct {
	out []Change
	err error
}

func (d *differ) value(path string, a, b any) {
	switch av := a.(type) {
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			d.object(path, av, bv)
			return
		}
	case []any:
		if bv, ok := b.([]any); ok {
			d.array(path, av, bv)
			return
		}
	default:
		if equalScalar(a, b) {
			return
		}
	}
	d.emit(path, ChangeChanged, a, b)
}

func (d *differ) object(path string, a, b map[string]any) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := joinKey(path, k)
		av, inA := a[k]
		bv, inB := b[k]
		switch {
		case !inB:
			d.emit(p, ChangeRemoved, av, nil)
		case !inA:
			d.emit(p, ChangeAdded, nil, bv)
		default:
			d.value(p, av, bv)
		}
	}
}

func (d *differ) array(path string, a, b []any) {
	if fields := identityOf(a, b); fields != nil {
		d.keyed(path, fields, a, b)
		return
	}
	for i := 0; i < max(len(a), len(b)); i++ {
		p := path + "[" + strconv.Itoa(i) + "]"
		switch {
		case i >= len(b):
			d.emit(p, ChangeRemoved, a[i], nil)
		case i >= len(a):
			d.emit(p, ChangeAdded, nil, b[i])
		default:
			d.value(p, a[i], b[i])
		}
	}
}

// keyed pairs elements by their identity, visiting keys in sorted order
// (component by component) so the output does not depend on either side's
// element order.
func (d *differ) keyed(path string, fields []string, a, b []any) {
	am, bm := byIdentity(fields, a), byIdentity(fields, b)
	ids := make([][]string, 0, len(am)+len(bm))
	seen := make(map[string]bool, len(am)+len(bm))
	for _, m := range []map[string]keyedElem{am, bm} {
		for k, e := range m {
			if !seen[k] {
				seen[k] = true
				ids = append(ids, e.id)
			}
		}
	}
	slices.SortFunc(ids, slices.Compare)
	for _, id := range ids {
		k := idKey(id)
		p := path + "[" + idLabel(fields, id) + "]"
		ae, inA := am[k]
		be, inB := bm[k]
		switch {
		case !inB:
			d.emit(p, ChangeRemoved, ae.v, nil)
		case !inA:
			d.emit(p, ChangeAdded, nil, be.v)
		default:
			d.value(p, ae.v, be.v)
		}
	}
}

type keyedElem struct {
	id []string
	v  any
}

func byIdentity(fields []string, arr []any) map[string]keyedElem {
	m := make(map[string]keyedElem, len(arr))
	for _, e := range arr {
		id, _ := identity(fields, e)
		m[idKey(id)] = keyedElem{id: id, v: e}
	}
	return m
}

// identityOf returns the first identityKeys set that identifies every
// element of both arrays uniquely within its array, or nil. Both arrays
// decide together, so Diff(a, b) and Diff(b, a) match the same way.
func identityOf(a, b []any) []string {
	if len(a)+len(b) == 0 {
		return nil
	}
	for _, fields := range identityKeys {
		if identifies(fields, a) && identifies(fields, b) {
			return fields
		}
	}
	return nil
}

func identifies(fields []string, arr []any) bool {
	seen := make(map[string]bool, len(arr))
	for _, e := range arr {
		id, ok := identity(fields, e)
		if !ok {
			return false
		}
		k := idKey(id)
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

// identity reads the key fields of an element; ok is false unless the
// element is an object holding every field as a string.
func identity(fields []string, e any) (id []string, ok bool) {
	m, isObj := e.(map[string]any)
	if !isObj {
		return nil, false
	}
	id = make([]string, len(fields))
	for i, f := range fields {
		s, isStr := m[f].(string)
		if !isStr {
			return nil, false
		}
		id[i] = s
	}
	return id, true
}

// idKey is an unambiguous map key for an identity: each part quoted, so
// no separator inside a value can make two identities collide.
func idKey(id []string) string {
	var b strings.Builder
	for _, s := range id {
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}

// idLabel is the identity as it appears in a path: "code=gifts", or
// "procedure=quality,ministry=MOST,prefix=\"\"". Values that are empty or
// hold path punctuation are quoted so the path stays readable and
// unambiguous.
func idLabel(fields, id []string) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		v := id[i]
		if v == "" || strings.ContainsAny(v, "[]=,.\"\\ ") {
			v = strconv.Quote(v)
		}
		parts[i] = f + "=" + v
	}
	return strings.Join(parts, ",")
}

var plainKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// joinKey appends an object key to a path, in brackets and quoted when the
// key is not a plain identifier (a key holding "." would otherwise read as
// two levels).
func joinKey(path, k string) string {
	if !plainKeyRe.MatchString(k) {
		return path + "[" + strconv.Quote(k) + "]"
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// emit records a change; a nil side (added/removed) stays unset, while a
// JSON null present on a side is recorded as null.
func (d *differ) emit(path, kind string, a, b any) {
	c := Change{Path: path, Kind: kind}
	var err error
	if kind != ChangeAdded {
		if c.Old, err = compact(a); err != nil {
			d.fail(path, err)
			return
		}
	}
	if kind != ChangeRemoved {
		if c.New, err = compact(b); err != nil {
			d.fail(path, err)
			return
		}
	}
	d.out = append(d.out, c)
}

func (d *differ) fail(path string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("encode %s: %w", path, err)
	}
}

// compact encodes a decoded value as compact JSON without HTML escaping,
// so a description holding "<" or "&" reads as written.
func compact(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// equalScalar compares two decoded non-container values: numbers by
// decimal value, everything else by type and value.
func equalScalar(a, b any) bool {
	switch av := a.(type) {
	case json.Number:
		bv, ok := b.(json.Number)
		return ok && decimalKey(string(av)) == decimalKey(string(bv))
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	case nil:
		return b == nil
	}
	return false
}

// decimalKey normalizes a JSON number literal to sign, significant digits
// and exponent ("3", "3.0", "30e-1" → "3e0"), exactly and without big
// arithmetic, so an absurd exponent costs nothing. A literal it cannot
// read (the decoder already checked the grammar) is its own key.
func decimalKey(n string) string {
	s := n
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var exp int64
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.ParseInt(strings.TrimPrefix(s[i+1:], "+"), 10, 64)
		if err != nil {
			return n
		}
		exp, s = e, s[:i]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	digits := intPart + frac
	if exp < -1<<62 { // room to subtract len(frac) without overflow
		return n
	}
	exp -= int64(len(frac))
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "0" // -0 and 0 are the same value
	}
	trimmed := strings.TrimRight(digits, "0")
	if int64(len(digits)-len(trimmed)) > 1<<62-exp {
		return n
	}
	exp += int64(len(digits) - len(trimmed))
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + trimmed + "e" + strconv.FormatInt(exp, 10)
}
