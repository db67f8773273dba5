package inspection

import "github.com/ktcn/ktcn/inspection/identity"

// HistoryReader reads goods' histories and their snapshots.
type HistoryReader interface {
	// Events returns a subject's history ordered by At, then ID.
	Events(s Subject) ([]Event, error)
	Event(id string) (Event, error)
	// ImporterEvents returns the results of an importer's lots across all
	// goods (the importer's own compliance history), ordered by At, then ID.
	ImporterEvents(taxCode string) ([]Event, error)
	GoodsState(k identity.Key) (GoodsState, error)
	// IdentityLegacy says whether the store holds history under identity
	// version 1 (legacy.go), and whether that was recorded yet.
	IdentityLegacy() (legacy, marked bool, err error)
	// Resembling lists the goods of a resemblance group (resemble.go).
	Resembling(group identity.Key) ([]Resembling, error)
}

// HistoryWriter writes them.
type HistoryWriter interface {
	// AddEvent appends e to its subject's history (keyed by At and ID),
	// indexes it by ID and, for a result, in its importer's history. An ID
	// already recorded is a CodeConflict.
	AddEvent(e Event) error
	PutGoodsState(GoodsState) error
	MarkIdentity(legacy bool) error
	IndexResemblance(group, goods identity.Key, productName, match string) error
}

// SubjectKind says what an event is about.
type SubjectKind string

const (
	SubjectGoods         SubjectKind = "goods"
	SubjectManufacturer  SubjectKind = "manufacturer"
	SubjectHeadingOrigin SubjectKind = "heading_origin"
)

// Subject is what an event is recorded against: its history key.
type Subject struct {
	Kind SubjectKind  `json:"kind"`
	Key  identity.Key `json:"key"`
}
