package inspection_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
)

// The product that failed, as first declared.
func anchorLine() declaration.LineInput {
	no, q := 1, 100.0
	return declaration.LineInput{LineNo: &no, HSCode: "0402.21.20", ProductName: "Sữa bột nguyên kem", Brand: "Anchor",
		Manufacturer: "Fonterra Co-operative Group", Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}
}

// variant is the product re-declared with one presentation changed.
type variant struct {
	name   string
	change func(*declaration.LineInput)
}

func name(s string) func(*declaration.LineInput) {
	return func(l *declaration.LineInput) { l.ProductName = s }
}
func brand(s string) func(*declaration.LineInput) {
	return func(l *declaration.LineInput) { l.Brand = s }
}
func maker(s string) func(*declaration.LineInput) {
	return func(l *declaration.LineInput) { l.Manufacturer = s }
}

// presentationVariants are ways an importer can write the same goods.
func presentationVariants() []variant {
	n := "Sữa bột nguyên kem"
	return []variant{
		{"zero-width space (U+200B)", name("Sữa bột\u200b nguyên kem")},
		{"zero-width joiner (U+200D)", name("Sữa\u200d bột nguyên kem")},
		{"zero-width non-joiner (U+200C)", name("Sữa bột ngu\u200cyên kem")},
		{"soft hyphen (U+00AD)", name("Sữa bột nguy\u00adên kem")},
		{"word joiner (U+2060)", name("Sữa\u2060 bột nguyên kem")},
		{"byte-order mark (U+FEFF)", name("\ufeffSữa bột nguyên kem")},
		{"left-to-right mark (U+200E)", name("Sữa bột nguyên kem\u200e")},
		{"right-to-left mark (U+200F)", name("Sữa \u200fbột nguyên kem")},
		{"variation selector (U+FE0F)", name("Sữa bột\ufe0f nguyên kem")},
		{"fullwidth letters", name("Ｓữａ bột nguyên kem")},
		{"Cyrillic a", name("Sữа bột nguyên kem")},
		{"tone marks stripped", name("Sua bot nguyen kem")},
		{"tone marks partly stripped", name("Sữa bot nguyên kem")},
		{"upper case", name("SỮA BỘT NGUYÊN KEM")},
		{"decomposed (NFD)", name(norm.NFD.String(n))},
		{"trailing period", name(n + ".")},
		{"trailing comma", name(n + ",")},
		{"extra spaces and NBSP", name("  Sữa  bột\u00a0nguyên   kem ")},
		{"trade mark sign", name(n + "™")},
		{"registered sign", name(n + " ®")},
		{"hyphenated", name("Sữa bột nguyên-kem")},
		{"brand with digit zero", brand("Anch0r")},
		{"brand upper case", brand("ANCHOR")},
		{"brand with trade mark", brand("Anchor™")},
		{"brand with Cyrillic A", brand("Аnchor")},
		{"brand with Greek omicron", brand("Anchοr")},
		{"brand with trailing period", brand("Anchor.")},
		{"brand omitted", brand("")},
		{"maker without hyphen", maker("Fonterra Cooperative Group")},
		{"maker with Ltd", maker("Fonterra Co-operative Group Ltd")},
		{"maker with Limited", maker("Fonterra Co-operative Group Limited")},
		{"maker upper case", maker("FONTERRA CO-OPERATIVE GROUP")},
		{"maker with Unicode hyphen", maker("Fonterra Co‐operative Group")},
		{"maker with comma and Ltd.", maker("Fonterra Co-operative Group, Ltd.")},
		{"maker with Co., Ltd", maker("Fonterra Co-operative Group Co., Ltd")},
		{"maker with Corp", maker("Fonterra Co-operative Group Corp")},
		{"maker with JSC", maker("Fonterra Co-operative Group JSC")},
		{"maker as Công ty TNHH", maker("Công ty TNHH Fonterra Co-operative Group")},
		{"maker with zero-width space", maker("Fonterra\u200b Co-operative Group")},
		{"maker with fullwidth letters", maker("Ｆonterra Co-operative Group")},
		{"HS code without dots", func(l *declaration.LineInput) { l.HSCode = "04022120" }},
		{"HS code dotted otherwise", func(l *declaration.LineInput) { l.HSCode = "0402.2120" }},
		{"origin lower case", func(l *declaration.LineInput) { l.Origin = "nz" }},
		{"another importer", func(*declaration.LineInput) {}}, // declared by 0309876543 below
		{"everything at once", func(l *declaration.LineInput) {
			l.ProductName, l.Brand, l.Manufacturer = "ＳＵＡ\u200b BOT nguyen kem.", "Anch0r™", "FONTERRA Cooperative Group, Ltd"
		}},
	}
}

