// Package identity is what makes two declared goods the same goods: the
// canonical form of the identity the reform names (HS code, name, brand,
// manufacturer, origin), the keys hashed from it for goods, manufacturers,
// HS heading × origin and importers, and the country codes an origin may
// take. Every record of a goods' history is keyed by it, so it decides
// whether history follows a product. It also derives the IDs of a lot's
// records from the lot's own. It knows nothing of modes or history.
package identity

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode"

	"github.com/ktcn/ktcn/inspection/fault"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Goods is the identity of a product as the reform defines it: the record
// follows the product, not the importer. Two declaration lines describe the
// same goods exactly when their canonical forms are equal.
//
// Canonical form (changing it re-keys all history, so it is versioned in
// the key derivation below):
//   - HSCode: digits only ("0402.10.00" → "04021000");
//   - ProductName, Brand, Manufacturer: Unicode NFC, then case-folded
//     (golang.org/x/text/cases.Fold), then every run of white space
//     collapsed to one ASCII space and the ends trimmed;
//   - Origin: ISO 3166-1 alpha-2, upper case.
type Goods struct {
	HSCode       string `json:"hs_code"`
	ProductName  string `json:"product_name"`
	Brand        string `json:"brand,omitempty"`
	Manufacturer string `json:"manufacturer"`
	Origin       string `json:"origin"`
}

// Canonical returns g in canonical form.
func (g Goods) Canonical() Goods {
	return Goods{
		HSCode:       HSDigits(g.HSCode),
		ProductName:  CanonicalText(g.ProductName),
		Brand:        CanonicalText(g.Brand),
		Manufacturer: CanonicalText(g.Manufacturer),
		Origin:       strings.ToUpper(strings.TrimSpace(g.Origin)),
	}
}

// Heading is the 4-digit HS heading of the goods.
func (g Goods) Heading() string { return heading(HSDigits(g.HSCode)) }

func heading(digits string) string {
	if len(digits) < 4 {
		return digits
	}
	return digits[:4]
}

var folder = cases.Fold()

// CanonicalText applies NFC, case folding and white-space collapsing.
func CanonicalText(s string) string {
	s = norm.NFC.String(s)
	s = folder.String(s)
	s = norm.NFC.String(s) // folding can denormalize (e.g. İ); renormalize
	return strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
}

// HSDigits keeps the digits of an HS code ("0402.10.00" → "04021000").
func HSDigits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// KeySize is the width of every hashed key part (128 bits of SHA-256).
const KeySize = 16

// Key is a fixed-width hashed identity used in store keys.
type Key [KeySize]byte

func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ParseKey reads the hex form of a Key.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != KeySize {
		return k, fault.Of(fault.Invalid, "key", "%q is not a %d-byte hex key", s, KeySize)
	}
	copy(k[:], b)
	return k, nil
}

// HashKey hashes a domain tag and length-prefixed parts, so that no two
// different tuples encode to the same bytes.
func HashKey(tag string, parts ...string) Key {
	h := sha256.New()
	var n [4]byte
	for _, p := range append([]string{tag}, parts...) {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var k Key
	copy(k[:], h.Sum(nil))
	return k
}

// Key is the goods' history key (identity version 2): SHA-256 (truncated
// to 128 bits) of the match forms of the fields (match.go), tagged
// "ktcn/goods/v2", so that presentation cannot make new goods.
func (g Goods) Key() Key {
	return HashKey("ktcn/goods/v2", HSDigits(g.HSCode), keyText(MatchText(g.ProductName)), keyText(MatchText(g.Brand)),
		keyText(MatchManufacturer(g.Manufacturer)), strings.ToUpper(strings.TrimSpace(g.Origin)))
}

// LegacyKey is the key identity version 1 gave the goods (canonical
// fields, tagged "ktcn/goods/v1"), under which history recorded before
// version 2 is kept: decisions read it with the goods' own (legacy.go in
// inspection explains the mapping).
func (g Goods) LegacyKey() Key {
	c := g.Canonical()
	return HashKey("ktcn/goods/v1", c.HSCode, c.ProductName, c.Brand, c.Manufacturer, c.Origin)
}

// Keys are the keys of a goods' history subjects: the goods, its
// manufacturer and its heading × origin. A decision hashes them once per
// lot: canonicalizing and hashing the same text at each step that reads
// by them cost several percent of a decision's CPU.
//
// LegacyGoods and LegacyManufacturer, when set, are identity version 1's
// keys of the same goods and manufacturer, whose history recorded before
// version 2 a decision also reads.
type Keys struct {
	Goods, Manufacturer, HeadingOrigin Key
	LegacyGoods, LegacyManufacturer    Key
}

// WithLegacy adds identity version 1's keys of g to k.
func (k Keys) WithLegacy(g Goods) Keys {
	k.LegacyGoods, k.LegacyManufacturer = g.LegacyKey(), LegacyManufacturerKey(g.Manufacturer, g.Origin)
	return k
}

func KeysOf(g Goods) Keys { return KeysWith(g, g.Key()) }

// KeysWith is KeysOf for goods whose key gk is known.
func KeysWith(g Goods, gk Key) Keys {
	return Keys{Goods: gk, Manufacturer: ManufacturerKey(g.Manufacturer, g.Origin), HeadingOrigin: HeadingOriginKey(g.HSCode, g.Origin)}
}

// ManufacturerKey identifies a manufacturer by the match form of its name
// without its legal form, and its origin (identity version 2).
func ManufacturerKey(name, origin string) Key {
	return HashKey("ktcn/manufacturer/v2", keyText(MatchManufacturer(name)), strings.ToUpper(strings.TrimSpace(origin)))
}

// LegacyManufacturerKey is identity version 1's manufacturer key.
func LegacyManufacturerKey(name, origin string) Key {
	return HashKey("ktcn/manufacturer/v1", CanonicalText(name), strings.ToUpper(strings.TrimSpace(origin)))
}

// HeadingOriginKey identifies an HS heading from one origin, the target of
// alerts like "all 0402 from XX".
func HeadingOriginKey(hsHeading, origin string) Key {
	return HashKey("ktcn/heading-origin/v1", heading(HSDigits(hsHeading)), strings.ToUpper(strings.TrimSpace(origin)))
}

// ImporterKey identifies an importer by tax code.
func ImporterKey(taxCode string) Key {
	return HashKey("ktcn/importer/v1", strings.TrimSpace(taxCode))
}

// MarshalText writes the key as hex, so JSON shows it readably.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads the hex form.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Records of a lot have IDs derived from the lot ID (declaration ID, line
// number), so a retry can never mint a second one.

// DecisionID is the decision's ID for a lot.
func DecisionID(declarationID string, lineNo int) string {
	k := HashKey("ktcn/decision/v1", declarationID, strconv.Itoa(lineNo))
	return "dec_" + k.String()[:24]
}

// AssignmentID is the assignment's ID for a lot.
func AssignmentID(declarationID string, lineNo int) string {
	k := HashKey("ktcn/assignment/v1", declarationID, strconv.Itoa(lineNo))
	return "asg_" + k.String()[:24]
}
