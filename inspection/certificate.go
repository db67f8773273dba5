package inspection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/reference"
)

// Certificates are evidence to verify, not a claim to trust. A
// certificate presented with a lot counts toward reduced only once it is on
// record for the manufacturer: registered by a designated agency (or
// customs) after checking it, or loaded with the reference data. Until
// then the lot is decided without it and the decision says the certificate
// is pending verification; the documents check that follows is where it
// gets verified and registered (RegisterCertificate). A validity longer
// than any scheme grants is refused outright.

// readDeclaration reads in under pol: the declaration as parsed, and no
// presented certificate with a term no scheme grants (which needs the
// clock, so the parser cannot check it). Every policy a declaration is read
// under checks both.
func readDeclaration(pol *policy.Policy, in declaration.Input, now time.Time) (declaration.Declaration, error) {
	d, err := declaration.Parse(pol, in)
	if err != nil {
		return d, err
	}
	return d, checkCertificateTerms(pol, in, now)
}

// checkCertificateTerms refuses a presented certificate valid for longer
// than the policy's longest term from now, naming it.
func checkCertificateTerms(pol *policy.Policy, in declaration.Input, now time.Time) error {
	for i, l := range in.Lines {
		for j, c := range l.Certificates {
			field := fmt.Sprintf("lines[%d].certificates[%d].valid_until", i, j)
			if until, err := declaration.ParseValidUntil(field, c.ValidUntil); err == nil {
				if err := checkTerm(pol, field, c.ValidUntil, until, now); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkTerm refuses a validity (given as raw, read as until) that ends
// beyond the policy's longest certificate term from now.
func checkTerm(pol *policy.Policy, field, raw string, until, now time.Time) error {
	if years := pol.CertificateMaxTerm(); until.After(now.AddDate(years, 0, 0)) {
		return Invalid(field, "%s is more than %d years ahead: no certificate scheme grants that long a term", raw, years)
	}
	return nil
}

// pendingCertificates names the presented certificates that are not on
// record for the manufacturer, in force at now.
func pendingCertificates(presented, onRecord []reference.Certificate, now time.Time) []string {
	var out []string
	for _, c := range presented {
		if !slices.ContainsFunc(onRecord, func(r reference.Certificate) bool { return sameCertificate(r, c) && !r.ValidUntil.Before(now) }) {
			out = append(out, fmt.Sprintf("%s %s", c.Kind, c.Number))
		}
	}
	return out
}

// sameCertificate says whether a and b are one certificate: the same kind
// (in the policy's spelling) and number (case aside), whatever their term.
func sameCertificate(a, b reference.Certificate) bool {
	return policy.CertificateKind(a.Kind) == policy.CertificateKind(b.Kind) && strings.EqualFold(a.Number, b.Number)
}

// CertificateRegistration is a designated agency's (or customs') word that
// it checked a manufacturer's certificate. Manufacturer and Origin name a
// manufacturer with no record yet.
type CertificateRegistration struct {
	Kind         string `json:"kind"`
	Number       string `json:"number"`
	ValidUntil   string `json:"valid_until"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Origin       string `json:"origin,omitempty"`
}

// RegisterCertificate puts a checked certificate on record for the
// manufacturer with key mk, in one audited change: from then on, lots of
// its goods presenting it count it toward reduced. The same certificate
// again changes nothing.
func (s *Service) RegisterCertificate(ctx context.Context, by access.Principal, mk identity.Key, in CertificateRegistration) (reference.Manufacturer, error) {
	if err := by.Require(access.ActRegisterCertificate); err != nil {
		return reference.Manufacturer{}, err
	}
	now := s.clock.Now()
	kind := policy.CertificateKind(in.Kind)
	if kind == "" || len(in.Kind) > 32 {
		return reference.Manufacturer{}, Invalid("kind", "is required (e.g. HACCP, ISO 22000)")
	}
	if err := declaration.CheckText("number", in.Number, true); err != nil {
		return reference.Manufacturer{}, err
	}
	until, err := declaration.ParseValidUntil("valid_until", in.ValidUntil)
	if err != nil {
		return reference.Manufacturer{}, err
	}
	cert := reference.Certificate{Kind: kind, Number: strings.TrimSpace(in.Number), ValidUntil: until}
	var out reference.Manufacturer
	err = s.w.write(ctx, by, audit.CertificateRegistered, now, func(tx Tx, c *Change) error {
		pol, err := s.policyIn(tx, now)
		if err != nil {
			return err
		}
		switch {
		case !pol.AcceptsCertificate(kind):
			return Invalid("kind", "%s is not a certificate kind policy %s accepts", kind, pol.Version)
		case until.Before(now):
			return Invalid("valid_until", "%s has passed", in.ValidUntil)
		}
		if err := checkTerm(pol, "valid_until", in.ValidUntil, until, now); err != nil {
			return err
		}
		m, err := tx.Manufacturer(mk)
		switch {
		case errors.Is(err, fault.ErrNotFound):
			if err := declaration.CheckText("manufacturer", in.Manufacturer, true); err != nil {
				return NotFound("no manufacturer %s on record: name it (manufacturer, origin) to create its record", mk)
			}
			m = reference.Manufacturer{Name: strings.TrimSpace(in.Manufacturer), Origin: strings.ToUpper(strings.TrimSpace(in.Origin))}
			if !identity.ValidCountry(m.Origin) {
				return Invalid("origin", "must be an ISO 3166-1 alpha-2 country code, got %q", in.Origin)
			}
			if m.Key() != mk {
				return Invalid("manufacturer", "%s (%s) is manufacturer %s, not %s", m.Name, m.Origin, m.Key(), mk)
			}
		case err != nil:
			return err
		}
		out = m
		if slices.ContainsFunc(m.Certificates, func(r reference.Certificate) bool { return sameCertificate(r, cert) && r.ValidUntil.Equal(until) }) {
			return nil // on record already: nothing changes
		}
		m.Certificates = append(m.Certificates, cert)
		out = m
		c.Subjects = []string{"manufacturer:" + mk.String()}
		return tx.PutManufacturer(m)
	})
	return out, err
}