// TestPresentationCannotEscapeStrict: after the product fails, every
// presentation variant of it is decided strict (its own history, or the
// resemblance to it), and a self-declared certificate does not make it
// reduced.
func TestPresentationCannotEscapeStrict(t *testing.T) {
	r := startedRig(t)
	first := r.decideLine(t, "ANCHOR-0", anchorLine())
	fail := inspection.ResultInput{Outcome: "fail", InspectedAt: r.clock.Now().Format(time.RFC3339),
		Findings: []inspection.Finding{{Code: "LAB", Text: "melamine"}}}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+first.Agency), first.AssignmentID, fail); err != nil {
		t.Fatal(err)
	}
	vs := presentationVariants()
	if len(vs) < 40 {
		t.Fatalf("%d variants, want at least 40", len(vs))
	}
	for i, v := range vs {
		l := anchorLine()
		v.change(&l)
		// A self-declared certificate rides along: it must not reduce.
		l.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "SELF-1", ValidUntil: r.clock.Now().AddDate(2, 0, 0).Format(time.DateOnly)}}
		importer := "0101234567"
		if v.name == "another importer" {
			importer = "0309876543"
		}
		res, err := r.svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: fmt.Sprintf("ANCHOR-%d", i+1),
			ImporterTaxCode: importer, Lines: []declaration.LineInput{l}})
		if err != nil {
			t.Errorf("%s: %v", v.name, err)
			continue
		}
		if d := res.Decisions[0]; d.Mode != inspection.ModeStrict {
			t.Errorf("%s: %s by %s (%s), want strict", v.name, d.Mode, d.Explanation.Rule, d.Reason)
		}
	}
	t.Logf("%d presentation variants decided strict after a failure", len(vs))
	// The HS code written with 6 or 10 digits is refused, not new goods.
	for _, hs := range []string{"0402.21", "0402.21.20.00"} {
		l := anchorLine()
		l.HSCode = hs
		_, err := r.svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: "ANCHOR-HS-" + strings.ReplaceAll(hs, ".", ""),
			ImporterTaxCode: "0101234567", Lines: []declaration.LineInput{l}})
		if fault.CodeOf(err) != fault.Invalid || !hasField(err, "lines[0].hs_code") {
			t.Errorf("HS code %s: %v, want invalid lines[0].hs_code", hs, err)
		}
	}
	// So is text holding what invalid UTF-8 decodes to, and a certificate
	// valid "until 9999-12-31".
	bad := anchorLine()
	bad.ProductName = "Sữa bột nguyên k\ufffdm"
	if _, err := r.svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: "ANCHOR-FFFD", ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{bad}}); !hasField(err, "lines[0].product_name") {
		t.Errorf("U+FFFD in a name: %v", err)
	}
	forever := anchorLine()
	forever.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "SELF-9", ValidUntil: "9999-12-31"}}
	if _, err := r.svc.Decide(ctx, as("nsw"), declaration.Input{DeclarationID: "ANCHOR-9999", ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{forever}}); !hasField(err, "lines[0].certificates[0].valid_until") {
		t.Errorf("a certificate valid until 9999: %v", err)
	}
}

