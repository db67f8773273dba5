package inspection

import (
	"context"
	"fmt"

	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/reference"
)

// ReferenceReader reads reference data.
type ReferenceReader interface {
	Manufacturer(k identity.Key) (reference.Manufacturer, error)
	Importer(taxCode string) (reference.Importer, error)
	Agency(id string) (reference.Agency, error)
	Agencies() ([]reference.Agency, error)
	// ImporterSeen reports whether an importer has declared.
	ImporterSeen(taxCode string) (bool, error)
}

// ReferenceWriter writes it.
type ReferenceWriter interface {
	PutAgency(reference.Agency) error
	PutImporter(reference.Importer) error
	PutManufacturer(reference.Manufacturer) error
	// NoteImporter records that an importer has declared.
	NoteImporter(taxCode string) error
}

// LoadReference writes reference data in one change, under one audit
// entry (kind reference.loaded). It is idempotent: every record is keyed
// by its own ID (agency ID, tax code, manufacturer key), so loading again
// writes the same records over themselves.
func (s *Service) LoadReference(ctx context.Context, by access.Principal, ref reference.Data) error {
	if err := by.Require(access.ActAdminister); err != nil {
		return err
	}
	return s.w.write(ctx, by, audit.ReferenceLoaded, s.clock.Now(), func(tx Tx, c *Change) error {
		for _, a := range ref.Agencies {
			if err := tx.PutAgency(a); err != nil {
				return fmt.Errorf("agency %s: %w", a.ID, err)
			}
		}
		for _, im := range ref.Importers {
			if err := tx.PutImporter(im); err != nil {
				return fmt.Errorf("importer %s: %w", im.TaxCode, err)
			}
		}
		for _, m := range ref.Manufacturers {
			if err := tx.PutManufacturer(m); err != nil {
				return fmt.Errorf("manufacturer %s (%s): %w", m.Name, m.Origin, err)
			}
		}
		c.Subjects = []string{fmt.Sprintf("reference:%d agencies, %d importers, %d manufacturers",
			len(ref.Agencies), len(ref.Importers), len(ref.Manufacturers))}
		return nil
	})
}

// Configured is the policy this service puts in force when it starts.
func (s *Service) Configured() *policy.Policy { return s.configured }
