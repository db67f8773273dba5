// Package policy is the versioned rule document: every threshold, count,
// window, inspection list, route and deadline ktcn decides by lives in a
// Policy, and the code only implements mechanisms. It owns the document's
// shape, its validation (every error names its JSON path), its digest and
// the lookups the domain makes in it (which procedure lists an HS code,
// which agency inspects it, when a check is due). How a mode follows from
// history under a policy is inspection's (Evaluate).
package policy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/inspection/scoring"
)

// Procedure is the legal regime a line is inspected under.
type Procedure string

const (
	ProcedureFoodSafety Procedure = "food_safety" // Decree 15/2018/NĐ-CP
	ProcedureQuality    Procedure = "quality"     // Decree 132/2008/NĐ-CP as amended (group 2 goods)
)

// Valid reports whether p is a known procedure.
func (p Procedure) Valid() bool { return p == ProcedureFoodSafety || p == ProcedureQuality }

// Policy is the versioned rule document: every threshold, count, window,
// list and route lives here, and the code only implements mechanisms. The
// default (policy_default.json) reproduces the legal rules of Decree
// 15/2018/NĐ-CP and Decree 132/2008/NĐ-CP as amended.
type Policy struct {
	Version     string `json:"version"`
	Description string `json:"description"`

	Strict  StrictRules  `json:"strict"`
	Reduced ReducedRules `json:"reduced"`
	// QualityExemption is the quality regime's written exemption for the
	// same goods from the same importer.
	QualityExemption QualityExemptionRules `json:"quality_exemption"`
	// ExemptionCategories are the cases exempt by law (the reform's merged list).
	ExemptionCategories []ExemptionCategory `json:"exemption_categories"`
	// InspectionList says which HS codes fall under which procedure and
	// ministry. A line whose code matches no entry is rejected.
	InspectionList []ListEntry `json:"inspection_list"`
	// Routing sends a lot to an agency by procedure and the longest
	// matching HS code prefix.
	Routing   []Route           `json:"routing"`
	Deadlines Deadlines         `json:"deadlines"`
	Calendar  calendar.Calendar `json:"calendar"`
	// Risk configures scoring and the score rules.
	Risk scoring.Rules `json:"risk"`
	// Identity and Certificates are optional sections: a document without
	// them takes the defaults (and keeps the digest it always had).
	Identity     *IdentityRules    `json:"identity,omitempty"`
	Certificates *CertificateRules `json:"certificates,omitempty"`
	// WorkflowRules: result corrections and escalation (workflow.go).
	WorkflowRules *WorkflowRules `json:"workflow,omitempty"`
	// Capacity is optional too: without it every agency takes every lot
	// routed to it, and no capacity is counted (capacity.go).
	Capacity *CapacityRules `json:"capacity,omitempty"`

	digest string
	cal    *calendar.Working
}

// StrictRules: how goods leave strict.
type StrictRules struct {
	// PassesToNormal consecutive passes under strict return goods to normal.
	PassesToNormal int `json:"passes_to_normal"`
}

// ReducedRules: how goods qualify for reduced.
type ReducedRules struct {
	// ConsecutivePasses under normal, the last of the goods' results, all
	// inspected within WindowMonths before the decision.
	ConsecutivePasses int `json:"consecutive_passes"`
	WindowMonths      int `json:"window_months"`
	// AcceptedCertificates qualify a lot for reduced while valid, unless
	// the goods are strict.
	AcceptedCertificates []string `json:"accepted_certificates"`
	// Sampling is the capped random check of reduced-mode lots.
	Sampling quota.Rules `json:"sampling"`
}

// QualityExemptionRules: quality goods passing ConsecutivePasses imports by
// one importer are exempt for that importer for TermMonths.
type QualityExemptionRules struct {
	Enabled           bool `json:"enabled"`
	ConsecutivePasses int  `json:"consecutive_passes"`
	TermMonths        int  `json:"term_months"`
}

