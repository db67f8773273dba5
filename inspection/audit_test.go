package inspection_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/audit"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/store"
)

// headLog records the heads a service reports, as a checkpointer hears them.
type headLog struct {
	mu    sync.Mutex
	heads []audit.Head
}

func (h *headLog) AuditCommitted(head audit.Head) {
	h.mu.Lock()
	h.heads = append(h.heads, head)
	h.mu.Unlock()
}

// auditRig is a started service and an Access over one in-memory store
// with group commit, as serve wires them.
type auditRig struct {
	db     *store.DB
	svc    *inspection.Service
	access *inspection.Access
	clock  *fixedClock
}

func newAuditRig(t testing.TB, obs audit.Observer) *auditRig {
	t.Helper()
	db, err := store.Open(store.Options{InMemory: true, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	clock := &fixedClock{}
	clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: mustPolicy(t), Clock: clock, QuotaKeys: testKeys,
		Logger: zerolog.Nop(), AuditObserver: obs})
	if err != nil {
		t.Fatal(err)
	}
	onRecord(t, db)
	if _, err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	access, err := inspection.NewAccess(inspection.AccessConfig{Store: db, Clock: clock, Logger: zerolog.Nop(), AuditObserver: obs})
	if err != nil {
		t.Fatal(err)
	}
	return &auditRig{db: db, svc: svc, access: access, clock: clock}
}

// normalLine is a lot of goods with no history: normal mode, inspected.
func normalLine(no int, product string) declaration.LineInput {
	q := 100.0
	return declaration.LineInput{LineNo: &no, HSCode: "0402.21.20", ProductName: product, Manufacturer: "Audit Dairy",
		Origin: "NZ", Procedure: "food_safety", Quantity: &q, Unit: "kg"}
}