// TestDifferentGoodsAreNotMerged: genuinely different goods (another
// manufacturer, another 8-digit code, another product of the same maker,
// another origin) keep their own history: after the product fails, each is
// decided as new goods (normal), not strict.
func TestDifferentGoodsAreNotMerged(t *testing.T) {
	r := startedRig(t)
	first := r.decideLine(t, "OTHER-0", anchorLine())
	fail := inspection.ResultInput{Outcome: "fail", InspectedAt: r.clock.Now().Format(time.RFC3339),
		Findings: []inspection.Finding{{Code: "LAB", Text: "melamine"}}}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+first.Agency), first.AssignmentID, fail); err != nil {
		t.Fatal(err)
	}
	others := []variant{
		{"maker Vinamilk", maker("Vinamilk")},
		{"maker Friesland Campina", maker("Friesland Campina")},
		{"maker Nestlé", maker("Nestlé")},
		{"maker Abbott Laboratories", maker("Abbott Laboratories")},
		{"maker Arla Foods", maker("Arla Foods")},
		{"maker Synlait Milk", maker("Synlait Milk")},
		{"maker Westland Milk Products", maker("Westland Milk Products")},
		{"maker Tatua", maker("Tatua Co-operative Dairy")},
		{"maker Open Country Dairy", maker("Open Country Dairy")},
		{"maker Miraka", maker("Miraka Ltd")},
		// Another tariff line is other goods, described as such. (The
		// same name under another subheading of the heading inherits the
		// failed product's caution through resemblance, by design.)
		{"code 0402.21.90: cream powder", func(l *declaration.LineInput) { l.HSCode, l.ProductName = "0402.21.90", "Kem bột" }},
		{"code 0402.29.20: sweetened milk powder", func(l *declaration.LineInput) { l.HSCode, l.ProductName = "0402.29.20", "Sữa bột có đường" }},
		{"code 0402.10.41: skim milk powder", func(l *declaration.LineInput) { l.HSCode, l.ProductName = "0402.10.41", "Sữa gầy dạng bột" }},
		{"code 0402.91.00: evaporated milk", func(l *declaration.LineInput) {
			l.HSCode, l.ProductName = "0402.91.00", "Sữa cô đặc không đường"
		}},
		{"code 0402.99.00: condensed milk", func(l *declaration.LineInput) { l.HSCode, l.ProductName = "0402.99.00", "Sữa đặc có đường" }},
		{"maker Goodman Fielder", maker("Goodman Fielder")},
		{"same maker: skim milk powder", name("Sữa bột tách béo")},
		{"same maker: butter milk powder", name("Bột sữa bơ")},
		{"same maker: whey protein", name("Đạm whey cô đặc")},
		{"same maker: infant formula", name("Sữa công thức cho trẻ em")},
		{"origin Australia", func(l *declaration.LineInput) { l.Origin = "AU" }},
		{"origin Ireland", func(l *declaration.LineInput) { l.Origin = "IE" }},
	}
	for i, v := range others {
		l := anchorLine()
		v.change(&l)
		d := r.decideLine(t, fmt.Sprintf("OTHER-%d", i+1), l)
		if d.Mode == inspection.ModeStrict || d.GoodsKey == first.GoodsKey {
			t.Errorf("%s: %s by %s (%s): merged with the failed product", v.name, d.Mode, d.Explanation.Rule, d.Reason)
		}
	}
	t.Logf("%d different goods kept apart", len(others))
}

// TestResemblanceIsCaution: the failed product re-declared with its words
// in another order, or a word added, is decided strict and says which
// goods it resembles; another product of the same maker is not.
func TestResemblanceIsCaution(t *testing.T) {
	r := startedRig(t)
	first := r.decideLine(t, "RES-0", anchorLine())
	fail := inspection.ResultInput{Outcome: "fail", InspectedAt: r.clock.Now().Format(time.RFC3339),
		Findings: []inspection.Finding{{Code: "LAB", Text: "melamine"}}}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+first.Agency), first.AssignmentID, fail); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name   string
		strict bool
	}{
		{"Sữa bột kem nguyên", true},           // word order
		{"Sữa bột nguyên kem hộp thiếc", true}, // words added
		{"Nguyên kem sữa bột", true},           // word order
		{"Sữa bột tách béo", false},            // another product of the maker
		{"Phô mai", false},
	} {
		l := anchorLine()
		l.ProductName = c.name
		d := r.decideLine(t, fmt.Sprintf("RES-%d", i+1), l)
		if got := d.Mode == inspection.ModeStrict; got != c.strict {
			t.Errorf("%q: %s (%s), want strict %v", c.name, d.Mode, d.Reason, c.strict)
			continue
		}
		if c.strict {
			rs := d.Explanation.Resembles
			if rs == nil || rs.Goods != first.GoodsKey || rs.Similarity <= 0 || d.Explanation.Rule != inspection.RuleStrictResemblance ||
				!strings.Contains(d.Reason, "resembling") {
				t.Errorf("%q: strict without naming the goods it resembles: %+v, %q", c.name, rs, d.Reason)
			}
		}
	}
}

