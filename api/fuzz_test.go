package api_test

import (
	"bytes"
	"testing"

	"github.com/ktcn/ktcn/api"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
)

// FuzzDeclarationParser feeds arbitrary bytes through the declaration
// parser NSW input goes through (strict JSON decoding, then validation
// against the default policy). It must never panic; what it accepts must
// be canonical (parsing its canonical form again gives the same digest).
func FuzzDeclarationParser(f *testing.F) {
	p, err := policy.DefaultPolicy()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"declaration_id":"105123456780","importer_tax_code":"0101234567","lines":[{"line_no":1,"hs_code":"0402.21.20","product_name":"Sữa bột","manufacturer":"Fonterra","origin":"NZ","procedure":"food_safety","quantity":1200,"unit":"kg"}]}`,
		`{"declaration_id":"A","importer_tax_code":"0101234567-001","lines":[{"line_no":2,"hs_code":"85167100","product_name":"Kettle","brand":"K","manufacturer":"M","origin":"cn","procedure":"quality","quantity":1,"unit":"pcs","certificates":[{"kind":"ISO 22000","number":"1","valid_until":"2030-01-01"}],"exemption":"personal_luggage"}]}`,
		`{"lines":[{"line_no":-1}]}`,
		`{"declaration_id":"X","lines":null}`,
		`[]`, `{`, ``, `{"declaration_id":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in declaration.Input
		if err := api.DecodeStrict(bytes.NewReader(body), &in); err != nil {
			return
		}
		d, err := declaration.Parse(p, in)
		if err != nil {
			if fault.CodeOf(err) != fault.Invalid {
				t.Fatalf("parser error is not 'invalid': %v", err)
			}
			return
		}
		again := declaration.Input{DeclarationID: d.ID, ImporterTaxCode: d.ImporterTaxCode}
		for _, l := range d.Lines {
			no, q := l.LineNo, l.Quantity
			li := declaration.LineInput{LineNo: &no, HSCode: l.Goods.HSCode, ProductName: l.Goods.ProductName, Brand: l.Goods.Brand,
				Manufacturer: l.Goods.Manufacturer, Origin: l.Goods.Origin, Procedure: string(l.Procedure), Quantity: &q, Unit: l.Unit,
				Exemption: l.Exemption}
			for _, c := range l.Certificates {
				li.Certificates = append(li.Certificates, declaration.CertificateInput{Kind: c.Kind, Number: c.Number, ValidUntil: c.ValidUntil.Format("2006-01-02T15:04:05.999999999Z07:00")})
			}
			again.Lines = append(again.Lines, li)
		}
		d2, err := declaration.Parse(p, again)
		if err != nil {
			t.Fatalf("canonical form rejected: %v", err)
		}
		if d2.Digest != d.Digest {
			t.Fatalf("canonical form is not a fixed point: %+v vs %+v", d, d2)
		}
	})
}