func (r *auditRig) entries(t testing.TB) []audit.Entry {
	t.Helper()
	es, _, err := r.svc.AuditLog(ctx, access.SystemPrincipal(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func (r *auditRig) verify(t testing.TB) audit.Report {
	t.Helper()
	rep, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), nil)
	if err != nil {
		t.Fatalf("an honest store fails verification: %v", err)
	}
	return rep
}

// TestAuditLogCoversEveryUseCase drives every use case that writes, and
// its retry, and checks that each write appended exactly one entry, in
// the same transaction, naming the actor, the kind, the subjects and a
// digest of every record written; that a retry that writes nothing
// appends nothing; and that the untouched store verifies.
func TestAuditLogCoversEveryUseCase(t *testing.T) {
	heads := &headLog{}
	r := newAuditRig(t, heads)
	admin := access.Principal{Name: "admin:ops", Role: access.RoleAdmin}
	if _, err := r.svc.Start(ctx); err != nil { // the policy is stored once
		t.Fatal(err)
	}
	keys, err := r.access.CreateKeys(ctx, admin, []inspection.KeyRequest{{Principal: "customs:a"}, {Principal: "auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	decl := declaration.Input{DeclarationID: "AUD-1", ImporterTaxCode: "0101234567",
		Lines: []declaration.LineInput{normalLine(1, "Sữa audit"), reducedLine("1905.31.20", 1)}}
	decl.Lines[1].LineNo = ptr(2)
	res, err := r.svc.Decide(ctx, as("nsw"), decl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Decide(ctx, as("nsw"), decl); err != nil { // a resubmission writes nothing
		t.Fatal(err)
	}
	inspected := res.Decisions[0]
	if !inspected.Inspect || res.Decisions[1].Mode != inspection.ModeReduced {
		t.Fatalf("setup: %+v", res.Decisions)
	}
	result := inspection.ResultInput{Outcome: "pass", InspectedAt: r.clock.Now().Format(time.RFC3339)}
	for range 2 {
		if _, err := r.svc.RecordResult(ctx, as("agency:moit-firi"), inspected.AssignmentID, result); err != nil {
			t.Fatal(err)
		}
	}
	alert := inspection.AlertInput{Authority: "RASFF", Reference: "AUD-A1", IssuedAt: r.clock.Now().Format(time.RFC3339), Reason: "Listeria",
		Target: inspection.AlertTarget{Kind: "manufacturer", Manufacturer: "Other Dairy", Origin: "NZ"}}
	for range 2 {
		if _, err := r.svc.RaiseAlert(ctx, as("customs:a"), alert); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := r.access.RevokeKey(ctx, admin, keys[1].Key.ID); err != nil {
			t.Fatal(err)
		}
	}
	r.clock.Set(time.Date(2027, 1, 4, 9, 0, 0, 0, calendar.Vietnam()))
	for range 2 {
		if _, err := r.svc.RevealQuotaKey(ctx, as("auditor:b"), "2026"); err != nil {
			t.Fatal(err)
		}
	}

	es := r.entries(t)
	type want struct {
		kind     audit.Kind
		actor    string
		subjects []string
		records  []audit.RecordKind
	}
	wants := []want{
		{audit.PolicyStored, access.ActorSystem, []string{"policy:" + mustPolicy(t).Version}, []audit.RecordKind{"policy", "policy_version"}},
		{audit.KeyCreated, "admin:ops", []string{"api_key:" + keys[0].Key.ID, "api_key:" + keys[1].Key.ID}, []audit.RecordKind{"api_key", "api_key"}},
		{audit.DeclarationDecided, "nsw", []string{"declaration:AUD-1", "quota_period:2026"},
			[]audit.RecordKind{"assignment", "decision", "goods_state", "quota_period", "quota_counter", "decision", "goods_state", "declaration"}},
		{audit.ResultRecorded, "agency:moit-firi", []string{"assignment:" + inspected.AssignmentID, "decision:" + inspected.ID},
			[]audit.RecordKind{"assignment", "event", "goods_state"}},
		{audit.AlertRaised, "customs:a", nil, []audit.RecordKind{"event"}},
		{audit.KeyRevoked, "admin:ops", []string{"api_key:" + keys[1].Key.ID}, []audit.RecordKind{"api_key"}},
		{audit.QuotaKeyRevealed, "auditor:b", []string{"quota_period:2026"}, []audit.RecordKind{"quota_period"}},
	}
	if len(es) != len(wants) {
		for _, e := range es {
			t.Logf("%d %s %s %v", e.Seq, e.Kind, e.Actor, e.Subjects)
		}
		t.Fatalf("%d entries, want %d (one per write, none per retry)", len(es), len(wants))
	}
	for i, w := range wants {
		e := es[i]
		var kinds []audit.RecordKind
		for _, rd := range e.Records {
			kinds = append(kinds, rd.Kind)
		}
		if e.Seq != uint64(i+1) || e.Kind != w.kind || e.Actor != w.actor || !slices.Equal(kinds, w.records) ||
			(w.subjects != nil && !slices.Equal(e.Subjects, w.subjects)) {
			t.Errorf("entry %d: %d %s by %s %v %v; want %s by %s %v %v", i+1, e.Seq, e.Kind, e.Actor, e.Subjects, kinds,
				w.kind, w.actor, w.subjects, w.records)
		}
		if i > 0 && e.Prev != es[i-1].Hash {
			t.Errorf("entry %d does not link to entry %d", e.Seq, i)
		}
	}
	// A record's digest is SHA-256 of its JSON exactly as encoding/json
	// writes it: what the store keeps, so an auditor hashes stored bytes.
	// (An assignment is stored as it is; a decision in its stored form,
	// events by ID and scores compacted, which r.verify hashes as stored.)
	var closed inspection.Assignment
	if err := r.db.View(ctx, func(tx inspection.ReadTx) error {
		var err error
		closed, err = tx.Assignment(inspected.AssignmentID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(closed)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if i := slices.IndexFunc(es[3].Records, func(d audit.RecordDigest) bool { return d.ID == closed.ID }); i < 0 ||
		es[3].Records[i].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("assignment digest %+v, want %x", es[3].Records, sum)
	}
	// The observer heard every head, in order (one caller at a time here).
	if len(heads.heads) != len(es) || heads.heads[len(es)-1] != (audit.Head{Seq: es[len(es)-1].Seq, Hash: es[len(es)-1].Hash}) {
		t.Errorf("observer heard %+v", heads.heads)
	}
	rep := r.verify(t)
	if rep.Entries != uint64(len(es)) || rep.Head.Seq != uint64(len(es)) || rep.Records < 12 {
		t.Errorf("report %+v", rep)
	}
}

func ptr[T any](v T) *T { return &v }

// TestAuditHashMatchesTheDocument pins the encoding docs/audit.md gives
// auditors, with its worked example: change one and the other must follow.
func TestAuditHashMatchesTheDocument(t *testing.T) {
	e := audit.Entry{Seq: 1, At: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), Actor: "nsw",
		Kind: audit.DeclarationDecided, Subjects: []string{"declaration:D1"},
		Records: []audit.RecordDigest{{Kind: "decision", ID: "dec_1", SHA256: strings.Repeat("ab", 32)}}}
	msg, err := audit.Message(e)
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := "00000013" + "6b74636e2f61756469742d656e7472792f7631" + // tag
		"0000000000000001" + "1898fa9bb2fba000" + // seq, at
		"00000003" + "6e7377" + "00000013" + "6465636c61726174696f6e2e64656369646564" + // actor, kind
		"00000001" + "0000000e" + "6465636c61726174696f6e3a4431" + // subjects
		"00000001" + "00000008" + "6465636973696f6e" + "00000005" + "6465635f31" + strings.Repeat("ab", 32) // records
	if got := hex.EncodeToString(msg); got != wantMsg {
		t.Fatalf("message\n%s\nwant\n%s", got, wantMsg)
	}
	sum, err := audit.Hash([32]byte{}, e)
	if err != nil {
		t.Fatal(err)
	}
	const wantHash = "711a0752d8d37078814cb69e0cbee1af406c0c07ff6e834b631ef8b0ddcf8085"
	if got := hex.EncodeToString(sum[:]); got != wantHash {
		t.Fatalf("hash %s, want %s (docs/audit.md)", got, wantHash)
	}
	e.Records[0].SHA256 = "abc"
	if _, err := audit.Message(e); err == nil {
		t.Fatal("a digest that is not 64 hex digits was encoded")
	}
}

// TestCheckpoints: a checkpointer wired as the observer signs the head
// every N entries and on Sync; the file reads back with the public key and
// matches the chain; a wrong key or an altered line is refused, naming it.
func TestCheckpoints(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	clock := &fixedClock{}
	clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
	cp, err := audit.NewCheckpointer(audit.CheckpointerConfig{Key: key, Every: 3, Out: &file, Clock: clock, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r := newAuditRig(t, cp) // entry 1: the policy
	for i := range 9 {      // entries 2-10
		in := declaration.Input{DeclarationID: fmt.Sprintf("CP-%d", i), ImporterTaxCode: "0101234567",
			Lines: []declaration.LineInput{normalLine(1, fmt.Sprintf("Sữa %d", i))}}
		if _, err := r.svc.Decide(ctx, as("nsw"), in); err != nil {
			t.Fatal(err)
		}
	}
	head, err := inspection.ChainHead(ctx, r.db)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok, err := cp.Sync(head); err != nil || !ok || c.Seq != 10 {
		t.Fatalf("sync: %+v %v %v", c, ok, err)
	}
	if _, ok, err := cp.Sync(head); err != nil || ok {
		t.Fatalf("a second sync with nothing new wrote a checkpoint: %v %v", ok, err)
	}
	cps, err := audit.ReadCheckpoints(bytes.NewReader(file.Bytes()), pub)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, c := range cps {
		seqs = append(seqs, c.Seq)
	}
	if !slices.Equal(seqs, []uint64{3, 6, 9, 10}) {
		t.Fatalf("checkpoints at %v, want 3 6 9 10", seqs)
	}
	rep, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), cps)
	if err != nil || rep.Checkpoints != 4 {
		t.Fatalf("verify with checkpoints: %+v %v", rep, err)
	}

	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := audit.ReadCheckpoints(bytes.NewReader(file.Bytes()), other); !errors.Is(err, audit.ErrMismatch) ||
		!strings.Contains(err.Error(), "line 1") {
		t.Fatalf("another key: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(file.String()), "\n")
	var c audit.Checkpoint
	if err := json.Unmarshal([]byte(lines[1]), &c); err != nil {
		t.Fatal(err)
	}
	c.Hash = strings.Repeat("0", 64) // a checkpoint rewritten to fit a rewritten chain
	forged, _ := json.Marshal(c)
	lines[1] = string(forged)
	if _, err := audit.ReadCheckpoints(strings.NewReader(strings.Join(lines, "\n")), pub); !errors.Is(err, audit.ErrMismatch) ||
		!strings.Contains(err.Error(), "line 2") {
		t.Fatalf("an altered checkpoint: %v", err)
	}
	// A validly signed checkpoint that disagrees with the chain (the chain
	// was rewritten after it was signed) names its position.
	bad, err := audit.Sign(key, audit.Head{Seq: 6, Hash: strings.Repeat("0", 64)}, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var brk *audit.Break
	if _, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), append(cps, bad)); !errors.As(err, &brk) || brk.Seq != 6 {
		t.Fatalf("a checkpoint the chain contradicts: %v", err)
	}
	beyond, _ := audit.Sign(key, audit.Head{Seq: 12, Hash: strings.Repeat("1", 64)}, clock.Now())
	if _, err := r.svc.VerifyAudit(ctx, access.SystemPrincipal(), append(cps, beyond)); !errors.As(err, &brk) || brk.Seq != 11 || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("a checkpoint beyond the chain's end: %v", err)
	}
}

// TestAuditChainUnderConcurrency: many callers deciding, posting results
// and creating keys at once, through group commit and through one
// transaction per update (where every writer contends for the head and
// retries on conflict): the chain has one entry per write, no gaps, and
// verifies.
func TestAuditChainUnderConcurrency(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			db, err := store.Open(store.Options{InMemory: true, Small: true, DirectCommit: direct, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			onRecord(t, db)
			clock := &fixedClock{}
			clock.Set(time.Date(2026, 3, 2, 9, 0, 0, 0, calendar.Vietnam()))
			heads := &headLog{}
			svc, err := inspection.NewService(inspection.Config{Store: db, Policy: mustPolicy(t), Clock: clock, QuotaKeys: testKeys,
				Logger: zerolog.Nop(), AuditObserver: heads})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := inspection.NewAccess(inspection.AccessConfig{Store: db, Clock: clock, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			callers, each := 16, 8
			if direct {
				callers, each = 8, 4 // every writer retries on the head: keep it short
			}
			var (
				wg     sync.WaitGroup
				writes atomicCount
			)
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						in := declaration.Input{DeclarationID: fmt.Sprintf("CC-%d-%d", c, i), ImporterTaxCode: "0101234567",
							Lines: []declaration.LineInput{normalLine(1, fmt.Sprintf("Sữa %d-%d", c, i)), reducedLine(quotaHeadings[i%3], c*each+i)}}
						in.Lines[1].LineNo = ptr(2)
						res, err := svc.Decide(ctx, as("nsw"), in)
						if fault.CodeOf(err) == fault.Unavailable {
							continue // direct commit gave up on the hot head: nothing written
						}
						if err != nil {
							t.Error(err)
							return
						}
						writes.add()
						if i%2 == 0 {
							_, err := svc.RecordResult(ctx, as("agency:moit-firi"), res.Decisions[0].AssignmentID,
								inspection.ResultInput{Outcome: "pass", InspectedAt: clock.Now().Format(time.RFC3339)})
							if err == nil {
								writes.add()
							} else if fault.CodeOf(err) != fault.Unavailable {
								t.Error(err)
							}
						}
						if i == 0 {
							if _, err := keys.CreateKey(ctx, access.Principal{Name: "admin", Role: access.RoleAdmin},
								inspection.KeyRequest{Principal: fmt.Sprintf("customs:c%d", c)}); err == nil {
								writes.add()
							} else if fault.CodeOf(err) != fault.Unavailable {
								t.Error(err)
							}
						}
					}
				}()
			}
			wg.Wait()
			rep, err := svc.VerifyAudit(ctx, access.SystemPrincipal(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Entries != uint64(writes.n.Load()) || rep.Entries < uint64(callers) {
				t.Fatalf("%d entries for %d writes", rep.Entries, writes.n.Load())
			}
			seen := map[uint64]bool{}
			for _, h := range heads.heads {
				if seen[h.Seq] {
					t.Fatalf("head %d reported twice", h.Seq)
				}
				seen[h.Seq] = true
			}
		})
	}
}

type atomicCount struct{ n atomic.Int64 }

func (a *atomicCount) add() { a.n.Add(1) }