// ExemptionCategory is a legal exemption a line may claim.
type ExemptionCategory struct {
	Code        string      `json:"code"`
	Description string      `json:"description"`
	Procedures  []Procedure `json:"procedures"`
	// RefusedWhenStrict: the exemption does not hold while the goods are
	// strict (a failure or a warning exists).
	RefusedWhenStrict bool `json:"refused_when_strict"`
}

// ListEntry puts an HS code (4-digit heading, or a 6/8-digit line) under a
// procedure; Exclude carves a longer code out of a listed heading.
type ListEntry struct {
	Code        string    `json:"code"`
	Procedure   Procedure `json:"procedure"`
	Ministry    string    `json:"ministry"`
	Description string    `json:"description"`
	Exclude     bool      `json:"exclude,omitempty"`
}

// Route sends lots of a procedure whose HS code starts with Prefix to an
// agency; the longest prefix wins, an empty prefix is the procedure's
// ministry default. Alternates are the other agencies designated for the
// same goods, in order of preference after Agency: under a Capacity
// section a lot goes to the first of them with room on its working day
// (capacity.go); without one, Agency takes every lot.
type Route struct {
	Procedure  Procedure `json:"procedure"`
	Ministry   string    `json:"ministry"`
	Prefix     string    `json:"prefix"`
	Agency     string    `json:"agency"`
	Alternates []string  `json:"alternates,omitempty"`
}

// Deadlines for agencies, in working time.
type Deadlines struct {
	DocumentsWorkingHours int `json:"documents_working_hours"`
	StrictWorkingDays     int `json:"strict_working_days"`
}

//go:embed policy_default.json
var defaultPolicyJSON []byte

// DefaultPolicy returns the embedded default policy, validated.
func DefaultPolicy() (*Policy, error) {
	p, err := ParsePolicy(defaultPolicyJSON)
	if err != nil {
		return nil, fmt.Errorf("embedded default policy: %w", err)
	}
	return p, nil
}

