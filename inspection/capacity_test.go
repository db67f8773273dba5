package inspection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/identity"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/store"
)

// capacityRoute is a route of the test policy: goods under hs go to agency,
// or to its alternates, in order, when it is full.
type capacityRoute struct {
	ministry, prefix, hs string
	agency               string
	alternates           []string
}

var capacityRoutes = []capacityRoute{
	{"MOH", "2201", "2201.10.10", "moh-iph-hcmc", []string{"moh-nifc", "moh-pasteur-nt"}},
	{"MARD", "0302", "0302.13.00", "mard-nafiqad-4", []string{"mard-nafiqad-1"}},
	{"MOIT", "0402", "0402.21.20", "moit-firi", []string{"moit-vinacontrol"}},
}

// capacityPolicy is the default policy with alternates on the test routes
// and the given capacities per agency and check kind.
func capacityPolicy(t testing.TB, perDay map[string]map[string]int) *policy.Policy {
	t.Helper()
	p := mustPolicy(t)
	p.Version = "capacity-test"
	for _, cr := range capacityRoutes {
		found := false
		for i, r := range p.Routing {
			if r.Ministry == cr.ministry && r.Prefix == cr.prefix {
				if r.Agency != cr.agency {
					t.Fatalf("route %s %s goes to %s, not %s", cr.ministry, cr.prefix, r.Agency, cr.agency)
				}
				p.Routing[i].Alternates, found = cr.alternates, true
			}
		}
		if !found {
			t.Fatalf("no route %s %s", cr.ministry, cr.prefix)
		}
	}
	p.Capacity = &policy.CapacityRules{PerDay: perDay}
	doc, err := p.Document()
	if err != nil {
		t.Fatal(err)
	}
	if p, err = policy.ParsePolicy(doc); err != nil {
		t.Fatal(err)
	}
	return p
}

type capacityRig struct {
	db    *store.DB
	svc   *inspection.Service
	clock *fixtures.SteppingClock
	pol   *policy.Policy
}

func newCapacityRig(t testing.TB, pol *policy.Policy, opts store.Options, start time.Time) capacityRig {
	t.Helper()
	opts.InMemory, opts.Small, opts.Logger = true, true, zerolog.Nop()
	db, err := store.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	clock := fixtures.NewSteppingClock(start)
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: pol, Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return capacityRig{db, svc, clock, pol}
}

// capacityLine is a lot of goods under route r: strict when its maker is
// under an alert (riskyMaker), else normal (first imports, no results).
func capacityLine(no int, r capacityRoute, product int, strict bool) declaration.LineInput {
	q := 10.0
	maker, origin := "Steady Foods", "TH"
	if strict {
		maker, origin = riskyMaker, "CN"
	}
	return declaration.LineInput{LineNo: &no, HSCode: r.hs, ProductName: fmt.Sprintf("Hàng %s số %d", r.prefix, product),
		Manufacturer: maker, Origin: origin, Procedure: "food_safety", Quantity: &q, Unit: "kg"}
}

const riskyMaker = "Risky Foods"

// alertRiskyMaker makes every lot of riskyMaker strict (a documents and
// sampling check).
func alertRiskyMaker(t testing.TB, r capacityRig) {
	t.Helper()
	in := inspection.AlertInput{Authority: "RASFF", Reference: "CAP-1", IssuedAt: r.clock.Now().Add(-time.Hour).Format(time.RFC3339),
		Reason: "Salmonella", Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: riskyMaker, Origin: "CN"}}
	if _, err := r.svc.RaiseAlert(context.Background(), as("customs"), in); err != nil {
		t.Fatal(err)
	}
}

