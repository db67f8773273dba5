// Package declaration reads what NSW submits: the declaration and its
// lines, validated against the policy in force and put in canonical form,
// with the digest that makes a resubmission idempotent, and the record the
// store keeps of it. It owns the limits on outside input (lines per
// declaration, text fields) and the text checks every use case applies to
// what callers type. It decides nothing.
package declaration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/reference"
)

// Input is a declaration as NSW sends it, before validation.
// Pointers distinguish "absent" from zero where zero is itself invalid.
type Input struct {
	DeclarationID   string      `json:"declaration_id"`
	ImporterTaxCode string      `json:"importer_tax_code"`
	Lines           []LineInput `json:"lines"`
}

// LineInput is one declaration line as sent.
type LineInput struct {
	LineNo       *int               `json:"line_no"`
	HSCode       string             `json:"hs_code"`
	ProductName  string             `json:"product_name"`
	Brand        string             `json:"brand"`
	Manufacturer string             `json:"manufacturer"`
	Origin       string             `json:"origin"`
	Procedure    string             `json:"procedure"`
	Quantity     *float64           `json:"quantity"`
	Unit         string             `json:"unit"`
	Certificates []CertificateInput `json:"certificates"`
	Exemption    string             `json:"exemption"`
}

// CertificateInput is a certificate as sent.
type CertificateInput struct {
	Kind       string `json:"kind"`
	Number     string `json:"number"`
	ValidUntil string `json:"valid_until"`
}

// Limits on outside input. MaxLines is VNACCS's limit on lines per
// declaration.
const (
	MaxLines = 50
	// MaxText is the longest text field, in bytes.
	MaxText         = 256
	maxCertificates = 10
)

