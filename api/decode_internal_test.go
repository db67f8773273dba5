package api

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
)

// requestBodies are the types the handlers decode bodies into.
var requestBodies = []any{
	declaration.Input{}, inspection.ResultInput{}, inspection.AlertInput{}, inspection.OverrideInput{},
	KeyCreateRequest{},
}

// TestEveryBodyListBounded walks every list a request body can hold and
// checks that the decoder cuts it at its bound: a list type missing from
// decodeOptions would be read whole, one element per few bytes of body.
func TestEveryBodyListBounded(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string)
	lists := map[reflect.Type]string{}
	walk = func(typ reflect.Type, path string) {
		typ = deref(typ)
		if seen[typ] {
			return
		}
		seen[typ] = true
		switch typ.Kind() {
		case reflect.Slice:
			lists[typ] = path
			walk(typ.Elem(), path+"[]")
		case reflect.Struct:
			for i := range typ.NumField() {
				walk(typ.Field(i).Type, path+"."+jsonName(typ.Field(i)))
			}
		}
	}
	for _, b := range requestBodies {
		walk(reflect.TypeOf(b), reflect.TypeOf(b).Name())
	}
	if len(lists) < 3 {
		t.Fatalf("found %d lists, want lines, certificates and findings at least", len(lists))
	}
	for typ, path := range lists {
		elem := map[reflect.Kind]string{reflect.Struct: "{}", reflect.String: `""`}[deref(typ.Elem()).Kind()]
		if elem == "" {
			elem = "0"
		}
		body := "[" + strings.Repeat(elem+",", maxListLen) + elem + "]"
		err := DecodeStrict(bytes.NewReader([]byte(body)), reflect.New(typ).Interface())
		if fault.CodeOf(err) != fault.Invalid || !strings.Contains(err.Error(), "at most") {
			t.Errorf("%s (%v): %d elements read without a bound (%v)", path, typ, maxListLen+1, err)
		}
	}
}