// decideAll decides the declarations with workers goroutines at once.
func decideAll(t testing.TB, svc *inspection.Service, decls []declaration.Input, workers int) {
	t.Helper()
	work := make(chan declaration.Input)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range work {
				if _, err := svc.Decide(context.Background(), access.SystemPrincipal(), in); err != nil {
					errs <- fmt.Errorf("declaration %s: %w", in.DeclarationID, err)
					for range work {
					}
					return
				}
			}
		}()
	}
	for _, d := range decls {
		work <- d
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// routingFigures are what checkRouting found.
type routingFigures struct {
	assignments, alternate, over int
	preferredFull                map[string]bool // days on which some preferred agency filled
	counters                     int
}

// checkRouting replays every assignment in commit order (the audit chain's
// order) against the policy and the counts so far, and requires: (a) the
// assignment's agency is designated for its goods; (b) it went to the
// first designated agency with room for its check kind on its working
// day, or, when none had room, to the preferred one flagged over
// capacity; (c) every stored counter equals the recount, and every count
// has its counter.
func checkRouting(t testing.TB, db *store.DB, pol *policy.Policy) routingFigures {
	t.Helper()
	type slot struct{ agency, day, check string }
	type count struct{ routed, over int64 }
	counts := map[slot]*count{}
	fig := routingFigures{preferredFull: map[string]bool{}}
	days := map[string]bool{}
	routed := map[string]string{} // assignment → agency when first written
	err := db.View(context.Background(), func(tx inspection.ReadTx) error {
		return tx.AuditEntries(1, func(_ uint64, e audit.Entry, bad error) error {
			if bad != nil {
				return bad
			}
			for _, rd := range e.Records {
				if rd.Kind != audit.RecordAssignment {
					continue
				}
				a, err := tx.Assignment(rd.ID)
				if err != nil {
					return err
				}
				if ag, again := routed[a.ID]; again {
					// Cancelled or reopened by an override: routed once.
					if a.Agency != ag {
						return fmt.Errorf("assignment %s moved from %s to %s", a.ID, ag, a.Agency)
					}
					continue
				}
				routed[a.ID] = a.Agency
				fig.assignments++
				listing, ok := pol.Lookup(a.Procedure, a.Goods.HSCode)
				if !ok {
					return fmt.Errorf("assignment %s: %s not listed", a.ID, a.Goods.HSCode)
				}
				designated, _ := pol.Designated(listing, a.Goods.HSCode)
				if !slices.Contains(designated, a.Agency) { // (a)
					return fmt.Errorf("assignment %s went to %s, not designated for %s (%v)", a.ID, a.Agency, a.Goods.HSCode, designated)
				}
				if want := pol.CapacityDay(a.CreatedAt); a.CapacityDay != want {
					return fmt.Errorf("assignment %s counts toward %q, want %s", a.ID, a.CapacityDay, want)
				}
				days[a.CapacityDay] = true
				want, over := designated[0], true
				for _, ag := range designated {
					c := counts[slot{ag, a.CapacityDay, a.Check}]
					if n, limited := pol.DailyCapacity(ag, a.Check); !limited || c == nil || c.routed < int64(n) {
						want, over = ag, false
						break
					}
				}
				if a.Agency != want || a.OverCapacity != over { // (b)
					return fmt.Errorf("assignment %s (%s on %s) went to %s (over capacity %v), want %s (over capacity %v)",
						a.ID, a.Check, a.CapacityDay, a.Agency, a.OverCapacity, want, over)
				}
				if want != designated[0] {
					fig.alternate++
					fig.preferredFull[a.CapacityDay] = true
					if a.PreferredAgency != designated[0] {
						return fmt.Errorf("assignment %s: preferred agency %q, want %s", a.ID, a.PreferredAgency, designated[0])
					}
				}
				s := slot{a.Agency, a.CapacityDay, a.Check}
				if counts[s] == nil {
					counts[s] = &count{}
				}
				counts[s].routed++
				if over {
					counts[s].over++
					fig.over++
					fig.preferredFull[a.CapacityDay] = true
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// (c) The counters are the recount: one per slot, no other.
	err = db.View(context.Background(), func(tx inspection.ReadTx) error {
		seen := 0
		for day := range days {
			cs, err := tx.CapacityCounters(day)
			if err != nil {
				return err
			}
			for _, c := range cs {
				want := counts[slot{c.Agency, c.Day, c.Check}]
				if want == nil || c.Routed != want.routed || c.Over != want.over {
					return fmt.Errorf("counter %s: routed %d over %d, recount %+v", c.ID(), c.Routed, c.Over, want)
				}
				seen++
			}
		}
		if seen != len(counts) {
			return fmt.Errorf("%d counters stored, %d slots counted", seen, len(counts))
		}
		n := 0
		if err := tx.Records(audit.RecordCapacityCounter, func(audit.RecordDigest) error { n++; return nil }); err != nil {
			return err
		}
		if n != len(counts) {
			return fmt.Errorf("%d capacity counter records, %d slots", n, len(counts))
		}
		fig.counters = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fig
}

// TestCapacityRoutingLoad is the acceptance's routing load test: 50,000
// inspected lots decided by 16 callers at once over 30 simulated working
// days (with some lots decided on Saturdays, counting toward Monday), to
// routes designating two or three of the fixture agencies, with capacities
// the preferred agencies exceed on most days and every agency on some.
// Replayed from the store in commit order, every lot went to an agency
// designated for it, to the first with room, over capacity only when all
// were full, and the counters are the recount.
func TestCapacityRoutingLoad(t *testing.T) {
	// 50,000 lots take about 30 s on two cores; under the race detector or
	// -short, 5,000 (the same 16 callers, the same capacities scaled), and
	// KTCN_CAPACITY_LOTS sets the number (50000 for the acceptance's run
	// under -race).
	lots, workers, perDecl := 50_000, 16, 10
	if testing.Short() || raceDetector {
		lots = 5_000
	}
	if v := os.Getenv("KTCN_CAPACITY_LOTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1_000 {
			t.Fatalf("KTCN_CAPACITY_LOTS=%q: want a number of lots, at least 1000", v)
		}
		lots = n
	}
	// Capacities for 50,000 lots (about 1,670 a day, a third to each
	// route, a fifth of them strict), scaled to the lots decided.
	perDay := map[string]map[string]int{
		"moh-iph-hcmc":     {policy.CheckDocuments: 300, policy.CheckDocumentsAndSampling: 60},
		"moh-nifc":         {policy.CheckDocuments: 120, policy.CheckDocumentsAndSampling: 25},
		"moh-pasteur-nt":   {policy.CheckDocuments: 60},
		"mard-nafiqad-4":   {policy.CheckDocuments: 250, policy.CheckDocumentsAndSampling: 50},
		"mard-nafiqad-1":   {policy.CheckDocuments: 150, policy.CheckDocumentsAndSampling: 40},
		"moit-firi":        {policy.CheckDocuments: 200},
		"moit-vinacontrol": {policy.CheckDocumentsAndSampling: 30},
	}
	for _, checks := range perDay {
		for k, n := range checks {
			checks[k] = max(1, n*lots/50_000)
		}
	}
	pol := capacityPolicy(t, perDay)
	wc, err := pol.Calendar.Compile() // the policy's calendar decides the working days
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 8, 30, 0, 0, vn)
	r := newCapacityRig(t, pol, store.Options{}, start)
	alertRiskyMaker(t, r)

	// 30 working days; each gets a share of the lots, some days twice as
	// heavy as others, and after each Friday a few lots are decided on
	// the Saturday (they count toward Monday).
	rng := rand.New(rand.NewPCG(7, 30))
	var days []time.Time
	for d := start; len(days) < 30; d = d.AddDate(0, 0, 1) {
		if wc.WorkingDay(d) {
			days = append(days, d)
		}
	}
	weights := make([]float64, len(days))
	var sum float64
	for i := range weights {
		weights[i] = 0.6 + rng.Float64()*1.2
		sum += weights[i]
	}
	began := time.Now()
	n := 0
	for i, day := range days {
		share := int(float64(lots) * weights[i] / sum)
		if i == len(days)-1 {
			share = lots - n
		}
		batches := [][]declaration.Input{nil}
		at := []time.Time{day.Add(30 * time.Minute)}
		if day.Weekday() == time.Friday {
			batches, at = append(batches, nil), append(at, day.AddDate(0, 0, 1).Add(2*time.Hour))
		}
		var decl declaration.Input
		for k := range share {
			b := 0
			if len(batches) > 1 && k%10 == 0 {
				b = 1 // a tenth of Friday's share waits for Saturday
			}
			ri := rng.IntN(len(capacityRoutes))
			line := capacityLine(len(decl.Lines)+1, capacityRoutes[ri], rng.IntN(40), rng.IntN(5) == 0)
			if decl.DeclarationID == "" {
				decl = declaration.Input{DeclarationID: fmt.Sprintf("CAP-%02d-%d-%06d", i, b, k), ImporterTaxCode: fmt.Sprintf("01012345%02d", rng.IntN(20))}
				line.LineNo = new(int)
				*line.LineNo = 1
			}
			decl.Lines = append(decl.Lines, line)
			n++
			if len(decl.Lines) == perDecl || k == share-1 {
				batches[b] = append(batches[b], decl)
				decl = declaration.Input{}
			}
		}
		for b := range batches {
			r.clock.Set(at[b])
			decideAll(t, r.svc, batches[b], workers)
		}
	}
	decided := time.Since(began)
	fig := checkRouting(t, r.db, pol)
	if fig.assignments != lots {
		t.Fatalf("%d assignments for %d lots", fig.assignments, lots)
	}
	if fig.alternate == 0 || fig.over == 0 || len(fig.preferredFull) < len(days)/2 {
		t.Fatalf("the load did not test capacity: %d lots to alternates, %d over capacity, a preferred agency full on %d days",
			fig.alternate, fig.over, len(fig.preferredFull))
	}
	t.Logf("%d lots over %d working days by %d callers in %s (%.0f lots/s); %d to an alternate, %d over capacity; a preferred agency full on %d days; %d counters",
		lots, len(days), workers, decided.Round(time.Millisecond), float64(lots)/decided.Seconds(), fig.alternate, fig.over, len(fig.preferredFull), fig.counters)
}

// TestCapacityCountersExactUnderConcurrency: many callers deciding lots of
// one route on one day at once, through the group committer and with
// direct commits (conflicts retried), fill each agency exactly to its
// capacity, in preference order, and put the rest on the preferred agency
// flagged; an override opening an assignment is routed the same way.
func TestCapacityCountersExactUnderConcurrency(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			pol := capacityPolicy(t, map[string]map[string]int{
				"moh-iph-hcmc":   {policy.CheckDocuments: 37},
				"moh-nifc":       {policy.CheckDocuments: 23},
				"moh-pasteur-nt": {policy.CheckDocuments: 11},
			})
			start := time.Date(2026, 3, 3, 9, 0, 0, 0, vn)
			r := newCapacityRig(t, pol, store.Options{DirectCommit: direct}, start)
			const lots = 100
			var decls []declaration.Input
			for i := range lots {
				decls = append(decls, declaration.Input{DeclarationID: fmt.Sprintf("CC-%03d", i), ImporterTaxCode: "0101234567",
					Lines: []declaration.LineInput{capacityLine(1, capacityRoutes[0], i%7, false)}})
			}
			decideAll(t, r.svc, decls, 24)
			fig := checkRouting(t, r.db, pol)
			if fig.assignments != lots || fig.alternate != 23+11 || fig.over != lots-37-23-11 {
				t.Fatalf("%+v", fig)
			}
			want := map[string][2]int64{"moh-iph-hcmc": {37 + 29, 29}, "moh-nifc": {23, 0}, "moh-pasteur-nt": {11, 0}}
			err := r.db.View(ctx, func(tx inspection.ReadTx) error {
				for ag, w := range want {
					c, err := tx.CapacityCounter(ag, "2026-03-03", policy.CheckDocuments)
					if err != nil {
						return err
					}
					if c.Routed != w[0] || c.Over != w[1] {
						return fmt.Errorf("%s: %+v, want routed %d over %d", ag, c, w[0], w[1])
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// The audit covers the counters.
			if rep, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), nil); err != nil {
				t.Fatalf("audit: %v (%+v)", err, rep)
			}
		})
	}
}

// A policy without a capacity section routes as before: no counters, no
// capacity fields, every lot to its route's agency.
func TestNoCapacitySectionRoutesAsBefore(t *testing.T) {
	pol := mustPolicy(t)
	r := newCapacityRig(t, pol, store.Options{}, time.Date(2026, 3, 3, 9, 0, 0, 0, vn))
	var decls []declaration.Input
	for i := range 20 {
		decls = append(decls, declaration.Input{DeclarationID: fmt.Sprintf("NC-%03d", i), ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{capacityLine(1, capacityRoutes[0], i, false)}})
	}
	decideAll(t, r.svc, decls, 8)
	err := r.db.View(ctx, func(tx inspection.ReadTx) error {
		for _, d := range decls {
			a, err := tx.Assignment(identity.AssignmentID(d.DeclarationID, 1))
			if err != nil { // every lot is normal: inspected
				return err
			}
			if a.Agency != "moh-iph-hcmc" || a.CapacityDay != "" || a.OverCapacity || a.PreferredAgency != "" {
				return fmt.Errorf("%+v", a)
			}
		}
		n := 0
		if err := tx.Records(audit.RecordCapacityCounter, func(audit.RecordDigest) error { n++; return nil }); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d capacity counters without a capacity section", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An override that opens an assignment (the checked side of a swap) routes
// it by capacity as a decision would; the released side's assignment keeps
// its agency and its place in the count.
func TestCapacityRoutesOverrideAssignments(t *testing.T) {
	pol := capacityPolicy(t, map[string]map[string]int{
		"moit-firi":        {policy.CheckDocuments: 1},
		"moit-vinacontrol": {policy.CheckDocuments: 1000},
	})
	r := newCapacityRig(t, pol, store.Options{}, time.Date(2026, 3, 3, 9, 0, 0, 0, vn))
	onRecord(t, r.db)
	var checked, unchecked []inspection.Decision
	for i := 0; i < 400 && (len(checked) < 2 || len(unchecked) == 0); i++ {
		res, err := r.svc.Decide(ctx, access.SystemPrincipal(), declaration.Input{DeclarationID: fmt.Sprintf("OV-%03d", i),
			ImporterTaxCode: "0101234567", Lines: []declaration.LineInput{reducedLine("0402.21.20", i)}})
		if err != nil {
			t.Fatal(err)
		}
		d := res.Decisions[0]
		switch {
		case d.Mode != inspection.ModeReduced:
			t.Fatalf("lot %d: %s (%s), want reduced", i, d.Mode, d.Reason)
		case d.Inspect:
			checked = append(checked, d)
		default:
			unchecked = append(unchecked, d)
		}
	}
	if len(checked) < 2 || len(unchecked) == 0 {
		t.Fatalf("%d drawn, %d not drawn", len(checked), len(unchecked))
	}
	// The first drawn lot filled moit-firi; the second went to the
	// alternate.
	if checked[0].Agency != "moit-firi" || checked[1].Agency != "moit-vinacontrol" {
		t.Fatalf("drawn lots went to %s and %s", checked[0].Agency, checked[1].Agency)
	}
	out, err := r.svc.Override(ctx, as("customs"), checked[0].ID, inspection.OverrideInput{ReasonCode: "operational_swap",
		ReasonText: "the container left the port", SwapWith: unchecked[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if out.Swapped == nil {
		t.Fatal("no swap")
	}
	a, err := assignmentOf(t, r, unchecked[0]) // the decision names none: it was not drawn
	if err != nil {
		t.Fatal(err)
	}
	if a.Agency != "moit-vinacontrol" || a.PreferredAgency != "moit-firi" || a.OverCapacity || a.CapacityDay != "2026-03-03" {
		t.Fatalf("the swapped-in lot's assignment: %+v", a)
	}
	fig := checkRouting(t, r.db, pol)
	if fig.assignments != len(checked)+1 {
		t.Fatalf("%+v", fig)
	}
}

// assignmentOf reads the assignment of a lot from the store.
func assignmentOf(t testing.TB, r capacityRig, d inspection.Decision) (inspection.Assignment, error) {
	t.Helper()
	var a inspection.Assignment
	err := r.db.View(ctx, func(tx inspection.ReadTx) error {
		var err error
		a, err = tx.Assignment(identity.AssignmentID(d.DeclarationID, d.LineNo))
		return err
	})
	return a, err
}
