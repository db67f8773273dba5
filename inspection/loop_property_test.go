package inspection_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"pgregory.net/rapid"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/store"
)

// The property: over random sequences of declarations, retries,
// conflicting resubmissions, results (posted in random order, with
// inspection dates out of order), alerts, clock jumps and store restarts,
// no decision is lost or duplicated, and every decided mode equals what a
// reference model computes from the full event history the test itself
// recorded. The reference is written independently of inspection.Evaluate:
// it looks for the last failure or alert instead of replaying a state
// machine.

type refGoods struct {
	line  declaration.LineInput
	canon identity.Goods
}

type refEvent struct {
	id       string
	at       time.Time
	alert    bool
	pass     bool
	importer string
	// what it is about (alerts): one goods, a manufacturer, a heading × origin
	goods        *identity.Goods
	manufacturer string
	heading      string
	origin       string
}

func (e refEvent) concerns(g identity.Goods) bool {
	switch {
	case e.goods != nil:
		return *e.goods == g
	case e.manufacturer != "":
		return e.manufacturer == g.Manufacturer && e.origin == g.Origin
	default:
		return e.heading == g.HSCode[:4] && e.origin == g.Origin
	}
}

type refLot struct {
	importer  string
	procedure policy.Procedure
	certUntil *time.Time // an accepted certificate, if any
	exemption string
}

// refMode is the reference model of the default policy's rules.
func refMode(p *policy.Policy, all []refEvent, g identity.Goods, lot refLot, now time.Time) inspection.Mode {
	var evs []refEvent
	for _, e := range all {
		if e.concerns(g) && !e.at.After(now) {
			evs = append(evs, e)
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if !evs[i].at.Equal(evs[j].at) {
			return evs[i].at.Before(evs[j].at)
		}
		return evs[i].id < evs[j].id
	})
	lastBad := -1
	for i, e := range evs {
		if e.alert || !e.pass {
			lastBad = i
		}
	}
	after := evs[lastBad+1:] // all passes
	normal := after
	if lastBad >= 0 {
		if len(after) < p.Strict.PassesToNormal {
			if cat, ok := p.Exemption(lot.exemption); ok && !cat.RefusedWhenStrict {
				return inspection.ModeExempt
			}
			return inspection.ModeStrict
		}
		normal = after[p.Strict.PassesToNormal:]
	}
	if lot.exemption != "" {
		return inspection.ModeExempt
	}
	if lot.procedure == policy.ProcedureQuality {
		var mine []refEvent
		for _, e := range normal {
			if e.importer == lot.importer {
				mine = append(mine, e)
			}
		}
		k := p.QualityExemption.ConsecutivePasses
		for i := 0; i+k-1 < len(mine); {
			end := mine[i+k-1].at.In(calendar.Vietnam()).AddDate(0, p.QualityExemption.TermMonths, 0)
			if now.Before(end) {
				return inspection.ModeExempt
			}
			j := i + k
			for j < len(mine) && mine[j].at.Before(end) {
				j++
			}
			i = j
		}
	}
	k := p.Reduced.ConsecutivePasses
	if len(normal) >= k && !normal[len(normal)-k].at.Before(now.In(calendar.Vietnam()).AddDate(0, -p.Reduced.WindowMonths, 0)) {
		return inspection.ModeReduced
	}
	if lot.certUntil != nil && !lot.certUntil.Before(now) {
		return inspection.ModeReduced
	}
	return inspection.ModeNormal
}

// refResembles is the reference of resemblance: goods with no events of
// their own inherit the caution (a failure or alert on them within the
// window, or strict from their own events) of goods decided before of the
// same manufacturer, heading and origin whose name shares enough words.
func refResembles(p *policy.Policy, all []refEvent, known map[identity.Goods]bool, g identity.Goods, now time.Time) bool {
	own := func(h identity.Goods) []refEvent {
		var out []refEvent
		for _, e := range all {
			if e.goods != nil && *e.goods == h && !e.at.After(now) {
				out = append(out, e)
			}
		}
		return out
	}
	if len(own(g)) > 0 {
		return false
	}
	threshold, window := p.Resemblance()
	for h := range known {
		if h == g || identity.ResemblanceGroup(h) != identity.ResemblanceGroup(g) || identity.Similarity(g.ProductName, h.ProductName) < threshold {
			continue
		}
		evs := own(h)
		for _, e := range evs {
			if (e.alert || !e.pass) && now.Sub(e.at) <= window {
				return true
			}
		}
		if refMode(p, evs, h, refLot{}, now) == inspection.ModeStrict {
			return true
		}
	}
	return false
}