var (
	declarationIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$`)
	taxCodeRe       = regexp.MustCompile(`^[0-9]{10}(-[0-9]{3})?$`)
	hsInputRe       = regexp.MustCompile(`^[0-9][0-9.]*[0-9]$`)
)

// Parse validates a declaration against the policy and returns
// it in canonical form, or an Invalid error naming the first bad field.
// It is the one parser of NSW's declarations; it never panics.
func Parse(p *policy.Policy, in Input) (Declaration, error) {
	var d Declaration
	if !declarationIDRe.MatchString(in.DeclarationID) {
		return d, fault.Of(fault.Invalid, "declaration_id", "must be 1-64 letters, digits or ._:/- starting with a letter or digit")
	}
	if !taxCodeRe.MatchString(in.ImporterTaxCode) {
		return d, fault.Of(fault.Invalid, "importer_tax_code", "must be a 10-digit tax code, optionally with a -NNN branch suffix")
	}
	if len(in.Lines) == 0 {
		return d, fault.Of(fault.Invalid, "lines", "must contain at least one line")
	}
	if len(in.Lines) > MaxLines {
		return d, fault.Of(fault.Invalid, "lines", "at most %d lines per declaration, got %d", MaxLines, len(in.Lines))
	}
	d.ID, d.ImporterTaxCode = in.DeclarationID, in.ImporterTaxCode
	seen := map[int]bool{}
	for i, li := range in.Lines {
		l, err := parseLine(p, fmt.Sprintf("lines[%d]", i), li)
		if err != nil {
			return Declaration{}, err
		}
		if seen[l.LineNo] {
			return Declaration{}, fault.Of(fault.Invalid, fmt.Sprintf("lines[%d].line_no", i), "line %d appears twice", l.LineNo)
		}
		seen[l.LineNo] = true
		d.Lines = append(d.Lines, l)
	}
	sort.Slice(d.Lines, func(i, j int) bool { return d.Lines[i].LineNo < d.Lines[j].LineNo })
	canon, err := json.Marshal(struct {
		ID, Importer string
		Lines        []Line
	}{d.ID, d.ImporterTaxCode, d.Lines})
	if err != nil {
		return Declaration{}, fmt.Errorf("digest declaration: %w", err)
	}
	sum := sha256.Sum256(canon)
	d.Digest = hex.EncodeToString(sum[:])
	return d, nil
}

func parseLine(p *policy.Policy, f string, in LineInput) (Line, error) {
	var l Line
	if in.LineNo == nil {
		return l, fault.Of(fault.Invalid, f+".line_no", "is required")
	}
	if *in.LineNo < 1 || *in.LineNo > 999 {
		return l, fault.Of(fault.Invalid, f+".line_no", "must be between 1 and 999, got %d", *in.LineNo)
	}
	l.LineNo = *in.LineNo
	hs := identity.HSDigits(in.HSCode)
	if !hsInputRe.MatchString(in.HSCode) || len(hs) != 8 {
		// The tariff line of a VNACCS declaration is the 8-digit AHTN
		// subheading, always: a shorter or longer code is another
		// presentation of the same goods, not other goods.
		return l, fault.Of(fault.Invalid, f+".hs_code", "must be the 8-digit AHTN code (dots allowed), got %q", in.HSCode)
	}
	for _, t := range []struct {
		field, value string
		required     bool
	}{
		{"product_name", in.ProductName, true},
		{"brand", in.Brand, false},
		{"manufacturer", in.Manufacturer, true},
		{"unit", in.Unit, true},
		{"exemption", in.Exemption, false},
	} {
		if err := CheckText(f+"."+t.field, t.value, t.required); err != nil {
			return l, err
		}
	}
	origin := strings.ToUpper(strings.TrimSpace(in.Origin))
	if !identity.ValidCountry(origin) {
		return l, fault.Of(fault.Invalid, f+".origin", "must be an ISO 3166-1 alpha-2 country code, got %q", in.Origin)
	}
	l.Procedure = policy.Procedure(in.Procedure)
	if !l.Procedure.Valid() {
		return l, fault.Of(fault.Invalid, f+".procedure", "must be food_safety or quality, got %q", in.Procedure)
	}
	if _, ok := p.Lookup(l.Procedure, hs); !ok {
		if listed := p.ListedProcedures(hs); len(listed) > 0 {
			return l, fault.Of(fault.Invalid, f+".procedure", "HS code %s is listed under %v, not %s", hs, listed, l.Procedure)
		}
		return l, fault.Of(fault.Invalid, f+".hs_code", "HS code %s is under no specialized-inspection list of policy %s", hs, p.Version)
	}
	if in.Quantity == nil {
		return l, fault.Of(fault.Invalid, f+".quantity", "is required")
	}
	if q := *in.Quantity; q <= 0 || math.IsInf(q, 0) || math.IsNaN(q) || q > 1e12 {
		return l, fault.Of(fault.Invalid, f+".quantity", "must be a positive number, got %v", q)
	}
	l.Quantity = *in.Quantity
	l.Unit = identity.CanonicalText(in.Unit)
	if len(in.Certificates) > maxCertificates {
		return l, fault.Of(fault.Invalid, f+".certificates", "at most %d certificates", maxCertificates)
	}
	for j, ci := range in.Certificates {
		cf := fmt.Sprintf("%s.certificates[%d]", f, j)
		kind := policy.CertificateKind(ci.Kind)
		if kind == "" || len(ci.Kind) > 32 {
			return l, fault.Of(fault.Invalid, cf+".kind", "is required (e.g. HACCP, ISO 22000)")
		}
		if err := CheckText(cf+".number", ci.Number, true); err != nil {
			return l, err
		}
		until, err := ParseValidUntil(cf+".valid_until", ci.ValidUntil)
		if err != nil {
			return l, err
		}
		l.Certificates = append(l.Certificates, reference.Certificate{Kind: kind, Number: strings.TrimSpace(ci.Number), ValidUntil: until})
	}
	if in.Exemption != "" {
		cat, ok := p.Exemption(in.Exemption)
		if !ok {
			return l, fault.Of(fault.Invalid, f+".exemption", "unknown exemption category %q", in.Exemption)
		}
		if !slices.Contains(cat.Procedures, l.Procedure) {
			return l, fault.Of(fault.Invalid, f+".exemption", "category %s does not apply to %s", cat.Code, l.Procedure)
		}
		l.Exemption = cat.Code
	}
	l.Goods = identity.Goods{HSCode: hs, ProductName: in.ProductName, Brand: in.Brand, Manufacturer: in.Manufacturer, Origin: origin}.Canonical()
	return l, nil
}

// ParseValidUntil takes a date as valid through the end of that day in
// Vietnam, the way a certificate's "valid until" is read.
func ParseValidUntil(field, s string) (time.Time, error) {
	if t, err := time.ParseInLocation("2006-01-02", s, calendar.Vietnam()); err == nil {
		return t.AddDate(0, 0, 1).Add(-time.Nanosecond), nil
	}
	return calendar.ParseTime(field, s)
}

func CheckText(field, s string, required bool) error {
	return CheckTextMax(field, s, required, MaxText)
}

// CheckTextMax accepts printable UTF-8 (white space allowed) of at most
// max bytes.
func CheckTextMax(field, s string, required bool, max int) error {
	if required && strings.TrimSpace(s) == "" {
		return fault.Of(fault.Invalid, field, "is required")
	}
	if len(s) > max {
		return fault.Of(fault.Invalid, field, "at most %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return fault.Of(fault.Invalid, field, "is not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r) && !unicode.IsSpace(r):
			return fault.Of(fault.Invalid, field, "contains a control character")
		case r == utf8.RuneError:
			// What a decoder leaves of invalid UTF-8: the text as sent is
			// lost, so it cannot be matched to anything.
			return fault.Of(fault.Invalid, field, "contains U+FFFD, the replacement for bytes that were not UTF-8")
		}
	}
	return nil
}

// Line is one validated, canonical declaration line: one lot.
type Line struct {
	LineNo       int                     `json:"line_no"`
	Goods        identity.Goods          `json:"goods"` // canonical
	Procedure    policy.Procedure        `json:"procedure"`
	Quantity     float64                 `json:"quantity"`
	Unit         string                  `json:"unit"`
	Certificates []reference.Certificate `json:"certificates,omitempty"`
	Exemption    string                  `json:"exemption,omitempty"`
}

// Declaration is a validated import declaration as NSW submits it.
type Declaration struct {
	ID              string `json:"declaration_id"`
	ImporterTaxCode string `json:"importer_tax_code"`
	Lines           []Line `json:"lines"`
	// Digest is SHA-256 over the canonical content; a resubmission with the
	// same ID must carry the same digest.
	Digest string `json:"digest"`
}

// Record is what the store keeps per declaration ID: the digest
// that makes resubmission idempotent and the decisions it produced.
type Record struct {
	ID              string    `json:"declaration_id"`
	ImporterTaxCode string    `json:"importer_tax_code"`
	Digest          string    `json:"digest"`
	DecidedAt       time.Time `json:"decided_at"`
	DecisionIDs     []string  `json:"decision_ids"`
}

// HSInput reports whether s is written as an HS code may be: digits, dots
// between them.
func HSInput(s string) bool { return hsInputRe.MatchString(s) }