// TestCertificatesAreEvidence: a presented certificate that no designated
// body registered leaves the lot normal with the certificate pending;
// once the agency registers it, the lot is reduced.
func TestCertificatesAreEvidence(t *testing.T) {
	r := startedRig(t)
	l := anchorLine()
	l.Manufacturer = "Waikato Dairy"
	l.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "NZ-HACCP-41", ValidUntil: r.clock.Now().AddDate(2, 0, 0).Format(time.DateOnly)}}
	d := r.decideLine(t, "CERT-1", l)
	if d.Mode != inspection.ModeNormal || len(d.Explanation.Pending) != 1 || !strings.Contains(d.Reason, "NZ-HACCP-41 pending verification") {
		t.Fatalf("an unregistered certificate: %s (%s), pending %v", d.Mode, d.Reason, d.Explanation.Pending)
	}
	reg := inspection.CertificateRegistration{Kind: "HACCP", Number: "NZ-HACCP-41", ValidUntil: l.Certificates[0].ValidUntil,
		Manufacturer: "Waikato Dairy", Origin: "NZ"}
	mk := identityManufacturerKey("Waikato Dairy", "NZ")
	if _, err := r.svc.RegisterCertificate(ctx, as("nsw"), mk, reg); fault.CodeOf(err) != fault.Forbidden {
		t.Fatalf("NSW registering a certificate: %v, want forbidden", err)
	}
	if _, err := r.svc.RegisterCertificate(ctx, as("agency:"+d.Agency), mk, reg); err != nil {
		t.Fatal(err)
	}
	if d := r.decideLine(t, "CERT-2", l); d.Mode != inspection.ModeReduced || d.Explanation.Certificate == nil {
		t.Fatalf("a registered certificate: %s (%s)", d.Mode, d.Reason)
	}
	reg.ValidUntil = r.clock.Now().AddDate(5, 0, 0).Format(time.DateOnly)
	if _, err := r.svc.RegisterCertificate(ctx, as("customs"), mk, reg); !hasField(err, "valid_until") {
		t.Fatalf("registering a 5-year validity: %v", err)
	}
}

func identityManufacturerKey(name, origin string) identity.Key {
	return identity.ManufacturerKey(name, origin)
}

// TestCustomsLinksAndUnlinksGoods: customs links goods into another (one
// product no rule joined): its lots are decided as the other, with the
// other's history; unlinking restores both. Each is audited; an agency
// may not.
func TestCustomsLinksAndUnlinksGoods(t *testing.T) {
	r := startedRig(t)
	a := r.decideLine(t, "LINK-A", anchorLine())
	fail := inspection.ResultInput{Outcome: "fail", InspectedAt: r.clock.Now().Format(time.RFC3339),
		Findings: []inspection.Finding{{Code: "LAB", Text: "melamine"}}}
	if _, err := r.svc.RecordResult(ctx, as("agency:"+a.Agency), a.AssignmentID, fail); err != nil {
		t.Fatal(err)
	}
	other := anchorLine()
	other.ProductName, other.Manufacturer = "Milk powder full cream", "NZMP"
	b := r.decideLine(t, "LINK-B1", other)
	if b.Mode != inspection.ModeNormal {
		t.Fatalf("setup: %s", b.Mode)
	}
	if _, err := r.svc.LinkGoods(ctx, as("agency:"+a.Agency), b.GoodsKey, a.GoodsKey, "same product"); fault.CodeOf(err) != fault.Forbidden {
		t.Fatalf("an agency linking goods: %v", err)
	}
	if _, err := r.svc.LinkGoods(ctx, as("customs:a"), b.GoodsKey, a.GoodsKey, "NZMP is Fonterra's ingredients brand: one product"); err != nil {
		t.Fatal(err)
	}
	if d := r.decideLine(t, "LINK-B2", other); d.Mode != inspection.ModeStrict || d.GoodsKey != a.GoodsKey {
		t.Fatalf("linked goods: %s under %s, want strict under %s", d.Mode, d.GoodsKey, a.GoodsKey)
	}
	if _, err := r.svc.UnlinkGoods(ctx, as("customs:a"), b.GoodsKey, "not the same after all"); err != nil {
		t.Fatal(err)
	}
	if d := r.decideLine(t, "LINK-B3", other); d.Mode != inspection.ModeNormal || d.GoodsKey != b.GoodsKey {
		t.Fatalf("unlinked goods: %s under %s, want normal under its own key", d.Mode, d.GoodsKey)
	}
	es := r.entries(t)
	var kinds []audit.Kind
	for _, e := range es {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Contains(kinds, audit.GoodsLinked) || !slices.Contains(kinds, audit.GoodsUnlinked) {
		t.Fatalf("audit kinds %v", kinds)
	}
	if _, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), nil); err != nil {
		t.Fatal(err)
	}
}