type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }

type loopModel struct {
	t        *rapid.T
	policy   *policy.Policy
	clock    *stepClock
	dir      string
	db       *store.DB
	svc      *inspection.Service
	goods    []refGoods
	events   []refEvent
	sent     map[string]declaration.Input      // declaration ID → what was accepted
	decided  map[string]inspection.Decision    // decision ID → as returned
	open     []inspection.Decision             // inspected, no result yet
	results  map[string]inspection.ResultInput // assignment ID → result posted
	alerts   []inspection.AlertInput
	nextDecl int
	known    map[identity.Goods]bool // goods with a goods state: decided, or alerted on
}

func (m *loopModel) open_() {
	db, err := store.Open(store.Options{Dir: m.dir, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		m.t.Fatal(err)
	}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: m.policy, Clock: m.clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		m.t.Fatal(err)
	}
	m.db, m.svc = db, svc
}

var ctx = context.Background()

func (m *loopModel) declare(t *rapid.T) {
	m.nextDecl++
	id := fmt.Sprintf("D%06d", m.nextDecl)
	importer := rapid.SampledFrom([]string{"0101234567", "0309876543"}).Draw(t, "importer")
	n := rapid.IntRange(1, 3).Draw(t, "lines")
	in := declaration.Input{DeclarationID: id, ImporterTaxCode: importer}
	var lots []refLot
	for i := 1; i <= n; i++ {
		g := rapid.SampledFrom(m.goods).Draw(t, "goods")
		l := g.line
		no := i
		qty := 10.0
		l.LineNo, l.Quantity = &no, &qty
		lot := refLot{importer: importer, procedure: policy.Procedure(l.Procedure)}
		switch rapid.IntRange(0, 9).Draw(t, "cert") {
		case 0:
			// Presented, not on record: pending, it does not count.
			until := m.clock.now.AddDate(0, 0, rapid.IntRange(-30, 30).Draw(t, "cert days"))
			l.Certificates = []declaration.CertificateInput{{Kind: "HACCP", Number: "H1", ValidUntil: until.Format(time.RFC3339)}}
		case 1:
			l.Exemption, lot.exemption = "personal_luggage", "personal_luggage"
		}
		in.Lines = append(in.Lines, l)
		lots = append(lots, lot)
	}
	res, err := m.svc.Decide(ctx, access.SystemPrincipal(), in)
	if err != nil {
		t.Fatalf("decide %s: %v", id, err)
	}
	if res.Replayed || len(res.Decisions) != n {
		t.Fatalf("decide %s: replayed %v, %d decisions for %d lines", id, res.Replayed, len(res.Decisions), n)
	}
	m.sent[id] = in
	known := maps.Clone(m.known) // goods with a state before this declaration
	for i, d := range res.Decisions {
		if _, dup := m.decided[d.ID]; dup {
			t.Fatalf("decision %s minted twice", d.ID)
		}
		want := refMode(m.policy, m.events, d.Goods, lots[i], m.clock.now)
		if want != inspection.ModeStrict && !known[d.Goods] && refResembles(m.policy, m.events, known, d.Goods, m.clock.now) {
			want = inspection.ModeStrict
		}
		if d.Mode != want {
			t.Fatalf("%s line %d (%s, %s): mode %s by %s, reference %s", id, d.LineNo, d.Goods.ProductName, d.Goods.Manufacturer, d.Mode, d.Explanation.Rule, want)
		}
		m.decided[d.ID] = d
		if m.known == nil {
			m.known = map[identity.Goods]bool{}
		}
		m.known[d.Goods] = true
		if d.Inspect {
			m.open = append(m.open, d)
		}
	}
}

