package inspection

import (
	"context"
	"errors"
	"fmt"
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

// checkCertificateTerms refuses a presented certificate valid for longer
// than the policy's longest term from now, naming it.
func checkCertificateTerms(pol *policy.Policy, in declaration.Input, now time.Time) error {
	limit := now.AddDate(pol.CertificateMaxTerm(), 0, 0)
	for i, l := range in.Lines {
		for j, c := range l.Certificates {
			field := fmt.Sprintf("lines[%d].certificates[%d].valid_until", i, j)
			until, err := declaration.ParseValidUntil(field, c.ValidUntil)
			if err == nil && until.After(limit) {
				return Invalid(field, "%s is more than %d years ahead: no certificate scheme grants that long a term", c.ValidUntil, pol.CertificateMaxTerm())
			}
		}
	}
	return nil
}

// pendingCertificates names the presented certificates that are not on
// record for the manufacturer, in force at now.
func pendingCertificates(presented, onRecord []reference.Certificate, now time.Time) []string {
	var out []string
	for _, c := range presented {
		if !onRecordInForce(c, onRecord, now) {
			out = append(out, fmt.Sprintf("%s %s", c.Kind, c.Number))
		}
	}
	return out
}

func onRecordInForce(c reference.Certificate, onRecord []reference.Certificate, now time.Time) bool {
	for _, r := range onRecord {
		if policy.CertificateKind(r.Kind) == policy.CertificateKind(c.Kind) && strings.EqualFold(r.Number, c.Number) && !r.ValidUntil.Before(now) {
			return true
		}
	}
	return false
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
		pol, err := s.policyIn(tx)
		if err != nil {
			return err
		}
		switch {
		case !pol.AcceptsCertificate(kind):
			return Invalid("kind", "%s is not a certificate kind policy %s accepts", kind, pol.Version)
		case until.Before(now):
			return Invalid("valid_until", "%s has passed", in.ValidUntil)
		case until.After(now.AddDate(pol.CertificateMaxTerm(), 0, 0)):
			return Invalid("valid_until", "%s is more than %d years ahead: no scheme grants that long a term", in.ValidUntil, pol.CertificateMaxTerm())
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
		for _, r := range m.Certificates {
			if policy.CertificateKind(r.Kind) == kind && strings.EqualFold(r.Number, cert.Number) && r.ValidUntil.Equal(until) {
				return nil // on record already: nothing changes
			}
		}
		m.Certificates = append(m.Certificates, cert)
		out = m
		c.Subjects = []string{"manufacturer:" + mk.String()}
		return tx.PutManufacturer(m)
	})
	return out, err
}
