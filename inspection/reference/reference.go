// Package reference is the reference data ktcn decides with: the
// designated inspection agencies, the importers with customs' compliance
// rating, and the manufacturers with the certificates they hold on record.
// It owns their shape; loading them (an audited change) is inspection's.
package reference

import (
	"time"

	"github.com/ktcn/ktcn/inspection/identity"
)

// Data is reference data loaded in bulk: the designated agencies,
// importers with their compliance levels, and manufacturers with the
// certificates on record.
type Data struct {
	Agencies      []Agency
	Importers     []Importer
	Manufacturers []Manufacturer
}

// Certificate is a producer's certificate presented with a lot or held on
// record for a manufacturer (HACCP, ISO 22000, ...).
type Certificate struct {
	Kind       string    `json:"kind"`
	Number     string    `json:"number"`
	ValidUntil time.Time `json:"valid_until"`
}

// Agency is a designated inspection body.
type Agency struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	NameVI   string `json:"name_vi"`
	Ministry string `json:"ministry"` // MOH, MARD, MOIT, MOST
	City     string `json:"city"`
}

// Importer is a firm that declares goods.
type Importer struct {
	TaxCode string `json:"tax_code"`
	Name    string `json:"name"`
	// ComplianceLevel is customs' rating (Circular 81/2019/TT-BTC):
	// priority, high, medium, low, non_compliant.
	ComplianceLevel string `json:"compliance_level"`
}

// Manufacturer is a producer with the certificates it holds on record.
type Manufacturer struct {
	Name         string        `json:"name"`
	Origin       string        `json:"origin"`
	Certificates []Certificate `json:"certificates,omitempty"`
}

// Key is the manufacturer's identity key.
func (m Manufacturer) Key() identity.Key { return identity.ManufacturerKey(m.Name, m.Origin) }