func (m *loopModel) resend(t *rapid.T) {
	if len(m.sent) == 0 {
		return
	}
	ids := make([]string, 0, len(m.sent))
	for id := range m.sent {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	id := rapid.SampledFrom(ids).Draw(t, "resend")
	in := m.sent[id]
	if rapid.Bool().Draw(t, "altered") {
		alt := in
		alt.Lines = append([]declaration.LineInput{}, in.Lines...)
		l := alt.Lines[0]
		l.ProductName += " (khác)"
		alt.Lines[0] = l
		_, err := m.svc.Decide(ctx, access.SystemPrincipal(), alt)
		if fault.CodeOf(err) != fault.Conflict {
			t.Fatalf("altered resubmission of %s: %v, want conflict", id, err)
		}
		return
	}
	res, err := m.svc.Decide(ctx, access.SystemPrincipal(), in)
	if err != nil || !res.Replayed {
		t.Fatalf("resubmission of %s: replayed %v, %v", id, res.Replayed, err)
	}
	for _, d := range res.Decisions {
		if orig, ok := m.decided[d.ID]; !ok || orig.Mode != d.Mode || !orig.DecidedAt.Equal(d.DecidedAt) || orig.AssignmentID != d.AssignmentID {
			t.Fatalf("resubmission of %s changed decision %s", id, d.ID)
		}
	}
}

func (m *loopModel) result(t *rapid.T) {
	if len(m.open) == 0 {
		return
	}
	i := rapid.IntRange(0, len(m.open)-1).Draw(t, "which") // any open one: out of order
	d := m.open[i]
	span := m.clock.now.Sub(d.DecidedAt)
	at := d.DecidedAt.Add(time.Duration(rapid.Float64Range(0, 1).Draw(t, "when") * float64(span))).Truncate(time.Second)
	if at.Before(d.DecidedAt) {
		at = d.DecidedAt.Add(time.Second).Truncate(time.Second)
		if at.After(m.clock.now) {
			return
		}
	}
	pass := rapid.IntRange(0, 9).Draw(t, "fail") > 1
	in := inspection.ResultInput{Outcome: "pass", InspectedAt: at.Format(time.RFC3339)}
	if !pass {
		in = inspection.ResultInput{Outcome: "fail", InspectedAt: at.Format(time.RFC3339), Findings: []inspection.Finding{{Code: "LAB", Text: "aflatoxin"}}}
	}
	if _, err := m.svc.RecordResult(ctx, access.SystemPrincipal(), d.AssignmentID, in); err != nil {
		t.Fatalf("result for %s: %v", d.AssignmentID, err)
	}
	m.open = append(m.open[:i], m.open[i+1:]...)
	m.results[d.AssignmentID] = in
	m.events = append(m.events, refEvent{id: inspection.ResultEventID(d.AssignmentID), at: at, pass: pass, importer: d.ImporterTaxCode, goods: &d.Goods})
}

func (m *loopModel) resendResult(t *rapid.T) {
	if len(m.results) == 0 {
		return
	}
	ids := make([]string, 0, len(m.results))
	for id := range m.results {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	id := rapid.SampledFrom(ids).Draw(t, "result again")
	out, err := m.svc.RecordResult(ctx, access.SystemPrincipal(), id, m.results[id])
	if err != nil || !out.Replayed {
		t.Fatalf("result again for %s: replayed %v, %v", id, out.Replayed, err)
	}
}

func (m *loopModel) alert(t *rapid.T) {
	g := rapid.SampledFrom(m.goods).Draw(t, "alert goods")
	at := m.clock.now.Add(-time.Duration(rapid.IntRange(0, 30*24).Draw(t, "alert age h")) * time.Hour).Truncate(time.Second)
	in := inspection.AlertInput{Authority: "RASFF", Reference: fmt.Sprintf("R-%d", len(m.alerts)+1), IssuedAt: at.Format(time.RFC3339), Reason: "contaminant"}
	e := refEvent{alert: true, at: at, origin: g.canon.Origin}
	switch rapid.IntRange(0, 2).Draw(t, "alert target") {
	case 0:
		in.Target = inspection.AlertTarget{Kind: "goods", HSCode: g.line.HSCode, ProductName: strings.ToUpper(g.line.ProductName), Brand: g.line.Brand, Manufacturer: g.line.Manufacturer, Origin: g.line.Origin}
		e.goods = &g.canon
		if m.known == nil {
			m.known = map[identity.Goods]bool{}
		}
		m.known[g.canon] = true
	case 1:
		in.Target = inspection.AlertTarget{Kind: "manufacturer", Manufacturer: "  " + g.line.Manufacturer, Origin: g.line.Origin}
		e.manufacturer = g.canon.Manufacturer
	default:
		in.Target = inspection.AlertTarget{Kind: "heading_origin", HSCode: g.canon.HSCode[:4], Origin: g.line.Origin}
		e.heading = g.canon.HSCode[:4]
	}
	out, err := m.svc.RaiseAlert(ctx, access.SystemPrincipal(), in)
	if err != nil || out.Replayed {
		t.Fatalf("alert: replayed %v, %v", out.Replayed, err)
	}
	e.id = out.Alert.ID
	m.alerts = append(m.alerts, in)
	m.events = append(m.events, e)
}

func (m *loopModel) check(t *rapid.T) {
	// Every decision is stored exactly as it was returned, and every
	// declaration lists exactly its decisions.
	err := m.db.View(ctx, func(tx inspection.ReadTx) error {
		for id, in := range m.sent {
			rec, err := tx.Declaration(id)
			if err != nil {
				return fmt.Errorf("declaration %s lost: %w", id, err)
			}
			if len(rec.DecisionIDs) != len(in.Lines) {
				return fmt.Errorf("declaration %s has %d decisions for %d lines", id, len(rec.DecisionIDs), len(in.Lines))
			}
		}
		for id, want := range m.decided {
			got, err := tx.Decision(id)
			if err != nil {
				return fmt.Errorf("decision %s lost: %w", id, err)
			}
			if got.Mode != want.Mode || got.AssignmentID != want.AssignmentID || !got.DecidedAt.Equal(want.DecidedAt) {
				return fmt.Errorf("decision %s changed: %+v vs %+v", id, got, want)
			}
			if want.Inspect {
				a, err := tx.Assignment(want.AssignmentID)
				if err != nil {
					return fmt.Errorf("assignment %s lost: %w", want.AssignmentID, err)
				}
				_, posted := m.results[a.ID]
				if (a.Status == inspection.AssignmentClosed) != posted {
					return fmt.Errorf("assignment %s status %s, result posted %v", a.ID, a.Status, posted)
				}
			}
		}
		// Each importer's own history holds exactly its lots' results.
		for _, imp := range []string{"0101234567", "0309876543"} {
			evs, err := tx.ImporterEvents(imp)
			if err != nil {
				return err
			}
			want := 0
			for _, e := range m.events {
				if !e.alert && e.importer == imp {
					want++
				}
			}
			if len(evs) != want {
				return fmt.Errorf("importer %s history has %d results, want %d", imp, len(evs), want)
			}
			for i, e := range evs {
				if e.Kind != inspection.EventResult || e.ImporterTaxCode != imp || (i > 0 && e.At.Before(evs[i-1].At)) {
					return fmt.Errorf("importer %s history entry %d out of place: %+v", imp, i, e)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPropertyCoreLoop(t *testing.T) {
	p := mustPolicy(t)
	base := []declaration.LineInput{
		{HSCode: "0402.21.20", ProductName: "Sữa bột", Manufacturer: "Dairy One", Origin: "NZ", Procedure: "food_safety", Unit: "kg"},
		{HSCode: "0402.10.41", ProductName: "Sữa bột gầy", Manufacturer: "Dairy One", Origin: "NZ", Procedure: "food_safety", Unit: "kg"},
		{HSCode: "1905.31.20", ProductName: "Bánh quy bơ", Brand: "Crisp", Manufacturer: "Biscuit Works", Origin: "DK", Procedure: "food_safety", Unit: "kg"},
		{HSCode: "8516.71.00", ProductName: "Ấm điện", Manufacturer: "Kettle Co", Origin: "CN", Procedure: "quality", Unit: "pcs"},
	}
	rapid.Check(t, func(t *rapid.T) {
		m := &loopModel{t: t, policy: p, clock: &stepClock{now: time.Date(2026, 1, 5, 9, 0, 0, 0, calendar.Vietnam())},
			dir: tempDir(t), sent: map[string]declaration.Input{}, decided: map[string]inspection.Decision{},
			results: map[string]inspection.ResultInput{}}
		for _, l := range base {
			c := identity.Goods{HSCode: l.HSCode, ProductName: l.ProductName, Brand: l.Brand, Manufacturer: l.Manufacturer, Origin: l.Origin}.Canonical()
			m.goods = append(m.goods, refGoods{line: l, canon: c})
		}
		defer os.RemoveAll(m.dir)
		m.open_()
		defer func() { _ = m.db.Close() }()
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			switch rapid.IntRange(0, 9).Draw(t, "action") {
			case 0, 1, 2:
				m.declare(t)
			case 3:
				m.resend(t)
			case 4, 5:
				m.result(t)
			case 6:
				m.resendResult(t)
			case 7:
				m.alert(t)
			case 8:
				m.clock.now = m.clock.now.Add(time.Duration(rapid.IntRange(1, 200*24).Draw(t, "advance h")) * time.Hour)
			case 9:
				// A restart: everything acknowledged must still be there.
				if err := m.db.Close(); err != nil {
					t.Fatal(err)
				}
				m.open_()
			}
		}
		m.check(t)
	})
}

// tempDir makes a directory per rapid check (rapid.T has no TempDir);
// the caller removes it.
func tempDir(t *rapid.T) string {
	dir, err := os.MkdirTemp("", "ktcn-prop-*")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
