package inspection

import "github.com/ktcn/ktcn/inspection/identity"

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