// ParsePolicy decodes and validates a policy document; unknown fields are
// errors so a typo cannot silently drop a rule.
func ParsePolicy(doc []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fault.Of(fault.Invalid, "policy", "not a valid policy document: %v", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	canon, err := json.Marshal(&p)
	if err != nil {
		return nil, fmt.Errorf("encode policy: %w", err)
	}
	sum := sha256.Sum256(canon)
	p.digest = hex.EncodeToString(sum[:8])
	p.cal, _ = p.Calendar.Compile() // validated above
	return &p, nil
}

// Digest identifies the exact content of the policy (the version label is
// a name people choose; the digest is what a decision can be checked against).
func (p *Policy) Digest() string { return p.digest }

// Document returns the policy as canonical JSON, for storage beside the
// decisions that cite it.
func (p *Policy) Document() ([]byte, error) { return json.Marshal(p) }

var (
	hsDigitsRe = regexp.MustCompile(`^[0-9]{4}([0-9]{2}){0,3}$`)
	ministries = []string{"MOH", "MARD", "MOIT", "MOST", "MOT", "MIC", "MPS"}
)

// Validate checks the policy and names the first offending field.
func (p *Policy) Validate() error {
	if strings.TrimSpace(p.Version) == "" {
		return fault.Of(fault.Invalid, "version", "is required")
	}
	if err := p.validateOptional(); err != nil {
		return err
	}
	if p.Strict.PassesToNormal < 1 {
		return fault.Of(fault.Invalid, "strict.passes_to_normal", "must be at least 1")
	}
	if p.Reduced.ConsecutivePasses < 1 {
		return fault.Of(fault.Invalid, "reduced.consecutive_passes", "must be at least 1")
	}
	if p.Reduced.WindowMonths < 1 {
		return fault.Of(fault.Invalid, "reduced.window_months", "must be at least 1")
	}
	for i, c := range p.Reduced.AcceptedCertificates {
		if strings.TrimSpace(c) == "" || c != strings.ToUpper(c) {
			return fault.Of(fault.Invalid, fmt.Sprintf("reduced.accepted_certificates[%d]", i), "must be a non-empty upper-case code")
		}
	}
	if err := p.Reduced.Sampling.Validate("reduced.sampling"); err != nil {
		return err
	}
	if p.Reduced.Sampling.Selection == quota.SelectionRiskWeighted && p.Reduced.Sampling.WeightBy == quota.WeightByGoodsScore && !p.Risk.ScoreDecisions {
		return fault.Of(fault.Invalid, "reduced.sampling.weight_by", "goods_score needs risk.score_decisions: true (the weight is the decision's goods score)")
	}
	if p.QualityExemption.Enabled {
		if p.QualityExemption.ConsecutivePasses < 1 {
			return fault.Of(fault.Invalid, "quality_exemption.consecutive_passes", "must be at least 1")
		}
		if p.QualityExemption.TermMonths < 1 {
			return fault.Of(fault.Invalid, "quality_exemption.term_months", "must be at least 1")
		}
	}
	seen := map[string]bool{}
	for i, c := range p.ExemptionCategories {
		f := fmt.Sprintf("exemption_categories[%d]", i)
		if c.Code == "" || seen[c.Code] {
			return fault.Of(fault.Invalid, f+".code", "must be a unique non-empty code, got %q", c.Code)
		}
		seen[c.Code] = true
		if len(c.Procedures) == 0 {
			return fault.Of(fault.Invalid, f+".procedures", "must name at least one procedure")
		}
		for j, pr := range c.Procedures {
			if !pr.Valid() {
				return fault.Of(fault.Invalid, fmt.Sprintf("%s.procedures[%d]", f, j), "unknown procedure %q", pr)
			}
		}
	}
	if len(p.InspectionList) == 0 {
		return fault.Of(fault.Invalid, "inspection_list", "must list at least one HS code")
	}
	type entryKey struct {
		code string
		pr   Procedure
	}
	listed := map[entryKey]bool{}
	for i, e := range p.InspectionList {
		f := fmt.Sprintf("inspection_list[%d]", i)
		if !hsDigitsRe.MatchString(e.Code) {
			return fault.Of(fault.Invalid, f+".code", "must be 4, 6, 8 or 10 digits, got %q", e.Code)
		}
		if !e.Procedure.Valid() {
			return fault.Of(fault.Invalid, f+".procedure", "unknown procedure %q", e.Procedure)
		}
		if !slices.Contains(ministries, e.Ministry) {
			return fault.Of(fault.Invalid, f+".ministry", "unknown ministry %q (want one of %v)", e.Ministry, ministries)
		}
		k := entryKey{e.Code, e.Procedure}
		if listed[k] {
			return fault.Of(fault.Invalid, f+".code", "%s is listed twice for %s", e.Code, e.Procedure)
		}
		listed[k] = true
	}
	for i, r := range p.Routing {
		f := fmt.Sprintf("routing[%d]", i)
		if !r.Procedure.Valid() {
			return fault.Of(fault.Invalid, f+".procedure", "unknown procedure %q", r.Procedure)
		}
		if !slices.Contains(ministries, r.Ministry) {
			return fault.Of(fault.Invalid, f+".ministry", "unknown ministry %q", r.Ministry)
		}
		if r.Prefix != "" && !hsDigitsRe.MatchString(r.Prefix) {
			return fault.Of(fault.Invalid, f+".prefix", "must be empty or 4, 6, 8 or 10 digits, got %q", r.Prefix)
		}
		if r.Agency == "" {
			return fault.Of(fault.Invalid, f+".agency", "is required")
		}
		seen := map[string]bool{r.Agency: true}
		for j, a := range r.Alternates {
			fa := fmt.Sprintf("%s.alternates[%d]", f, j)
			if strings.TrimSpace(a) == "" {
				return fault.Of(fault.Invalid, fa, "must name an agency")
			}
			if seen[a] {
				return fault.Of(fault.Invalid, fa, "agency %q is already designated by this route", a)
			}
			seen[a] = true
		}
	}
	if err := p.validateCapacity(); err != nil {
		return err
	}
	// Every listed code must route somewhere, or a lot could be decided
	// "inspect" with nobody to inspect it.
	for i, e := range p.InspectionList {
		if e.Exclude {
			continue
		}
		if _, ok := p.route(e.Procedure, e.Ministry, e.Code); !ok {
			return fault.Of(fault.Invalid, fmt.Sprintf("inspection_list[%d].code", i), "%s (%s, %s) has no route to an agency", e.Code, e.Procedure, e.Ministry)
		}
	}
	if p.Deadlines.DocumentsWorkingHours < 1 {
		return fault.Of(fault.Invalid, "deadlines.documents_working_hours", "must be at least 1")
	}
	if p.Deadlines.StrictWorkingDays < 1 {
		return fault.Of(fault.Invalid, "deadlines.strict_working_days", "must be at least 1")
	}
	if _, err := p.Calendar.Compile(); err != nil {
		return err
	}
	return p.Risk.Validate("risk")
}

// Listing is what the inspection list says of one HS code and procedure.
type Listing struct {
	Procedure Procedure
	Ministry  string
	Code      string // the entry that matched
}

// Lookup finds the inspection-list entry for an HS code (digits) under a
// procedure: the longest matching code wins, and an exclusion unlists.
func (p *Policy) Lookup(pr Procedure, hs string) (Listing, bool) {
	var best *ListEntry
	for i := range p.InspectionList {
		e := &p.InspectionList[i]
		if e.Procedure == pr && strings.HasPrefix(hs, e.Code) && (best == nil || len(e.Code) > len(best.Code)) {
			best = e
		}
	}
	if best == nil || best.Exclude {
		return Listing{}, false
	}
	return Listing{Procedure: best.Procedure, Ministry: best.Ministry, Code: best.Code}, true
}

// ListedProcedures returns the procedures an HS code is listed under, for
// error messages that help the declarant.
func (p *Policy) ListedProcedures(hs string) []Procedure {
	var out []Procedure
	for _, pr := range []Procedure{ProcedureFoodSafety, ProcedureQuality} {
		if _, ok := p.Lookup(pr, hs); ok {
			out = append(out, pr)
		}
	}
	return out
}

// Route returns the (preferred) agency for a listed lot.
func (p *Policy) Route(l Listing, hs string) (string, bool) {
	return p.route(l.Procedure, l.Ministry, hs)
}

// Designated returns the agencies designated for a listed lot, the
// preferred first and then its route's alternates in order of preference.
func (p *Policy) Designated(l Listing, hs string) ([]string, bool) {
	r, ok := p.routeOf(l.Procedure, l.Ministry, hs)
	if !ok {
		return nil, false
	}
	return append([]string{r.Agency}, r.Alternates...), true
}

func (p *Policy) route(pr Procedure, ministry, hs string) (string, bool) {
	r, ok := p.routeOf(pr, ministry, hs)
	return r.Agency, ok
}

// routeOf is the route of the longest prefix matching hs.
func (p *Policy) routeOf(pr Procedure, ministry, hs string) (Route, bool) {
	best := -1
	var route Route
	for _, r := range p.Routing {
		if r.Procedure == pr && r.Ministry == ministry && strings.HasPrefix(hs, r.Prefix) && len(r.Prefix) > best {
			best, route = len(r.Prefix), r
		}
	}
	return route, best >= 0
}

// RoutedAgencies lists every agency ID the routing names (preferred or
// alternate), sorted.
func (p *Policy) RoutedAgencies() []string {
	set := map[string]bool{}
	for _, r := range p.Routing {
		set[r.Agency] = true
		for _, a := range r.Alternates {
			set[a] = true
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Exemption returns the category with the given code.
func (p *Policy) Exemption(code string) (ExemptionCategory, bool) {
	for _, c := range p.ExemptionCategories {
		if c.Code == code {
			return c, true
		}
	}
	return ExemptionCategory{}, false
}

// AcceptsCertificate reports whether a certificate kind qualifies for reduced.
func (p *Policy) AcceptsCertificate(kind string) bool {
	return slices.Contains(p.Reduced.AcceptedCertificates, CertificateKind(kind))
}

// CertificateKind canonicalizes a certificate kind ("ISO 22000" → "ISO22000").
func CertificateKind(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Deadline returns when a check started at t is due: sampling and lab
// tests (sampling) in working days, documents checks in working hours.
func (p *Policy) Deadline(sampling bool, t time.Time) time.Time {
	wc, ok := p.working()
	if !ok {
		return t
	}
	if sampling {
		return wc.AddWorkingDays(t, p.Deadlines.StrictWorkingDays)
	}
	return wc.Add(t, time.Duration(p.Deadlines.DocumentsWorkingHours)*time.Hour)
}

// IdentityRules: when new goods resemble known goods closely enough to
// inherit their caution. The law does not say; the defaults are cautious.
type IdentityRules struct {
	// ResemblanceThreshold is the share of words two product names of one
	// manufacturer, heading and origin must have in common (0 to 1].
	ResemblanceThreshold float64 `json:"resemblance_threshold"`
	// CautionWindowDays is how far back a failure or alert of the
	// resembled goods counts.
	CautionWindowDays int `json:"caution_window_days"`
}

// CertificateRules: what a certificate presented with a lot must be.
type CertificateRules struct {
	// MaxTermYears is the longest validity a certificate scheme grants
	// (HACCP, ISO 22000, FSSC 22000, BRC, IFS, GMP: commonly 3 years); a
	// certificate valid for longer than this from today is refused.
	MaxTermYears int `json:"max_term_years"`
}

// Default identity and certificate rules, for documents without them.
const (
	DefaultResemblanceThreshold = 0.6
	DefaultCautionWindowDays    = 365
	DefaultCertificateTermYears = 3
)

// Resemblance is the resemblance threshold and the caution window.
func (p *Policy) Resemblance() (threshold float64, window time.Duration) {
	threshold, days := DefaultResemblanceThreshold, DefaultCautionWindowDays
	if r := p.Identity; r != nil {
		threshold, days = r.ResemblanceThreshold, r.CautionWindowDays
	}
	return threshold, time.Duration(days) * 24 * time.Hour
}

// CertificateMaxTerm is the longest validity a certificate may have.
func (p *Policy) CertificateMaxTerm() (years int) {
	if r := p.Certificates; r != nil {
		return r.MaxTermYears
	}
	return DefaultCertificateTermYears
}

func (p *Policy) validateOptional() error {
	if r := p.Identity; r != nil {
		if !(r.ResemblanceThreshold > 0 && r.ResemblanceThreshold <= 1) {
			return fault.Of(fault.Invalid, "identity.resemblance_threshold", "must be above 0 and at most 1, got %v", r.ResemblanceThreshold)
		}
		if r.CautionWindowDays < 1 || r.CautionWindowDays > 3660 {
			return fault.Of(fault.Invalid, "identity.caution_window_days", "must be 1 to 3660 days, got %d", r.CautionWindowDays)
		}
	}
	if r := p.Certificates; r != nil && (r.MaxTermYears < 1 || r.MaxTermYears > 10) {
		return fault.Of(fault.Invalid, "certificates.max_term_years", "must be 1 to 10 years, got %d", r.MaxTermYears)
	}
	return p.WorkflowRules.validate()
}
