package inspection_test

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"pgregory.net/rapid"

	"github.com/ktcn/ktcn/inspection"
	"github.com/ktcn/ktcn/inspection/access"
	"github.com/ktcn/ktcn/inspection/calendar"
	"github.com/ktcn/ktcn/inspection/declaration"
	"github.com/ktcn/ktcn/inspection/fault"
	"github.com/ktcn/ktcn/inspection/policy"
	"github.com/ktcn/ktcn/inspection/quota"
	"github.com/ktcn/ktcn/store"
)

// fixedClock is safe for concurrent reads and a single writer.
type fixedClock struct{ now atomic.Pointer[time.Time] }

func (c *fixedClock) Now() time.Time  { return *c.now.Load() }
func (c *fixedClock) Set(t time.Time) { c.now.Store(&t) }

// reducedLine is a lot that is reduced from its first import: the goods
// have no history and carry a valid HACCP certificate.
func reducedLine(hs string, n int) declaration.LineInput {
	no, q := 1, 10.0
	return declaration.LineInput{LineNo: &no, HSCode: hs, ProductName: fmt.Sprintf("Hàng %d", n%7), Manufacturer: "Certified Foods",
		Origin: "TH", Procedure: "food_safety", Quantity: &q, Unit: "kg",
		Certificates: []declaration.CertificateInput{{Kind: "HACCP", Number: "H-1", ValidUntil: "2028-12-31"}}}
}

var quotaHeadings = []string{"0402.21.20", "1905.31.20", "2106.90.71"}

// quotaRig is a service over a real badger dir that can be restarted
// underneath concurrent callers.
type quotaRig struct {
	dir    string
	clock  *fixedClock
	policy *policy.Policy // nil: the default policy
	mu     sync.RWMutex   // held for reading by callers, for writing by a restart
	db     *store.DB
	svc    *inspection.Service
}

func (r *quotaRig) open(tb interface{ Fatal(...any) }) {
	db, err := store.Open(store.Options{Dir: r.dir, Small: true, Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	p := r.policy
	if p == nil {
		if p, err = policy.DefaultPolicy(); err != nil {
			tb.Fatal(err)
		}
	}
	svc, err := inspection.NewService(inspection.Config{Store: db, Policy: p, Clock: r.clock, QuotaKeys: testKeys, Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	r.db, r.svc = db, svc
	onRecord(tb, db)
}

func (r *quotaRig) restart(tb interface{ Fatal(...any) }) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.db.Close(); err != nil {
		tb.Fatal(err)
	}
	r.open(tb)
}

// decide submits a declaration until it is acknowledged; a retry after an
// error is exactly what NSW does, and must be safe.
func (r *quotaRig) decide(in declaration.Input) (inspection.Decision, error) {
	for attempt := 0; ; attempt++ {
		r.mu.RLock()
		res, err := r.svc.Decide(ctx, access.SystemPrincipal(), in)
		r.mu.RUnlock()
		if err == nil {
			return res.Decisions[0], nil
		}
		if fault.CodeOf(err) != fault.Unavailable || attempt > 100 {
			return inspection.Decision{}, err
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPropertyQuotaCapHolds: random interleavings of concurrent decisions,
// retries of acknowledged declarations, and store restarts under load
// never put any scope above floor(cap × eligible) at any instant (every
// decision records the counts it saw, so every instant is checked), never
// decide one lot two ways, and leave a period that verifies.
func TestPropertyQuotaCapHolds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rig := &quotaRig{dir: tempDir(t), clock: &fixedClock{}}
		defer os.RemoveAll(rig.dir)
		rig.clock.Set(time.Date(2026, 6, 1, 9, 0, 0, 0, calendar.Vietnam()))
		rig.open(t)
		defer func() { _ = rig.db.Close() }()

		lots := rapid.IntRange(1, 150).Draw(t, "lots")
		workers := rapid.IntRange(1, 8).Draw(t, "workers")
		headingOf := rapid.SliceOfN(rapid.IntRange(0, len(quotaHeadings)-1), lots, lots).Draw(t, "scopes")
		retryEvery := rapid.IntRange(2, 10).Draw(t, "retry every")
		restarts := rapid.IntRange(0, 3).Draw(t, "restarts")

		inputs := make([]declaration.Input, lots)
		for i := range inputs {
			inputs[i] = declaration.Input{DeclarationID: fmt.Sprintf("Q%05d", i), ImporterTaxCode: "0101234567",
				Lines: []declaration.LineInput{reducedLine(quotaHeadings[headingOf[i]], i)}}
		}
		decided := make([]inspection.Decision, lots)
		var (
			next    atomic.Int64
			wg      sync.WaitGroup
			errMu   sync.Mutex
			firstEr error
		)
		fail := func(err error) {
			errMu.Lock()
			if firstEr == nil {
				firstEr = err
			}
			errMu.Unlock()
		}
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= lots {
						return
					}
					d, err := rig.decide(inputs[i])
					if err != nil {
						fail(fmt.Errorf("lot %d: %w", i, err))
						return
					}
					decided[i] = d
					if i%retryEvery == 0 { // NSW resends an acknowledged declaration
						again, err := rig.decide(inputs[i])
						if err != nil || again.ID != d.ID || again.Inspect != d.Inspect || !again.DecidedAt.Equal(d.DecidedAt) {
							fail(fmt.Errorf("lot %d decided two ways: %+v then %+v (%v)", i, d, again, err))
						}
					}
				}
			}()
		}
		for k := 0; k < restarts; k++ {
			time.Sleep(time.Duration(k+1) * 3 * time.Millisecond)
			rig.restart(t)
		}
		wg.Wait()
		if firstEr != nil {
			t.Fatal(firstEr)
		}

		// Every instant: each decision carries the counts right after it.
		perScope := map[string][]quota.Record{}
		for i, d := range decided {
			if d.Mode != inspection.ModeReduced || d.Quota == nil {
				t.Fatalf("lot %d: mode %s without a quota record", i, d.Mode)
			}
			q := *d.Quota
			if q.Selected*10000 > q.Eligible*q.CapBasisPoints {
				t.Fatalf("lot %d: %d selected of %d eligible exceeds the cap", i, q.Selected, q.Eligible)
			}
			perScope[q.Scope] = append(perScope[q.Scope], q)
		}
		err := rig.db.View(ctx, func(tx inspection.ReadTx) error {
			for scope, recs := range perScope {
				c, err := tx.QuotaCounter("2026", scope)
				if err != nil {
					return err
				}
				ids, err := tx.QuotaDraws("2026", scope)
				if err != nil {
					return err
				}
				if c.Eligible != int64(len(recs)) || len(ids) != len(recs) {
					return fmt.Errorf("scope %s: counter %d eligible, %d draws indexed, %d lots decided", scope, c.Eligible, len(ids), len(recs))
				}
				seen := map[int64]bool{}
				for _, q := range recs {
					if seen[q.Eligible] {
						return fmt.Errorf("scope %s: two lots both eligible #%d", scope, q.Eligible)
					}
					seen[q.Eligible] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// After the year closes the auditor recomputes every draw.
		rig.clock.Set(time.Date(2027, 1, 2, 9, 0, 0, 0, calendar.Vietnam()))
		key, err := rig.svc.RevealQuotaKey(ctx, as("auditor"), "2026")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rig.svc.VerifyQuota(ctx, access.SystemPrincipal(), "2026", key); err != nil {
			t.Fatal(err)
		}
	})
}
