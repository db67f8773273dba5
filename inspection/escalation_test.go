package inspection_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/fixtures"
	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/store"
)

// TestEscalationExactlyOnce: inspections past their deadline are each
// escalated once, whether the job runs twice in a row or the process
// restarts between runs (injected clock, a real badger directory).
func TestEscalationExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	clock := &fixedClock{}
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()) // a Monday
	clock.Set(start)
	open := func() (*store.DB, *inspection.Service) {
		t.Helper()
		db, err := store.Open(store.Options{Dir: dir, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := inspection.NewService(inspection.Config{Store: db, Policy: mustPolicy(t), Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return db, svc
	}
	db, svc := open()
	if err := fixtures.Load(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Ten documents checks an hour apart: due a working time later each.
	var ids []string
	for i := range 10 {
		res, err := svc.Decide(ctx, as("nsw"), declarationOf(fmt.Sprintf("ESC-%02d", i), normalLine(1, fmt.Sprintf("Sữa %d", i))))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Decisions[0].AssignmentID)
		clock.Set(clock.Now().Add(time.Hour))
	}
	dues := make([]time.Time, len(ids))
	for i, id := range ids {
		a, err := svc.Assignment(ctx, access.SystemPrincipal(), id)
		if err != nil {
			t.Fatal(err)
		}
		dues[i] = a.DueAt
	}
	escalated := func(svc *inspection.Service) map[string]int {
		t.Helper()
		es, _, err := svc.AuditLog(ctx, access.SystemPrincipal(), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, e := range es {
			if e.Kind == audit.AssignmentEscalated {
				n[e.Subjects[0]]++
			}
		}
		return n
	}
	run := func(svc *inspection.Service) int {
		t.Helper()
		n, err := svc.EscalateOverdue(ctx, access.SystemPrincipal())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Half of them overdue: escalated once, and again nothing.
	clock.Set(dues[4].Add(time.Minute))
	if n := run(svc); n != 5 {
		t.Fatalf("first run escalated %d, want 5", n)
	}
	if n := run(svc); n != 0 {
		t.Fatalf("second run escalated %d, want 0", n)
	}
	// Restart, then all overdue: the other five, once.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, svc = open()
	defer db.Close()
	clock.Set(dues[9].Add(time.Minute))
	if n := run(svc); n != 5 {
		t.Fatalf("after the restart escalated %d, want 5", n)
	}
	if n := run(svc); n != 0 {
		t.Fatalf("again after the restart: %d", n)
	}
	counts := escalated(svc)
	for _, id := range ids {
		if counts["assignment:"+id] != 1 {
			t.Errorf("assignment %s escalated %d times", id, counts["assignment:"+id])
		}
		a, err := svc.Assignment(ctx, access.SystemPrincipal(), id)
		if err != nil || a.Escalation == nil || !a.Status.Active() {
			t.Errorf("assignment %s: %+v (%v)", id, a.Escalation, err)
		}
	}
}

func declarationOf(id string, l declaration.LineInput) declaration.Input {
	return declaration.Input{DeclarationID: id, ImporterTaxCode: "0101234567", Lines: []declaration.LineInput{l}}
}

// TestEscalationReassigns: under a policy whose route designates another
// agency after the preferred one, an overdue inspection is reassigned to
// it, with a new deadline, and the first agency's queue no longer holds it.
func TestEscalationReassigns(t *testing.T) {
	db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := mustPolicy(t)
	p.Version = "esc-alternates"
	for i, r := range p.Routing {
		if r.Prefix == "0402" {
			p.Routing[i].Alternates = []string{"moit-vinacontrol"}
		}
	}
	doc, err := p.Document()
	if err != nil {
		t.Fatal(err)
	}
	if p, err = policy.ParsePolicy(doc); err != nil {
		t.Fatal(err)
	}
	clock := &fixedClock{}
	clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixtures.Load(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Decide(ctx, as("nsw"), declarationOf("ESC-R", normalLine(1, "Sữa R")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := svc.Assignment(ctx, access.SystemPrincipal(), res.Decisions[0].AssignmentID)
	if err != nil || a.Agency != "moit-firi" {
		t.Fatalf("routed to %s (%v)", a.Agency, err)
	}
	clock.Set(a.DueAt.Add(time.Minute))
	if n, err := svc.EscalateOverdue(ctx, access.SystemPrincipal()); err != nil || n != 1 {
		t.Fatalf("escalated %d (%v)", n, err)
	}
	b, err := svc.Assignment(ctx, access.SystemPrincipal(), a.ID)
	if err != nil || b.Agency != "moit-vinacontrol" || b.Escalation == nil || b.Escalation.ToAgency != "moit-vinacontrol" ||
		!b.DueAt.After(clock.Now()) || b.Status != inspection.AssignmentOpen {
		t.Fatalf("after escalation: %+v %+v (%v)", b, b.Escalation, err)
	}
	firi, _, err := svc.Queue(ctx, as("agency:moit-firi"), inspection.QueueQuery{})
	if err != nil || len(firi) != 0 {
		t.Fatalf("the first agency's queue: %d (%v)", len(firi), err)
	}
	vina, _, err := svc.Queue(ctx, as("agency:moit-vinacontrol"), inspection.QueueQuery{})
	if err != nil || len(vina) != 1 {
		t.Fatalf("the new agency's queue: %d (%v)", len(vina), err)
	}
}
